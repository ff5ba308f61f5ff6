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
//! The data directory and the database files hold health data: the directory is created for its
//! owner only (0700) and the SQLite file 0600 before SQLite first opens it, since SQLite gives
//! its `-wal` and `-shm` files the database file's own permissions. (`main` also sets the
//! process umask to 077, for every other file.)

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

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

/// A connection pool on one of the two supported engines.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
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

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Pool sizes, from configuration.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
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
                .busy_timeout(Duration::from_secs(10));
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
            let pool = SqlitePoolOptions::new()
                // An embedded file does not drop connections; skip the ping before each checkout.
                .test_before_acquire(false)
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options)
                .await
                .map_err(StorageError::Connect)?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)
                .map_err(StorageError::InvalidUrl)?
                // sqlx prepares every statement once per connection; by default PostgreSQL still
                // re-plans the first executions and then any whose custom plan looks cheaper,
                // and planning the join-heavy queries here costs more than running them (2 ms
                // against 0.5 ms for a slot search). Every query is an index lookup whose
                // generic plan is the right one.
                .options([("plan_cache_mode", "force_generic_plan")])
                // Lists of ids make statements of many shapes; keep them all prepared.
                .statement_cache_capacity(2000);
            let pool = PgPoolOptions::new()
                // sqlx pings a connection before every checkout by default: a round trip per
                // query. A dead connection shows itself on use instead (one 503), and connections
                // are recycled by age anyway.
                .test_before_acquire(false)
                .max_connections(settings.max_connections)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options)
                .await
                .map_err(StorageError::Connect)?;
            Ok(Db::Postgres(pool))
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

    /// Applies the pending migrations of this engine.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        match self {
            Db::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StorageError> {
        on_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        on_db!(self, pool => pool.close().await)
    }
}

/// A write transaction the caller owns, on either engine. Dropped without [`Tx::commit`], it
/// rolls back.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// A connection checked out of the pool, for reads that need no transaction.
pub enum Pooled {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

/// Where a store function runs its statements: a connection of either engine, borrowed from a
/// [`Tx`] or a [`Pooled`] for the length of the call.
pub enum Conn<'c> {
    Sqlite(&'c mut sqlx::SqliteConnection),
    Postgres(&'c mut sqlx::PgConnection),
}

impl Db {
    /// Begins a write transaction (on SQLite `BEGIN IMMEDIATE`, see [`BeginWrite`]).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_write().await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin_write().await?),
        })
    }

    /// Checks a connection out of the pool, for reads.
    pub async fn acquire(&self) -> Result<Pooled, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Pooled::Sqlite(pool.acquire().await?),
            Db::Postgres(pool) => Pooled::Postgres(pool.acquire().await?),
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
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
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
            Conn::Sqlite(c) => Conn::Sqlite(c),
            Conn::Postgres(c) => Conn::Postgres(c),
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
