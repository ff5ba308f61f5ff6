//! Messages to patients (issue 14): a booking tells a consenting patient by the channel they
//! chose, in their language and their local time, with a visit link that opens the visit and no
//! clinical content; reminders 24 h and 1 h before and "join now" go when a manual clock reaches
//! them; a move or a cancellation voids the reminders in its own transaction; Zalo falls back to
//! SMS when it refuses; email carries an iCalendar invitation; quiet hours hold a message; a
//! gateway down for hours leaves a dead letter that an administrator resends. Every receiver is
//! real: an HTTP server on loopback for the SMS gateway and Zalo, aiosmtpd for email.

use std::sync::Arc;

use chrono::{DateTime, Duration, Timelike, Utc};
use serde_json::{Value, json};
use telehealth::config::{EmailSettings, Secret, Settings, SmsSettings, ZaloSettings};
use telehealth::outbox::{Clock, Dispatcher, ManualClock};
use telehealth::storage::Db;
use telehealth_tests::receivers::{HttpReceiver, SmtpReceiver};
use telehealth_tests::{Cast, Engine, People, TestApp, both_engines, eventually, next_weekday};

const PUBLIC_URL: &str = "https://th.example.vn";

fn sms_ok() -> (u16, Value) {
    (200, json!({"CodeResult": "100", "SMSID": "sms-1"}))
}

fn zalo_ok() -> (u16, Value) {
    (
        200,
        json!({"error": 0, "message": "Success", "data": {"msg_id": "z-1"}}),
    )
}

fn sms_settings(r: &HttpReceiver) -> SmsSettings {
    SmsSettings {
        url: Secret::new(r.url("/sms")),
        api_key: Secret::new("api-key-1"),
        secret_key: Secret::new("secret-key-1"),
        brandname: "TELEHEALTH".into(),
        unicode: false,
    }
}

