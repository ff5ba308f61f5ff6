//! Access control: every route against every role, on both engines.
//!
//! The table below has one row per route of `route_table()`; the test fails when a route exists
//! without a row (or a row without a route). For each role a row says whether the request gets
//! past access control (A: any answer but 401, 403 or 404), is refused (R: 401 or 403), or finds
//! nothing because the record is not visible to that caller (N: 404). Requests that would change
//! state are chosen so that an allowed caller still passes access control and then meets a
//! business rule (a 409 or 422), so the order of the rows does not change later outcomes.

use std::collections::BTreeSet;

use chrono::Utc;
use serde_json::{Value, json};
use telehealth_tests::{Cast, PASSWORD, TestApp, both_engines, next_weekday};

/// Columns of the table, in order.
const ROLES: [&str; 10] = [
    "anonymous",
    "admin",
    "scheduler",
    "other_scheduler",
    "specialist",
    "other_specialist",
    "rural_clinician",
    "patient",
    "other_patient",
    "visit_link",
];

struct Row {
    method: &'static str,
    template: &'static str,
    /// The concrete path, from the ids of the world.
    path: String,
    body: Option<Value>,
    /// One letter per role, in `ROLES` order.
    expect: &'static str,
}

struct World {
    cast: Cast,
    consultation: i64,
    /// Another booked consultation of the same patient, whose links the visit-link caller does
    /// not hold: withdrawing them ends no session of the table's callers.
    second: i64,
    rule: i64,
    exception: i64,
    spare_account: i64,
    /// A change to the spare account, rejected: deciding it again meets 409 `change_decided`.
    decided_change: i64,
    slot: String,
    /// A queued outbox message about `consultation`: resending it meets 409 `message_pending`
    /// for every caller who may.
    message: i64,
    /// The token of the specialist's calendar feed: whoever holds it reads the feed.
    feed_token: String,
}

