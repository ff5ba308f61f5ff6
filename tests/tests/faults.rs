//! Faults recover by themselves (issue 12): a full SQLite disk, a read-only PostgreSQL, and a
//! PostgreSQL that goes down or silent behind a TCP proxy ([`telehealth_tests::proxy`]). While
//! the fault lasts, requests are answered 503 with `Retry-After`, a stable code and no SQL, soon
//! (not after 5–10 s), and nothing is half-written; `/readyz` answers 503; afterwards the next
//! requests succeed without a restart.
//!
//! Times are asserted only coarsely: "within about a second" is checked as "under 3 s with a
//! 0.5 s wait for connections and 1 s statements", which tells the fix (0.5–1.5 s here) from
//! what it replaces (5–10 s, or a wait without end on a silent connection) on a loaded
//! machine. Speeds belong in benchmarks.

use std::time::{Duration, Instant};

use serde_json::json;
use telehealth::config::{DatabaseUrl, Settings};
use telehealth::storage::Db;
use telehealth_tests::proxy::{Mode, TcpProxy};
use telehealth_tests::{Engine, Reply, TestApp, eventually, postgres_admin_url};

/// What the driver or the database would say, which an answer must never pass on.
const SQL_WORDS: [&str; 8] = [
    "INSERT",
    "SELECT",
    "UPDATE",
    "DELETE",
    "BEGIN",
    "SQLITE",
    "database or disk is full",
    "read-only transaction",
];

/// The `Retry-After` of a reply, in whole seconds.
fn retry_after(r: &Reply) -> u64 {
    r.headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no Retry-After in whole seconds: {:?} {}",
                r.headers, r.text
            )
        })
}

/// A 503 of a storage fault: its code, a `Retry-After`, and nothing of the SQL or the driver.
#[track_caller]
fn assert_storage_503(r: &Reply, code: &str) {
    assert_eq!((r.status, r.error_code()), (503, code), "{}", r.text);
    assert!(retry_after(r) >= 1);
    for word in SQL_WORDS {
        assert!(!r.text.contains(word), "{word:?} leaked: {}", r.text);
    }
}

/// The reason `/readyz` gives, or "ready".
fn readiness(r: &Reply) -> String {
    if r.status == 200 {
        assert_eq!(r.body["status"], "ready");
        return "ready".into();
    }
    assert_storage_503(r, "not_ready");
    r.body["error"]["details"]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason: {}", r.text))
        .to_string()
}

