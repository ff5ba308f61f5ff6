//! Tamper evidence that survives an attacker holding the database (issue 12, finding 5).
//!
//! Each test lets a real server write audit events (and its signed checkpoints, in the data
//! folder), then tampers with the database as someone holding the file or a superuser session
//! would: the append-only triggers dropped first, then events deleted or rewritten, with the plain
//! SHA-256 chain recomputed where that hides it from the chain check. `audit verify`'s checks
//! (the library function the command runs; the command itself is run in
//! `server/tests/audit_verify_command.rs`) must fail and name the problem.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, SigningKey, Verifier, VerifyingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use telehealth::audit::checkpoint::{self, CheckpointSettings, Problem, TrailReport};
use telehealth::config::Secret;
use telehealth::storage::Db;
use telehealth_tests::{Engine, TestApp, both_engines, eventually};

/// Removes the append-only triggers, as whoever holds the database can.
async fn drop_triggers(app: &TestApp) {
    match app.engine {
        Engine::Sqlite => {
            app.exec(
                "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;
                 DROP TRIGGER audit_event_patients_no_update; DROP TRIGGER audit_event_patients_no_delete;",
            )
            .await
        }
        Engine::Postgres => {
            app.exec(
                "DROP TRIGGER audit_events_no_change ON audit_events;
                 DROP TRIGGER audit_events_no_truncate ON audit_events;
                 DROP TRIGGER audit_event_patients_no_change ON audit_event_patients;
                 DROP TRIGGER audit_event_patients_no_truncate ON audit_event_patients;",
            )
            .await
        }
    }
}

/// Makes `n` audited reads of one patient as `as_app`.
async fn read_patient(as_app: &TestApp, patient: i64, n: usize) {
    for _ in 0..n {
        as_app
            .get(&format!("/api/v1/patients/{patient}"))
            .await
            .expect(200);
    }
}

fn settings_of(app: &TestApp) -> CheckpointSettings {
    CheckpointSettings::from_settings(app.settings())
}

/// What `telehealth audit verify` checks: the chain, then the checkpoint log against the key.
async fn verify(app: &TestApp) -> TrailReport {
    let s = settings_of(app);
    let key = checkpoint::public_key_from_file(&s.key_file).expect("the checkpoint key is there");
    checkpoint::verify_trail(app.db(), &s.log_file, &key)
        .await
        .expect("verification runs")
}

/// Waits until a checkpoint covers the newest event (checkpoints follow batches by up to the
/// checkpoint interval), and returns the trail's length.
async fn anchored(app: &TestApp) -> i64 {
    eventually("a checkpoint covers the newest event", || async {
        let r = verify(app).await;
        (r.is_intact() && r.checkpoints.unanchored == 0 && r.checkpoints.log_lines > 0)
            .then_some(r.chain.events as i64)
    })
    .await
}

async fn max_seq(app: &TestApp) -> i64 {
    app.scalar("SELECT COALESCE(MAX(seq), 0) FROM audit_events")
        .await
}

/// The report's problems, each as printed, for assertions and failure messages.
fn printed(r: &TrailReport) -> String {
    r.lines().join("\n")
}

both_engines!(an_untampered_trail_passes, |app: TestApp| async move {
    let patient = app.create_patient(None).await;
    read_patient(&app, patient, 5).await;
    let events = anchored(&app).await;
    assert!(events >= 5);
    let r = verify(&app).await;
    assert!(r.is_intact(), "{}", printed(&r));
    assert_eq!(r.checkpoints.last_checkpointed, Some(max_seq(&app).await));
    assert!(printed(&r).contains("intact"), "{}", printed(&r));
    // The key is the owner's only, and is not in the database.
    let s = settings_of(&app);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&s.key_file)
            .expect("the key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // Every line is signed by the key in the key file, checked here without the server's code.
    let signer = signing_key(&s.key_file);
    let log = std::fs::read_to_string(&s.log_file).expect("the checkpoint log");
    for line in log.lines() {
        let c: Value = serde_json::from_str(line).expect("a JSON line");
        assert!(signed_by(&c, &signer.verifying_key()), "{line}");
    }
});

