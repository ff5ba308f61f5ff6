//! How long the server waits for its database, and the pool's two hooks that keep broken
//! connections out of the pool, so that faults end by themselves.
//!
//! **Every statement is bounded in time.** sqlx gives a statement on an open connection no
//! deadline of its own, so behind a network that drops packets a query waits as long as TCP
//! does (many minutes). [`Bounded`] wraps the pools and connections the server hands out, and
//! its `Executor` gives each statement [`Limits::answer`] to finish: after that the request gets
//! an I/O "timed out" error (a 503), and the connection is taken as broken. Store functions do
//! not change: `on_conn!` and `on_db!` bodies run `&mut *c` and `pool` through these executors.
//! PostgreSQL itself stops a statement sooner (`statement_timeout`, see [`super::Db::connect`]),
//! so a slow query or a long lock wait ends with a clean error and keeps its connection; only a
//! connection that says nothing at all runs into the server's own bound.
//!
//! **A broken connection does not go back into use.** Two hooks on every pool:
//! - `after_release`: SQLite rolls a transaction back by itself after some errors ("database or
//!   disk is full", I/O errors). The `ROLLBACK` a dropped `sqlx::Transaction` queues then fails,
//!   sqlx still counts the transaction as open, and every later `begin_with` on that connection
//!   fails ("attempted to call begin_with at non-zero transaction depth") until a restart. The
//!   hook lets the queued rollback run and closes a connection that sqlx still thinks is inside
//!   a transaction. And for a while after a connection broke, it first checks (within the bound)
//!   that a released connection still answers, so one stuck behind a silent network is closed
//!   instead of holding its place in the pool for as long as TCP waits.
//! - `before_acquire`: once any connection broke (an I/O error, a closed socket, no answer in
//!   time), every connection opened before that moment is replaced instead of reused: after a
//!   database restart or a network cut the idle ones are dead too, and finding each by a failed
//!   request would answer one 503 per connection after the database is back. Opening
//!   connections again costs a few milliseconds each, once per fault; nothing is checked on the
//!   ordinary path, which stays a single round trip per statement.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{Future, Stream, StreamExt};
use sqlx::pool::PoolConnectionMetadata;
use sqlx::{Connection, Database, Either, Error, Execute, Executor, Pool, SqlStr};

/// How long the server waits for the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// For a connection: an idle one from the pool, or a new one.
    pub acquire: Duration,
    /// For a statement's answer once it is sent. Longer than anything the database is allowed to
    /// take (PostgreSQL's statement timeout, SQLite's wait for the write lock), so only a
    /// connection that went silent runs into it.
    pub answer: Duration,
}

/// After a connection broke, how long released connections are checked before they are reused.
const SUSPECT_FOR: Duration = Duration::from_secs(30);

/// What one pool has seen go wrong, shared by its hooks and the executors it hands out.
#[derive(Debug, Default)]
struct Health {
    /// When a connection last broke.
    broke_at: Mutex<Option<Instant>>,
}

impl Health {
    fn broke(&self) {
        if let Ok(mut at) = self.broke_at.lock() {
            *at = Some(Instant::now());
        }
    }

    fn last_break(&self) -> Option<Instant> {
        self.broke_at.lock().ok().and_then(|at| *at)
    }