fn rows(w: &World) -> Vec<Row> {
    let c = &w.cast;
    let k = w.consultation;
    let row = |method, template: &'static str, path: String, body: Option<Value>, expect| Row {
        method,
        template,
        path,
        body,
        expect,
    };
    let booking = json!({
        "kind": "teleconsultation", "clinician_id": c.specialist, "patient_id": c.patient,
        "requesting_facility_id": c.centre, "referring_clinician_id": c.rural,
        "reason": "access test", "start": w.slot,
    });
    //                                                         anon admin sch osch spec ospec rural pat opat visit
    vec![
        row(
            "GET",
            "/api/v1/openapi.json",
            "/api/v1/openapi.json".into(),
            None,
            "AAAAAAAAAA",
        ),
        row(
            "POST",
            "/api/v1/auth/login",
            "/api/v1/auth/login".into(),
            Some(json!({"username": "spare", "password": PASSWORD})),
            "AAAAAAAAAA",
        ),
        row(
            "POST",
            "/api/v1/auth/visit",
            "/api/v1/auth/visit".into(),
            Some(json!({"token": "v1.bogus.token"})),
            "RRRRRRRRRR",
        ),
        row(
            "GET",
            "/api/v1/auth/me",
            "/api/v1/auth/me".into(),
            None,
            "RAAAAAAAAA",
        ),
        row(
            "GET",
            "/api/v1/accounts",
            "/api/v1/accounts".into(),
            None,
            "RARRRRRRRR",
        ),
        row(
            "POST",
            "/api/v1/accounts",
            "/api/v1/accounts".into(),
            Some(json!({"username": "spare", "display_name": "x", "roles": []})),
            "RARRRRRRRR",
        ),
        row(
            "GET",
            "/api/v1/accounts/{id}",
            format!("/api/v1/accounts/{}", w.spare_account),
            None,
            "RARRRRRRRR",
        ),
        row(
            "POST",
            "/api/v1/accounts/{id}/roles",
            format!("/api/v1/accounts/{}/roles", w.spare_account),
            Some(json!({"roles": []})),
            "RARRRRRRRR",
        ),
        row(
            "POST",
            "/api/v1/accounts/{id}/revoke-sessions",
            format!("/api/v1/accounts/{}/revoke-sessions", w.spare_account),
            Some(json!({})),
            "RARRRRRRRR",
        ),
        row(
            "GET",
            "/api/v1/account-changes",
            "/api/v1/account-changes".into(),
            None,
            "RARRRRRRRR",
        ),
        row(
            "POST",
            "/api/v1/account-changes/{id}/approve",
            format!("/api/v1/account-changes/{}/approve", w.decided_change),
            Some(json!({})),
            "RARRRRRRRR",
        ),
        row(
            "POST",
            "/api/v1/account-changes/{id}/reject",
            format!("/api/v1/account-changes/{}/reject", w.decided_change),
            Some(json!({})),
            "RARRRRRRRR",
        ),
        row(
            "GET",
            "/api/v1/audit",
            "/api/v1/audit".into(),
            None,
            "RARRRRRRRR",
        ),
        row(
            "GET",
            "/api/v1/facilities",
            "/api/v1/facilities".into(),
            None,
            "RAAAAAAAAA",
        ),
        row(
            "POST",
            "/api/v1/facilities",
            "/api/v1/facilities".into(),
            Some(
                json!({"code": "HUB-1", "name": "x", "kind": "hub_hospital", "level": "central", "province": "Huế"}),
            ),
            "RARRRRRRRR",
        ),
        row(
            "GET",
            "/api/v1/facilities/{id}",
            format!("/api/v1/facilities/{}", c.hub),
            None,
            "RAAAAAAAAA",
        ),
        row(
            "GET",
            "/api/v1/facilities/{id}/departments",
            format!("/api/v1/facilities/{}/departments", c.hub),
            None,
            "RAAAAAAAAA",
        ),
        row(
            "POST",
            "/api/v1/facilities/{id}/departments",
            format!("/api/v1/facilities/{}/departments", c.hub),
            Some(json!({"name": "Tim mạch"})),
            "RARRRRRRRR",
        ),
        row(
            "GET",
            "/api/v1/facilities/{id}/calendar",
            format!("/api/v1/facilities/{}/calendar", c.hub),
            None,
            "RRARRRRRRR",
        ),
        row(
            "GET",
            "/api/v1/facilities/{id}/utilisation",
            format!("/api/v1/facilities/{}/utilisation", c.hub),
            None,
            "RRARRRRRRR",
        ),
        row(
            "GET",
            "/api/v1/facilities/{id}/bookings",
            format!("/api/v1/facilities/{}/bookings?q=mai", c.hub),
            None,
            "RRARRRRRRR",
        ),
        // The care centre's clinician is not the hub's: 422 once past access control.
        row(
            "POST",
            "/api/v1/facilities/{id}/availability/rules",
            format!("/api/v1/facilities/{}/availability/rules", c.hub),
            Some(json!({"clinician_ids": [c.rural],
                        "rules": [{"weekday": 6, "start_time": "15:00", "end_time": "16:00", "slot_minutes": 30}]})),
            "RRARRRRRRR",
        ),
        row(
            "GET",
            "/api/v1/specialties",
            "/api/v1/specialties".into(),
            None,
            "RAAAAAAAAA",
        ),
        row(
            "POST",
            "/api/v1/specialties",
            "/api/v1/specialties".into(),
            Some(json!({"code": "cardiology", "name_en": "x", "name_vi": "x"})),
            "RARRRRRRRR",
        ),
        row(
            "GET",
            "/api/v1/clinicians",
            "/api/v1/clinicians".into(),
            None,
            "RAAAAAAAAA",
        ),
        row(
            "POST",
            "/api/v1/clinicians",
            "/api/v1/clinicians".into(),
            Some(json!({"facility_id": c.hub, "full_name": "BS Mới"})),
            "RARRRRRRRR",
        ),
        row(
            "GET",
            "/api/v1/clinicians/{id}",
            format!("/api/v1/clinicians/{}", c.specialist),
            None,
            "RAAAAAAAAA",
        ),
        row(
            "GET",
            "/api/v1/clinicians/{id}/signing-key",
            format!("/api/v1/clinicians/{}/signing-key", c.specialist),
            None,
            "RAAAAAAAAA",
        ),
        row(
            "GET",
            "/api/v1/clinicians/{id}/availability/rules",
            format!("/api/v1/clinicians/{}/availability/rules", c.specialist),
            None,
            "RAAAAAAAAA",
        ),
        row(
            "POST",
            "/api/v1/clinicians/{id}/availability/rules",
            format!("/api/v1/clinicians/{}/availability/rules", c.specialist),
            Some(
                json!({"weekday": 6, "start_time": "13:00:00", "end_time": "14:00:00", "slot_minutes": 30}),
            ),
            "RRARRRRRRR",
        ),
        row(
            "PUT",
            "/api/v1/clinicians/{id}/availability/rules/{rule_id}",
            format!(
                "/api/v1/clinicians/{}/availability/rules/{}",
                c.specialist, w.rule
            ),
            // The rule as it is: an allowed caller changes nothing.
            Some(
                json!({"weekday": 7, "start_time": "13:00:00", "end_time": "14:00:00", "slot_minutes": 30}),
            ),
            "RRARRRRRRR",
        ),
        row(
            "DELETE",
            "/api/v1/clinicians/{id}/availability/rules/{rule_id}",
            format!(
                "/api/v1/clinicians/{}/availability/rules/{}",
                c.specialist, w.rule
            ),
            None,
            "RRARRRRRRR",
        ),
        row(
            "GET",
            "/api/v1/clinicians/{id}/availability/exceptions",
            format!(
                "/api/v1/clinicians/{}/availability/exceptions",
                c.specialist
            ),
            None,
            "RAAAAAAAAA",
        ),
        row(
            "POST",
            "/api/v1/clinicians/{id}/availability/exceptions",
            format!(
                "/api/v1/clinicians/{}/availability/exceptions",
                c.specialist
            ),
            Some(json!({"date": "2027-02-01", "kind": "leave"})),
            "RRARRRRRRR",
        ),
        row(
            "DELETE",
            "/api/v1/clinicians/{id}/availability/exceptions/{exception_id}",
            format!(
                "/api/v1/clinicians/{}/availability/exceptions/{}",
                c.specialist, w.exception
            ),
            None,
            "RRARRRRRRR",
        ),
        row(
            "GET",
            "/api/v1/patients",
            "/api/v1/patients".into(),
            None,
            "RRRRAAARRR",
        ),
        row(
            "POST",
            "/api/v1/patients",
            "/api/v1/patients".into(),
            Some(
                json!({"full_name": "Lò Văn B", "date_of_birth": "1990-01-01", "sex": "male",
                        "home_facility_id": c.centre}),
            ),
            "RRAARRARRR",
        ),
        row(
            "GET",
            "/api/v1/patients/{id}",
            format!("/api/v1/patients/{}", c.patient),
            None,
            "RNANANAANA",
        ),
        row(
            "GET",
            "/api/v1/patients/{id}/contact-preferences",
            format!("/api/v1/patients/{}/contact-preferences", c.patient),
            None,
            "RNANANAANA",
        ),
        // The specialist sees the patient but has no reason to change how they are contacted.
        row(
            "PUT",
            "/api/v1/patients/{id}/contact-preferences",
            format!("/api/v1/patients/{}/contact-preferences", c.patient),
            Some(json!({"consent": true, "channel": "sms", "language": "vi"})),
            "RNANRNAANA",
        ),
        row(
            "GET",
            "/api/v1/consultations/{id}/messages",
            format!("/api/v1/consultations/{k}/messages"),
            None,
            "RNANANARNR",
        ),
        row(
            "GET",
            "/api/v1/outbox/dead",
            "/api/v1/outbox/dead".into(),
            None,
            "RARRRRRRRR",
        ),
        // Administrators resend any message; otherwise those who manage its consultation.
        row(
            "POST",
            "/api/v1/outbox/messages/{id}/resend",
            format!("/api/v1/outbox/messages/{}/resend", w.message),
            Some(json!({})),
            "RAANANARNR",
        ),
        row(
            "GET",
            "/api/v1/slots",
            "/api/v1/slots".into(),
            None,
            "RAAAAAAAAA",
        ),
        row(
            "GET",
            "/api/v1/consultations",
            "/api/v1/consultations".into(),
            None,
            "RRAAAAAAAA",
        ),
        row(
            "POST",
            "/api/v1/consultations",
            "/api/v1/consultations".into(),
            Some(booking),
            "RNANANARNR",
        ),
        row(
            "GET",
            "/api/v1/consultations/{id}",
            format!("/api/v1/consultations/{k}"),
            None,
            "RNANANAANA",
        ),
        row(
            "POST",
            "/api/v1/consultations/{id}/confirm",
            format!("/api/v1/consultations/{k}/confirm"),
            Some(json!({})),
            "RNANANARNR",
        ),
        row(
            "POST",
            "/api/v1/consultations/{id}/reschedule",
            format!("/api/v1/consultations/{k}/reschedule"),
            Some(json!({"start": "2027-01-04T01:07:00Z", "reason": "x"})),
            "RNANANARNR",
        ),
        row(
            "POST",
            "/api/v1/consultations/{id}/start",
            format!("/api/v1/consultations/{k}/start"),
            Some(json!({})),
            "RNANANARNR",
        ),
        row(
            "POST",
            "/api/v1/consultations/{id}/complete",
            format!("/api/v1/consultations/{k}/complete"),
            Some(json!({})),
            "RNANANARNR",
        ),
        row(
            "POST",
            "/api/v1/consultations/{id}/no-show",
            format!("/api/v1/consultations/{k}/no-show"),
            Some(json!({})),
            "RNANANARNR",
        ),
        row(
            "POST",
            "/api/v1/consultations/{id}/running-late",
            format!("/api/v1/consultations/{k}/running-late"),
            // Not a step of five minutes: an allowed caller meets 422 and nothing changes.
            Some(json!({"minutes": 7})),
            "RNANANARNR",
        ),
        row(
            "GET",
            "/api/v1/rooms",
            format!("/api/v1/rooms?consultation_ids={k}"),
            None,
            "RNANANARNR",
        ),
        row(
            "POST",
            "/api/v1/consultations/{id}/visit-link",
            format!("/api/v1/consultations/{k}/visit-link"),
            Some(json!({})),
            "RNANANARNR",
        ),
        // Outside the call's window, so an allowed caller meets 409 too_early.
        row(
            "POST",
            "/api/v1/consultations/{id}/join-token",
            format!("/api/v1/consultations/{k}/join-token"),
            Some(json!({})),
            "RNRNANAANA",
        ),
        // Notes: the specialist's save creates version 1, so later saves over version 0 (and the
        // signature of version 99) meet a 409; the note stays a draft, so addenda and the summary
        // meet a 409 too.
        row(
            "PUT",
            "/api/v1/consultations/{id}/note",
            format!("/api/v1/consultations/{k}/note"),
            Some(json!({"version": 0, "content": {"assessment": "access test"}})),
            "RNRNANARNR",
        ),
        row(
            "GET",
            "/api/v1/consultations/{id}/note",
            format!("/api/v1/consultations/{k}/note"),
            None,
            "RNRNANAANA",
        ),
        row(
            "GET",
            "/api/v1/consultations/{id}/note/history",
            format!("/api/v1/consultations/{k}/note/history"),
            None,
            "RNRNANARNR",
        ),
        row(
            "POST",
            "/api/v1/consultations/{id}/note/sign",
            format!("/api/v1/consultations/{k}/note/sign"),
            Some(json!({"version": 99})),
            "RNRNANRRNR",
        ),
        row(
            "POST",
            "/api/v1/consultations/{id}/note/addenda",
            format!("/api/v1/consultations/{k}/note/addenda"),
            Some(json!({"text": "access test"})),
            "RNRNANARNR",
        ),
        // The note is a draft: an allowed caller meets 409 no_draft / note_not_signed.
        row(
            "POST",
            "/api/v1/consultations/{id}/note/sign/challenge",
            format!("/api/v1/consultations/{k}/note/sign/challenge"),
            Some(json!({"version": 99})),
            "RNRNANRRNR",
        ),
        row(
            "POST",
            "/api/v1/consultations/{id}/note/addenda/challenge",
            format!("/api/v1/consultations/{k}/note/addenda/challenge"),
            Some(json!({"text": "access test"})),
            "RNRNANARNR",
        ),
        // Passkeys are clinicians' own: only the three clinicians get past access control.
        row(
            "GET",
            "/api/v1/me/passkeys",
            "/api/v1/me/passkeys".into(),
            None,
            "RRRRAAARRR",
        ),
        // Before the rows that make new feeds: this token is the specialist's live one.
        row(
            "GET",
            "/api/v1/calendar-feeds/{token}",
            format!("/api/v1/calendar-feeds/{}", w.feed_token),
            None,
            "AAAAAAAAAA",
        ),
        row(
            "GET",
            "/api/v1/me/contact-preferences",
            "/api/v1/me/contact-preferences".into(),
            None,
            "RRRRAAARRR",
        ),
        row(
            "PUT",
            "/api/v1/me/contact-preferences",
            "/api/v1/me/contact-preferences".into(),
            Some(json!({"channel": "none", "language": "vi"})),
            "RRRRAAARRR",
        ),
        row(
            "GET",
            "/api/v1/me/calendar-feed",
            "/api/v1/me/calendar-feed".into(),
            None,
            "RRRRAAARRR",
        ),
        row(
            "POST",
            "/api/v1/me/calendar-feed",
            "/api/v1/me/calendar-feed".into(),
            Some(json!({})),
            "RRRRAAARRR",
        ),
        row(
            "POST",
            "/api/v1/me/calendar-feed/revoke",
            "/api/v1/me/calendar-feed/revoke".into(),
            Some(json!({})),
            "RRRRAAARRR",
        ),
        row(
            "POST",
            "/api/v1/me/passkeys/registration",
            "/api/v1/me/passkeys/registration".into(),
            Some(json!({})),
            "RRRRAAARRR",
        ),
        // A credential that is no credential: an allowed caller meets 400.
        row(
            "POST",
            "/api/v1/me/passkeys",
            "/api/v1/me/passkeys".into(),
            Some(json!({"ceremony_id": "x", "name": "n", "credential": {}})),
            "RRRRAAARRR",
        ),
        row(
            "GET",
            "/api/v1/consultations/{id}/visit-links",
            format!("/api/v1/consultations/{k}/visit-links"),
            None,
            "RNANANARNR",
        ),
        row(
            "GET",
            "/api/v1/consultations/{id}/summary",
            format!("/api/v1/consultations/{k}/summary"),
            None,
            "RNRNANAANA",
        ),
        row(
            "GET",
            "/api/v1/patients/{id}/timeline",
            format!("/api/v1/patients/{}/timeline", c.patient),
            None,
            "RNRNANAANR",
        ),
        // Changes the consultation's status, which no later row's access depends on.
        row(
            "POST",
            "/api/v1/consultations/{id}/cancel",
            format!("/api/v1/consultations/{k}/cancel"),
            Some(json!({"reason": "access test"})),
            "RNANANARNR",
        ),
        row(
            "GET",
            "/api/v1/break-glass",
            "/api/v1/break-glass".into(),
            None,
            "RARRAAARRR",
        ),
        // After every row that reads the patient's records: the other specialist's grant would
        // let it see them.
        row(
            "POST",
            "/api/v1/patients/{id}/break-glass",
            format!("/api/v1/patients/{}/break-glass", c.patient),
            Some(json!({"reason": "access test: patient collapsed in the waiting room"})),
            "RRRRAAARRR",
        ),
        row(
            "POST",
            "/api/v1/consultations/{id}/visit-links/revoke",
            format!("/api/v1/consultations/{}/visit-links/revoke", w.second),
            Some(json!({})),
            // After break-glass: the other specialist sees the consultation but may not manage it.
            "RNANARARNN",
        ),
        // Last: it ends the caller's session.
        row(
            "POST",
            "/api/v1/auth/logout",
            "/api/v1/auth/logout".into(),
            Some(json!({})),
            "RAAAAAAAAA",
        ),
    ]
}