/// A server with these patient channels, whose own dispatcher is off: the test drives one with
/// a manual clock.
fn channels(
    sms: Option<&HttpReceiver>,
    zalo: Option<&HttpReceiver>,
    smtp: Option<&SmtpReceiver>,
) -> impl FnOnce(&mut Settings) {
    let sms = sms.map(sms_settings);
    let zalo = zalo.map(|z| ZaloSettings {
        url: Secret::new(z.url("/zns")),
        access_token: Secret::new("zalo-token-1"),
        templates: [
            ("consultation.booked", "301"),
            ("consultation.reminder", "302"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    });
    let email = smtp.map(|s| EmailSettings {
        smtp_url: Secret::new(s.url()),
        from: "Telehealth <no-reply@th.example.vn>".into(),
    });
    move |s: &mut Settings| {
        s.sms = sms;
        s.zalo = zalo;
        s.email = email;
        s.public_url = Some(PUBLIC_URL.into());
        s.outbox_dispatcher = false;
        s.outbox_max_attempts = 4;
    }
}

/// The node's own outbox wiring, with time from `clock`.
fn dispatcher(app: &TestApp, clock: Arc<ManualClock>) -> Dispatcher {
    let key = Arc::new(telehealth::startup::visit_link_key(app.settings()).expect("the link key"));
    let (_, d) = telehealth::outbox::setup::with_clock(app.settings(), app.db(), &key, clock)
        .expect("the outbox from the settings");
    d.expect("a dispatcher for the patient channels")
}

async fn messages(db: &Db) -> Vec<telehealth::outbox::store::MessageView> {
    let mut c = db.acquire().await.expect("a connection");
    telehealth::outbox::store::list(c.conn(), None)
        .await
        .expect("the outbox")
}

/// Records the cast patient's answer as the administrator-scheduler of the test app.
async fn consent(app: &TestApp, cast: &Cast, body: Value) {
    app.put(
        &format!("/api/v1/patients/{}/contact-preferences", cast.patient),
        body,
    )
    .await
    .expect(200);
}

/// The cast, a specialist free every morning, and a booking of next Tuesday's 09:00 (local).
async fn booked(app: &TestApp, cast: &Cast) -> (i64, DateTime<Utc>) {
    app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
        .await;
    let day = next_weekday(2);
    let slots = app.free_slots(cast.specialist, day, day).await;
    let nine = *slots
        .iter()
        .find(|s| (s.hour() + 7) % 24 == 9 && s.minute() == 0)
        .expect("a 09:00 slot");
    let id = app
        .post("/api/v1/consultations", cast.booking(nine))
        .await
        .expect(201)
        .id();
    (id, nine)
}

/// The token of a visit link in `text`.
fn token_in(text: &str) -> String {
    let at = text
        .find(&format!("{PUBLIC_URL}/visit#"))
        .unwrap_or_else(|| panic!("a visit link in {text:?}"));
    text[at + PUBLIC_URL.len() + "/visit#".len()..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_owned()
}

/// Clinical content and the patient's identity, none of which a message may hold.
const NEVER: [&str; 5] = ["Đau ngực", "Dau nguc", "cardiology", "Lò Thị Mai", "HUB-1"];

both_engines!(
    a_booking_texts_the_patient_and_reminds_them_at_24_hours_1_hour_and_when_the_room_opens,
    engine = |engine: Engine| async move {
        let sms = HttpReceiver::start(sms_ok()).await;
        let app = TestApp::spawn_with(engine, channels(Some(&sms), None, None)).await;
        let cast = Cast::create(&app).await;
        consent(
            &app,
            &cast,
            json!({"consent": true, "channel": "sms", "language": "vi"}),
        )
        .await;
        let (id, start) = booked(&app, &cast).await;
        let kinds: Vec<(String, DateTime<Utc>)> = messages(app.db())
            .await
            .into_iter()
            .map(|m| (m.event_kind, m.due_at))
            .collect();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        assert_eq!(kinds[0].0, "consultation.booked");
        assert_eq!(
            kinds[1..],
            [
                (
                    "consultation.reminder".to_owned(),
                    start - Duration::hours(24)
                ),
                (
                    "consultation.reminder".to_owned(),
                    start - Duration::hours(1)
                ),
                (
                    "consultation.join_now".to_owned(),
                    start - Duration::minutes(15)
                ),
            ]
        );
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let d = dispatcher(&app, clock.clone());
        let pass = d.run_once().await.expect("a pass");
        assert_eq!(
            (pass.claimed, pass.sent),
            (1, 1),
            "only the confirmation is due"
        );
        let got = sms.requests();
        assert_eq!(got.len(), 1);
        let first = &got[0];
        assert_eq!(first.path, "/sms");
        assert_eq!(first.body["Phone"], "84912345678");
        assert_eq!(first.body["Brandname"], "TELEHEALTH");
        assert_eq!(first.body["ApiKey"], "api-key-1");
        assert_eq!(first.body["IsUnicode"], "0");
        let text = first.body["Content"].as_str().expect("a text").to_owned();
        // In Vietnamese without diacritics, the visit's local time and weekday, and a link.
        assert!(
            text.starts_with("Lich kham tu xa cua ban: 09:00 Thu Ba "),
            "{text}"
        );
        assert!(text.is_ascii(), "{text}");
        for never in NEVER {
            assert!(!text.contains(never), "{never} in {text}");
        }
        let stored = messages(app.db()).await;
        assert_eq!(first.body["RequestId"], stored[0].idempotency_key.as_str());
        assert_eq!(stored[0].status, "sent");
        assert_eq!(stored[0].sent_via.as_deref(), Some("sms"));
        // The link opens this visit: it asks the new device for the patient's date of birth.
        let token = token_in(&text);
        let opened = app
            .anonymous()
            .post("/api/v1/auth/visit", json!({"token": token}))
            .await;
        assert_eq!(
            opened.body["error"]["code"], "date_of_birth_required",
            "{:?}",
            opened.body
        );
        // Nothing more until the clock reaches each reminder.
        clock.advance(Duration::hours(1));
        assert_eq!(d.run_once().await.expect("a pass").claimed, 0);
        for (at, expect) in [
            (
                start - Duration::hours(24),
                "Nhac lich: kham tu xa luc 09:00 Thu Ba ",
            ),
            (
                start - Duration::hours(1),
                "Nhac lich: kham tu xa luc 09:00 Thu Ba ",
            ),
            (
                start - Duration::minutes(15),
                "Phong kham tu xa luc 09:00 Thu Ba ",
            ),
        ] {
            let before = sms.requests().len();
            let wait = at - clock.now();
            clock.advance(wait - Duration::seconds(1));
            assert_eq!(
                d.run_once().await.expect("a pass").claimed,
                0,
                "early at {at}"
            );
            clock.advance(Duration::seconds(1));
            assert_eq!(d.run_once().await.expect("a pass").sent, 1, "due at {at}");
            let got = sms.requests();
            assert_eq!(got.len(), before + 1);
            let text = got[before].body["Content"]
                .as_str()
                .expect("a text")
                .to_owned();
            assert!(text.starts_with(expect), "{text}");
            assert!(text.contains(&format!("{PUBLIC_URL}/visit#")), "{text}");
        }
        assert!(
            messages(app.db()).await.iter().all(|m| m.status == "sent"),
            "every message of consultation {id} is sent"
        );
        // Each send was recorded: who read the contact details, for which consultation.
        let record = id.to_string();
        eventually("four notifier events in the audit trail", || {
            let (app, record) = (&app, &record);
            async move {
                let trail = app
                    .get("/api/v1/audit?actor=notifier&limit=100")
                    .await
                    .expect(200);
                let of_this = trail
                    .body
                    .as_array()
                    .expect("events")
                    .iter()
                    .filter(|e| e["record_id"] == record.as_str())
                    .count();
                (of_this == 4).then_some(())
            }
        })
        .await;
    }
);

both_engines!(
    a_move_voids_the_old_reminders_in_its_transaction_and_a_cancellation_says_so_in_english,
    engine = |engine: Engine| async move {
        let sms = HttpReceiver::start(sms_ok()).await;
        let app = TestApp::spawn_with(engine, channels(Some(&sms), None, None)).await;
        let cast = Cast::create(&app).await;
        consent(
            &app,
            &cast,
            json!({"consent": true, "channel": "sms", "language": "en"}),
        )
        .await;
        let (id, start) = booked(&app, &cast).await;
        let later = start + Duration::hours(1);
        app.post(
            &format!("/api/v1/consultations/{id}/reschedule"),
            json!({"start": later.to_rfc3339(), "reason": "bác sĩ bận"}),
        )
        .await
        .expect(200);
        let m = messages(app.db()).await;
        let by = |kind: &str, status: &str| {
            m.iter()
                .filter(|x| x.event_kind == kind && x.status == status)
                .count()
        };
        assert_eq!(by("consultation.reminder", "cancelled"), 2, "{m:?}");
        assert_eq!(by("consultation.join_now", "cancelled"), 1);
        assert_eq!(by("consultation.reminder", "queued"), 2);
        assert_eq!(by("consultation.rescheduled", "queued"), 1);
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let d = dispatcher(&app, clock.clone());
        let pass = d.run_once().await.expect("a pass");
        // The confirmation of 09:00 no longer stands: cancelled, not sent; the move is sent.
        assert_eq!((pass.sent, pass.cancelled), (1, 1), "{pass:?}");
        let got = sms.requests();
        assert_eq!(got.len(), 1);
        let text = got[0].body["Content"].as_str().expect("a text");
        assert!(
            text.starts_with("Your telehealth visit has moved to 10:00 Tuesday "),
            "{text}"
        );
        app.post(
            &format!("/api/v1/consultations/{id}/cancel"),
            json!({"reason": "bệnh nhân xin huỷ"}),
        )
        .await
        .expect(200);
        clock.advance(Duration::seconds(2));
        assert_eq!(d.run_once().await.expect("a pass").sent, 1);
        let got = sms.requests();
        let text = got[1].body["Content"].as_str().expect("a text");
        assert!(
            text.starts_with("Your telehealth visit at 10:00 Tuesday ")
                && text.ends_with("was cancelled. Your clinic will contact you to rebook."),
            "{text}"
        );
        assert!(!text.contains("visit#") && !text.contains("huỷ"), "{text}");
        // Nothing else is ever sent: every reminder is void.
        clock.advance(Duration::days(30));
        d.run_once().await.expect("a pass");
        assert_eq!(sms.requests().len(), 2);
        assert!(
            messages(app.db())
                .await
                .iter()
                .all(|m| m.status == "sent" || m.status == "cancelled")
        );
    }
);

both_engines!(
    zalo_refusing_a_number_sends_the_same_message_by_sms,
    engine = |engine: Engine| async move {
        let sms = HttpReceiver::start(sms_ok()).await;
        let zalo = HttpReceiver::start(zalo_ok()).await;
        let app = TestApp::spawn_with(engine, channels(Some(&sms), Some(&zalo), None)).await;
        let cast = Cast::create(&app).await;
        consent(
            &app,
            &cast,
            json!({"consent": true, "channel": "zalo", "language": "vi"}),
        )
        .await;
        let (_, start) = booked(&app, &cast).await;
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let d = dispatcher(&app, clock.clone());
        assert_eq!(d.run_once().await.expect("a pass").sent, 1);
        let z = zalo.requests();
        assert_eq!(z.len(), 1);
        assert_eq!(z[0].header("access_token"), Some("zalo-token-1"));
        assert_eq!(z[0].body["phone"], "84912345678");
        assert_eq!(z[0].body["template_id"], "301");
        assert!(
            z[0].body["template_data"]["time"]
                .as_str()
                .is_some_and(|t| t.starts_with("09:00 Thứ Ba ")),
            "{:?}",
            z[0].body
        );
        assert!(
            z[0].body["template_data"]["link"]
                .as_str()
                .is_some_and(|l| l.starts_with(&format!("{PUBLIC_URL}/visit#")))
        );
        let m = messages(app.db()).await;
        assert_eq!(z[0].body["tracking_id"], m[0].idempotency_key.as_str());
        assert_eq!(m[0].sent_via.as_deref(), Some("zalo"));
        assert!(sms.requests().is_empty());
        // The number has no Zalo account: the 24-hour reminder goes by SMS, with the same key.
        zalo.always((
            200,
            json!({"error": -118, "message": "Zalo account not existed"}),
        ));
        clock.advance(start - Duration::hours(24) - clock.now());
        assert_eq!(d.run_once().await.expect("a pass").sent, 1);
        let s = sms.requests();
        assert_eq!(s.len(), 1);
        let m = messages(app.db()).await;
        assert_eq!(s[0].body["RequestId"], m[1].idempotency_key.as_str());
        assert_eq!(
            zalo.requests()[1].body["tracking_id"],
            m[1].idempotency_key.as_str()
        );
        assert_eq!(m[1].sent_via.as_deref(), Some("sms"));
        // "Join now" has no template: straight to SMS, Zalo not asked.
        clock.advance(start - Duration::minutes(15) - clock.now());
        let asked = zalo.requests().len();
        d.run_once().await.expect("a pass");
        let m = messages(app.db()).await;
        assert_eq!(m[2].sent_via.as_deref(), Some("sms"), "{m:?}");
        assert_eq!(
            zalo.requests().len(),
            asked + 1,
            "the 1-hour reminder asked Zalo"
        );
    }
);

both_engines!(
    email_carries_an_invitation_that_a_move_updates_and_a_cancellation_withdraws,
    engine = |engine: Engine| async move {
        let smtp = SmtpReceiver::start().await;
        let app = TestApp::spawn_with(engine, channels(None, None, Some(&smtp))).await;
        let cast = Cast::create(&app).await;
        consent(
            &app,
            &cast,
            json!({"consent": true, "channel": "email", "language": "en",
                   "email": "mai.lo@example.vn"}),
        )
        .await;
        let (id, start) = booked(&app, &cast).await;
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let d = dispatcher(&app, clock.clone());
        assert_eq!(d.run_once().await.expect("a pass").sent, 1);
        let mails = smtp.mails();
        assert_eq!(mails.len(), 1);
        let mail = &mails[0];
        assert_eq!(mail.rcpt_tos, ["mai.lo@example.vn"]);
        assert_eq!(mail.mail_from, "no-reply@th.example.vn");
        assert_eq!(mail.subject, "Your telehealth visit is booked");
        let key = messages(app.db()).await[0].idempotency_key.clone();
        assert_eq!(mail.message_id, format!("<{key}@th.example.vn>"));
        let text = mail.text.as_deref().expect("a text part");
        assert!(
            text.starts_with("Your telehealth visit is booked for 09:00 Tuesday "),
            "{text}"
        );
        for never in NEVER {
            assert!(!text.contains(never), "{never} in {text}");
        }
        let ics = &mail.attachments[0];
        assert_eq!(ics.filename, "visit.ics");
        assert_eq!(ics.content_type, "text/calendar");
        let uid = format!("UID:consultation-{id}@th.example.vn");
        let dtstart = format!("DTSTART:{}", start.format("%Y%m%dT%H%M%SZ"));
        assert!(ics.content.contains("METHOD:REQUEST"), "{}", ics.content);
        assert!(ics.content.contains(&uid) && ics.content.contains(&dtstart));
        let sequence = |ics: &str| -> u32 {
            ics.lines()
                .find_map(|l| l.strip_prefix("SEQUENCE:"))
                .and_then(|s| s.trim().parse().ok())
                .expect("a SEQUENCE")
        };
        let first_sequence = sequence(&ics.content);
        let later = start + Duration::hours(1);
        app.post(
            &format!("/api/v1/consultations/{id}/reschedule"),
            json!({"start": later.to_rfc3339(), "reason": "bác sĩ bận"}),
        )
        .await
        .expect(200);
        // The server stamped the move with its own clock, which has gone on since the test's.
        clock.advance(Duration::seconds(2));
        assert_eq!(d.run_once().await.expect("a pass").sent, 1);
        let moved = &smtp.mails()[1];
        assert_eq!(moved.subject, "Your telehealth visit has moved");
        let ics = &moved.attachments[0].content;
        assert!(ics.contains(&uid), "the same calendar entry: {ics}");
        assert!(ics.contains(&format!("DTSTART:{}", later.format("%Y%m%dT%H%M%SZ"))));
        assert!(sequence(ics) > first_sequence, "{ics}");
        app.post(
            &format!("/api/v1/consultations/{id}/cancel"),
            json!({"reason": "bệnh nhân xin huỷ"}),
        )
        .await
        .expect(200);
        clock.advance(Duration::seconds(2));
        assert_eq!(d.run_once().await.expect("a pass").sent, 1);
        let cancelled = &smtp.mails()[2];
        let ics = &cancelled.attachments[0].content;
        assert!(
            ics.contains("METHOD:CANCEL") && ics.contains("STATUS:CANCELLED"),
            "{ics}"
        );
        assert!(ics.contains(&uid));
    }
);

both_engines!(
    nothing_goes_to_a_patient_without_consent_and_withdrawing_it_voids_what_is_queued,
    engine = |engine: Engine| async move {
        let sms = HttpReceiver::start(sms_ok()).await;
        let app = TestApp::spawn_with(engine, channels(Some(&sms), None, None)).await;
        let cast = Cast::create(&app).await;
        // Never asked: nothing is even queued.
        let (first, _) = booked(&app, &cast).await;
        assert!(messages(app.db()).await.is_empty());
        app.post(
            &format!("/api/v1/consultations/{first}/cancel"),
            json!({"reason": "trùng lịch"}),
        )
        .await
        .expect(200);
        // Asked, and said yes: queued; then withdrawn before the dispatcher ran.
        consent(
            &app,
            &cast,
            json!({"consent": true, "channel": "sms", "language": "vi"}),
        )
        .await;
        let day = next_weekday(2);
        let slot = app.free_slots(cast.specialist, day, day).await[0];
        app.post("/api/v1/consultations", cast.booking(slot))
            .await
            .expect(201);
        assert_eq!(messages(app.db()).await.len(), 4);
        consent(
            &app,
            &cast,
            json!({"consent": false, "channel": "sms", "language": "vi"}),
        )
        .await;
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let d = dispatcher(&app, clock.clone());
        clock.advance(Duration::days(30));
        let pass = d.run_once().await.expect("a pass");
        assert_eq!((pass.sent, pass.cancelled), (0, 4), "{pass:?}");
        assert!(sms.requests().is_empty());
        let m = messages(app.db()).await;
        assert!(
            m.iter().all(|m| m.status == "cancelled"
                && m.last_error.as_deref() == Some("the patient withdrew consent")),
            "{m:?}"
        );
    }
);

both_engines!(
    quiet_hours_hold_the_confirmation_until_they_end,
    engine = |engine: Engine| async move {
        let sms = HttpReceiver::start(sms_ok()).await;
        let app = TestApp::spawn_with(engine, channels(Some(&sms), None, None)).await;
        let cast = Cast::create(&app).await;
        // Quiet from an hour ago until two hours from now, local time: the booking falls inside.
        let local = Utc::now() + Duration::hours(7);
        let hhmm = |t: DateTime<Utc>| format!("{:02}:{:02}", t.hour(), t.minute());
        let until = local + Duration::hours(2);
        consent(
            &app,
            &cast,
            json!({"consent": true, "channel": "sms", "language": "vi",
                   "quiet_hours": {"from": hhmm(local - Duration::hours(1)), "until": hhmm(until)}}),
        )
        .await;
        let shown = app
            .get(&format!(
                "/api/v1/patients/{}/contact-preferences",
                cast.patient
            ))
            .await
            .expect(200);
        assert_eq!(shown.body["quiet_hours"]["until"], hhmm(until));
        assert_eq!(shown.body["asked"], true);
        booked(&app, &cast).await;
        let end = until - Duration::hours(7);
        let end = end
            .with_second(0)
            .and_then(|t| t.with_nanosecond(0))
            .expect("a minute");
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let d = dispatcher(&app, clock.clone());
        // Claimed, found in the quiet hours, put off until they end without an attempt counted.
        let pass = d.run_once().await.expect("a pass");
        assert_eq!((pass.sent, pass.deferred), (0, 1), "{pass:?}");
        assert!(sms.requests().is_empty());
        let m = messages(app.db()).await;
        assert_eq!(m[0].event_kind, "consultation.booked");
        assert_eq!((m[0].status.as_str(), m[0].attempts), ("queued", 0));
        assert_eq!(m[0].due_at, end, "held until the quiet hours end");
        assert_eq!(d.run_once().await.expect("a pass").claimed, 0);
        clock.advance(end - clock.now());
        assert_eq!(d.run_once().await.expect("a pass").sent, 1);
        assert_eq!(sms.requests().len(), 1);
    }
);

both_engines!(
    a_gateway_down_for_hours_leaves_a_dead_letter_that_an_administrator_resends,
    engine = |engine: Engine| async move {
        let sms = HttpReceiver::start((503, json!({"message": "maintenance"}))).await;
        let app = TestApp::spawn_with(engine, channels(Some(&sms), None, None)).await;
        let cast = Cast::create(&app).await;
        consent(
            &app,
            &cast,
            json!({"consent": true, "channel": "sms", "language": "vi"}),
        )
        .await;
        let (id, _) = booked(&app, &cast).await;
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let d = dispatcher(&app, clock.clone());
        for _ in 0..4 {
            d.run_once().await.expect("a pass");
            clock.advance(Duration::hours(2));
        }
        let first = messages(app.db()).await.remove(0);
        assert_eq!((first.status.as_str(), first.attempts), ("dead", 4));
        assert_eq!(first.last_error.as_deref(), Some("HTTP 503"));
        // The delivery log shows it to the hub's scheduler; the patient may not see it.
        let people = People::sign_in(&app, &cast).await;
        let log = people
            .scheduler
            .get(&format!("/api/v1/consultations/{id}/messages"))
            .await
            .expect(200);
        let entry = &log.body[0];
        assert_eq!(entry["status"], "dead");
        assert_eq!(entry["kind"], "consultation.booked");
        assert_eq!(entry["to"], "sms");
        assert!(entry.get("payload").is_none() && entry.get("idempotency_key").is_none());
        people
            .patient
            .get(&format!("/api/v1/consultations/{id}/messages"))
            .await
            .expect(403);
        // The administrator's list of dead letters has it; the scheduler may not list them.
        let dead = app.get("/api/v1/outbox/dead").await.expect(200);
        assert_eq!(dead.body[0]["id"], first.id);
        people
            .scheduler
            .get("/api/v1/outbox/dead")
            .await
            .expect(403);
        // The gateway is back; the scheduler resends it: the same message, the same RequestId.
        sms.always(sms_ok());
        let resent = people
            .scheduler
            .post(
                &format!("/api/v1/outbox/messages/{}/resend", first.id),
                json!({}),
            )
            .await
            .expect(200);
        assert_eq!(resent.body["requeued"], true);
        assert_eq!(d.run_once().await.expect("a pass").sent, 1);
        let got = sms.requests();
        assert_eq!(got.len(), 5);
        assert!(
            got.iter()
                .all(|r| r.body["RequestId"] == first.idempotency_key.as_str())
        );
        // Resending what was sent is a second message, with a key of its own.
        let again = app
            .post(
                &format!("/api/v1/outbox/messages/{}/resend", first.id),
                json!({}),
            )
            .await
            .expect(200);
        assert_eq!(again.body["requeued"], false);
        d.run_once().await.expect("a pass");
        let got = sms.requests();
        assert_eq!(got.len(), 6);
        assert_ne!(got[5].body["RequestId"], first.idempotency_key.as_str());
        // The second resend of a queued message is refused while it is pending.
        let third = app
            .post(
                &format!("/api/v1/outbox/messages/{}/resend", first.id),
                json!({}),
            )
            .await
            .expect(200);
        let pending = app
            .post(
                &format!(
                    "/api/v1/outbox/messages/{}/resend",
                    third.body["id"].as_i64().expect("an id")
                ),
                json!({}),
            )
            .await
            .expect(409);
        assert_eq!(pending.body["error"]["code"], "message_pending");
    }
);

both_engines!(
    who_may_record_a_patients_contact_preferences,
    engine = |engine: Engine| async move {
        let sms = HttpReceiver::start(sms_ok()).await;
        let app = TestApp::spawn_with(engine, channels(Some(&sms), None, None)).await;
        let cast = Cast::create(&app).await;
        let people = People::sign_in(&app, &cast).await;
        let path = format!("/api/v1/patients/{}/contact-preferences", cast.patient);
        let body = json!({"consent": true, "channel": "sms", "language": "vi"});
        // The patient, and their care centre's clinician, may; so may the test's network
        // scheduler (it books by telephone).
        people.patient.put(&path, body.clone()).await.expect(200);
        people.rural.put(&path, body.clone()).await.expect(200);
        app.put(&path, body.clone()).await.expect(200);
        // The consulted specialist, once the patient is booked with them, sees the record but
        // may not change how the patient is contacted.
        booked(&app, &cast).await;
        people.specialist.get(&path).await.expect(200);
        people.specialist.put(&path, body.clone()).await.expect(403);
        // A clinician with no relationship does not learn the patient exists.
        let other = app
            .create_facility("CC-2", "care_centre", "Asia/Ho_Chi_Minh")
            .await;
        let stranger_id = app.create_clinician(other, &["general_practice"]).await;
        let stranger = app
            .as_new_user("nguoila", &[("clinician", None)], None, Some(stranger_id))
            .await;
        stranger.get(&path).await.expect(404);
        stranger.put(&path, body.clone()).await.expect(404);
        // Bad answers are refused field by field, and nothing is written.
        let bad = people
            .rural
            .put(
                &path,
                json!({"consent": true, "channel": "email", "language": "fr",
                       "quiet_hours": {"from": "25:00", "until": "07:00"}}),
            )
            .await
            .expect(422);
        let fields: Vec<&str> = bad.body["error"]["details"]["fields"]
            .as_array()
            .map(|f| f.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            fields,
            ["language", "email", "quiet_hours"],
            "{:?}",
            bad.body
        );
        let shown = app.get(&path).await.expect(200);
        assert_eq!(shown.body["channel"], "sms");
    }
);

both_engines!(
    the_referring_clinician_hears_of_a_move_a_cancellation_and_the_signed_note_but_not_of_their_own_changes,
    engine = |engine: Engine| async move {
        let sms = HttpReceiver::start(sms_ok()).await;
        let app = TestApp::spawn_with(engine, channels(Some(&sms), None, None)).await;
        let n = telehealth_tests::NoteCast::create(&app).await;
        // A clinician sets their own channel; a bad number is refused beside the field.
        let bad = n
            .rural
            .put(
                "/api/v1/me/contact-preferences",
                json!({"channel": "sms", "language": "vi", "phone": "12345"}),
            )
            .await
            .expect(422);
        assert_eq!(bad.body["error"]["details"]["fields"][0]["field"], "phone");
        n.rural
            .put(
                "/api/v1/me/contact-preferences",
                json!({"channel": "sms", "language": "vi", "phone": "0987 654 321"}),
            )
            .await
            .expect(200);
        let shown = n.rural.get("/api/v1/me/contact-preferences").await.expect(200);
        assert_eq!(shown.body["phone"], "84987654321");
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let d = dispatcher(&app, clock.clone());
        // The hub's scheduler (the test's network scheduler) moves the visit: the rural clinician
        // who referred it is told, with a link to it and nothing about the patient.
        let start: DateTime<Utc> = app
            .get(&format!("/api/v1/consultations/{}", n.k))
            .await
            .expect(200)
            .body["start_at"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("a start");
        let later = start + Duration::hours(1);
        app.post(
            &format!("/api/v1/consultations/{}/reschedule", n.k),
            json!({"start": later.to_rfc3339(), "reason": "bác sĩ bận"}),
        )
        .await
        .expect(200);
        clock.advance(Duration::seconds(2));
        assert_eq!(d.run_once().await.expect("a pass").sent, 1);
        let got = sms.requests();
        assert_eq!(got[0].body["Phone"], "84987654321");
        let text = got[0].body["Content"].as_str().expect("a text");
        assert_eq!(
            text,
            format!(
                "Buoi hoi chan tu xa ban da dat da doi sang 09:00 Thu Ba {}. Xem: {PUBLIC_URL}/consultations/{}",
                (later + Duration::hours(7)).format("%d/%m/%Y"),
                n.k
            )
        );
        // The specialist signs the note: the referrer hears the advice is there.
        let path = format!("/api/v1/consultations/{}/note", n.k);
        n.spec
            .put(
                &path,
                json!({"version": 0, "content": {"assessment": "hẹp van hai lá",
                "plan": "siêu âm tim", "advice": "nghỉ ngơi", "follow_up": "teleconsultation"}}),
            )
            .await
            .expect(200);
        n.spec
            .post(&format!("{path}/sign"), json!({"version": 1}))
            .await
            .expect(200);
        clock.advance(Duration::seconds(2));
        assert_eq!(d.run_once().await.expect("a pass").sent, 1);
        let text = sms.requests()[1].body["Content"]
            .as_str()
            .expect("a text")
            .to_owned();
        assert!(text.starts_with("Ghi chep buoi hoi chan tu xa luc 09:00 Thu Ba "), "{text}");
        for never in NEVER.iter().chain(&["hep van", "sieu am", "nghi ngoi"]) {
            assert!(!text.contains(never), "{never} in {text}");
        }
        // A change the referrer makes themselves is not sent back to them.
        let day = next_weekday(3);
        let slot = app.free_slots(n.cast.specialist, day, day).await[0];
        let own = n
            .rural
            .post("/api/v1/consultations", n.cast.booking(slot))
            .await
            .expect(201)
            .id();
        n.rural
            .post(
                &format!("/api/v1/consultations/{own}/cancel"),
                json!({"reason": "trùng lịch"}),
            )
            .await
            .expect(200);
        d.run_once().await.expect("a pass");
        assert_eq!(sms.requests().len(), 2, "the referrer was told of their own cancellation");
        let to_clinicians = messages(app.db())
            .await
            .into_iter()
            .filter(|m| m.channel == "clinician")
            .count();
        assert_eq!(to_clinicians, 2);
    }
);

both_engines!(
    a_patient_in_the_waiting_room_is_announced_to_the_specialist_once_however_often_they_reconnect,
    engine = |engine: Engine| async move {
        let sms = HttpReceiver::start(sms_ok()).await;
        let app = TestApp::spawn_with(engine, channels(Some(&sms), None, None)).await;
        let cast = Cast::create(&app).await;
        let people = People::sign_in(&app, &cast).await;
        people
            .specialist
            .put(
                "/api/v1/me/contact-preferences",
                json!({"channel": "sms", "language": "en", "phone": "+84 912 000 111"}),
            )
            .await
            .expect(200);
        let id = cast.book_now(&app).await;
        // The patient joins three times (a phone dropping its connection): one message.
        for _ in 0..3 {
            let token = telehealth_tests::ws::token(&people.patient, id, json!({})).await;
            let mut ws = telehealth_tests::ws::join(&app, &token).await;
            telehealth_tests::ws::until(&mut ws, "waiting").await;
            drop(ws);
        }
        let queued = eventually("the patient-waiting message queued", || {
            let db = app.db().clone();
            async move {
                let m: Vec<_> = messages(&db)
                    .await
                    .into_iter()
                    .filter(|m| m.event_kind == "patient.waiting")
                    .collect();
                (!m.is_empty()).then_some(m)
            }
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let again: Vec<_> = messages(app.db())
            .await
            .into_iter()
            .filter(|m| m.event_kind == "patient.waiting")
            .collect();
        assert_eq!((queued.len(), again.len()), (1, 1), "{again:?}");
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let d = dispatcher(&app, clock);
        d.run_once().await.expect("a pass");
        let got: Vec<_> = sms
            .requests()
            .into_iter()
            .filter(|r| r.body["Phone"] == "84912000111")
            .collect();
        assert_eq!(got.len(), 1);
        let text = got[0].body["Content"].as_str().expect("a text");
        assert!(
            text.starts_with("A patient is waiting in the room of your telehealth visit at ")
                && text.ends_with(&format!("Open: {PUBLIC_URL}/call/{id}")),
            "{text}"
        );
        assert!(
            !text.contains("Lò Thị Mai") && !text.contains("Đau ngực"),
            "{text}"
        );
    }
);

both_engines!(
    a_specialist_running_late_tells_the_waiting_patient_and_only_the_latest_delay_goes,
    engine = |engine: Engine| async move {
        let sms = HttpReceiver::start(sms_ok()).await;
        let app = TestApp::spawn_with(engine, channels(Some(&sms), None, None)).await;
        let cast = Cast::create(&app).await;
        consent(
            &app,
            &cast,
            json!({"consent": true, "channel": "sms", "language": "en",
                   "quiet_hours": {"from": "00:00", "until": "23:59"}}),
        )
        .await;
        let id = cast.book_now(&app).await;
        let people = People::sign_in(&app, &cast).await;
        let late = format!("/api/v1/consultations/{id}/running-late");
        people
            .specialist
            .post(&late, json!({"minutes": 10}))
            .await
            .expect(200);
        people
            .specialist
            .post(&late, json!({"minutes": 20}))
            .await
            .expect(200);
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let d = dispatcher(&app, clock);
        d.run_once().await.expect("a pass");
        let texts: Vec<String> = sms
            .requests()
            .iter()
            .filter_map(|r| r.body["Content"].as_str().map(str::to_owned))
            .filter(|t| t.contains("running"))
            .collect();
        // The 10-minute notice was overtaken before it went; quiet hours do not hold it back.
        assert_eq!(texts.len(), 1, "{texts:?}");
        assert!(
            texts[0]
                .starts_with("Your specialist is running about 20 minutes late for your visit at "),
            "{}",
            texts[0]
        );
        assert!(texts[0].contains(&format!("{PUBLIC_URL}/visit#")));
        let voided = messages(app.db())
            .await
            .into_iter()
            .filter(|m| m.event_kind == "consultation.running_late" && m.status == "cancelled")
            .count();
        assert_eq!(voided, 1);
    }
);
