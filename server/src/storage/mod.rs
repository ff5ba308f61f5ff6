//! Storage: one small handle over the two engines the platform runs on.
//!
//! SQLite is the embedded default (one file in the data directory, WAL); PostgreSQL is production.
//! Queries are written once in `$1` style, which both native drivers accept, and run on whichever
//! engine the URL chose. Table definitions differ per engine, so each has its own migrations
//! folder.
//!
//! Each aggregate has a store module (`scheduling/booking/store.rs` and the like) whose functions
//! take a [`Conn`]: a connection the caller owns, either inside a transaction it began with
//! [`Db::begin`] or one checked out with [`Db::acquire`] for reads. So a service can put several
//! store calls, and the audit event of what they did, in one transaction. Inside a store
//! function, [`on_conn!`] runs the same query text on whichever engine the connection is.
//!
//! The query text is checked by the tests, which run every storage path on both engines; it is
//! not checked by the compiler (the queries are not `query!` macros, which would need a database
//! at build time). What the compiler does check is that each body binds and decodes types both
//! drivers support, since [`on_conn!`] expands it once per engine.
//!
//! How faults end by themselves (a database that is down, silent, read-only or out of disk):
//! every statement is bounded in time and broken connections are kept out of the pool
//! ([`bounded`]); [`outage`] tells the rest of the server which fault an error is, which the API
//! answers 503 with `Retry-After`; [`readiness`] is the write probe behind `/readyz`.
//!
//! The data directory and the database files hold health data: the directory is created for its
//! owner only (0700) and the SQLite file 0600 before SQLite first opens it, since SQLite gives
//! its `-wal` and `-shm` files the database file's own permissions. (`main` also sets the
//! process umask to 077, for every other file.)

pub mod bounded;
pub mod readiness;

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use bounded::{Bounded, Guard, Holds, Limits};

/// Runs the same expression against whichever engine the handle holds, on its pool (one statement,
/// no transaction). New code takes a [`Conn`] and uses [`on_conn!`] instead.
///
/// The body is expanded once per engine, so both drivers must be able to bind and decode its
/// types.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::storage::Db::Sqlite($pool) => $body,
            $crate::storage::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs the same expression on whichever engine a [`Conn`] is, with `$conn` bound to that
/// engine's `&mut` connection (write `&mut *conn` for each statement).
///
/// ```ignore
/// on_conn!(conn, c => sqlx::query("DELETE FROM slot_claims WHERE consultation_id = $1")
///     .bind(id).execute(&mut *c).await)
/// ```
#[macro_export]
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::storage::Conn::Sqlite($c) => $body,
            $crate::storage::Conn::Postgres($c) => $body,
        }
    };
}

/// A connection pool on one of the two supported engines, whose statements are bounded in time
/// ([`Bounded`]; it derefs to the sqlx pool).
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(Bounded<SqlitePool>),
    Postgres(Bounded<PgPool>),
}

/// Which engine a handle talks to, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("unsupported database URL scheme in {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("invalid database URL: {0}")]
    InvalidUrl(#[source] sqlx::Error),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the database file {path}: {source}")]
    DatabaseFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

/// How a database fault shows to the rest of the server. Each is answered 503 with
/// `Retry-After` (see `api/error.rs`), and `/readyz` names the one it meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    /// No connection could be had in time (the database is down, unreachable or every
    /// connection is in use), or the one in use broke.
    Unreachable,
    /// The database gave no answer in time: PostgreSQL's statement timeout, or a connection
    /// that went silent.
    TimedOut,
    /// The database is out of connections, memory or locks, or SQLite's write lock stayed taken
    /// for longer than its busy timeout.
    Busy,
    /// The database accepts no writes: a PostgreSQL standby, a database set read-only, a SQLite
    /// file the server may not write.
    ReadOnly,
    /// The disk, or SQLite's quota (`sqlite_max_page_count`), is full.
    Full,
}

impl Outage {
    /// The outage's name, for readiness and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outage::Unreachable => "unreachable",
            Outage::TimedOut => "timed_out",
            Outage::Busy => "busy",
            Outage::ReadOnly => "read_only",
            Outage::Full => "storage_full",
        }
    }
}

/// Which fault `err` is, if it is one (and not a refused statement or a bug).
pub fn outage(err: &sqlx::Error) -> Option<Outage> {
    use sqlx::Error as E;
    match err {
        E::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => Some(Outage::TimedOut),
        E::PoolTimedOut
        | E::PoolClosed
        | E::WorkerCrashed
        | E::Io(_)
        | E::Tls(_)
        | E::Protocol(_) => Some(Outage::Unreachable),
        E::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                postgres_outage(pg.code())
            } else {
                // SQLite's extended result code; its low byte is the primary code.
                let code = db.code().and_then(|c| c.parse::<i32>().ok())?;
                sqlite_outage(code & 0xff)
            }
        }
        _ => None,
    }
}

