//! Crashes under a booking load, on both engines: a server node in a process of its own
//! (`src/bin/crash_node.rs`) takes bookings from eight clients, each with an `Idempotency-Key`,
//! and is killed with SIGKILL at a random moment, three times; after each restart every request
//! is sent again with its key. What must hold (issue 12):
//! - every acknowledged booking is there, and its retry gets the first answer back (the same
//!   consultation, `Idempotent-Replayed: true`);
//! - a request whose answer was lost in the crash gets a booking on retry (its own, if it had
//!   committed), never `409 slot_taken` from colliding with itself;
//! - each request made exactly one consultation;
//! - every committed booking has its audit event, the chain verifies, and `telehealth check` finds
//!   no consultation whose slot claims disagree with its state.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use telehealth::scheduling::consistency;
use telehealth::storage::{Db, PoolSettings};
use telehealth_tests::node_process::NodeProcess as Node;
use telehealth_tests::{Cast, Engine, SplitMix, TestApp, both_engines, this_week};

const ROUNDS: usize = 3;
const CLIENTS: usize = 8;

/// One booking request, as the client keeps it to retry.
#[derive(Clone)]
struct Attempt {
    key: String,
    body: Value,
    /// The consultation the first answer named, when one arrived.
    acknowledged: Option<i64>,
}

/// What a booking request got back.
enum Answer {
    Booked {
        id: i64,
        replayed: bool,
    },
    Refused {
        status: u16,
        body: String,
    },
    /// No answer: the connection failed (the node is down).
    Lost,
}

async fn book(http: &reqwest::Client, node: &str, token: &str, a: &Attempt) -> Answer {
    let sent = http
        .post(format!("{node}/api/v1/consultations"))
        .bearer_auth(token)
        .header("idempotency-key", &a.key)
        .json(&a.body)
        .send()
        .await;
    let Ok(res) = sent else {
        return Answer::Lost;
    };
    let status = res.status().as_u16();
    let replayed = res.headers().get("idempotent-replayed").is_some();
    let Ok(text) = res.text().await else {
        return Answer::Lost;
    };
    if status != 201 {
        return Answer::Refused { status, body: text };
    }
    match serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["id"].as_i64())
    {
        Some(id) => Answer::Booked { id, replayed },
        None => Answer::Refused { status, body: text },
    }
}

