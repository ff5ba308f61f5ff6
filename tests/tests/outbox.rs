//! The outbox and its dispatcher (issue 14): messages commit with the booking change or not at
//! all, are delivered to a real HTTP receiver on loopback signed as Standard Webhooks says, are
//! retried with the same `webhook-id`, die after the configured attempts, are never delivered
//! twice by two dispatchers, and come back when a claimer's lease runs out. Time is a manual
//! clock wherever the dispatcher is driven by the test.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{Duration, Utc};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use telehealth::config::{Secret, Settings, WebhookSettings};
use telehealth::outbox::{
    Clock, DispatchSettings, Dispatcher, ManualClock, WEBHOOK, WebhookChannel, WebhookEndpoint,
};
use telehealth::storage::Db;
use telehealth_tests::{Cast, Engine, TestApp, both_engines, eventually, next_weekday};

const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Delivery {
    id: String,
    timestamp: i64,
    body: Value,
    raw: String,
    /// For each of the receiver's secrets, in order: whether one of the request's `v1`
    /// signatures is that secret's signature of this request.
    valid: Vec<bool>,
    signatures: usize,
}

/// A webhook endpoint on loopback: checks every signature against its own copy of the secrets,
/// records each request, and answers with the next scripted status (204 once the script is out).
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    /// Answered once the script is out.
    fallback: Arc<Mutex<u16>>,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