/// PostgreSQL's SQLSTATE classes and codes that are faults rather than refusals.
fn postgres_outage(code: &str) -> Option<Outage> {
    match code {
        "53100" => Some(Outage::Full),
        "25006" => Some(Outage::ReadOnly),
        // query_canceled: the statement timeout.
        "57014" => Some(Outage::TimedOut),
        // lock_not_available (a lock timeout).
        "55P03" => Some(Outage::Busy),
        // invalid_catalog_name: the database is gone.
        "3D000" => Some(Outage::Unreachable),
        c if c.starts_with("08") || c.starts_with("57P0") => Some(Outage::Unreachable),
        // Insufficient resources: connections, memory, configured limits.
        c if c.starts_with("53") => Some(Outage::Busy),
        _ => None,
    }
}

/// SQLite's primary result codes that are faults rather than refusals.
fn sqlite_outage(primary: i32) -> Option<Outage> {
    match primary {
        // SQLITE_BUSY, SQLITE_LOCKED
        5 | 6 => Some(Outage::Busy),
        // SQLITE_READONLY
        8 => Some(Outage::ReadOnly),
        // SQLITE_IOERR, SQLITE_CANTOPEN
        10 | 14 => Some(Outage::Unreachable),
        // SQLITE_FULL
        13 => Some(Outage::Full),
        _ => None,
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// How long SQLite waits for its one write lock before a writer fails as busy: writers queue
/// for it under load, which is how SQLite serialises them.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Pool sizes and waits, from configuration.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a caller waits for a connection (see [`Limits::acquire`]).
    pub acquire_timeout: Duration,
    /// The longest a PostgreSQL statement may run; the server waits half as long again for
    /// any answer, on either engine (SQLite: after its busy timeout).
    pub statement_timeout: Duration,
    /// SQLite's `max_page_count`, a quota on the file's size.
    pub sqlite_max_page_count: Option<u32>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(2),
            sqlite_max_page_count: None,
        }
    }
}

impl PoolSettings {
    /// The waits of a pool on `engine`.
    fn limits(&self, engine: Engine) -> Limits {
        let silence = self.statement_timeout + self.statement_timeout / 2;
        Limits {
            acquire: self.acquire_timeout,
            answer: match engine {
                Engine::Sqlite => SQLITE_BUSY_TIMEOUT + silence,
                Engine::Postgres => silence,
            },
        }
    }
}

impl Db {
    /// Opens a pool for `url`, choosing the engine from its scheme. A SQLite file (and its folder)
    /// is created on first use.
    pub async fn connect(url: &str, settings: PoolSettings) -> Result<Db, StorageError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(StorageError::InvalidUrl)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // NORMAL is durable in WAL mode except for the last commits on power loss, the
                // usual trade for an embedded single-node database.
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT);
            let options = match settings.sqlite_max_page_count {
                Some(pages) => options.pragma("max_page_count", pages.to_string()),
                None => options,
            };
            let file = options.get_filename();
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                create_private_dir(parent).map_err(|source| StorageError::DataDir {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
            let in_memory = url.contains(":memory:")
                || url.contains("mode=memory")
                || file.to_string_lossy().starts_with("file:");
            if !in_memory {
                create_private_file(file)?;
            }
            let guard = Guard::new(settings.limits(Engine::Sqlite));
            let pool = guard
                .hooks(SqlitePoolOptions::new())
                // An embedded file does not drop connections; skip the ping before each checkout.
                .test_before_acquire(false)
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options)
                .await
                .map_err(StorageError::Connect)?;
            Ok(Db::Sqlite(guard.bound(pool)))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // PostgreSQL ends a statement that runs too long itself, with an error and the
            // connection intact; at most i32::MAX ms.
            let statement_ms = settings
                .statement_timeout
                .as_millis()
                .clamp(1, i32::MAX as u128);
            let options = PgConnectOptions::from_str(url)
                .map_err(StorageError::InvalidUrl)?
                // sqlx prepares every statement once per connection; by default PostgreSQL still
                // re-plans the first executions and then any whose custom plan looks cheaper,
                // and planning the join-heavy queries here costs more than running them (2 ms
                // against 0.5 ms for a slot search). Every query is an index lookup whose
                // generic plan is the right one.
                .options([
                    ("plan_cache_mode", "force_generic_plan".to_string()),
                    ("statement_timeout", statement_ms.to_string()),
                ])
                // Lists of ids make statements of many shapes; keep them all prepared.
                .statement_cache_capacity(2000);
            let guard = Guard::new(settings.limits(Engine::Postgres));
            let pool = guard
                .hooks(PgPoolOptions::new())
                // sqlx pings a connection before every checkout by default: a round trip per
                // query. A dead connection shows itself on use instead (one 503), after which
                // the pool replaces the connections opened before it (see `bounded`).
                .test_before_acquire(false)
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options)
                .await
                .map_err(StorageError::Connect)?;
            Ok(Db::Postgres(guard.bound(pool)))
        } else {
            Err(StorageError::UnsupportedUrl(redact_url(url)))
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// Applies the pending migrations of this engine. They run without the statement bounds of
    /// requests: building an index on a large table may take minutes.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        match self {
            Db::Sqlite(pool) => SQLITE_MIGRATIONS.run(&**pool).await?,
            Db::Postgres(pool) => {
                // A connection of its own without the statement timeout, closed afterwards.
                let mut conn = pool.acquire().await?;
                conn.close_on_drop();
                sqlx::query("SET statement_timeout = 0")
                    .execute(&mut *conn)
                    .await?;
                POSTGRES_MIGRATIONS
                    .run_direct(None, &mut *conn, false)
                    .await?
            }
        }
        Ok(())
    }

    /// The waits of this handle's pool.
    pub fn limits(&self) -> Limits {
        on_db!(self, pool => pool.guard().limits())
    }

    pub async fn close(&self) {
        on_db!(self, pool => pool.close().await)
    }
}

