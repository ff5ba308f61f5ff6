//! Test harness: starts the real server on port 0 against a fresh database of either engine, and
//! talks to it over real HTTP.
//!
//! SQLite gets a new file in a temporary folder; PostgreSQL a new database on the server named by
//! `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped again when
//! the last handle on it goes, also when the test panics. A PostgreSQL that cannot be reached
//! fails the test: it is never skipped.
//!
//! The server reads the wall clock (`telehealth::domain::time::now`), which a paused tokio clock
//! does not move, and one offset for it would move every test in the binary at once; so tests let
//! time pass by moving a stored instant into the past ([`TestApp::set_stored_time`]), not by
//! sleeping.

pub mod bench_support;
pub mod node_process;
pub mod proxy;
pub mod races;
pub mod receivers;
pub mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{Value, json};
use sqlx::Connection;
use telehealth::config::{DatabaseUrl, Settings};
use telehealth::startup::Application;
use telehealth::storage::Db;

/// Runs a test once per engine, each on a fresh server and database: defines `name::sqlite` and
/// `name::postgres`. The one way tests get a server:
///
/// - `both_engines!(name, |app: TestApp| async move { ... })`: default settings;
/// - `both_engines!(name, settings = |s: &mut Settings| ..., |app: TestApp| async move { ... })`:
///   settings adjusted before the server starts;
/// - `both_engines!(name, engine = |engine: Engine| async move { ... })`: the body starts its own
///   servers with [`TestApp::spawn_with`], for tests that need several or adjust by engine.
///
/// Nothing needs finishing: dropping the last handle on a server stops it and removes its
/// database, also when the body panics.
#[macro_export]
macro_rules! both_engines {
    ($name:ident, settings = $adjust:expr, $body:expr) => {
        $crate::both_engines!(@tests $name, |engine: $crate::Engine| async move {
            let app = $crate::TestApp::spawn_with(engine, $adjust).await;
            let f = $body;
            f(app).await;
        });
    };
    ($name:ident, engine = $body:expr) => {
        $crate::both_engines!(@tests $name, $body);
    };
    ($name:ident, $body:expr) => {
        $crate::both_engines!(@tests $name, |engine: $crate::Engine| async move {
            let app = $crate::TestApp::spawn(engine).await;
            let f = $body;
            f(app).await;
        });
    };
    (@tests $name:ident, $run:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let run = $run;
                run($crate::Engine::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let run = $run;
                run($crate::Engine::Postgres).await;
            }
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Where the test PostgreSQL server is; its `postgres` database is used to create and drop
/// per-test databases.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn with_database(admin_url: &str, name: &str) -> String {
    match admin_url.rfind('/') {
        Some(i) if admin_url[..i].contains("://") && i > admin_url.find("://").unwrap_or(0) + 2 => {
            let query = admin_url[i..]
                .find('?')
                .map(|q| &admin_url[i + q..])
                .unwrap_or("");
            format!("{}/{}{}", &admin_url[..i], name, query)
        }
        _ => format!("{admin_url}/{name}"),
    }
}

/// A fresh, empty database of `engine` (the server migrates it), and how to reach it. A
/// PostgreSQL database is dropped when this is dropped: the guard that leaves nothing behind when
/// a test panics.
pub struct TestDatabase {
    pub url: String,
    pub engine: Engine,
    pg_name: Option<String>,
    /// Set once the PostgreSQL database is gone, so `Drop` does not drop it twice.
    dropped: AtomicBool,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub async fn create(engine: Engine) -> TestDatabase {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                TestDatabase {
                    url,
                    engine,
                    pg_name: None,
                    dropped: AtomicBool::new(false),
                    _dir: Some(dir),
                }
            }
            Engine::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("th_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is not reachable at {admin} ({e}); start it (tests/run.sh does) \
                         or set TEST_POSTGRES_URL"
                    )
                });
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                TestDatabase {
                    url: with_database(&admin, &name),
                    engine,
                    pg_name: Some(name),
                    dropped: AtomicBool::new(false),
                    _dir: None,
                }
            }
        }
    }

    /// The PostgreSQL database's name (`th_test_...`); `None` on SQLite.
    pub fn postgres_name(&self) -> Option<&str> {
        self.pg_name.as_deref()
    }

    /// Drops the PostgreSQL database now, whoever is still connected to it; later calls, and the
    /// drop of `self`, do nothing. Blocks: it runs from `Drop`.
    fn drop_postgres(&self) {
        if let Some(name) = &self.pg_name
            && !self.dropped.swap(true, Ordering::SeqCst)
            && let Err(e) = drop_postgres_database(name)
        {
            // Drop may run while a test unwinds, where a second panic would abort the process.
            eprintln!("the test database {name} was not dropped: {e}");
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.drop_postgres();
    }
}