async fn world(app: &TestApp) -> (World, Vec<TestApp>) {
    let cast = Cast::create(app).await;
    app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
        .await;
    let other_hub = app
        .create_facility("HUB-2", "hub_hospital", "Asia/Ho_Chi_Minh")
        .await;
    let other_specialist = app.create_clinician(other_hub, &["cardiology"]).await;
    let other_patient = app.create_patient(None).await;
    let day = next_weekday(2);
    let slots = app.free_slots(cast.specialist, day, day).await;
    let consultation = app
        .post("/api/v1/consultations", cast.booking(slots[0]))
        .await
        .expect(201)
        .id();
    let second = app
        .post("/api/v1/consultations", cast.booking(slots[2]))
        .await
        .expect(201)
        .id();
    let rule = app
        .post(
            &format!("/api/v1/clinicians/{}/availability/rules", cast.specialist),
            // After the daily 08:00–12:00 sessions (overlapping sessions are refused).
            json!({"weekday": 7, "start_time": "13:00:00", "end_time": "14:00:00", "slot_minutes": 30}),
        )
        .await
        .expect(201)
        .id();
    let exception = app
        .post(
            &format!(
                "/api/v1/clinicians/{}/availability/exceptions",
                cast.specialist
            ),
            json!({"date": "2027-03-01", "kind": "leave"}),
        )
        .await
        .expect(201)
        .id();
    let spare_account = app
        .post(
            "/api/v1/accounts",
            json!({"username": "spare", "display_name": "spare", "password": PASSWORD, "roles": []}),
        )
        .await
        .expect(201)
        .id();
    let decided_change = app
        .post(
            &format!("/api/v1/accounts/{spare_account}/roles"),
            json!({"roles": [{"role": "administrator"}]}),
        )
        .await
        .expect(202)
        .id();
    app.second_admin()
        .post(
            &format!("/api/v1/account-changes/{decided_change}/reject"),
            json!({}),
        )
        .await
        .expect(200);
    let mut callers = vec![
        app.anonymous(),
        app.as_new_user("adm", &[("administrator", None)], None, None)
            .await,
        app.as_new_user("sched", &[("scheduler", Some(cast.hub))], None, None)
            .await,
        app.as_new_user("othersched", &[("scheduler", Some(other_hub))], None, None)
            .await,
        app.as_new_user("spec", &[("clinician", None)], None, Some(cast.specialist))
            .await,
        app.as_new_user(
            "otherspec",
            &[("clinician", None)],
            None,
            Some(other_specialist),
        )
        .await,
        app.as_new_user("rural", &[("clinician", None)], None, Some(cast.rural))
            .await,
        app.as_new_user("pat", &[("patient", None)], Some(cast.patient), None)
            .await,
        app.as_new_user("otherpat", &[("patient", None)], Some(other_patient), None)
            .await,
    ];
    let link = app
        .post(
            &format!("/api/v1/consultations/{consultation}/visit-link"),
            json!({}),
        )
        .await
        .expect(201);
    let visit = app
        .anonymous()
        .post(
            "/api/v1/auth/visit",
            json!({"token": link.body["token"].as_str().expect("token"), "date_of_birth": telehealth_tests::PATIENT_BIRTH_DATE}),
        )
        .await
        .expect(200);
    let visit_token = visit.body["token"].as_str().expect("token").to_string();
    callers.push(app.as_token(&visit_token));
    let slot = slots[1].to_rfc3339();
    let feed = callers[4]
        .post("/api/v1/me/calendar-feed", json!({}))
        .await
        .expect(201);
    let feed_token = feed.body["url"]
        .as_str()
        .and_then(|u| u.rsplit('/').next())
        .expect("a feed URL")
        .to_owned();
    let message = {
        let mut c = app.db().acquire().await.expect("a connection");
        let now = Utc::now();
        telehealth::outbox::store::insert(
            c.conn(),
            &telehealth::outbox::store::NewMessage {
                idempotency_key: format!("msg_access_{consultation}"),
                kind: "consultation.booked",
                consultation_id: Some(consultation),
                channel: "webhook",
                endpoint: "his",
                payload: "{}",
                recipient_patient_id: None,
                recipient_clinician_id: None,
                actor_account_id: None,
                due_at: now,
                created_at: now,
            },
        )
        .await
        .expect("a message");
        telehealth::outbox::store::list(c.conn(), Some(consultation))
            .await
            .expect("the outbox")[0]
            .id
    };
    (
        World {
            cast,
            consultation,
            second,
            rule,
            exception,
            spare_account,
            decided_change,
            slot,
            message,
            feed_token,
        },
        callers,
    )
}