both_engines!(
    deleting_the_last_event_is_truncation,
    |app: TestApp| async move {
        let patient = app.create_patient(None).await;
        read_patient(&app, patient, 3).await;
        let events = anchored(&app).await;
        drop_triggers(&app).await;
        app.exec(
            "DELETE FROM audit_event_patients WHERE seq = (SELECT MAX(seq) FROM audit_events);
         DELETE FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events);",
        )
        .await;
        let r = verify(&app).await;
        assert_eq!(r.chain.first_broken, None, "the plain chain cannot see it");
        assert!(!r.is_intact());
        assert!(
            r.checkpoints.problems.iter().any(|p| matches!(
                p,
                Problem::Truncated { checkpointed, trail_ends, .. }
                    if *checkpointed == events && *trail_ends == events - 1
            )),
            "{}",
            printed(&r)
        );
        assert!(printed(&r).contains("truncated"), "{}", printed(&r));
    }
);

both_engines!(
    deleting_the_last_200_events_is_truncation,
    |app: TestApp| async move {
        let patient = app.create_patient(None).await;
        read_patient(&app, patient, 230).await;
        let events = anchored(&app).await;
        assert!(events > 230);
        drop_triggers(&app).await;
        app.exec(
        "DELETE FROM audit_event_patients WHERE seq > (SELECT MAX(seq) - 200 FROM audit_events);
         DELETE FROM audit_events WHERE seq > (SELECT MAX(seq) - 200 FROM audit_events);",
    )
    .await;
        assert_eq!(max_seq(&app).await, events - 200);
        let r = verify(&app).await;
        assert_eq!(r.chain.first_broken, None);
        assert!(
            r.checkpoints.problems.iter().any(|p| matches!(
                p,
                Problem::Truncated { checkpointed, trail_ends, .. }
                    if *checkpointed == events && *trail_ends == events - 200
            )),
            "{}",
            printed(&r)
        );
    }
);

both_engines!(
    deleting_every_event_is_truncation,
    |app: TestApp| async move {
        let patient = app.create_patient(None).await;
        read_patient(&app, patient, 3).await;
        let events = anchored(&app).await;
        drop_triggers(&app).await;
        app.exec("DELETE FROM audit_event_patients; DELETE FROM audit_events;")
            .await;
        let r = verify(&app).await;
        assert_eq!(r.chain.events, 0);
        assert_eq!(r.chain.first_broken, None);
        assert!(
            r.checkpoints.problems.iter().any(|p| matches!(
                p,
                Problem::Truncated { checkpointed, trail_ends: 0, .. } if *checkpointed == events
            )),
            "{}",
            printed(&r)
        );
        assert!(printed(&r).contains("truncated"), "{}", printed(&r));
    }
);

both_engines!(
    deleting_one_actors_events_and_recomputing_the_chain_is_caught,
    |app: TestApp| async move {
        let patient = app.create_patient(None).await;
        let clinic = app
            .create_facility("BV-AT1", "hub_hospital", "Asia/Ho_Chi_Minh")
            .await;
        let other = app
            .as_new_user("snoop", &[("scheduler", Some(clinic))], None, None)
            .await;
        // The snoop's reads of a patient they should not have looked at, among others' events.
        read_patient(&app, patient, 10).await;
        for _ in 0..37 {
            other.get(&format!("/api/v1/patients/{patient}")).await;
        }
        read_patient(&app, patient, 10).await;
        anchored(&app).await;
        let snooped = app
            .scalar("SELECT COUNT(*) FROM audit_events WHERE actor = 'snoop'")
            .await;
        assert!(snooped >= 37, "{snooped}");
        let events = max_seq(&app).await;
        drop_triggers(&app).await;
        recompute_chain(app.db(), |rows| {
            rows.into_iter().filter(|e| e.actor != "snoop").collect()
        })
        .await;
        assert_eq!(
            app.scalar("SELECT COUNT(*) FROM audit_events WHERE actor = 'snoop'")
                .await,
            0
        );
        let r = verify(&app).await;
        assert_eq!(
            r.chain.first_broken, None,
            "the recomputed chain verifies on its own: the forgery is a good one"
        );
        assert!(!r.is_intact());
        assert!(
            r.checkpoints.problems.iter().any(|p| matches!(
                p,
                Problem::Truncated { checkpointed, trail_ends, .. }
                    if *checkpointed == events && *trail_ends == events - snooped
            )),
            "{}",
            printed(&r)
        );

        // A better forgery pads the trail back to its checkpointed length with harmless-looking
        // copies of root's reads: no longer shorter, but the hash at the checkpoint differs.
        recompute_chain(app.db(), |rows| {
            let filler = rows.last().cloned().expect("events are left");
            let mut rows = rows;
            while (rows.len() as i64) < events {
                rows.push(filler.clone());
            }
            rows
        })
        .await;
        assert_eq!(max_seq(&app).await, events);
        let r = verify(&app).await;
        assert_eq!(r.chain.first_broken, None);
        assert!(
            r.checkpoints
                .problems
                .iter()
                .any(|p| matches!(p, Problem::Rewritten { seq, .. } if *seq == events)),
            "{}",
            printed(&r)
        );
        assert!(printed(&r).contains("rewritten"), "{}", printed(&r));
    }
);