    /// Whether a connection `age` old at `now` was opened before the last break.
    fn predates_break(&self, age: Duration, now: Instant) -> bool {
        match (self.last_break(), now.checked_sub(age)) {
            (Some(broke), Some(opened)) => opened <= broke,
            // Opened before this process's clock began: older than any break.
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    fn suspect(&self) -> bool {
        self.last_break()
            .is_some_and(|broke| broke.elapsed() < SUSPECT_FOR)
    }
}

/// The limits of one pool and what it has seen, carried by every [`Bounded`] it hands out.
#[derive(Clone, Debug)]
pub struct Guard {
    limits: Limits,
    health: Arc<Health>,
}

impl Guard {
    pub fn new(limits: Limits) -> Guard {
        Guard {
            limits,
            health: Arc::default(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Wraps `inner` so its statements are bounded by this guard.
    pub fn bound<T>(&self, inner: T) -> Bounded<T> {
        Bounded {
            guard: self.clone(),
            inner,
        }
    }

    /// Runs `work`, failing it after `wait`; a broken connection is remembered.
    pub async fn within<T>(
        &self,
        wait: Duration,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(wait, work).await {
            Ok(result) => {
                if let Err(e) = &result {
                    self.saw(e);
                }
                result
            }
            Err(_) => {
                self.health.broke();
                Err(no_answer(wait))
            }
        }
    }

    /// Remembers `err` when it shows the connection broke (not when the database refused the
    /// statement, nor when the pool had no connection free).
    fn saw(&self, err: &Error) {
        if breaks_connection(err) {
            self.health.broke();
        }
    }

    fn stream<'e, T: Send + 'e>(
        &'e self,
        wait: Duration,
        inner: BoxStream<'e, Result<T, Error>>,
    ) -> BoxStream<'e, Result<T, Error>> {
        Box::pin(Within {
            inner,
            wait,
            deadline: None,
            guard: self,
            done: false,
        })
    }

    fn future<'e, T: Send + 'e>(
        &'e self,
        wait: Duration,
        inner: BoxFuture<'e, Result<T, Error>>,
    ) -> BoxFuture<'e, Result<T, Error>> {
        Box::pin(self.within(wait, inner))
    }

    /// The pool hooks described in the module documentation, on `options`.
    pub fn hooks<DB: Database>(
        &self,
        options: sqlx::pool::PoolOptions<DB>,
    ) -> sqlx::pool::PoolOptions<DB> {
        let (before, after) = (self.clone(), self.clone());
        options
            .before_acquire(move |_conn, meta: PoolConnectionMetadata| {
                let keep = !before.health.predates_break(meta.age, Instant::now());
                Box::pin(std::future::ready(Ok(keep)))
            })
            .after_release(move |conn, _meta| {
                if !conn.is_in_transaction() && !after.health.suspect() {
                    return Box::pin(std::future::ready(Ok(true)));
                }
                let guard = after.clone();
                Box::pin(async move { guard.settle(conn).await })
            })
    }

    /// Whether a released connection may be reused; an error closes it at once.
    async fn settle<C: Connection>(&self, conn: &mut C) -> Result<bool, Error> {
        let wait = self.limits.answer;
        if conn.is_in_transaction() {
            // The rollback a dropped transaction queued runs on SQLite's worker thread in order
            // with other commands: a ping waits for it.
            self.within(wait, conn.ping()).await?;
            if conn.is_in_transaction() {
                tracing::warn!(
                    "closed a database connection whose failed transaction could not be rolled back"
                );
                return Ok(false);
            }
        }
        if self.health.suspect() {
            self.within(wait, conn.ping()).await?;
        }
        Ok(true)
    }
}

/// The error of a statement that got no answer in time: an I/O error, as a silent network is.
fn no_answer(wait: Duration) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the database gave no answer within {} ms", wait.as_millis()),
    ))
}

/// Whether `err` shows that the connection it came from is gone.
fn breaks_connection(err: &Error) -> bool {
    match err {
        Error::Io(_) | Error::Tls(_) | Error::Protocol(_) | Error::WorkerCrashed => true,
        // PostgreSQL's connection exceptions and shutdowns, sent just before it closes.
        Error::Database(db) => db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some_and(|pg| pg.code().starts_with("08") || pg.code().starts_with("57P0")),
        _ => false,
    }
}

/// A pool or connection whose every statement is bounded by its [`Guard`]. Derefs to what it
/// wraps, for everything that is not a statement (`close`, `begin_write`, migrations).
pub struct Bounded<T: ?Sized> {
    guard: Guard,
    inner: T,
}

impl<T: ?Sized> Bounded<T> {
    pub fn guard(&self) -> &Guard {
        &self.guard
    }
}

impl<T> Bounded<T> {
    pub fn into_parts(self) -> (Guard, T) {
        (self.guard, self.inner)
    }
}

impl<T: Clone> Clone for Bounded<T> {
    fn clone(&self) -> Self {
        Bounded {
            guard: self.guard.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<T: ?Sized> fmt::Debug for Bounded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounded")
            .field("limits", &self.guard.limits)
            .finish_non_exhaustive()
    }
}

impl<T: ?Sized> Deref for Bounded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> DerefMut for Bounded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

/// Something that holds a connection of type `C`: a transaction or a pooled connection. A
/// [`Bounded`] of either becomes a `Bounded<dyn Holds<C>>`, the one type a `Conn` borrows.
pub trait Holds<C>: DerefMut<Target = C> + Send {}

impl<C, T: DerefMut<Target = C> + Send> Holds<C> for T {}

/// A stream that fails once `wait` has passed since it was first polled.
struct Within<'e, T> {
    inner: BoxStream<'e, Result<T, Error>>,
    wait: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    guard: &'e Guard,
    done: bool,
}

impl<T> Stream for Within<'_, T> {
    type Item = Result<T, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = this.inner.poll_next_unpin(cx) {
            if let Some(Err(e)) = &item {
                this.guard.saw(e);
            }
            return Poll::Ready(item);
        }
        let wait = this.wait;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
        if deadline.as_mut().poll(cx).is_ready() {
            this.done = true;
            this.guard.health.broke();
            return Poll::Ready(Some(Err(no_answer(wait))));
        }
        Poll::Pending
    }
}

