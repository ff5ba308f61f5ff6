//! `telehealth check` as an operator runs it, on both engines: exit 0 and a summary on a sound
//! database, exit 1 naming each consultation whose claims disagree with its state. (What the scan
//! finds, case by case, is tested through the library in `tests/tests/booking_races.rs`.)

use std::process::{Command, Output};

use telehealth::storage::{Db, PoolSettings};

const BIN: &str = env!("CARGO_BIN_EXE_telehealth");

fn telehealth(url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["--database-url", url])
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("telehealth runs")
}

/// Runs one statement on the database behind `url`.
async fn execute(url: &str, sql: &'static str) {
    let db = Db::connect(url, PoolSettings::default())
        .await
        .expect("connect");
    match &db {
        Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
    }
    .expect("the statement runs");
    db.close().await;
}

/// Migrates a fresh database, checks it (sound), leaves claims of a consultation that does not
/// exist, checks again (exit 1, named), removes them, and checks once more (sound).
async fn check_finds_and_names(url: &str) {
    let migrated = telehealth(url, &["migrate"]);
    assert!(migrated.status.success(), "{migrated:?}");
    let sound = telehealth(url, &["check"]);
    assert_eq!(sound.status.code(), Some(0), "{sound:?}");
    let said = String::from_utf8_lossy(&sound.stdout);
    assert!(
        said.contains("claims agree with every consultation"),
        "{said}"
    );

    execute(
        url,
        "INSERT INTO slot_claims (clinician_id, cell, consultation_id) VALUES (3, 5900000, 42), (3, 5900001, 42)",
    )
    .await;
    let broken = telehealth(url, &["check"]);
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    let said = String::from_utf8_lossy(&broken.stdout);
    assert!(
        said.contains("consultation 42 (missing): 2 cells are claimed"),
        "{said}"
    );
    assert!(said.contains("1 disagreements"), "{said}");

    execute(url, "DELETE FROM slot_claims WHERE consultation_id = 42").await;
    let mended = telehealth(url, &["check"]);
    assert_eq!(mended.status.code(), Some(0), "{mended:?}");
}

#[tokio::test]
async fn check_on_sqlite() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("check.db").display());
    check_finds_and_names(&url).await;
}

/// A PostgreSQL database of its own, dropped again with this guard (also when the test fails).
struct Scratch {
    admin: String,
    name: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (admin, sql) = (
            self.admin.clone(),
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
        // Drop cannot await, and may run on the test's runtime: a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

#[tokio::test]
async fn check_on_postgres() {
    use sqlx::Connection;
    let admin = std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let name = format!("th_test_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {admin}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await
        .expect("create the database");
    c.close().await.ok();
    let scratch = Scratch { admin, name };
    // The admin URL with the scratch database in place of its own (and its parameters kept).
    let (base, rest) = scratch
        .admin
        .rsplit_once('/')
        .expect("a database in TEST_POSTGRES_URL");
    let url = match rest.split_once('?') {
        Some((_, query)) => format!("{base}/{}?{query}", scratch.name),
        None => format!("{base}/{}", scratch.name),
    };
    check_finds_and_names(&url).await;
}