both_engines!(every_route_against_every_role, |app: TestApp| async move {
    let (w, callers) = world(&app).await;
    let table = rows(&w);

    // The table covers exactly the routes that exist.
    let routed: BTreeSet<String> = telehealth::api::routes::route_table()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let listed: BTreeSet<String> = table
        .iter()
        .map(|r| format!("{} {}", r.method, r.template))
        .collect();
    let missing: Vec<_> = routed.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "routes without an access row: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "access rows for routes that do not exist: {stale:?}"
    );

    let mut failures = Vec::new();
    for row in &table {
        assert_eq!(
            row.expect.len(),
            ROLES.len(),
            "{} {}",
            row.method,
            row.template
        );
        for (i, caller) in callers.iter().enumerate() {
            let url = caller.url(&row.path);
            let req = match row.method {
                "GET" => caller.http.get(url),
                "POST" => caller.http.post(url),
                "PUT" => caller.http.put(url),
                "DELETE" => caller.http.delete(url),
                other => panic!("no method {other}"),
            };
            let req = match &row.body {
                Some(b) => req.json(b),
                None => req,
            };
            let reply = caller.send(req).await;
            let got = match reply.status {
                401 | 403 => 'R',
                404 => 'N',
                _ => 'A',
            };
            let want = row.expect.as_bytes()[i] as char;
            if got != want {
                failures.push(format!(
                    "{} {} as {}: expected {want}, got {} {}",
                    row.method, row.template, ROLES[i], reply.status, reply.text
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
});