/// `DROP DATABASE ... WITH (FORCE)` on a connection of its own, from a thread with a runtime of
/// its own: `Drop` cannot await, it may run on a runtime's thread (where a nested `block_on`
/// panics), and the runtime it ran on may be shutting down. `FORCE` ends the sessions of a server
/// that is still running (or was aborted mid-request by a panic).
fn drop_postgres_database(name: &str) -> Result<(), sqlx::Error> {
    let admin = postgres_admin_url();
    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let dropping = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await?;
            conn.close().await
        })
    });
    dropping.join().unwrap_or_else(|_| {
        Err(sqlx::Error::Protocol(
            "the thread dropping the database panicked".into(),
        ))
    })
}

/// Whether PostgreSQL holds a database called `name`, for checking that none is left behind.
pub async fn postgres_database_exists(name: &str) -> bool {
    let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .expect("PostgreSQL is reachable");
    let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .expect("list databases");
    conn.close().await.ok();
    found == 1
}

/// One running server. Dropping it asks the server to stop; the database goes with the last
/// server on it (see [`TestApp::restart`] and [`TestApp::another_node`]).
struct Inner {
    addr: SocketAddr,
    /// What the server says it answers at (`https://...` when it speaks TLS).
    base_url: String,
    metrics_addr: Option<SocketAddr>,
    db: Db,
    /// Shared with the servers [`TestApp::restart`] and [`TestApp::another_node`] start on the
    /// same database and data folder.
    database: Arc<TestDatabase>,
    settings: Settings,
    stop: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    data_dir: Arc<tempfile::TempDir>,
    server: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    /// Starts a server with `settings` on `database`, in `data_dir`.
    async fn start(
        settings: Settings,
        database: Arc<TestDatabase>,
        data_dir: Arc<tempfile::TempDir>,
    ) -> Inner {
        let app = Application::build(&settings).await.expect("server starts");
        let (addr, base_url) = (app.local_addr(), app.base_url());
        let (metrics_addr, db) = (app.metrics_addr(), app.db().clone());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = stop_rx.await;
        }));
        Inner {
            addr,
            base_url,
            metrics_addr,
            db,
            database,
            settings,
            stop: std::sync::Mutex::new(Some(stop_tx)),
            data_dir,
            server: std::sync::Mutex::new(Some(server)),
        }
    }

    /// Stops the server and waits for it to drain.
    async fn stop(&self) {
        let stop = self.stop.lock().ok().and_then(|mut s| s.take());
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let server = self.server.lock().ok().and_then(|mut s| s.take());
        if let Some(server) = server {
            let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Drop cannot wait for the drain: the server stops on its own, or with the test's
        // runtime; the database (dropped after this, with the fields) forces its sessions off.
        let stop = self.stop.get_mut().ok().and_then(Option::take);
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
    }
}

/// A running server and an HTTP client for it. Requests carry `token` as a Bearer header: by
/// default the token of `root`, an administrator and network-wide scheduler.
#[derive(Clone)]
pub struct TestApp {
    inner: Arc<Inner>,
    pub http: reqwest::Client,
    pub engine: Engine,
    pub token: Option<String>,
    /// The token of `approver`, a second administrator, who approves what `root` proposes.
    approver: Option<String>,
}

/// The password of every account the harness creates.
pub const PASSWORD: &str = "correct horse battery staple";

/// A response, read whole.
/// The date of birth of the patients [`TestApp::create_patient`] makes, which a visit link asks
/// for on a device with no session of the patient's.
pub const PATIENT_BIRTH_DATE: &str = "1988-04-02";

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The error code of an error reply, checking the error shape on the way.
    pub fn error_code(&self) -> &str {
        let e = &self.body["error"];
        assert!(
            e["code"].is_string() && e["message"].is_string() && e.get("details").is_some(),
            "not the error shape: {}",
            self.text
        );
        e["code"].as_str().unwrap_or_default()
    }

    pub fn id(&self) -> i64 {
        self.body["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no id in {} {}", self.status, self.text))
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }
}