/// A write transaction the caller owns, on either engine. Dropped without [`Tx::commit`], it
/// rolls back.
pub enum Tx {
    Sqlite(Bounded<sqlx::Transaction<'static, sqlx::Sqlite>>),
    Postgres(Bounded<sqlx::Transaction<'static, sqlx::Postgres>>),
}

/// A connection checked out of the pool, for reads that need no transaction.
pub enum Pooled {
    Sqlite(Bounded<sqlx::pool::PoolConnection<sqlx::Sqlite>>),
    Postgres(Bounded<sqlx::pool::PoolConnection<sqlx::Postgres>>),
}

/// Where a store function runs its statements: a connection of either engine, borrowed from a
/// [`Tx`] or a [`Pooled`] for the length of the call. `&mut *c` in an [`on_conn!`] body is the
/// bounded connection, an `Executor` like the driver's own.
pub enum Conn<'c> {
    Sqlite(&'c mut Bounded<dyn Holds<sqlx::SqliteConnection>>),
    Postgres(&'c mut Bounded<dyn Holds<sqlx::PgConnection>>),
}

impl Db {
    /// Begins a write transaction (on SQLite `BEGIN IMMEDIATE`, see [`BeginWrite`]).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => {
                let guard = pool.guard();
                let wait = guard.limits().acquire + guard.limits().answer;
                Tx::Sqlite(guard.bound(guard.within(wait, pool.begin_write()).await?))
            }
            Db::Postgres(pool) => {
                let guard = pool.guard();
                let wait = guard.limits().acquire + guard.limits().answer;
                Tx::Postgres(guard.bound(guard.within(wait, pool.begin_write()).await?))
            }
        })
    }

    /// Checks a connection out of the pool, for reads.
    pub async fn acquire(&self) -> Result<Pooled, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Pooled::Sqlite(pool.guard().bound(pool.acquire().await?)),
            Db::Postgres(pool) => Pooled::Postgres(pool.guard().bound(pool.acquire().await?)),
        })
    }
}

impl Tx {
    /// The transaction's connection, for one store call.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(tx) => Conn::Sqlite(tx),
            Tx::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => {
                let (guard, tx) = tx.into_parts();
                guard.within(guard.limits().answer, tx.commit()).await
            }
            Tx::Postgres(tx) => {
                let (guard, tx) = tx.into_parts();
                guard.within(guard.limits().answer, tx.commit()).await
            }
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Tx::Sqlite(_) => Engine::Sqlite,
            Tx::Postgres(_) => Engine::Postgres,
        }
    }
}

impl Pooled {
    /// The connection, for one store call.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Sqlite(c) => Conn::Sqlite(c),
            Pooled::Postgres(c) => Conn::Postgres(c),
        }
    }
}

impl Conn<'_> {
    /// The same connection again, for the next store call (a `Conn` is a unique borrow, so
    /// passing it on moves it).
    pub fn reborrow(&mut self) -> Conn<'_> {
        match self {
            Conn::Sqlite(c) => Conn::Sqlite(&mut **c),
            Conn::Postgres(c) => Conn::Postgres(&mut **c),
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Conn::Sqlite(_) => Engine::Sqlite,
            Conn::Postgres(_) => Engine::Postgres,
        }
    }
}