async fn exec(db: &Db, sql: &'static str) {
    match db {
        Db::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        Db::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn scalar(db: &Db, sql: &'static str) -> i64 {
    match db {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The request, as the app's caller, through `client` (whose timeout ends a request that would
/// otherwise wait without end), and how long its answer took.
async fn timed(app: &TestApp, req: reqwest::RequestBuilder) -> (Reply, Duration) {
    let req = match &app.token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let started = Instant::now();
    let reply = app.send_any(req).await;
    (reply, started.elapsed())
}

/// A client that gives up after 10 s, well before the harness's 30 s.
fn impatient() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

fn clinician(facility: i64, n: usize) -> serde_json::Value {
    json!({
        "facility_id": facility,
        // A long name, so the quota fills in a few dozen writes.
        "full_name": format!("BS Nguyễn Văn {n} {}", "Tuấn ".repeat(20)),
        "specialties": ["cardiology", "neurology"],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_sqlite_disk_answers_503_and_the_next_write_after_freeing_space_succeeds() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    app.create_specialty("cardiology").await;
    app.create_specialty("neurology").await;
    let hub = app
        .create_facility("HUB-1", "hub_hospital", "Asia/Ho_Chi_Minh")
        .await;
    // Space an operator can give back later, as deleting old data would.
    exec(app.db(), "CREATE TABLE scratch (b BLOB)").await;
    exec(app.db(), "INSERT INTO scratch VALUES (zeroblob(262144))").await;
    let pages = scalar(app.db(), "PRAGMA page_count").await;
    // A quota a little above what is there (SQLite's max_page_count: a full disk without a
    // small file system), and one connection, so every request after the fault runs on the
    // connection the fault hit.
    let app = app
        .restart_with(|s| {
            s.sqlite_max_page_count = Some(u32::try_from(pages).expect("pages") + 6);
            s.database_max_connections = 1;
        })
        .await;
    let mut created = 0;
    let full = loop {
        let r = app
            .send_any(
                app.http
                    .post(app.url("/api/v1/clinicians"))
                    .bearer_auth(app.token.as_deref().expect("signed in"))
                    .json(&clinician(hub, created)),
            )
            .await;
        if r.status != 201 {
            break r;
        }
        created += 1;
        assert!(created < 500, "the quota never filled");
    };
    // The write that found the disk full is refused as `storage_full`, unless what failed was
    // the audit append after it (finding 3: a write and its event in two transactions, until the
    // write journal), which is answered `unavailable`.
    assert_storage_503(&full, full.error_code());
    assert!(
        ["storage_full", "unavailable"].contains(&full.error_code()),
        "{}",
        full.text
    );
    assert!(created > 0, "the quota was full before the first write");
    // Nothing half-written: a clinician and their specialties commit together or not at all.
    let orphans = "SELECT COUNT(*) FROM clinicians c WHERE NOT EXISTS \
                   (SELECT 1 FROM clinician_specialties s WHERE s.clinician_id = c.id)";
    assert_eq!(scalar(app.db(), orphans).await, 0);
    // Still full: a clear 503 again, never a 500.
    for n in 0..3 {
        let r = app
            .send_any(
                app.http
                    .post(app.url("/api/v1/clinicians"))
                    .bearer_auth(app.token.as_deref().expect("signed in"))
                    .json(&clinician(hub, 1000 + n)),
            )
            .await;
        assert_storage_503(&r, r.error_code());
    }
    let r = app.send_any(app.http.get(app.url("/readyz"))).await;
    assert_eq!(readiness(&r), "storage_full");

    // The operator frees space; the very next write succeeds, and readiness follows.
    exec(app.db(), "DELETE FROM scratch").await;
    app.post("/api/v1/clinicians", clinician(hub, 2000))
        .await
        .expect(201);
    eventually("/readyz answers 200 again", || async {
        let r = app.send_any(app.http.get(app.url("/readyz"))).await;
        (readiness(&r) == "ready").then_some(())
    })
    .await;
    assert_eq!(scalar(app.db(), orphans).await, 0);
}

/// Short waits, so an outage shows within about a second; a small pool. (Statements get a
/// second: on a loaded two-core machine an ordinary one took longer than half a second.)
fn fast(s: &mut Settings) {
    s.database_acquire_timeout_ms = 500;
    s.database_statement_timeout_ms = 1000;
    s.database_max_connections = 4;
}

/// A PostgreSQL server reached through a proxy the test can cut.
async fn behind_proxy() -> (TestApp, TcpProxy) {
    let proxy = TcpProxy::in_front_of(&postgres_admin_url()).await;
    let app = TestApp::spawn_with(Engine::Postgres, |s| {
        fast(s);
        let direct = s.database_url.as_ref().expect("a database URL").expose();
        s.database_url = Some(DatabaseUrl::new(proxy.url_through(direct)));
    })
    .await;
    app.create_specialty("cardiology").await;
    app.get("/api/v1/specialties").await.expect(200);
    app.get("/readyz").await.expect(200);
    (app, proxy)
}

/// While the proxy is in `mode`: reads and writes get a fast 503 and `/readyz` says why; once
/// it forwards again, the next requests succeed.
async fn outage_fails_fast_and_recovers(mode: Mode) {
    let (app, proxy) = behind_proxy().await;
    let client = impatient();
    proxy.set(mode);
    for n in 0..3 {
        let (r, took) = timed(&app, client.get(app.url("/api/v1/specialties"))).await;
        assert_storage_503(&r, "unavailable");
        assert!(took < Duration::from_secs(3), "a read took {took:?}");
        let (r, took) = timed(
            &app,
            client
                .post(app.url("/api/v1/specialties"))
                .json(&json!({"code": format!("s{n}"), "name_en": "S", "name_vi": "S"})),
        )
        .await;
        assert_storage_503(&r, "unavailable");
        assert!(took < Duration::from_secs(3), "a write took {took:?}");
    }
    eventually("/readyz answers 503", || async {
        let (r, took) = timed(&app, client.get(app.url("/readyz"))).await;
        assert!(took < Duration::from_secs(3), "/readyz took {took:?}");
        (readiness(&r) != "ready").then_some(())
    })
    .await;

    proxy.set(Mode::Forward);
    app.get("/api/v1/specialties").await.expect(200);
    app.post(
        "/api/v1/specialties",
        json!({"code": "after", "name_en": "After", "name_vi": "Sau"}),
    )
    .await
    .expect(201);
    eventually("/readyz answers 200 again", || async {
        let r = app.send_any(app.http.get(app.url("/readyz"))).await;
        (readiness(&r) == "ready").then_some(())
    })
    .await;
}

/// PostgreSQL stops: every connection closes and new ones are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_that_goes_down_answers_503_fast_and_is_used_again_when_it_is_back() {
    outage_fails_fast_and_recovers(Mode::Down).await;
}

/// The network drops every packet: open connections stay open but nothing answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_that_goes_silent_answers_503_fast_and_is_used_again_when_it_answers() {
    outage_fails_fast_and_recovers(Mode::BlackHole).await;
}

/// Runs `sql` (with `{db}` for the test database's name) on the admin connection.
async fn admin(sql: &str, db: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .expect("PostgreSQL is reachable");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.replace("{db}", db)))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.ok();
}

/// The database refuses writes (a primary turned standby does the same): writes get a 503
/// and `/readyz` says read-only; afterwards writes succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_only_postgres_answers_503_and_readiness_says_so() {
    let app = TestApp::spawn_with(Engine::Postgres, fast).await;
    app.create_specialty("cardiology").await;
    app.get("/readyz").await.expect(200);
    let name = app
        .database_url()
        .rsplit('/')
        .next()
        .and_then(|n| n.split('?').next())
        .expect("a database name")
        .to_string();
    let kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                WHERE datname = '{db}' AND pid <> pg_backend_pid()";
    admin(
        "ALTER DATABASE {db} SET default_transaction_read_only = on",
        &name,
    )
    .await;
    // The server's connections started writable: end them, so it opens read-only ones.
    admin(kill, &name).await;
    let write = |n: usize| {
        let app = app.clone();
        async move {
            app.send_any(
                app.http
                    .post(app.url("/api/v1/specialties"))
                    .bearer_auth(app.token.as_deref().expect("signed in"))
                    .json(&json!({"code": format!("ro{n}"), "name_en": "S", "name_vi": "S"})),
            )
            .await
        }
    };
    // The first may meet a connection that was just ended; every answer is a 503.
    let mut n = 0;
    eventually("a write is refused as read-only", || {
        n += 1;
        let attempt = write(n);
        async move {
            let r = attempt.await;
            assert_storage_503(&r, "unavailable");
            (r.body["error"]["details"]["reason"] == "read_only").then_some(())
        }
    })
    .await;
    eventually("/readyz says read-only", || async {
        let r = app.send_any(app.http.get(app.url("/readyz"))).await;
        (readiness(&r) == "read_only").then_some(())
    })
    .await;

    admin(
        "ALTER DATABASE {db} RESET default_transaction_read_only",
        &name,
    )
    .await;
    admin(kill, &name).await;
    eventually("a write succeeds again", || {
        n += 1;
        let attempt = write(n);
        async move {
            let r = attempt.await;
            if r.status != 201 {
                assert_storage_503(&r, "unavailable");
            }
            (r.status == 201).then_some(())
        }
    })
    .await;
    eventually("/readyz answers 200 again", || async {
        let r = app.send_any(app.http.get(app.url("/readyz"))).await;
        (readiness(&r) == "ready").then_some(())
    })
    .await;
}