impl TestApp {
    pub async fn spawn(engine: Engine) -> TestApp {
        Self::spawn_with(engine, |_| {}).await
    }

    /// Starts a server with settings adjusted by `adjust`.
    pub async fn spawn_with(engine: Engine, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let database = TestDatabase::create(engine).await;
        let data_dir = tempfile::tempdir().expect("temporary data folder");
        let mut settings = Settings {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            data_dir: data_dir.path().to_path_buf(),
            database_url: Some(DatabaseUrl::new(database.url.clone())),
            database_max_connections: 20,
            ..Settings::default()
        };
        adjust(&mut settings);
        let tls = settings.tls_self_signed || settings.tls_cert.is_some();
        let inner = Inner::start(settings, Arc::new(database), Arc::new(data_dir)).await;
        let db = &inner.db;
        telehealth::auth::accounts::create_account(
            db,
            telehealth::auth::accounts::NewAccount {
                username: "root".into(),
                display_name: "Test root".into(),
                password_hash: Some(telehealth::auth::password::hash(PASSWORD).expect("hash")),
                patient_id: None,
                clinician_id: None,
                grants: vec![
                    telehealth::auth::Grant {
                        role: telehealth::auth::Role::Administrator,
                        facility_id: None,
                    },
                    telehealth::auth::Grant {
                        role: telehealth::auth::Role::Scheduler,
                        facility_id: None,
                    },
                ],
            },
        )
        .await
        .expect("root account");
        // Privileged account changes need a second administrator; like root, made in storage, as
        // the command line makes the first administrators.
        telehealth::auth::accounts::create_account(
            db,
            telehealth::auth::accounts::NewAccount {
                username: "approver".into(),
                display_name: "Test approver".into(),
                password_hash: Some(telehealth::auth::password::hash(PASSWORD).expect("hash")),
                patient_id: None,
                clinician_id: None,
                grants: vec![telehealth::auth::Grant {
                    role: telehealth::auth::Role::Administrator,
                    facility_id: None,
                }],
            },
        )
        .await
        .expect("approver account");
        let app = TestApp {
            inner: Arc::new(inner),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(128)
                .build()
                .expect("http client"),
            engine,
            token: None,
            approver: None,
        };
        if tls {
            // The harness's client speaks plain HTTP; TLS tests bring their own client.
            return app;
        }
        let token = app.login("root", PASSWORD).await;
        let approver = app.login("approver", PASSWORD).await;
        TestApp {
            token: Some(token),
            approver: Some(approver),
            ..app
        }
    }

    /// The same server as `approver`, the second administrator.
    pub fn second_admin(&self) -> TestApp {
        self.as_token(self.approver.as_deref().expect("the approver signed in"))
    }

