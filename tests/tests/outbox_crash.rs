//! The outbox through crashes, on both engines (issue 14): a node in a process of its own
//! (`src/bin/crash_node.rs`) delivers 300 due messages to a slow webhook receiver and is killed
//! with SIGKILL mid-dispatch, three times, then started once more. What must hold:
//! - every message is delivered and ends `sent`;
//! - a message the receiver saw again after a crash (its attempt was in flight when the node
//!   died, so its lease had to run out) carries the same idempotency key (`webhook-id`) every
//!   time, so the receiver counts each message once: the distinct keys received are exactly the
//!   messages' keys;
//! - every request carries a valid signature.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration as StdDuration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use hmac::{KeyInit, Mac};
use serde_json::json;
use telehealth::outbox::store::{self, NewMessage};
use telehealth_tests::node_process::NodeProcess;
use telehealth_tests::receivers::HttpReceiver;
use telehealth_tests::{Engine, SplitMix, TestApp, both_engines};

const MESSAGES: usize = 300;
const KILLS: usize = 3;
/// The crash node's endpoint secret (`src/bin/crash_node.rs`).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn signed_by_secret(id: &str, ts: &str, body: &str, signature: &str) -> bool {
    let key = BASE64
        .decode(SECRET.trim_start_matches("whsec_"))
        .expect("a base64 secret");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let want = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    signature.split(' ').any(|s| s == want)
}

both_engines!(
    kill_9_during_dispatch_loses_nothing_and_repeats_only_under_the_same_key,
    engine = |engine: Engine| async move {
        let app = TestApp::spawn(engine).await;
        // Each answer takes 40 ms: a batch of 32 is in flight for a while, so kills land in it.
        let receiver =
            HttpReceiver::start_slow((204, json!({})), StdDuration::from_millis(40)).await;
        let url = receiver.url("/hook");
        let mut keys = BTreeSet::new();
        {
            let mut c = app.db().acquire().await.expect("a connection");
            let now = telehealth::domain::time::now();
            for i in 0..MESSAGES {
                let key = format!("msg_crash_{i:04}_{}", uuid::Uuid::new_v4().simple());
                let payload = json!({"n": i}).to_string();
                store::insert(
                    c.conn(),
                    &NewMessage {
                        idempotency_key: key.clone(),
                        kind: "consultation.booked",
                        consultation_id: None,
                        channel: telehealth::outbox::WEBHOOK,
                        endpoint: "his",
                        payload: &payload,
                        recipient_patient_id: None,
                        recipient_clinician_id: None,
                        actor_account_id: None,
                        due_at: now,
                        created_at: now,
                    },
                )
                .await
                .expect("a message");
                keys.insert(key);
            }
        }
        let exe = env!("CARGO_BIN_EXE_crash_node");
        let env = [("CRASH_NODE_WEBHOOK_URL", url.as_str())];
        let mut rng = SplitMix(0x0b0c_5eed ^ Utc::now().timestamp() as u64);
        let mut seen_at_kill = Vec::new();
        for _ in 0..KILLS {
            let node = NodeProcess::start(exe, &app, &env).await;
            // Kill once this life has sent something, at a random moment after that.
            let before = receiver.requests().len();
            let deadline = tokio::time::Instant::now() + StdDuration::from_secs(60);
            while receiver.requests().len() == before && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(StdDuration::from_millis(5)).await;
            }
            tokio::time::sleep(StdDuration::from_millis(20 + rng.below(200) as u64)).await;
            node.kill().await;
            seen_at_kill.push(receiver.requests().len());
        }
        let node = NodeProcess::start(exe, &app, &env).await;
        // Leases of the killed lives run out after 11 s; then everything is sent.
        let deadline = tokio::time::Instant::now() + StdDuration::from_secs(120);
        let rows = loop {
            let rows = {
                let mut c = app.db().acquire().await.expect("a connection");
                store::list(c.conn(), None).await.expect("the outbox")
            };
            if rows.iter().all(|m| m.status == "sent") {
                break rows;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not all sent within 2 minutes: {:?}",
                rows.iter()
                    .filter(|m| m.status != "sent")
                    .map(|m| (&m.status, m.attempts))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(StdDuration::from_millis(200)).await;
        };
        node.kill().await;
        assert_eq!(rows.len(), MESSAGES);
        let got = receiver.requests();
        let mut per_key: HashMap<String, usize> = HashMap::new();
        for r in &got {
            let id = r.header("webhook-id").expect("a webhook-id").to_owned();
            let ts = r.header("webhook-timestamp").expect("a timestamp");
            let sig = r.header("webhook-signature").expect("a signature");
            assert!(
                signed_by_secret(&id, ts, &r.raw, sig),
                "bad signature on {id}"
            );
            *per_key.entry(id).or_default() += 1;
        }
        let received: BTreeSet<String> = per_key.keys().cloned().collect();
        assert_eq!(
            received, keys,
            "every message arrives, under its own key only"
        );
        // The kills happened mid-dispatch: not everything had been sent at any of them.
        assert!(
            seen_at_kill.iter().all(|n| *n < MESSAGES),
            "kills after the work was done prove nothing: {seen_at_kill:?}"
        );
        let repeated = per_key.values().filter(|n| **n > 1).count();
        eprintln!(
            "{engine:?}: {} requests for {MESSAGES} messages after {KILLS} kills at {seen_at_kill:?} \
             requests; {repeated} messages seen more than once, each under one key",
            got.len()
        );
    }
);
