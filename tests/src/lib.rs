//! Test harness: starts the real server on port 0 against a fresh database of either engine, and
//! talks to it over real HTTP.
//!
//! SQLite gets a new file in a temporary folder; PostgreSQL a new database on the server named by
//! `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped again by
//! [`TestApp::finish`]. A PostgreSQL that cannot be reached fails the test: it is never skipped.

pub mod bench_support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{Value, json};
use sqlx::Connection;
use telehealth::config::{DatabaseUrl, Settings};
use telehealth::startup::Application;
use telehealth::storage::Db;

/// Runs a test body once per engine: `both_engines!(name, |app| async move { ... })` defines
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_engines {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let app = $crate::TestApp::spawn($crate::Engine::Sqlite).await;
                let f = $body;
                f(app.clone()).await;
                app.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let app = $crate::TestApp::spawn($crate::Engine::Postgres).await;
                let f = $body;
                f(app.clone()).await;
                app.finish().await;
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

/// A fresh, empty (migrated) database of `engine`, and how to reach and remove it.
pub struct TestDatabase {
    pub url: String,
    pub engine: Engine,
    pg_name: Option<String>,
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
                    _dir: None,
                }
            }
        }
    }

    pub async fn drop_database(&self) {
        if let Some(name) = &self.pg_name
            && let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await
        {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
            conn.close().await.ok();
        }
    }
}

struct Inner {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    db: Db,
    /// Shared with the servers [`TestApp::restart`] starts on the same database and data folder.
    database: std::sync::Arc<TestDatabase>,
    settings: Settings,
    stop: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    _data_dir: std::sync::Arc<tempfile::TempDir>,
    server: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A running server and an HTTP client for it. Requests carry `token` as a Bearer header: by
/// default the token of `root`, an administrator and network-wide scheduler.
#[derive(Clone)]
pub struct TestApp {
    inner: std::sync::Arc<Inner>,
    pub http: reqwest::Client,
    pub engine: Engine,
    pub token: Option<String>,
    /// The token of `approver`, a second administrator, who approves what `root` proposes.
    approver: Option<String>,
}

/// The password of every account the harness creates.
pub const PASSWORD: &str = "correct horse battery staple";

/// A response, read whole.
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
        let app = Application::build(&settings).await.expect("server starts");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let db = app.db().clone();
        telehealth::auth::accounts::create_account(
            &db,
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
            &db,
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
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = stop_rx.await;
        }));
        let app = TestApp {
            inner: std::sync::Arc::new(Inner {
                addr,
                metrics_addr,
                db,
                database: std::sync::Arc::new(database),
                settings,
                stop: std::sync::Mutex::new(Some(stop_tx)),
                _data_dir: std::sync::Arc::new(data_dir),
                server: std::sync::Mutex::new(Some(server)),
            }),
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

    /// Stops the server gracefully and removes its database.
    pub async fn finish(&self) {
        let stop = self.inner.stop.lock().ok().and_then(|mut s| s.take());
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let server = self.inner.server.lock().ok().and_then(|mut s| s.take());
        if let Some(server) = server {
            let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
        }
        self.inner.database.drop_database().await;
    }

    /// Restarts the server: stops it and starts a new one on the same database and data folder,
    /// so nothing kept in memory survives. The returned app talks to the new server (on a new
    /// port) as the same caller; others signed in before move over with [`TestApp::as_token`]
    /// (sessions live in the database). Finish the returned app, not only this one.
    pub async fn restart(&self) -> TestApp {
        let stop = self.inner.stop.lock().ok().and_then(|mut s| s.take());
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        let server = self.inner.server.lock().ok().and_then(|mut s| s.take());
        if let Some(server) = server {
            let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
        }
        let app = Application::build(&self.inner.settings)
            .await
            .expect("server restarts");
        let (addr, db) = (app.local_addr(), app.db().clone());
        let metrics_addr = app.metrics_addr();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = stop_rx.await;
        }));
        TestApp {
            inner: std::sync::Arc::new(Inner {
                addr,
                metrics_addr,
                db,
                database: self.inner.database.clone(),
                settings: self.inner.settings.clone(),
                stop: std::sync::Mutex::new(Some(stop_tx)),
                _data_dir: self.inner._data_dir.clone(),
                server: std::sync::Mutex::new(Some(server)),
            }),
            ..self.clone()
        }
    }

    /// Removes the database while the server keeps running, to test how it copes.
    pub async fn finish_database_only(&self) {
        self.inner.database.drop_database().await;
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

    pub async fn create_patient(&self, home: Option<i64>) -> i64 {
        self.post(
            "/api/v1/patients",
            json!({"full_name": "Lò Thị Mai", "date_of_birth": "1988-04-02", "sex": "female",
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
        // Local time in Vietnam; the session must not cross midnight, so near it use tomorrow
        // 00:00 (still within the 15 minutes before the start when the window opens).
        let local = Utc::now() + chrono::Duration::hours(7);
        let minutes = local.hour() * 60 + local.minute();
        let next = (minutes / 5 + 1) * 5;
        let (date, start_minutes) = if next + 60 >= 24 * 60 {
            ((local + chrono::Duration::days(1)).date_naive(), 0)
        } else {
            (local.date_naive(), next)
        };
        let hhmm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        app.post(
            &format!(
                "/api/v1/clinicians/{}/availability/exceptions",
                self.specialist
            ),
            json!({"date": date, "kind": "extra", "start_time": hhmm(start_minutes),
                   "end_time": hhmm(start_minutes + 60), "slot_minutes": 20, "buffer_minutes": 0}),
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