fn signature(secret: &str, id: &str, ts: &str, body: &[u8]) -> String {
    let key = BASE64
        .decode(secret.trim_start_matches("whsec_"))
        .expect("a base64 secret");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

impl Receiver {
    async fn start(secrets: &[&'static str], delay: StdDuration) -> Receiver {
        use warp::Filter;
        let deliveries: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let script: Arc<Mutex<VecDeque<u16>>> = Arc::default();
        let fallback = Arc::new(Mutex::new(204u16));
        let secrets: Vec<&'static str> = secrets.to_vec();
        let (d, s, f) = (deliveries.clone(), script.clone(), fallback.clone());
        let route = warp::post()
            .and(warp::path("hook"))
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(move |headers: warp::http::HeaderMap, body: bytes::Bytes| {
                let (d, s, f, secrets) = (d.clone(), s.clone(), f.clone(), secrets.clone());
                async move {
                    tokio::time::sleep(delay).await;
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let (id, ts, sig) = (
                        h("webhook-id"),
                        h("webhook-timestamp"),
                        h("webhook-signature"),
                    );
                    let given: Vec<&str> = sig.split(' ').filter(|s| !s.is_empty()).collect();
                    let valid = secrets
                        .iter()
                        .map(|k| given.contains(&signature(k, &id, &ts, &body).as_str()))
                        .collect();
                    let raw = String::from_utf8_lossy(&body).into_owned();
                    d.lock().expect("deliveries").push(Delivery {
                        id,
                        timestamp: ts.parse().unwrap_or(-1),
                        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
                        raw,
                        valid,
                        signatures: given.len(),
                    });
                    let status = s
                        .lock()
                        .expect("script")
                        .pop_front()
                        .unwrap_or_else(|| *f.lock().expect("fallback"));
                    warp::http::StatusCode::from_u16(status).expect("a status")
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            warp::serve(route)
                .incoming(listener)
                .graceful(async move {
                    let _ = stop_rx.await;
                })
                .run(),
        );
        Receiver {
            addr,
            deliveries,
            script,
            fallback,
            _stop: Arc::new(stop_tx),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn answer(&self, statuses: &[u16]) {
        self.script.lock().expect("script").extend(statuses);
    }

    fn always(&self, status: u16) {
        *self.fallback.lock().expect("fallback") = status;
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().expect("deliveries").clone()
    }
}

/// The settings of a server whose one webhook endpoint `his` is `receiver`.
fn hooked(
    receiver: &Receiver,
    secrets: &[&str],
    events: &[&str],
    dispatcher: bool,
) -> impl FnOnce(&mut Settings) {
    let hook = WebhookSettings {
        name: "his".into(),
        url: Secret::new(receiver.url()),
        secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
        events: events.iter().map(|e| e.to_string()).collect(),
    };
    move |s: &mut Settings| {
        s.webhooks = vec![hook];
        s.outbox_dispatcher = dispatcher;
        s.outbox_poll_ms = 50;
        s.outbox_max_attempts = 5;
    }
}

/// A dispatcher of the test's own on the app's database, with a clock the test moves.
fn dispatcher(app: &TestApp, clock: Arc<ManualClock>) -> Dispatcher {
    let endpoints = WebhookEndpoint::parse_all(&app.settings().webhooks).expect("endpoints");
    let channel = WebhookChannel::new(&endpoints).expect("an HTTP client");
    Dispatcher::new(
        app.db().clone(),
        clock,
        DispatchSettings::from_settings(app.settings()),
    )
    .with_channel(WEBHOOK, Arc::new(channel))
}

/// Longer than any backoff the test settings allow (5 s doubled four times, capped at an hour).
fn past_any_backoff() -> Duration {
    Duration::hours(2)
}

/// The outbox's rows, oldest first.
async fn messages(db: &Db) -> Vec<telehealth::outbox::store::MessageView> {
    let mut c = db.acquire().await.expect("a connection");
    telehealth::outbox::store::list(c.conn(), None)
        .await
        .expect("the outbox")
}

/// The cast with a specialist free every morning, and `n` bookings on the next Tuesday.
async fn book(app: &TestApp, n: usize) -> (Cast, Vec<i64>) {
    let cast = Cast::create(app).await;
    app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
        .await;
    let day = next_weekday(2);
    let slots = app.free_slots(cast.specialist, day, day).await;
    let mut ids = Vec::new();
    for slot in slots.iter().take(n) {
        ids.push(
            app.post("/api/v1/consultations", cast.booking(*slot))
                .await
                .expect(201)
                .id(),
        );
    }
    (cast, ids)
}

both_engines!(
    a_booking_sends_one_signed_webhook_without_clinical_content,
    engine = |engine: Engine| async move {
        let receiver = Receiver::start(&[SECRET_A], StdDuration::ZERO).await;
        let events = ["consultation.booked", "consultation.cancelled"];
        let app = TestApp::spawn_with(engine, hooked(&receiver, &[SECRET_A], &events, true)).await;
        let (cast, ids) = book(&app, 1).await;
        let k = ids[0];
        let first = eventually("the booking's webhook", || {
            let r = receiver.clone();
            async move { r.deliveries().into_iter().next() }
        })
        .await;
        assert_eq!(first.body["type"], "consultation.booked");
        assert_eq!(first.body["data"]["consultation_id"], k);
        assert_eq!(first.body["data"]["clinician_id"], cast.specialist);
        assert_eq!(first.body["data"]["status"], "booked");
        assert_eq!(first.valid, [true], "the signature verifies: {first:?}");
        assert!(first.id.starts_with("msg_"), "{}", first.id);
        assert!((first.timestamp - Utc::now().timestamp()).abs() < 60);
        // No clinical content and nobody's name: ids and times only.
        for absent in ["Đau ngực", "Lò Thị Mai", "0912345678", "patient", "reason"] {
            assert!(!first.raw.contains(absent), "{absent} in {}", first.raw);
        }
        let stored = eventually("the message marked sent", || {
            let db = app.db().clone();
            async move {
                let m = messages(&db).await;
                (m.len() == 1 && m[0].status == "sent").then_some(m)
            }
        })
        .await;
        assert_eq!(stored[0].idempotency_key, first.id);
        assert_eq!(stored[0].attempts, 1);
        assert_eq!(stored[0].consultation_id, Some(k));
        // A reschedule is outside this endpoint's filter; the cancellation is not.
        let day = next_weekday(2);
        let free = app.free_slots(cast.specialist, day, day).await;
        app.post(
            &format!("/api/v1/consultations/{k}/reschedule"),
            json!({"start": free[0].to_rfc3339(), "reason": "bác sĩ bận"}),
        )
        .await
        .expect(200);
        app.post(
            &format!("/api/v1/consultations/{k}/cancel"),
            json!({"reason": "bệnh nhân xin huỷ"}),
        )
        .await
        .expect(200);
        let second = eventually("the cancellation's webhook", || {
            let r = receiver.clone();
            async move { r.deliveries().get(1).cloned() }
        })
        .await;
        assert_eq!(second.body["type"], "consultation.cancelled");
        assert_eq!(second.body["data"]["status"], "cancelled");
        assert!(!second.raw.contains("huỷ"), "{}", second.raw);
        assert_ne!(second.id, first.id);
        let kinds: Vec<String> = messages(app.db())
            .await
            .into_iter()
            .map(|m| m.event_kind)
            .collect();
        assert_eq!(kinds, ["consultation.booked", "consultation.cancelled"]);
        // Exactly one delivery each, however long the dispatcher keeps polling.
        tokio::time::sleep(StdDuration::from_millis(300)).await;
        assert_eq!(receiver.deliveries().len(), 2);
    }
);

both_engines!(
    a_receiver_failing_three_times_gets_the_fourth_attempt_with_the_same_id,
    engine = |engine: Engine| async move {
        let receiver = Receiver::start(&[SECRET_A], StdDuration::ZERO).await;
        let app = TestApp::spawn_with(engine, hooked(&receiver, &[SECRET_A], &[], false)).await;
        book(&app, 1).await;
        receiver.answer(&[500, 503, 429]);
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let d = dispatcher(&app, clock.clone());
        let pass = d.run_once().await.expect("a pass");
        assert_eq!((pass.claimed, pass.retried), (1, 1));
        let m = &messages(app.db()).await[0];
        assert_eq!((m.status.as_str(), m.attempts), ("queued", 1));
        assert_eq!(m.last_error.as_deref(), Some("HTTP 500"));
        assert!(m.due_at >= clock.now() && m.due_at <= clock.now() + Duration::seconds(5));
        // Not due yet again before its backoff: nothing is sent.
        if m.due_at > clock.now() {
            assert_eq!(d.run_once().await.expect("a pass").claimed, 0);
        }
        for _ in 0..3 {
            clock.advance(past_any_backoff());
            d.run_once().await.expect("a pass");
        }
        let got = receiver.deliveries();
        assert_eq!(got.len(), 4);
        assert!(got.iter().all(|g| g.id == got[0].id && g.valid == [true]));
        // Each attempt is signed at its own time: the manual clock's.
        assert_eq!(got[3].timestamp, clock.now().timestamp());
        assert!(got[0].timestamp < got[3].timestamp);
        let m = &messages(app.db()).await[0];
        assert_eq!((m.status.as_str(), m.attempts), ("sent", 4));
        assert_eq!(m.last_error, None);
        assert!(m.sent_at.is_some());
        assert_eq!(m.sent_via.as_deref(), Some(WEBHOOK));
    }
);

both_engines!(
    a_receiver_always_failing_leaves_the_message_dead_after_the_configured_attempts,
    engine = |engine: Engine| async move {
        let receiver = Receiver::start(&[SECRET_A], StdDuration::ZERO).await;
        let app = TestApp::spawn_with(engine, |s: &mut Settings| {
            hooked(&receiver, &[SECRET_A], &[], false)(s);
            s.outbox_max_attempts = 3;
        })
        .await;
        let (cast, _) = book(&app, 1).await;
        receiver.always(502);
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let d = dispatcher(&app, clock.clone());
        for _ in 0..6 {
            d.run_once().await.expect("a pass");
            clock.advance(past_any_backoff());
        }
        assert_eq!(receiver.deliveries().len(), 3);
        let m = &messages(app.db()).await[0];
        assert_eq!((m.status.as_str(), m.attempts), ("dead", 3));
        assert_eq!(m.last_error.as_deref(), Some("HTTP 502"));
        // A refusal retrying cannot fix (410 Gone) is dead at its first attempt.
        receiver.always(410);
        let day = next_weekday(2);
        let free = app.free_slots(cast.specialist, day, day).await;
        app.post("/api/v1/consultations", cast.booking(free[0]))
            .await
            .expect(201);
        let pass = d.run_once().await.expect("a pass");
        assert_eq!((pass.claimed, pass.dead), (1, 1));
        let m = &messages(app.db()).await[1];
        assert_eq!((m.status.as_str(), m.attempts), ("dead", 1));
        assert_eq!(m.last_error.as_deref(), Some("HTTP 410"));
        clock.advance(past_any_backoff());
        assert_eq!(d.run_once().await.expect("a pass").claimed, 0);
        assert_eq!(receiver.deliveries().len(), 4);
    }
);

both_engines!(
    two_dispatchers_on_one_database_never_deliver_a_message_twice,
    engine = |engine: Engine| async move {
        // A slow receiver, so that the two dispatchers' passes overlap.
        let receiver = Receiver::start(&[SECRET_A], StdDuration::from_millis(30)).await;
        let app = TestApp::spawn_with(engine, hooked(&receiver, &[SECRET_A], &[], false)).await;
        let (cast, ids) = book(&app, 8).await;
        for k in &ids[..4] {
            app.post(
                &format!("/api/v1/consultations/{k}/cancel"),
                json!({"reason": "trùng lịch"}),
            )
            .await
            .expect(200);
        }
        let _ = cast;
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let mut settings = DispatchSettings::from_settings(app.settings());
        settings.batch = 3;
        let endpoints = WebhookEndpoint::parse_all(&app.settings().webhooks).expect("endpoints");
        let node = |clock: Arc<ManualClock>| {
            let channel = WebhookChannel::new(&endpoints).expect("an HTTP client");
            Dispatcher::new(app.db().clone(), clock, settings)
                .with_channel(WEBHOOK, Arc::new(channel))
        };
        let (a, b) = (node(clock.clone()), node(clock.clone()));
        assert_ne!(a.owner(), b.owner());
        let (pa, pb) = tokio::join!(a.run_once(), b.run_once());
        let (pa, pb) = (pa.expect("a's pass"), pb.expect("b's pass"));
        assert_eq!(pa.claimed + pb.claimed, 12, "{pa:?} {pb:?}");
        assert_eq!(pa.sent + pb.sent, 12);
        let got = receiver.deliveries();
        let mut per_id: HashMap<&str, usize> = HashMap::new();
        for g in &got {
            *per_id.entry(g.id.as_str()).or_default() += 1;
        }
        assert_eq!(per_id.len(), 12);
        assert!(per_id.values().all(|n| *n == 1), "{per_id:?}");
        let stored = messages(app.db()).await;
        assert!(stored.iter().all(|m| m.status == "sent" && m.attempts == 1));
        // Nothing is left for either.
        let (pa, pb) = tokio::join!(a.run_once(), b.run_once());
        assert_eq!(pa.expect("a").claimed + pb.expect("b").claimed, 0);
    }
);

both_engines!(
    a_crashed_claimers_lease_is_claimed_again_once_it_runs_out,
    engine = |engine: Engine| async move {
        let receiver = Receiver::start(&[SECRET_A], StdDuration::ZERO).await;
        let app = TestApp::spawn_with(engine, hooked(&receiver, &[SECRET_A], &[], false)).await;
        book(&app, 1).await;
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let m = messages(app.db()).await.remove(0);
        // A node claimed it (one attempt counted) and died: its lease runs 30 s more.
        let leased = app
            .set_stored_time(
                "UPDATE outbox_messages SET status = 'sending', lease_owner = 'node-crashed',
                 lease_until = $1, attempts = 1 WHERE id = $2",
                clock.now() + Duration::seconds(30),
                m.id,
            )
            .await;
        assert_eq!(leased, 1);
        let d = dispatcher(&app, clock.clone());
        assert_eq!(
            d.run_once().await.expect("a pass").claimed,
            0,
            "the lease still holds"
        );
        assert!(receiver.deliveries().is_empty());
        clock.advance(Duration::seconds(31));
        let pass = d.run_once().await.expect("a pass");
        assert_eq!((pass.claimed, pass.sent), (1, 1));
        let got = receiver.deliveries();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, m.idempotency_key, "the retry is recognisable");
        let after = &messages(app.db()).await[0];
        assert_eq!((after.status.as_str(), after.attempts), ("sent", 2));
    }
);

/// Makes a write's audit staging fail, but only once the write's outbox message is in the
/// outbox (so the failure comes after the message was written, in the same transaction): the
/// transaction must roll both back. Were the message not written first, the booking would pass.
const BREAK_AUDIT_SQLITE: &str = "CREATE TRIGGER break_audit BEFORE INSERT ON audit_pending
    WHEN EXISTS (SELECT 1 FROM outbox_messages)
    BEGIN SELECT RAISE(ABORT, 'forced failure'); END;";
const BREAK_AUDIT_POSTGRES: &str = "CREATE FUNCTION break_audit() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN
        IF EXISTS (SELECT 1 FROM outbox_messages) THEN RAISE EXCEPTION 'forced failure'; END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER break_audit BEFORE INSERT ON audit_pending
    FOR EACH ROW EXECUTE FUNCTION break_audit();";
const MEND_AUDIT_SQLITE: &str = "DROP TRIGGER break_audit;";
const MEND_AUDIT_POSTGRES: &str = "DROP TRIGGER break_audit ON audit_pending;";

both_engines!(
    a_rolled_back_booking_writes_nothing_to_the_outbox,
    engine = |engine: Engine| async move {
        let receiver = Receiver::start(&[SECRET_A], StdDuration::ZERO).await;
        let app = TestApp::spawn_with(engine, hooked(&receiver, &[SECRET_A], &[], false)).await;
        let (cast, _) = book(&app, 0).await;
        let day = next_weekday(2);
        let free = app.free_slots(cast.specialist, day, day).await;
        let (broken, mended) = match engine {
            Engine::Sqlite => (BREAK_AUDIT_SQLITE, MEND_AUDIT_SQLITE),
            Engine::Postgres => (BREAK_AUDIT_POSTGRES, MEND_AUDIT_POSTGRES),
        };
        app.exec(broken).await;
        // A fault of the database's own making: the server answers 500 and keeps nothing.
        let token = app.token.clone().expect("root signed in");
        let refused = app
            .send_any(
                app.http
                    .post(app.url("/api/v1/consultations"))
                    .bearer_auth(token)
                    .json(&cast.booking(free[0])),
            )
            .await;
        assert_ne!(refused.status, 201, "{}", refused.text);
        assert!(refused.status >= 500, "{}", refused.text);
        app.exec(mended).await;
        assert_eq!(app.count("consultations").await, 0);
        assert!(
            messages(app.db()).await.is_empty(),
            "the rolled-back booking left a message"
        );
        // The same booking once the fault is gone: one message, committed with it.
        let k = app
            .post("/api/v1/consultations", cast.booking(free[0]))
            .await
            .expect(201)
            .id();
        let stored = messages(app.db()).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].consultation_id, Some(k));
        assert_eq!(stored[0].status, "queued");
    }
);

both_engines!(
    a_rotated_secret_gives_two_signatures_both_valid,
    engine = |engine: Engine| async move {
        let receiver = Receiver::start(&[SECRET_A, SECRET_B], StdDuration::ZERO).await;
        let app =
            TestApp::spawn_with(engine, hooked(&receiver, &[SECRET_A, SECRET_B], &[], false)).await;
        book(&app, 1).await;
        let clock = Arc::new(ManualClock::new(Utc::now()));
        dispatcher(&app, clock.clone())
            .run_once()
            .await
            .expect("a pass");
        let got = receiver.deliveries();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].signatures, 2);
        assert_eq!(got[0].valid, [true, true], "{:?}", got[0]);
        assert_eq!(got[0].timestamp, clock.now().timestamp());
        // A receiver that knows only the new secret accepts it too; one with another does not.
        let body = got[0].raw.as_bytes();
        let ts = got[0].timestamp.to_string();
        let other = "whsec_b3RoZXItc2VjcmV0LW5vdC1jb25maWd1cmVk";
        assert_ne!(
            signature(other, &got[0].id, &ts, body),
            signature(SECRET_B, &got[0].id, &ts, body)
        );
    }
);

both_engines!(
    a_hold_notifies_nobody_until_it_is_confirmed,
    engine = |engine: Engine| async move {
        let receiver = Receiver::start(&[SECRET_A], StdDuration::ZERO).await;
        let app = TestApp::spawn_with(engine, hooked(&receiver, &[SECRET_A], &[], false)).await;
        let (cast, _) = book(&app, 0).await;
        let day = next_weekday(2);
        let free = app.free_slots(cast.specialist, day, day).await;
        let mut body = cast.booking(free[0]);
        body["hold"] = json!(true);
        let k = app
            .post("/api/v1/consultations", body)
            .await
            .expect(201)
            .id();
        assert!(
            messages(app.db()).await.is_empty(),
            "a hold is not a booking"
        );
        app.post(&format!("/api/v1/consultations/{k}/confirm"), json!({}))
            .await
            .expect(200);
        let stored = messages(app.db()).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].event_kind, "consultation.booked");
        assert_eq!(stored[0].consultation_id, Some(k));
        let clock = Arc::new(ManualClock::new(Utc::now()));
        dispatcher(&app, clock).run_once().await.expect("a pass");
        let got = receiver.deliveries();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body["data"]["status"], "booked");
    }
);