/// Eight clients book the free slots in `pool` until the node stops answering; the attempts
/// come back, answered or not.
async fn load(
    http: &reqwest::Client,
    node: &str,
    token: &str,
    cast: &Cast,
    pool: &Mutex<Vec<DateTime<Utc>>>,
) -> Vec<Attempt> {
    let next = || pool.lock().ok().and_then(|mut p| p.pop());
    let client = || async {
        let mut made = Vec::new();
        while let Some(start) = next() {
            let mut a = Attempt {
                key: uuid::Uuid::new_v4().to_string(),
                body: cast.booking(start),
                acknowledged: None,
            };
            match book(http, node, token, &a).await {
                Answer::Booked { id, .. } => {
                    a.acknowledged = Some(id);
                    made.push(a);
                }
                Answer::Refused { status, body } => {
                    panic!("a booking of a slot no one else asked for was refused: {status} {body}")
                }
                Answer::Lost => {
                    made.push(a);
                    break;
                }
            }
        }
        made
    };
    futures::future::join_all((0..CLIENTS).map(|_| client()))
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn crash_under_booking_load(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let cast = Cast::create(&app).await;
    app.add_daily_rule(cast.specialist, "06:00", "22:00", 10, 0)
        .await;
    let (from, to) = this_week();
    // Slots at least a day ahead: none starts while the test runs.
    let tomorrow = Utc::now() + chrono::Duration::days(1);
    let mut slots: Vec<DateTime<Utc>> = app
        .free_slots(cast.specialist, from, to)
        .await
        .into_iter()
        .filter(|s| *s > tomorrow)
        .collect();
    assert!(slots.len() > 400, "only {} free slots", slots.len());
    let seed = u64::from(Utc::now().timestamp_subsec_nanos());
    eprintln!("crash test seed {seed}");
    let mut rng = SplitMix(seed);
    rng.shuffle(&mut slots);
    let pool = Mutex::new(slots);
    let token = app.token.clone().expect("root signed in");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    // From here on the node is a process of its own, on the same database and data folder.
    app.stop().await;

    let mut attempts: Vec<Attempt> = Vec::new();
    let mut committed_unanswered = 0usize;
    let mut node = Node::start(env!("CARGO_BIN_EXE_crash_node"), &app, &[]).await;
    for round in 1..=ROUNDS {
        let base = node.base.clone();
        let after = Duration::from_millis(300 + rng.below(900) as u64);
        let (made, ()) = tokio::join!(load(&http, &base, &token, &cast, &pool), async {
            tokio::time::sleep(after).await;
            node.kill().await;
        });
        let acknowledged = made.iter().filter(|a| a.acknowledged.is_some()).count();
        eprintln!(
            "round {round}: killed after {after:?}; {acknowledged} bookings acknowledged, {} answers lost",
            made.len() - acknowledged
        );
        assert!(
            acknowledged > 0,
            "round {round}: nothing was booked before the kill"
        );
        attempts.extend(made);
        node = Node::start(env!("CARGO_BIN_EXE_crash_node"), &app, &[]).await;

        // Every request so far, again with its key: the first answer back, or (for a request whose
        // answer was lost) a booking of its own.
        for a in &mut attempts {
            match book(&http, &node.base, &token, a).await {
                Answer::Booked { id, replayed } => match a.acknowledged {
                    Some(first) => {
                        assert_eq!(
                            id, first,
                            "a retry got another consultation than the first answer"
                        );
                        assert!(
                            replayed,
                            "the retry of an acknowledged booking was not a replay"
                        );
                    }
                    None => {
                        // A replay here: the booking had committed, its answer died with the node.
                        committed_unanswered += usize::from(replayed);
                        a.acknowledged = Some(id);
                    }
                },
                Answer::Refused { status, body } => {
                    panic!("round {round}: a retry with the same key was refused: {status} {body}")
                }
                Answer::Lost => panic!("round {round}: the restarted node did not answer"),
            }
        }
    }

    eprintln!(
        "{} requests; {committed_unanswered} had committed when the node died before answering",
        attempts.len()
    );
    // The harness's pool closed with its server: the checks read through one of their own.
    let db = Db::connect(app.database_url(), PoolSettings::default())
        .await
        .expect("the database opens");
    // Each request made exactly one consultation, and each consultation is one request's.
    let ids: HashSet<i64> = attempts.iter().filter_map(|a| a.acknowledged).collect();
    assert_eq!(
        ids.len(),
        attempts.len(),
        "two requests were answered with one consultation"
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM consultations").await,
        attempts.len() as i64,
        "consultations without a request, or requests with two"
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM consultations WHERE status <> 'booked'"
        )
        .await,
        0,
        "a booking is not booked"
    );
    // Every booking's event reaches the chain (the restarted writer drains what was staged).
    telehealth_tests::eventually("the staged audit events are chained", || {
        let db = &db;
        async move { (scalar(db, "SELECT COUNT(*) FROM audit_pending").await == 0).then_some(()) }
    })
    .await;
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM consultations c WHERE (SELECT COUNT(*) FROM audit_events e
               WHERE e.action = 'POST /api/v1/consultations' AND e.record_id = CAST(c.id AS TEXT)) <> 1"
        )
        .await,
        0,
        "a committed booking without exactly one audit event"
    );
    let verified = telehealth::audit::verify(&db).await.expect("verify runs");
    assert_eq!(verified.first_broken, None, "the audit chain is broken");
    let mut found = Vec::new();
    let summary = consistency::check(&db, 100, |f| found.push(f.clone()))
        .await
        .expect("the check runs");
    assert!(found.is_empty(), "claims disagree with state: {found:?}");
    assert_eq!(summary.consultations, attempts.len() as u64);
    node.kill().await;
    db.close().await;
}

async fn scalar(db: &Db, sql: &'static str) -> i64 {
    match db {
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
    }
    .expect("the count runs")
}

both_engines!(
    crash_under_booking_load_keeps_every_promise,
    engine = crash_under_booking_load
);
