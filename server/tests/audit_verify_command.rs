//! `telehealth audit verify` as an operator runs it: exit 0 with the public key printed on an
//! intact trail, exit 1 with a clear line on truncation, a missing checkpoint log, or a pinned key
//! the log was not signed with. (Each kind of tampering, on both engines, is tested through the
//! library in `tests/tests/audit_tamper.rs`.)

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use telehealth::audit::checkpoint::{self, CheckpointSettings, Checkpointer};
use telehealth::audit::{AuditLog, Event, Outcome};
use telehealth::config::{DatabaseUrl, Settings};
use telehealth::storage::Db;

const BIN: &str = env!("CARGO_BIN_EXE_telehealth");

fn telehealth(data_dir: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--database-url", url])
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("telehealth runs")
}

fn said(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn event(n: usize) -> Event {
    Event {
        actor_account_id: None,
        actor: "operator".into(),
        actor_role: "administrator".into(),
        action: format!("test event {n}"),
        record_type: "test".into(),
        record_id: None,
        patient_id: None,
        patients: Vec::new(),
        client_addr: None,
        outcome: Outcome::Allowed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_passes_an_intact_trail_and_names_tampering() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data_dir = dir.path().join("data");
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let settings = Settings {
        data_dir: data_dir.clone(),
        database_url: Some(DatabaseUrl::new(url.clone())),
        ..Settings::default()
    };
    let cs = CheckpointSettings::from_settings(&settings);

    // A writer like the server's appends five events and checkpoints them.
    let db = telehealth::startup::open_database(&settings)
        .await
        .expect("database");
    let (audit, _writer) = AuditLog::start(
        db.clone(),
        Checkpointer::start(&cs).expect("checkpoints start"),
    );
    for n in 0..5 {
        audit.record(event(n)).await.expect("recorded");
    }
    let mut anchored = false;
    for _ in 0..100 {
        let log = std::fs::read_to_string(&cs.log_file).unwrap_or_default();
        if log.lines().any(|l| l.contains("\"seq\":5,")) {
            anchored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(anchored, "a checkpoint covers event 5");
    drop(audit);
    db.close().await;

    let intact = telehealth(&data_dir, &url, &["audit", "verify"]);
    assert_eq!(intact.status.code(), Some(0), "{intact:?}");
    let public = checkpoint::public_key_from_file(&cs.key_file).expect("key");
    let public_text = checkpoint::public_key_text(&public);
    assert!(said(&intact).contains(&public_text), "{}", said(&intact));
    assert!(
        said(&intact).contains("audit trail intact"),
        "{}",
        said(&intact)
    );

    // Pinned: the right key passes, any other fails every line.
    let pinned = telehealth(
        &data_dir,
        &url,
        &["audit", "verify", "--public-key", &public_text],
    );
    assert_eq!(pinned.status.code(), Some(0), "{pinned:?}");
    let stranger = checkpoint::public_key_text(
        &ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]).verifying_key(),
    );
    let wrong = telehealth(
        &data_dir,
        &url,
        &["audit", "verify", "--public-key", &stranger],
    );
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    assert!(
        said(&wrong).contains("not by the key verifying"),
        "{}",
        said(&wrong)
    );
    let garbage = telehealth(
        &data_dir,
        &url,
        &["audit", "verify", "--public-key", "nope"],
    );
    assert_eq!(garbage.status.code(), Some(1), "{garbage:?}");

    // The newest event deleted behind the trigger's back.
    let db = Db::connect(&url, Default::default())
        .await
        .expect("connect");
    if let Db::Sqlite(p) = &db {
        sqlx::raw_sql(
            "DROP TRIGGER audit_events_no_delete; DELETE FROM audit_events WHERE seq = 5;",
        )
        .execute(p)
        .await
        .expect("tampered");
    }
    db.close().await;
    let cut = telehealth(&data_dir, &url, &["audit", "verify"]);
    assert_eq!(cut.status.code(), Some(1), "{cut:?}");
    assert!(said(&cut).contains("PROBLEM: truncated"), "{}", said(&cut));
    assert!(
        said(&cut).contains("audit trail NOT intact"),
        "{}",
        said(&cut)
    );

    std::fs::remove_file(&cs.log_file).expect("log removed");
    let gone = telehealth(&data_dir, &url, &["audit", "verify"]);
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
    assert!(
        said(&gone).contains("PROBLEM: missing checkpoint log"),
        "{}",
        said(&gone)
    );

    // Without the key file (and no pinned key), verify says what is missing.
    std::fs::remove_file(&cs.key_file).expect("key removed");
    let keyless = telehealth(&data_dir, &url, &["audit", "verify"]);
    assert_eq!(keyless.status.code(), Some(1), "{keyless:?}");
    let err = String::from_utf8_lossy(&keyless.stderr);
    assert!(err.contains("--public-key"), "{err}");
}