both_engines!(
    rewriting_one_events_action_and_recomputing_the_chain_is_caught,
    |app: TestApp| async move {
        let patient = app.create_patient(None).await;
        read_patient(&app, patient, 20).await;
        let events = anchored(&app).await;
        let target = events - 5;
        drop_triggers(&app).await;
        recompute_chain(app.db(), |mut rows| {
            for e in rows.iter_mut().filter(|e| e.seq == target) {
                e.action = "GET /api/v1/specialties".into();
            }
            rows
        })
        .await;
        let r = verify(&app).await;
        assert_eq!(r.chain.first_broken, None);
        assert_eq!(max_seq(&app).await, events, "no event is missing");
        let rewritten: Vec<i64> = r
            .checkpoints
            .problems
            .iter()
            .filter_map(|p| match p {
                Problem::Rewritten { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert!(
            !rewritten.is_empty() && rewritten.iter().all(|s| *s >= target),
            "{}",
            printed(&r)
        );
        assert!(printed(&r).contains("rewritten"), "{}", printed(&r));
    }
);

both_engines!(
    a_deleted_checkpoint_log_is_reported_missing,
    |app: TestApp| async move {
        let patient = app.create_patient(None).await;
        read_patient(&app, patient, 3).await;
        anchored(&app).await;
        let s = settings_of(&app);
        std::fs::remove_file(&s.log_file).expect("the log is removed");
        let r = verify(&app).await;
        assert!(!r.is_intact());
        assert!(
            r.checkpoints
                .problems
                .iter()
                .any(|p| matches!(p, Problem::MissingLog { .. })),
            "{}",
            printed(&r)
        );
        assert!(
            printed(&r).contains("missing checkpoint log"),
            "{}",
            printed(&r)
        );
        // An emptied one too.
        std::fs::write(&s.log_file, b"").expect("the log is emptied");
        let r = verify(&app).await;
        assert!(
            r.checkpoints
                .problems
                .iter()
                .any(|p| matches!(p, Problem::MissingLog { .. })),
            "{}",
            printed(&r)
        );
    }
);

both_engines!(
    a_forged_or_edited_checkpoint_line_fails_its_signature,
    |app: TestApp| async move {
        let patient = app.create_patient(None).await;
        read_patient(&app, patient, 3).await;
        anchored(&app).await;
        let s = settings_of(&app);
        let log = std::fs::read_to_string(&s.log_file).expect("the log");
        // Moving the last checkpoint back to an earlier event, as someone hiding a truncation
        // from the log would, without the key.
        let mut lines: Vec<String> = log.lines().map(str::to_string).collect();
        let last = lines.pop().expect("a line");
        let mut c: Value = serde_json::from_str(&last).expect("JSON");
        c["seq"] = json!(1);
        lines.push(c.to_string());
        std::fs::write(&s.log_file, lines.join("\n") + "\n").expect("rewritten");
        let r = verify(&app).await;
        assert!(
            r.checkpoints
                .problems
                .iter()
                .any(|p| matches!(p, Problem::BadSignature { .. })),
            "{}",
            printed(&r)
        );
        // Against a pinned key other than the server's, every line fails.
        let stranger = SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        std::fs::write(&s.log_file, log).expect("restored");
        let r = checkpoint::verify_trail(app.db(), &s.log_file, &stranger)
            .await
            .expect("verification runs");
        assert!(!r.is_intact(), "{}", printed(&r));
    }
);

// A restart keeps the key and appends to the same log; the trail still verifies.
both_engines!(
    checkpoints_survive_a_restart_with_the_same_key,
    |app: TestApp| async move {
        let patient = app.create_patient(None).await;
        read_patient(&app, patient, 3).await;
        anchored(&app).await;
        let s = settings_of(&app);
        let key_before = std::fs::read(&s.key_file).expect("key");
        let lines_before = verify(&app).await.checkpoints.log_lines;
        let app = app.restart().await;
        read_patient(&app, patient, 3).await;
        anchored(&app).await;
        assert_eq!(std::fs::read(&s.key_file).expect("key"), key_before);
        let r = verify(&app).await;
        assert!(r.checkpoints.log_lines > lines_before);
        assert!(r.is_intact(), "{}", printed(&r));
    }
);

/// What the receiver saw: checkpoints whose signature held, and those whose did not.
#[derive(Default)]
struct Received {
    good: Vec<Value>,
    bad: usize,
    authorised: bool,
}

/// A real HTTP receiver on loopback that checks each checkpoint's signature against `key`.
async fn receiver(key: Arc<Mutex<Option<VerifyingKey>>>) -> (String, Arc<Mutex<Received>>) {
    use warp::Filter;
    let seen = Arc::new(Mutex::new(Received::default()));
    let seen2 = seen.clone();
    let route = warp::post()
        .and(warp::path("checkpoints"))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::json())
        .map(move |auth: Option<String>, c: Value| {
            let key = *key.lock().expect("not poisoned");
            let mut seen = seen2.lock().expect("not poisoned");
            seen.authorised |= auth.as_deref() == Some("Bearer sink-token-0123456789");
            match key {
                Some(k) if signed_by(&c, &k) => seen.good.push(c),
                _ => seen.bad += 1,
            }
            warp::reply::with_status("", warp::http::StatusCode::NO_CONTENT)
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}/checkpoints"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkpoints_are_shipped_to_an_http_sink_signed() {
    let key = Arc::new(Mutex::new(None));
    let (url, seen) = receiver(key.clone()).await;
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.audit_checkpoint_url = Some(Secret::new(url));
        s.audit_checkpoint_token = Some(Secret::new("sink-token-0123456789"));
    })
    .await;
    // The receiver pins the public key out of band (here: read from the key file).
    let s = settings_of(&app);
    *key.lock().expect("not poisoned") = Some(signing_key(&s.key_file).verifying_key());
    let patient = app.create_patient(None).await;
    read_patient(&app, patient, 5).await;
    let head = anchored(&app).await;
    eventually("the sink holds the newest checkpoint", || async {
        let seen = seen.lock().expect("not poisoned");
        seen.good
            .iter()
            .any(|c| c["seq"].as_i64() == Some(head))
            .then_some(())
    })
    .await;
    let seen = seen.lock().expect("not poisoned");
    assert!(seen.authorised, "the sink token is sent");
    // Checkpoints received before the key was pinned count as bad here; none after.
    let last = seen.good.last().expect("a checkpoint");
    assert_eq!(
        last["key_id"],
        checkpoint::key_id(&signing_key(&s.key_file).verifying_key())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_sink_is_counted_and_never_blocks_the_trail() {
    const TOKEN: &str = "scrape-5a1c9e2b7d4f8036";
    // Nothing listens here: every POST fails.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/checkpoints", dead.local_addr().expect("address"));
    drop(dead);
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.audit_checkpoint_url = Some(Secret::new(url));
        s.metrics_token = Some(Secret::new(TOKEN));
    })
    .await;
    let patient = app.create_patient(None).await;
    let started = std::time::Instant::now();
    read_patient(&app, patient, 20).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "reads wait for the sink: {:?}",
        started.elapsed()
    );
    anchored(&app).await;
    let failures = eventually("the sink failures are counted", || async {
        let r = app
            .send_any(app.http.get(app.url("/metrics")).bearer_auth(TOKEN))
            .await;
        let n: f64 = r
            .text
            .lines()
            .find(|l| l.starts_with("audit_checkpoint_sink_failures_total"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        (n >= 1.0).then_some(n)
    })
    .await;
    assert!(failures >= 1.0);
}

// --- an attacker's tools, written from the documented scheme, not the server's code ---

fn signing_key(path: &std::path::Path) -> SigningKey {
    let bytes = std::fs::read(path).expect("the key file");
    let seed: [u8; 32] = bytes.as_slice().try_into().expect("a 32-byte seed");
    SigningKey::from_bytes(&seed)
}

/// Whether checkpoint `c` is signed by `key`: the signature covers
/// `telehealth-audit-checkpoint-v1 \x1f seq \x1f hash \x1f at \x1f key_id`.
fn signed_by(c: &Value, key: &VerifyingKey) -> bool {
    use base64::Engine as _;
    let message = format!(
        "telehealth-audit-checkpoint-v1\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
        c["seq"],
        c["hash"].as_str().unwrap_or_default(),
        c["at"].as_str().unwrap_or_default(),
        c["key_id"].as_str().unwrap_or_default()
    );
    let Some(sig) = c["sig"]
        .as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .and_then(|b| Signature::from_slice(&b).ok())
    else {
        return false;
    };
    key.verify(message.as_bytes(), &sig).is_ok()
}

/// One stored event, as the attacker reads it.
#[derive(Clone, Debug, sqlx::FromRow)]
struct Row {
    seq: i64,
    occurred_at: DateTime<Utc>,
    actor_account_id: Option<i64>,
    actor: String,
    actor_role: String,
    action: String,
    record_type: String,
    record_id: Option<String>,
    patient_id: Option<i64>,
    client_addr: Option<String>,
    outcome: String,
}

/// The chain's hash scheme (`audit::chain_hash`), as someone reading the source would rebuild it.
fn hash(prev: &str, seq: i64, e: &Row, patients: &[i64]) -> String {
    let mut h = Sha256::new();
    let opt = |v: Option<String>| v.unwrap_or_default();
    for part in [
        prev.to_string(),
        seq.to_string(),
        e.occurred_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        opt(e.actor_account_id.map(|a| a.to_string())),
        e.actor.clone(),
        e.actor_role.clone(),
        e.action.clone(),
        e.record_type.clone(),
        opt(e.record_id.clone()),
        opt(e.patient_id.map(|p| p.to_string())),
        opt(e.client_addr.clone()),
        e.outcome.clone(),
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    if !patients.is_empty() {
        let list: Vec<String> = patients.iter().map(|p| p.to_string()).collect();
        h.update(format!("patients={}", list.join(",")).as_bytes());
        h.update([0x1f]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

const SELECT_ROWS: &str =
    "SELECT seq, occurred_at, actor_account_id, actor, actor_role, action, record_type,
        record_id, patient_id, client_addr, outcome FROM audit_events ORDER BY seq";
const INSERT_ROW: &str =
    "INSERT INTO audit_events (seq, occurred_at, actor_account_id, actor, actor_role,
        action, record_type, record_id, patient_id, client_addr, outcome, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/// Replaces the trail with `forge(events)`, renumbered from 1 with every hash recomputed, in one
/// transaction. (An event's patients go with it by its old number.)
async fn recompute_chain(db: &Db, forge: impl FnOnce(Vec<Row>) -> Vec<Row>) {
    macro_rules! rewrite {
        ($pool:expr) => {{
            let mut tx = $pool.begin().await.expect("begin");
            let rows: Vec<Row> = sqlx::query_as(SELECT_ROWS)
                .fetch_all(&mut *tx)
                .await
                .expect("read events");
            let listed: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT seq, patient_id FROM audit_event_patients ORDER BY seq, patient_id",
            )
            .fetch_all(&mut *tx)
            .await
            .expect("read patients");
            let mut patients: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
            for (seq, p) in listed {
                patients.entry(seq).or_default().push(p);
            }
            sqlx::raw_sql("DELETE FROM audit_event_patients; DELETE FROM audit_events;")
                .execute(&mut *tx)
                .await
                .expect("clear the trail");
            let mut prev = "0".repeat(64);
            let mut seq = 0i64;
            for row in forge(rows) {
                seq += 1;
                let listed = patients.remove(&row.seq).unwrap_or_default();
                let h = hash(&prev, seq, &row, &listed);
                sqlx::query(INSERT_ROW)
                    .bind(seq)
                    .bind(row.occurred_at)
                    .bind(row.actor_account_id)
                    .bind(&row.actor)
                    .bind(&row.actor_role)
                    .bind(&row.action)
                    .bind(&row.record_type)
                    .bind(&row.record_id)
                    .bind(row.patient_id)
                    .bind(&row.client_addr)
                    .bind(&row.outcome)
                    .bind(&prev)
                    .bind(&h)
                    .execute(&mut *tx)
                    .await
                    .expect("insert the forged event");
                for p in listed {
                    sqlx::query(
                        "INSERT INTO audit_event_patients (seq, patient_id) VALUES ($1, $2)",
                    )
                    .bind(seq)
                    .bind(p)
                    .execute(&mut *tx)
                    .await
                    .expect("insert its patients");
                }
                prev = h;
            }
            tx.commit().await.expect("commit the forgery");
        }};
    }
    match db {
        Db::Sqlite(pool) => rewrite!(pool),
        Db::Postgres(pool) => rewrite!(pool),
    }
}