both_engines!(
    a_signed_note_sends_note_signed_without_its_content,
    engine = |engine: Engine| async move {
        let receiver = Receiver::start(&[SECRET_A], StdDuration::ZERO).await;
        let events = ["note.signed"];
        let app = TestApp::spawn_with(engine, hooked(&receiver, &[SECRET_A], &events, false)).await;
        let n = telehealth_tests::NoteCast::create(&app).await;
        assert!(
            messages(app.db()).await.is_empty(),
            "bookings are outside the filter"
        );
        let path = format!("/api/v1/consultations/{}/note", n.k);
        n.spec
            .put(
                &path,
                json!({"version": 0, "content": {"assessment": "hẹp van hai lá",
                "plan": "siêu âm tim", "advice": "nghỉ ngơi", "follow_up": "teleconsultation"}}),
            )
            .await
            .expect(200);
        assert!(messages(app.db()).await.is_empty(), "a draft is not signed");
        n.spec
            .post(&format!("{path}/sign"), json!({"version": 1}))
            .await
            .expect(200);
        let clock = Arc::new(ManualClock::new(Utc::now()));
        dispatcher(&app, clock).run_once().await.expect("a pass");
        let got = receiver.deliveries();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body["type"], "note.signed");
        assert_eq!(got[0].body["data"]["consultation_id"], n.k);
        assert_eq!(got[0].valid, [true]);
        for absent in ["hẹp van", "siêu âm", "nghỉ ngơi", "Lò Thị Mai", "Đau ngực"] {
            assert!(!got[0].raw.contains(absent), "{absent} in {}", got[0].raw);
        }
    }
);

/// A deployment whose webhook configuration cannot work is refused at start, with the reason,
/// before it serves anything (configuration only: no engine difference to test).
#[tokio::test]
async fn a_bad_webhook_configuration_refuses_to_start() {
    let dir = tempfile::tempdir().expect("a data folder");
    let base = Settings {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir: dir.path().to_path_buf(),
        ..Settings::default()
    };
    let hook = WebhookSettings {
        name: "his".into(),
        url: Secret::new("https://his.example.vn/hook"),
        secrets: vec![Secret::new("not-a-whsec-secret")],
        events: vec![],
    };
    let bad_secret = Settings {
        webhooks: vec![hook.clone()],
        ..base.clone()
    };
    let err = telehealth::startup::Application::build(&bad_secret)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("whsec_"), "{err}");
    let short_lease = Settings {
        webhooks: vec![WebhookSettings {
            secrets: vec![Secret::new(SECRET_A)],
            ..hook
        }],
        outbox_lease_seconds: 5,
        ..base
    };
    let err = telehealth::startup::Application::build(&short_lease)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("outbox_lease_seconds"), "{err}");
}