    /// Signs in and returns the session token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let r = self
            .anonymous()
            .post(
                "/api/v1/auth/login",
                json!({"username": username, "password": password}),
            )
            .await
            .expect(200);
        r.body["token"].as_str().expect("token").to_string()
    }

    /// The same server, as another caller.
    pub fn as_token(&self, token: &str) -> TestApp {
        TestApp {
            token: Some(token.to_string()),
            ..self.clone()
        }
    }

    /// The same server, signed out.
    pub fn anonymous(&self) -> TestApp {
        TestApp {
            token: None,
            ..self.clone()
        }
    }

    /// The same caller, connecting from another loopback address (all of 127.0.0.0/8 is loopback
    /// on Linux), for rules that count client addresses.
    pub fn from_address(&self, ip: &str) -> TestApp {
        let ip: std::net::IpAddr = ip.parse().expect("an IP address");
        TestApp {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(128)
                .local_address(ip)
                .build()
                .expect("http client"),
            ..self.clone()
        }
    }

    /// Creates an account with `roles` (`[("scheduler", Some(facility))]`) linked to a patient or
    /// clinician, signs it in, and returns the server as that account. Links and privileged roles
    /// go through the approval flow: proposed by this caller (202), approved by the second
    /// administrator.
    pub async fn as_new_user(
        &self,
        username: &str,
        roles: &[(&str, Option<i64>)],
        patient_id: Option<i64>,
        clinician_id: Option<i64>,
    ) -> TestApp {
        let roles: Vec<Value> = roles
            .iter()
            .map(|(role, facility)| json!({"role": role, "facility_id": facility}))
            .collect();
        let r = self
            .post(
                "/api/v1/accounts",
                json!({"username": username, "display_name": username, "password": PASSWORD,
                       "patient_id": patient_id, "clinician_id": clinician_id, "roles": roles}),
            )
            .await;
        if r.status == 202 {
            assert_eq!(r.body["status"], "pending", "{}", r.text);
            self.second_admin()
                .post(
                    &format!("/api/v1/account-changes/{}/approve", r.id()),
                    json!({}),
                )
                .await
                .expect(200);
        } else {
            r.expect(201);
        }
        let token = self.login(username, PASSWORD).await;
        self.as_token(&token)
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The address of `/metrics`, when the settings gave it one of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.inner.metrics_addr
    }

    /// Where the server says it answers, as it prints it: `https://...` when it speaks TLS.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.inner.addr, path)
    }

    /// The server's own database handle, for checking what was (not) written.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn database_url(&self) -> &str {
        &self.inner.database.url
    }

    /// The settings the server was started with (its data folder, for one).
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Restarts the server: stops it and starts a new one on the same database and data folder,
    /// so nothing kept in memory survives. The returned app talks to the new server (on a new
    /// port) as the same caller; others signed in before move over with [`TestApp::as_token`]
    /// (sessions live in the database).
    pub async fn restart(&self) -> TestApp {
        self.inner.stop().await;
        self.start_beside().await
    }

    /// Stops the server and waits for it to drain, keeping its database and data folder (and
    /// this handle's pool on the database) for a node started some other way, such as a process
    /// of its own.
    pub async fn stop(&self) {
        self.inner.stop().await;
    }

    /// Like [`TestApp::restart`], with the settings adjusted by `adjust` first.
    pub async fn restart_with(&self, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        self.inner.stop().await;
        let mut settings = self.inner.settings.clone();
        adjust(&mut settings);
        let inner = Inner::start(
            settings,
            self.inner.database.clone(),
            self.inner.data_dir.clone(),
        )
        .await;
        TestApp {
            inner: Arc::new(inner),
            ..self.clone()
        }
    }

    /// Starts a second server on the same database and data folder while this one keeps
    /// running: another node of the same deployment. The returned app talks to it as the same
    /// caller.
    pub async fn another_node(&self) -> TestApp {
        self.start_beside().await
    }

    async fn start_beside(&self) -> TestApp {
        let inner = Inner::start(
            self.inner.settings.clone(),
            self.inner.database.clone(),
            self.inner.data_dir.clone(),
        )
        .await;
        TestApp {
            inner: Arc::new(inner),
            ..self.clone()
        }
    }

    /// Drops the (PostgreSQL) database while the server keeps running, to test how it copes.
    pub async fn drop_database(&self) {
        assert_eq!(
            self.engine,
            Engine::Postgres,
            "only a PostgreSQL database is dropped"
        );
        let database = self.inner.database.clone();
        tokio::task::spawn_blocking(move || database.drop_postgres())
            .await
            .expect("the database is dropped");
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let reply = self.send_any(req).await;
        assert!(
            reply.status < 500,
            "server error {}: {}",
            reply.status,
            reply.text
        );
        reply
    }

    /// Like [`TestApp::send`] but lets a 5xx through, for tests that expect one.
    pub async fn send_any(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("request is sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body is read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.put(self.url(path)).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(self.url(path))).await
    }

    /// Lets time pass for the server without waiting for it: runs `sql`, an UPDATE that sets a
    /// stored instant to `$1` = `at` in the row(s) `$2` = `id`, and returns how many rows it
    /// changed. Moving, say, a hold's expiry into the past is to the server what waiting until
    /// then would be: every rule compares a stored instant with `time::now()`.
    pub async fn set_stored_time(&self, sql: &'static str, at: DateTime<Utc>, id: i64) -> u64 {
        match self.db() {
            Db::Sqlite(pool) => sqlx::query(sql)
                .bind(at)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
            Db::Postgres(pool) => sqlx::query(sql)
                .bind(at)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
        }
        .expect("stored time is set")
    }

    /// A stored instant: `sql` selects one with `$1` = `id`.
    pub async fn stored_time(&self, sql: &'static str, id: i64) -> DateTime<Utc> {
        match self.db() {
            Db::Sqlite(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
            Db::Postgres(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
        }
        .expect("stored time is read")
    }

    /// Runs `sql` (one or more statements, fixed text from the test itself) on the server's
    /// database behind its back: to break or repair what the server relies on.
    pub async fn exec(&self, sql: &'static str) {
        match self.db() {
            Db::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
            Db::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// One number `sql` selects (a fixed query from the test itself).
    pub async fn scalar(&self, sql: &'static str) -> i64 {
        match self.db() {
            Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Counts rows of `table` (a fixed name from the test itself).
    pub async fn count(&self, table: &'static str) -> i64 {
        let sql = match table {
            "consultations" => "SELECT COUNT(*) FROM consultations",
            "slot_claims" => "SELECT COUNT(*) FROM slot_claims",
            "facilities" => "SELECT COUNT(*) FROM facilities",
            "clinicians" => "SELECT COUNT(*) FROM clinicians",
            "patients" => "SELECT COUNT(*) FROM patients",
            "availability_rules" => "SELECT COUNT(*) FROM availability_rules",
            "availability_exceptions" => "SELECT COUNT(*) FROM availability_exceptions",
            "consultation_events" => "SELECT COUNT(*) FROM consultation_events",
            "specialties" => "SELECT COUNT(*) FROM specialties",
            "departments" => "SELECT COUNT(*) FROM departments",
            other => panic!("no count query for {other}"),
        };
        match self.db() {
            Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .expect("count query")
    }

    /// Counts every row the API can write, to prove a refused request wrote nothing.
    pub async fn snapshot(&self) -> Vec<i64> {
        let mut out = Vec::new();
        for t in [
            "consultations",
            "slot_claims",
            "facilities",
            "clinicians",
            "patients",
            "availability_rules",
            "availability_exceptions",
            "consultation_events",
            "specialties",
            "departments",
        ] {
            out.push(self.count(t).await);
        }
        out
    }

    // ---- domain helpers -------------------------------------------------------------------

    pub async fn create_facility(&self, code: &str, kind: &str, zone: &str) -> i64 {
        let level = if kind == "hub_hospital" {
            "central"
        } else {
            "commune"
        };
        self.post(
            "/api/v1/facilities",
            json!({"code": code, "name": format!("Cơ sở {code}"), "kind": kind, "level": level,
                   "province": "Lào Cai", "address": "Thôn 1", "time_zone": zone}),
        )
        .await
        .expect(201)
        .id()
    }

    pub async fn create_specialty(&self, code: &str) {
        self.post(
            "/api/v1/specialties",
            json!({"code": code, "name_en": code, "name_vi": code}),
        )
        .await
        .expect(201);
    }

    pub async fn create_clinician(&self, facility: i64, specialties: &[&str]) -> i64 {
        self.post(
            "/api/v1/clinicians",
            json!({"facility_id": facility, "full_name": "BS Nguyễn Văn A", "specialties": specialties}),
        )
        .await
        .expect(201)
        .id()
    }

    /// A new patient, born on [`PATIENT_BIRTH_DATE`].
    pub async fn create_patient(&self, home: Option<i64>) -> i64 {
        self.post(
            "/api/v1/patients",
            json!({"full_name": "Lò Thị Mai", "date_of_birth": PATIENT_BIRTH_DATE, "sex": "female",
                   "phone": "0912345678", "home_facility_id": home}),
        )
        .await
        .expect(201)
        .id()
    }

    /// Gives `clinician` the same session on all seven weekdays.
    pub async fn add_daily_rule(
        &self,
        clinician: i64,
        start: &str,
        end: &str,
        slot: u32,
        buffer: u32,
    ) {
        for weekday in 1..=7 {
            self.post(
                &format!("/api/v1/clinicians/{clinician}/availability/rules"),
                json!({"weekday": weekday, "start_time": start, "end_time": end,
                       "slot_minutes": slot, "buffer_minutes": buffer}),
            )
            .await
            .expect(201);
        }
    }

    /// Free slots of one clinician over `[from, to]` (local dates).
    pub async fn free_slots(
        &self,
        clinician: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<DateTime<Utc>> {
        let reply = self
            .get(&format!(
                "/api/v1/slots?clinician_id={clinician}&from={from}&to={to}&limit=1000"
            ))
            .await
            .expect(200);
        reply.body["slots"]
            .as_array()
            .expect("slots array")
            .iter()
            .map(|s| {
                s["start"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .expect("slot start")
            })
            .collect()
    }
}

/// A hub with one specialist available every day, a care centre with a rural clinician, and a
/// patient: the cast of most scheduling tests.
pub struct Cast {
    pub hub: i64,
    pub specialist: i64,
    pub centre: i64,
    pub rural: i64,
    pub patient: i64,
}

impl Cast {
    pub async fn create(app: &TestApp) -> Cast {
        app.create_specialty("cardiology").await;
        app.create_specialty("general_practice").await;
        let hub = app
            .create_facility("HUB-1", "hub_hospital", "Asia/Ho_Chi_Minh")
            .await;
        let specialist = app.create_clinician(hub, &["cardiology"]).await;
        let centre = app
            .create_facility("CC-1", "care_centre", "Asia/Ho_Chi_Minh")
            .await;
        let rural = app.create_clinician(centre, &["general_practice"]).await;
        let patient = app.create_patient(Some(centre)).await;
        Cast {
            hub,
            specialist,
            centre,
            rural,
            patient,
        }
    }

    /// A teleconsultation booking body for `start`.
    pub fn booking(&self, start: DateTime<Utc>) -> Value {
        json!({
            "kind": "teleconsultation",
            "clinician_id": self.specialist,
            "patient_id": self.patient,
            "requesting_facility_id": self.centre,
            "referring_clinician_id": self.rural,
            "reason": "Đau ngực khi gắng sức",
            "urgency": "soon",
            "start": start.to_rfc3339(),
        })
    }
}

impl Cast {
    /// A consultation whose call window is open now: an extra session for the specialist today
    /// starting at the next five-minute mark, and a booking of its first slot.
    pub async fn book_now(&self, app: &TestApp) -> i64 {
        use chrono::Timelike;
        // Local time in Vietnam. A session cannot cross midnight: late in the evening it ends at
        // 23:55 (with 5-minute slots in the last quarter hour), and only in the last minutes of
        // the day does it start tomorrow at 00:00, within the 15 minutes before a start when the
        // window opens. (A session starting tomorrow any earlier would not open yet.)
        const LAST: u32 = 23 * 60 + 55;
        let local = Utc::now() + chrono::Duration::hours(7);
        let minutes = local.hour() * 60 + local.minute();
        let next = (minutes / 5 + 1) * 5;
        let (date, start_minutes, end_minutes, slot) = if next + 20 <= LAST {
            (local.date_naive(), next, (next + 60).min(LAST), 20)
        } else if next + 5 <= LAST {
            (local.date_naive(), next, LAST, 5)
        } else {
            ((local + chrono::Duration::days(1)).date_naive(), 0, 60, 20)
        };
        let hhmm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        app.post(
            &format!(
                "/api/v1/clinicians/{}/availability/exceptions",
                self.specialist
            ),
            json!({"date": date, "kind": "extra", "start_time": hhmm(start_minutes),
                   "end_time": hhmm(end_minutes), "slot_minutes": slot, "buffer_minutes": 0}),
        )
        .await
        .expect(201);
        let slots = app.free_slots(self.specialist, date, date).await;
        let first = *slots.first().expect("a free slot in the extra session");
        app.post("/api/v1/consultations", self.booking(first))
            .await
            .expect(201)
            .id()
    }
}

/// The people of a [`Cast`], signed in: its specialist, its rural clinician, its patient, and a
/// scheduler of its hub. The fixture of the call and visit-day tests.
pub struct People {
    pub specialist: TestApp,
    pub rural: TestApp,
    pub patient: TestApp,
    pub scheduler: TestApp,
}

impl People {
    pub async fn sign_in(app: &TestApp, cast: &Cast) -> People {
        People {
            specialist: app
                .as_new_user("bacsi", &[("clinician", None)], None, Some(cast.specialist))
                .await,
            rural: app
                .as_new_user("tramyte", &[("clinician", None)], None, Some(cast.rural))
                .await,
            patient: app
                .as_new_user("benhnhan", &[("patient", None)], Some(cast.patient), None)
                .await,
            scheduler: app
                .as_new_user("dieuphoi", &[("scheduler", Some(cast.hub))], None, None)
                .await,
        }
    }
}

/// A booked consultation with the people of its note signed in: the specialist who writes and
/// signs it, the referring rural clinician, and the patient. The fixture of the note tests.
pub struct NoteCast {
    pub cast: Cast,
    /// The consultation, booked on the next Tuesday at 08:00 (local).
    pub k: i64,
    pub spec: TestApp,
    pub rural: TestApp,
    pub patient: TestApp,
}

impl NoteCast {
    pub async fn create(app: &TestApp) -> NoteCast {
        let cast = Cast::create(app).await;
        app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
            .await;
        let day = next_weekday(2);
        let slots = app.free_slots(cast.specialist, day, day).await;
        let k = app
            .post("/api/v1/consultations", cast.booking(slots[0]))
            .await
            .expect(201)
            .id();
        let spec = app
            .as_new_user("spec", &[("clinician", None)], None, Some(cast.specialist))
            .await;
        let rural = app
            .as_new_user("rural", &[("clinician", None)], None, Some(cast.rural))
            .await;
        let patient = app
            .as_new_user("pat", &[("patient", None)], Some(cast.patient), None)
            .await;
        NoteCast {
            cast,
            k,
            spec,
            rural,
            patient,
        }
    }
}

/// Today's date in Vietnam, and a week later.
pub fn this_week() -> (NaiveDate, NaiveDate) {
    let today = (Utc::now() + chrono::Duration::hours(7)).date_naive();
    (today, today + chrono::Duration::days(6))
}

/// The next local date (after today) that falls on `weekday` (1 = Monday).
pub fn next_weekday(weekday: u32) -> NaiveDate {
    let (today, _) = this_week();
    let mut d = today + chrono::Duration::days(1);
    while d.weekday().number_from_monday() != weekday {
        d += chrono::Duration::days(1);
    }
    d
}

/// Polls `f` every 100 ms until it returns `Some`, for what the server writes after it has
/// answered (the call recorder, the audit writer); fails after 10 s.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..100 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

/// The folder holding the built binaries, for tests that run the CLI.
pub fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
}

/// A seeded generator without a random-number crate (SplitMix64), so a generated test or a
/// benchmark's shuffle can be replayed from its seed.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test whose body panics while it holds a server leaves no PostgreSQL database behind:
    /// the body runs in a task, as `#[tokio::test]` bodies run inside `block_on`, and the task's
    /// panic drops everything it held.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_test_leaves_no_database_behind() {
        let (name_tx, name_rx) = tokio::sync::oneshot::channel::<String>();
        let (panic_tx, panic_rx) = tokio::sync::oneshot::channel::<()>();
        let test = tokio::spawn(async move {
            let app = TestApp::spawn(Engine::Postgres).await;
            let name = app
                .inner
                .database
                .postgres_name()
                .expect("a PostgreSQL database");
            let _ = name_tx.send(name.to_string());
            let _ = panic_rx.await;
            let _app = app;
            panic!("a failing assertion");
        });
        let name = name_rx.await.expect("the server started");
        assert!(
            postgres_database_exists(&name).await,
            "{name} exists while the test runs"
        );
        let _ = panic_tx.send(());
        let failed = test.await.expect_err("the test panicked");
        assert!(failed.is_panic());
        assert!(
            !postgres_database_exists(&name).await,
            "{name} was left behind"
        );
    }

    /// The same, for the shape `#[tokio::test]` gives a test: a runtime of its own on the test's
    /// thread, whose `block_on` the panic unwinds out of.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_test_runtime_that_panics_leaves_no_database_behind() {
        let test = std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            let named = std::sync::Mutex::new(None::<String>);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(async {
                    let app = TestApp::spawn(Engine::Postgres).await;
                    let name = app.inner.database.postgres_name().map(str::to_string);
                    *named.lock().expect("not poisoned") = name;
                    // A clone in a task that never ends, as a test body may leave one: the
                    // runtime's shutdown drops it.
                    let held = app.clone();
                    tokio::spawn(async move {
                        std::future::pending::<()>().await;
                        drop(held);
                    });
                    panic!("a failing assertion");
                })
            }));
            let name = named.lock().expect("not poisoned").take();
            (outcome.is_err(), name)
        });
        let (panicked, name) = test.join().expect("the test thread returns");
        assert!(panicked);
        let name = name.expect("the server started");
        assert!(
            !postgres_database_exists(&name).await,
            "{name} was left behind"
        );
    }
}