/// The `Executor` of a bounded connection (`$conn`) and of a bounded pool of `$db`: the same
/// statements as the driver's, each within its limit (on a pool, the wait for a connection
/// too).
macro_rules! bounded_executors {
    ($db:ty, $conn:ty) => {
        impl<'c> Executor<'c> for &'c mut Bounded<dyn Holds<$conn>> {
            type Database = $db;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxStream<
                'e,
                Result<Either<<$db as Database>::QueryResult, <$db as Database>::Row>, Error>,
            >
            where
                'c: 'e,
                E: 'q + Execute<'q, $db>,
            {
                let Bounded { guard, inner } = self;
                let conn: &'e mut $conn = inner;
                guard.stream(guard.limits.answer, conn.fetch_many(query))
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxFuture<'e, Result<Option<<$db as Database>::Row>, Error>>
            where
                'c: 'e,
                E: 'q + Execute<'q, $db>,
            {
                let Bounded { guard, inner } = self;
                let conn: &'e mut $conn = inner;
                guard.future(guard.limits.answer, conn.fetch_optional(query))
            }

            fn prepare_with<'e>(
                self,
                sql: SqlStr,
                parameters: &'e [<$db as Database>::TypeInfo],
            ) -> BoxFuture<'e, Result<<$db as Database>::Statement, Error>>
            where
                'c: 'e,
            {
                let Bounded { guard, inner } = self;
                let conn: &'e mut $conn = inner;
                guard.future(guard.limits.answer, conn.prepare_with(sql, parameters))
            }

            fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<$db>, Error>>
            where
                'c: 'e,
            {
                let Bounded { guard, inner } = self;
                let conn: &'e mut $conn = inner;
                guard.future(guard.limits.answer, conn.describe(sql))
            }
        }

        impl<'c> Executor<'c> for &'c Bounded<Pool<$db>> {
            type Database = $db;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxStream<
                'e,
                Result<Either<<$db as Database>::QueryResult, <$db as Database>::Row>, Error>,
            >
            where
                'c: 'e,
                E: 'q + Execute<'q, $db>,
            {
                let wait = self.guard.limits.acquire + self.guard.limits.answer;
                self.guard.stream(wait, self.inner.fetch_many(query))
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxFuture<'e, Result<Option<<$db as Database>::Row>, Error>>
            where
                'c: 'e,
                E: 'q + Execute<'q, $db>,
            {
                let wait = self.guard.limits.acquire + self.guard.limits.answer;
                self.guard.future(wait, self.inner.fetch_optional(query))
            }

            fn prepare_with<'e>(
                self,
                sql: SqlStr,
                parameters: &'e [<$db as Database>::TypeInfo],
            ) -> BoxFuture<'e, Result<<$db as Database>::Statement, Error>>
            where
                'c: 'e,
            {
                let wait = self.guard.limits.acquire + self.guard.limits.answer;
                self.guard
                    .future(wait, self.inner.prepare_with(sql, parameters))
            }

            fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<$db>, Error>>
            where
                'c: 'e,
            {
                let wait = self.guard.limits.acquire + self.guard.limits.answer;
                self.guard.future(wait, self.inner.describe(sql))
            }
        }
    };
}

bounded_executors!(sqlx::Sqlite, sqlx::SqliteConnection);
bounded_executors!(sqlx::Postgres, sqlx::PgConnection);

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard::new(Limits {
            acquire: Duration::from_millis(100),
            answer: Duration::from_millis(200),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn work_without_an_answer_fails_as_timed_out_and_marks_the_pool() {
        let guard = guard();
        assert!(!guard.health.suspect());
        let never = std::future::pending::<Result<(), Error>>();
        let err = guard
            .within(guard.limits.answer, never)
            .await
            .expect_err("no answer");
        assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut));
        assert!(guard.health.suspect());
        // Connections opened before the break are replaced; one opened after it is kept.
        let broke = guard.health.last_break().expect("a break");
        let later = broke + Duration::from_millis(10);
        assert!(
            guard
                .health
                .predates_break(Duration::from_millis(20), later)
        );
        assert!(
            guard
                .health
                .predates_break(Duration::from_millis(10), later)
        );
        assert!(!guard.health.predates_break(Duration::from_millis(5), later));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_fails_once_its_time_is_up_and_not_before() {
        let guard = guard();
        let rows = futures::stream::iter([Ok::<_, Error>(1), Ok(2)])
            .chain(futures::stream::pending())
            .boxed();
        let mut bounded = guard.stream(Duration::from_millis(200), rows);
        assert_eq!(bounded.next().await.map(|r| r.ok()), Some(Some(1)));
        assert_eq!(bounded.next().await.map(|r| r.ok()), Some(Some(2)));
        let last = bounded
            .next()
            .await
            .expect("an error")
            .expect_err("timed out");
        assert!(matches!(&last, Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut));
        assert!(bounded.next().await.is_none());
    }

    #[test]
    fn a_refused_statement_does_not_mark_the_pool() {
        let guard = guard();
        guard.saw(&Error::RowNotFound);
        guard.saw(&Error::PoolTimedOut);
        assert!(!guard.health.suspect());
        guard.saw(&Error::Io(std::io::ErrorKind::ConnectionReset.into()));
        assert!(guard.health.suspect());
    }
}