/// Begins a write transaction on either engine.
pub trait BeginWrite {
    type Database: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;
    /// SQLite needs `BEGIN IMMEDIATE`: a deferred transaction that reads and then writes can fail
    /// with "database is locked" at once under concurrency, which the busy timeout does not cover.
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send
    {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send
    {
        self.begin()
    }
}

/// A secret of 32 bytes or more kept in the file at `path`, outside the database (a signing or
/// encryption key): read, or with `create` made there when missing, 32 random bytes, owner-only
/// and fsynced. Says whether it was made now. Several nodes on one data folder starting at once
/// end up with the same secret: the first to create the file wins and the others read it.
pub fn secret_file(path: &Path, create: bool) -> Result<(Vec<u8>, bool), String> {
    match std::fs::read(path) {
        Ok(key) if key.len() >= 32 => Ok((key, false)),
        Ok(_) => Err("shorter than 32 bytes".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let mut key = vec![0u8; 32];
            getrandom::fill(&mut key).map_err(|e| e.to_string())?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir).map_err(|e| e.to_string())?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut file) => {
                    std::io::Write::write_all(&mut file, &key)
                        .and_then(|()| file.sync_all())
                        .map_err(|e| e.to_string())?;
                    Ok((key, true))
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path)
                    .map(|k| (k, false))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Creates `path` (and missing parents) readable by its owner only. A folder that is already
/// there is left as the operator made it, with a warning when others may read it.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        warn_if_shared(path);
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder.create(path)?;
        // The mode above passes through the umask, which may take away the owner's own bits.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(not(unix))]
    builder.create(path)?;
    Ok(())
}

/// Creates an empty SQLite file at `path` for its owner only, unless one is there (SQLite takes
/// an empty file as an empty database).
fn create_private_file(path: &Path) -> Result<(), StorageError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            warn_if_shared(path);
            Ok(())
        }
        Err(source) => Err(StorageError::DatabaseFile {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Existing folders and files are not changed behind the operator's back, but they are told.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "other users of this machine may read the health data here; chmod it to 700 (a folder) or 600 (a file)"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Hides a password in a database URL so the URL can be logged.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A uniqueness rule of the schema, by its table and columns: SQLite names a violated one only
/// that way ("UNIQUE constraint failed: departments.facility_id, departments.name"), and
/// PostgreSQL's own constraint names differ per migration, while its table and key columns do not.
#[derive(Clone, Copy, Debug)]
pub struct UniqueKey {
    pub table: &'static str,
    pub columns: &'static [&'static str],
}

impl UniqueKey {
    /// True when `err` is this key's violation (on either engine).
    pub fn violated_by(&self, err: &sqlx::Error) -> bool {
        let sqlx::Error::Database(db) = err else {
            return false;
        };
        if !db.is_unique_violation() {
            return false;
        }
        if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
            // "Key (facility_id, name)=(3, Cardiology) already exists."
            let columns = pg
                .detail()
                .and_then(|d| d.strip_prefix("Key ("))
                .and_then(|d| d.split_once(")="))
                .map(|(cols, _)| cols.split(", ").collect::<Vec<_>>());
            return pg.table() == Some(self.table) && columns.as_deref() == Some(self.columns);
        }
        // SQLite: "UNIQUE constraint failed: table.a, table.b" (PRIMARY KEY ones read the same).
        db.message()
            .split_once(": ")
            .map(|(_, cols)| {
                cols.split(", ")
                    .map(|c| c.split_once('.'))
                    .collect::<Option<Vec<_>>>()
                    .is_some_and(|pairs| {
                        pairs.len() == self.columns.len()
                            && pairs
                                .iter()
                                .zip(self.columns)
                                .all(|((t, c), want)| *t == self.table && c == want)
                    })
            })
            .unwrap_or(false)
    }
}

/// Turns the violation of one [`UniqueKey`] into the domain's own error; every other failure
/// stays a storage error.
pub trait OnViolation<T> {
    fn on_violation<E: From<sqlx::Error>>(
        self,
        key: &UniqueKey,
        err: impl FnOnce() -> E,
    ) -> Result<T, E>;
}

impl<T> OnViolation<T> for Result<T, sqlx::Error> {
    fn on_violation<E: From<sqlx::Error>>(
        self,
        key: &UniqueKey,
        err: impl FnOnce() -> E,
    ) -> Result<T, E> {
        match self {
            Err(e) if key.violated_by(&e) => Err(err()),
            other => other.map_err(E::from),
        }
    }
}

/// True when `err` is a unique-constraint violation (either engine).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// True when `err` is a foreign-key violation (either engine).
pub fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("sqlite://data/t.db"), "sqlite://data/t.db");
    }
}
