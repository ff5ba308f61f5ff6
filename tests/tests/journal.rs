//! The write journal: a write's audit event commits with it, and a request sent with an
//! `Idempotency-Key` gets its first answer again, on both engines.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use telehealth_tests::{Cast, TestApp, both_engines, next_weekday};

fn facility(code: &str) -> Value {
    json!({"code": code, "name": format!("Bệnh viện {code}"), "kind": "hub_hospital",
           "level": "central", "province": "Hà Nội", "address": "1 Phố Huế",
           "time_zone": "Asia/Ho_Chi_Minh"})
}

async fn post_with_key(
    app: &TestApp,
    path: &str,
    key: &str,
    body: &Value,
) -> telehealth_tests::Reply {
    app.send(
        app.http
            .post(app.url(path))
            .header("Idempotency-Key", key)
            .json(body),
    )
    .await
}

/// The trail's events about `record_id` with `action`.
async fn events_about(app: &TestApp, action: &str, record_id: i64) -> Vec<Value> {
    let trail = app
        .get("/api/v1/audit?actor=root&limit=200")
        .await
        .expect(200);
    let record_id = record_id.to_string();
    trail
        .body
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["action"] == action && e["record_id"] == record_id.as_str())
        .cloned()
        .collect()
}

// Blocks appends to the chain (and only those), so the step after a write's commit fails.
const BLOCK_CHAIN_SQLITE: &str = "CREATE TRIGGER block_chain BEFORE INSERT ON audit_events
     BEGIN SELECT RAISE(ABORT, 'chain blocked by the test'); END;";
const BLOCK_CHAIN_PG: &str = "CREATE FUNCTION block_chain() RETURNS trigger LANGUAGE plpgsql AS
     $$ BEGIN RAISE EXCEPTION 'chain blocked by the test'; END $$;
     CREATE TRIGGER block_chain BEFORE INSERT ON audit_events
     FOR EACH ROW EXECUTE FUNCTION block_chain();";
const UNBLOCK_CHAIN_SQLITE: &str = "DROP TRIGGER block_chain;";
const UNBLOCK_CHAIN_PG: &str = "DROP TRIGGER block_chain ON audit_events;";

async fn block_chain(app: &TestApp, blocked: bool) {
    let sql = match (app.engine, blocked) {
        (telehealth_tests::Engine::Sqlite, true) => BLOCK_CHAIN_SQLITE,
        (telehealth_tests::Engine::Sqlite, false) => UNBLOCK_CHAIN_SQLITE,
        (telehealth_tests::Engine::Postgres, true) => BLOCK_CHAIN_PG,
        (telehealth_tests::Engine::Postgres, false) => UNBLOCK_CHAIN_PG,
    };
    app.exec(sql).await;
}

/// Makes `audit_pending` refuse every insert: a write's event cannot be staged.
async fn block_staging(app: &TestApp) {
    let sql = match app.engine {
        telehealth_tests::Engine::Sqlite => {
            "CREATE TRIGGER block_stage BEFORE INSERT ON audit_pending
             BEGIN SELECT RAISE(ABORT, 'staging blocked by the test'); END;"
        }
        telehealth_tests::Engine::Postgres => {
            "CREATE FUNCTION block_stage() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'staging blocked by the test'; END $$;
             CREATE TRIGGER block_stage BEFORE INSERT ON audit_pending
             FOR EACH ROW EXECUTE FUNCTION block_stage();"
        }
    };
    app.exec(sql).await;
}

both_engines!(
    a_write_and_its_audit_event_are_in_the_trail_when_it_answers,
    |app: TestApp| async move {
        let id = app
            .post("/api/v1/facilities", facility("BV-J1"))
            .await
            .expect(201)
            .id();
        let events = events_about(&app, "POST /api/v1/facilities", id).await;
        assert_eq!(events.len(), 1, "one event for the write: {events:?}");
        assert_eq!(events[0]["outcome"], "allowed");
        assert_eq!(app.scalar("SELECT COUNT(*) FROM audit_pending").await, 0);
        let verified = telehealth::audit::verify(app.db()).await.expect("verify");
        assert_eq!(verified.first_broken, None);
    }
);

both_engines!(
    a_write_whose_event_cannot_be_chained_keeps_it_and_chains_it_later,
    |app: TestApp| async move {
        // The chain refuses appends: before the journal, the write committed and then its event
        // failed, leaving a facility with no audit event (and a 503 for a change that was made).
        block_chain(&app, true).await;
        let reply = app.post("/api/v1/facilities", facility("BV-J2")).await;
        assert_eq!(
            reply.status, 201,
            "the change and its event committed: {}",
            reply.text
        );
        let id = reply.id();
        assert_eq!(app.count("facilities").await, 1);
        assert_eq!(
            app.scalar("SELECT COUNT(*) FROM audit_pending").await,
            1,
            "the event waits, committed with the write"
        );
        block_chain(&app, false).await;
        // The writer chains what is staged by itself, about once a second.
        telehealth_tests::eventually("the staged event is chained", || async {
            (events_about(&app, "POST /api/v1/facilities", id)
                .await
                .len()
                == 1)
                .then_some(())
        })
        .await;
        assert_eq!(app.scalar("SELECT COUNT(*) FROM audit_pending").await, 0);
        let verified = telehealth::audit::verify(app.db()).await.expect("verify");
        assert_eq!(verified.first_broken, None);
    }
);

both_engines!(
    a_write_whose_event_cannot_be_staged_is_not_made,
    |app: TestApp| async move {
        block_staging(&app).await;
        let reply = app
            .send_any(
                app.http
                    .post(app.url("/api/v1/facilities"))
                    .bearer_auth(app.token.clone().unwrap_or_default())
                    .json(&facility("BV-J3")),
            )
            .await;
        assert!(
            reply.status >= 500,
            "refused: {} {}",
            reply.status,
            reply.text
        );
        assert_eq!(
            app.count("facilities").await,
            0,
            "no change without its event"
        );
    }
);

both_engines!(
    the_same_key_and_request_answer_the_first_answer_again,
    |app: TestApp| async move {
        let body = facility("BV-K1");
        let first = post_with_key(&app, "/api/v1/facilities", "k-1", &body)
            .await
            .expect(201);
        let again = post_with_key(&app, "/api/v1/facilities", "k-1", &body)
            .await
            .expect(201);
        assert_eq!(first.body, again.body, "the first answer, again");
        assert_eq!(
            again
                .headers
                .get("idempotent-replayed")
                .map(|v| v.as_bytes()),
            Some(&b"true"[..])
        );
        assert!(first.headers.get("idempotent-replayed").is_none());
        assert_eq!(app.count("facilities").await, 1, "one facility");
        // The trail holds the write once, and the replay as a replay.
        let id = first.id();
        assert_eq!(
            events_about(&app, "POST /api/v1/facilities", id)
                .await
                .len(),
            1
        );
        let trail = app
            .get("/api/v1/audit?actor=root&limit=200")
            .await
            .expect(200);
        let replays = trail
            .body
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["action"] == "POST /api/v1/facilities (idempotent replay)")
            .count();
        assert_eq!(replays, 1, "{}", trail.text);

        // Without a key, the same request is a new one (here: a duplicate code).
        let plain = app.post("/api/v1/facilities", body.clone()).await;
        assert_eq!(plain.status, 409, "{}", plain.text);
    }
);

both_engines!(
    the_same_key_with_another_request_is_refused,
    |app: TestApp| async move {
        post_with_key(&app, "/api/v1/facilities", "k-2", &facility("BV-K2"))
            .await
            .expect(201);
        let other = post_with_key(&app, "/api/v1/facilities", "k-2", &facility("BV-K3")).await;
        assert_eq!(other.status, 422, "{}", other.text);
        assert_eq!(other.error_code(), "idempotency_key_reused");
        assert_eq!(app.count("facilities").await, 1, "nothing more written");
    }
);

both_engines!(keys_belong_to_their_caller, |app: TestApp| async move {
    let other = app
        .as_new_user("admin2", &[("administrator", None)], None, None)
        .await;
    post_with_key(&app, "/api/v1/facilities", "shared-key", &facility("BV-K4"))
        .await
        .expect(201);
    // Another caller's same key is theirs: it neither replays nor blocks root's answer.
    let theirs = post_with_key(
        &other,
        "/api/v1/facilities",
        "shared-key",
        &facility("BV-K5"),
    )
    .await
    .expect(201);
    assert!(theirs.headers.get("idempotent-replayed").is_none());
    assert_eq!(app.count("facilities").await, 2);
});

both_engines!(
    malformed_keys_are_refused_and_nothing_is_written,
    |app: TestApp| async move {
        let long = "k".repeat(256);
        for key in ["", "  ", "tiếng-việt", long.as_str()] {
            let reply = app
                .send(
                    app.http
                        .post(app.url("/api/v1/facilities"))
                        .header("Idempotency-Key", key)
                        .json(&facility("BV-K6")),
                )
                .await;
            assert_eq!(reply.status, 400, "{key:?}: {}", reply.text);
            assert_eq!(reply.error_code(), "invalid_idempotency_key");
        }
        assert_eq!(app.count("facilities").await, 0);
        // A quoted key (a structured-field string) is the bare key.
        let quoted = post_with_key(&app, "/api/v1/facilities", "\"k-7\"", &facility("BV-K7"))
            .await
            .expect(201);
        let bare = post_with_key(&app, "/api/v1/facilities", "k-7", &facility("BV-K7"))
            .await
            .expect(201);
        assert_eq!(quoted.body, bare.body);
    }
);

both_engines!(
    concurrent_requests_with_one_key_make_one_change,
    |app: TestApp| async move {
        let body = facility("BV-K8");
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let app = app.clone();
            let body = body.clone();
            tasks.push(tokio::spawn(async move {
                post_with_key(&app, "/api/v1/facilities", "k-8", &body).await
            }));
        }
        let mut bodies = Vec::new();
        for t in tasks {
            let reply = t.await.expect("request task");
            assert_eq!(reply.status, 201, "{}", reply.text);
            bodies.push(reply.body);
        }
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "one answer: {bodies:?}"
        );
        assert_eq!(app.count("facilities").await, 1);
    }
);

both_engines!(
    a_retry_after_a_restart_gets_its_first_answer,
    |app: TestApp| async move {
        let body = facility("BV-K9");
        let first = post_with_key(&app, "/api/v1/facilities", "k-9", &body)
            .await
            .expect(201);
        let app = app.restart().await;
        let again = post_with_key(&app, "/api/v1/facilities", "k-9", &body)
            .await
            .expect(201);
        assert_eq!(first.body, again.body);
        assert_eq!(app.count("facilities").await, 1);
    }
);

// ---- every write route -------------------------------------------------------------------

/// Events that say a change was made (chained or still staged), and replays of stored answers.
const CHANGE_EVENTS: &str = "SELECT COUNT(*) FROM (SELECT action, outcome FROM audit_events
     UNION ALL SELECT action, outcome FROM audit_pending) e
     WHERE outcome = 'allowed' AND action NOT LIKE '%(idempotent replay)%'";
const REPLAY_EVENTS: &str = "SELECT COUNT(*) FROM (SELECT action, outcome FROM audit_events
     UNION ALL SELECT action, outcome FROM audit_pending) e
     WHERE outcome = 'allowed' AND action LIKE '%(idempotent replay)%'";

/// Every table a write route changes, counted: a write refused by its journal leaves them as
/// they were.
const WRITTEN_TABLES: &[&str] = &[
    "SELECT COUNT(*) FROM facilities",
    "SELECT COUNT(*) FROM departments",
    "SELECT COUNT(*) FROM specialties",
    "SELECT COUNT(*) FROM clinicians",
    "SELECT COUNT(*) FROM patients",
    "SELECT COUNT(*) FROM availability_rules",
    "SELECT COUNT(*) FROM availability_exceptions",
    "SELECT COUNT(*) FROM accounts",
    "SELECT COUNT(*) FROM account_roles",
    "SELECT COUNT(*) FROM account_changes WHERE status = 'pending'",
    "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL",
    "SELECT COUNT(*) FROM visit_links WHERE used_at IS NULL",
    "SELECT COUNT(*) FROM break_glass_grants",
    "SELECT COUNT(*) FROM consultations WHERE status = 'booked'",
    "SELECT COUNT(*) FROM encounter_notes",
    "SELECT COUNT(*) FROM note_revisions",
    "SELECT COUNT(*) FROM note_entries",
    "SELECT COUNT(*) FROM clinician_passkeys",
    "SELECT COUNT(*) FROM webauthn_ceremonies",
    "SELECT COUNT(*) FROM patient_contacts",
    "SELECT COUNT(*) FROM outbox_messages WHERE status = 'queued'",
    "SELECT COUNT(*) FROM calendar_feeds WHERE revoked_at IS NULL",
    "SELECT COUNT(*) FROM calendar_feeds",
    "SELECT COUNT(*) FROM clinician_contacts",
];

async fn written_rows(app: &TestApp) -> Vec<i64> {
    let mut out = Vec::new();
    for sql in WRITTEN_TABLES {
        out.push(app.scalar(sql).await);
    }
    out
}

/// The write routes of the table, as `METHOD /template`.
fn journaled_routes() -> BTreeSet<String> {
    telehealth::api::routes::route_table()
        .iter()
        .filter(|r| r.writes == telehealth::api::routes::Writes::Journaled)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Drives write routes, noting which it covered.
struct Writes {
    covered: BTreeSet<String>,
    keys: u32,
}

impl Writes {
    fn key(&mut self) -> String {
        self.keys += 1;
        format!("every-route-{}", self.keys)
    }

    /// Sends `body` with a fresh key as `caller`, expecting `status`; then the same request again,
    /// which must answer the first answer (replayed) and change nothing; then, when `other` is
    /// given, another body with the same key, which must be 422. The change must have exactly one
    /// event, and the replay one of its own.
    #[allow(clippy::too_many_arguments)]
    async fn keyed(
        &mut self,
        caller: &TestApp,
        method: &str,
        template: &str,
        path: &str,
        body: Value,
        other: Option<Value>,
        status: u16,
    ) -> telehealth_tests::Reply {
        let (events, replays) = (
            caller.scalar(CHANGE_EVENTS).await,
            caller.scalar(REPLAY_EVENTS).await,
        );
        let key = self.key();
        let send = |body: &Value| {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
            caller.send(
                caller
                    .http
                    .request(method, caller.url(path))
                    .header("Idempotency-Key", key.as_str())
                    .json(body),
            )
        };
        let first = send(&body).await;
        assert_eq!(first.status, status, "{method} {path}: {}", first.text);
        assert!(first.headers.get("idempotent-replayed").is_none());
        let rows = written_rows(caller).await;
        let again = send(&body).await;
        assert_eq!(
            (again.status, &again.body),
            (status, &first.body),
            "{method} {path}: the first answer again"
        );
        assert_eq!(
            again
                .headers
                .get("idempotent-replayed")
                .map(|v| v.as_bytes()),
            Some(&b"true"[..]),
            "{method} {path}"
        );
        assert_eq!(
            written_rows(caller).await,
            rows,
            "{method} {path}: a replay changes nothing"
        );
        if let Some(other) = other {
            let refused = send(&other).await;
            assert_eq!(refused.status, 422, "{method} {path}: {}", refused.text);
            assert_eq!(refused.error_code(), "idempotency_key_reused");
            assert_eq!(written_rows(caller).await, rows, "{method} {path}");
        }
        assert_eq!(
            caller.scalar(CHANGE_EVENTS).await - events,
            1,
            "{method} {path}: the change has exactly one event"
        );
        assert_eq!(
            caller.scalar(REPLAY_EVENTS).await - replays,
            1,
            "{method} {path}: the replay has its own event"
        );
        self.covered.insert(format!("{method} {template}"));
        first
    }

    /// A write whose answer is a credential (a session, a visit link) or whose caller has none:
    /// journaled, but no answer is stored, so a second request runs again. Exactly one event.
    async fn unkeyed(
        &mut self,
        caller: &TestApp,
        template: &str,
        path: &str,
        body: Value,
        status: u16,
    ) -> telehealth_tests::Reply {
        let events = caller.scalar(CHANGE_EVENTS).await;
        let reply = caller
            .send(
                caller
                    .http
                    .post(caller.url(path))
                    .header("Idempotency-Key", self.key())
                    .json(&body),
            )
            .await;
        assert_eq!(reply.status, status, "POST {path}: {}", reply.text);
        assert!(reply.headers.get("idempotent-replayed").is_none());
        assert_eq!(
            caller.scalar(CHANGE_EVENTS).await - events,
            1,
            "POST {path}: the change has exactly one event"
        );
        self.covered.insert(format!("POST {template}"));
        reply
    }
}

/// Scrapes `/metrics` from the metrics address.
async fn scrape(app: &TestApp) -> String {
    let addr = app.metrics_addr().expect("a metrics address");
    app.send_any(app.http.get(format!("http://{addr}/metrics")))
        .await
        .text
}

both_engines!(
    every_write_route_journals_its_change_and_replays_its_answer,
    settings = |s: &mut telehealth::config::Settings| {
        s.metrics_listen = Some("127.0.0.1:0".parse().expect("literal address"));
    },
    |app: TestApp| async move {
        let mut w = Writes {
            covered: BTreeSet::new(),
            keys: 0,
        };
        // The directory.
        let hub = w
            .keyed(
                &app,
                "POST",
                "/api/v1/facilities",
                "/api/v1/facilities",
                facility("BV-W1"),
                Some(facility("BV-W2")),
                201,
            )
            .await
            .id();
        w.keyed(
            &app,
            "POST",
            "/api/v1/facilities/{id}/departments",
            &format!("/api/v1/facilities/{hub}/departments"),
            json!({"name": "Tim mạch"}),
            Some(json!({"name": "Nội"})),
            201,
        )
        .await;
        w.keyed(
            &app,
            "POST",
            "/api/v1/specialties",
            "/api/v1/specialties",
            json!({"code": "neurology", "name_en": "Neurology", "name_vi": "Thần kinh"}),
            Some(json!({"code": "oncology", "name_en": "Oncology", "name_vi": "Ung bướu"})),
            201,
        )
        .await;
        let doctor =
            json!({"facility_id": hub, "full_name": "BS Trần Văn B", "specialties": ["neurology"]});
        w.keyed(
            &app,
            "POST",
            "/api/v1/clinicians",
            "/api/v1/clinicians",
            doctor.clone(),
            Some(json!({"facility_id": hub, "full_name": "BS Lê Thị C"})),
            201,
        )
        .await;
        let person = |name: &str| json!({"full_name": name, "date_of_birth": "1990-01-02", "sex": "male", "home_facility_id": hub});
        w.keyed(
            &app,
            "POST",
            "/api/v1/patients",
            "/api/v1/patients",
            person("Vàng A Dế"),
            Some(person("Vàng A Sử")),
            201,
        )
        .await;

        // Availability and bookings.
        let cast = Cast::create(&app).await;
        let rules = format!("/api/v1/clinicians/{}/availability/rules", cast.specialist);
        let rule = |weekday: i64| json!({"weekday": weekday, "start_time": "08:00:00", "end_time": "12:00:00", "slot_minutes": 30});
        w.keyed(
            &app,
            "POST",
            "/api/v1/clinicians/{id}/availability/rules",
            &rules,
            rule(2),
            Some(rule(3)),
            201,
        )
        .await;
        // A template for one clinician: one rule, so one event (a larger one has one per rule).
        let template =
            |weekday: i64| json!({"clinician_ids": [cast.specialist], "rules": [rule(weekday)]});
        w.keyed(
            &app,
            "POST",
            "/api/v1/facilities/{id}/availability/rules",
            &format!("/api/v1/facilities/{}/availability/rules", cast.hub),
            template(4),
            Some(template(6)),
            201,
        )
        .await;
        let exceptions = format!(
            "/api/v1/clinicians/{}/availability/exceptions",
            cast.specialist
        );
        let leave = |date: &str| json!({"date": date, "kind": "leave"});
        let exception_id = w
            .keyed(
                &app,
                "POST",
                "/api/v1/clinicians/{id}/availability/exceptions",
                &exceptions,
                leave("2027-03-01"),
                Some(leave("2027-03-02")),
                201,
            )
            .await
            .id();
        w.keyed(
            &app,
            "DELETE",
            "/api/v1/clinicians/{id}/availability/exceptions/{exception_id}",
            &format!("{exceptions}/{exception_id}"),
            json!({}),
            Some(json!({"other": true})),
            204,
        )
        .await;
        let day = next_weekday(2);
        let slots = app.free_slots(cast.specialist, day, day).await;
        let mut hold = cast.booking(slots[0]);
        hold["hold"] = json!(true);
        let held = w
            .keyed(
                &app,
                "POST",
                "/api/v1/consultations",
                "/api/v1/consultations",
                hold,
                Some(cast.booking(slots[1])),
                201,
            )
            .await
            .id();
        let on = |k: i64, rest: &str| format!("/api/v1/consultations/{k}/{rest}");
        for (template, rest, body, other) in [
            (
                "/api/v1/consultations/{id}/confirm",
                "confirm",
                json!({}),
                json!({"x": 1}),
            ),
            (
                "/api/v1/consultations/{id}/reschedule",
                "reschedule",
                json!({"start": slots[2].to_rfc3339(), "reason": "bệnh nhân bận"}),
                json!({"start": slots[3].to_rfc3339(), "reason": "bệnh nhân bận"}),
            ),
            (
                "/api/v1/consultations/{id}/cancel",
                "cancel",
                json!({"reason": "khỏi bệnh"}),
                json!({"reason": "chuyển viện"}),
            ),
        ] {
            w.keyed(
                &app,
                "POST",
                template,
                &on(held, rest),
                body,
                Some(other),
                200,
            )
            .await;
        }
        // Another rule, deleted (the first one keeps the bookings below possible).
        let spare_rule = app.post(&rules, rule(5)).await.expect(201).id();
        let later = |weekday: i64| json!({"weekday": weekday, "start_time": "13:00:00", "end_time": "15:00:00", "slot_minutes": 30});
        w.keyed(
            &app,
            "PUT",
            "/api/v1/clinicians/{id}/availability/rules/{rule_id}",
            &format!("{rules}/{spare_rule}"),
            later(5),
            Some(later(6)),
            200,
        )
        .await;
        w.keyed(
            &app,
            "DELETE",
            "/api/v1/clinicians/{id}/availability/rules/{rule_id}",
            &format!("{rules}/{spare_rule}"),
            json!({}),
            Some(json!({"other": true})),
            204,
        )
        .await;
        let now = cast.book_now(&app).await;
        for rest in ["start", "complete"] {
            w.keyed(
                &app,
                "POST",
                &format!("/api/v1/consultations/{{id}}/{rest}"),
                &on(now, rest),
                json!({}),
                Some(json!({"x": 1})),
                200,
            )
            .await;
        }
        let missed = app
            .post("/api/v1/consultations", cast.booking(slots[4]))
            .await
            .expect(201)
            .id();
        app.set_stored_time(
            "UPDATE consultations SET start_at = $1 WHERE id = $2",
            chrono::Utc::now() - chrono::Duration::minutes(30),
            missed,
        )
        .await;
        w.keyed(
            &app,
            "POST",
            "/api/v1/consultations/{id}/running-late",
            &on(missed, "running-late"),
            json!({"minutes": 15}),
            Some(json!({"minutes": 20})),
            200,
        )
        .await;
        w.keyed(
            &app,
            "POST",
            "/api/v1/consultations/{id}/no-show",
            &on(missed, "no-show"),
            json!({}),
            Some(json!({"x": 1})),
            200,
        )
        .await;

        // Accounts and their changes.
        let account = |name: &str| json!({"username": name, "display_name": name, "password": telehealth_tests::PASSWORD, "roles": []});
        let plain = w
            .keyed(
                &app,
                "POST",
                "/api/v1/accounts",
                "/api/v1/accounts",
                account("plain-1"),
                Some(account("plain-2")),
                201,
            )
            .await
            .id();
        let proposed = w
            .keyed(
                &app,
                "POST",
                "/api/v1/accounts/{id}/roles",
                &format!("/api/v1/accounts/{plain}/roles"),
                json!({"roles": [{"role": "scheduler", "facility_id": cast.hub}]}),
                Some(json!({"roles": [{"role": "administrator"}]})),
                202,
            )
            .await
            .id();
        let approver = app.second_admin();
        w.keyed(
            &approver,
            "POST",
            "/api/v1/account-changes/{id}/approve",
            &format!("/api/v1/account-changes/{proposed}/approve"),
            json!({}),
            Some(json!({"x": 1})),
            200,
        )
        .await;
        let linked = app
            .post(
                "/api/v1/accounts",
                json!({"username": "linked-1", "display_name": "linked", "clinician_id": cast.rural,
                       "roles": [{"role": "clinician"}]}),
            )
            .await
            .expect(202)
            .id();
        w.keyed(
            &approver,
            "POST",
            "/api/v1/account-changes/{id}/reject",
            &format!("/api/v1/account-changes/{linked}/reject"),
            json!({"reason": "sai người"}),
            Some(json!({"reason": "khác"})),
            200,
        )
        .await;
        // Taking roles away is immediate (200).
        w.keyed(
            &app,
            "POST",
            "/api/v1/accounts/{id}/roles",
            &format!("/api/v1/accounts/{plain}/roles"),
            json!({"roles": []}),
            Some(json!({"roles": [{"role": "patient"}]})),
            200,
        )
        .await;
        w.keyed(
            &app,
            "POST",
            "/api/v1/accounts/{id}/revoke-sessions",
            &format!("/api/v1/accounts/{plain}/revoke-sessions"),
            json!({}),
            Some(json!({"x": 1})),
            200,
        )
        .await;

        // Clinical writes: break-glass and notes, as clinicians.
        let rural = app
            .as_new_user("rural", &[("clinician", None)], None, Some(cast.rural))
            .await;
        let stranger = app.create_patient(None).await;
        w.keyed(
            &rural,
            "POST",
            "/api/v1/patients/{id}/break-glass",
            &format!("/api/v1/patients/{stranger}/break-glass"),
            json!({"reason": "cấp cứu, bệnh nhân bất tỉnh"}),
            Some(json!({"reason": "cấp cứu, không liên lạc được"})),
            201,
        )
        .await;
        let spec = app
            .as_new_user("spec", &[("clinician", None)], None, Some(cast.specialist))
            .await;
        let noted = app
            .post("/api/v1/consultations", cast.booking(slots[5]))
            .await
            .expect(201)
            .id();
        let content = json!({
            "subjective": "Đau ngực khi leo dốc, 2 tuần nay.",
            "objective": "HA 160/95 mmHg, mạch 88.",
            "assessment": "Tăng huyết áp độ 2.",
            "plan": "Amlodipin 5 mg/ngày.",
            "diagnoses": [{"code": "I10", "text": "Tăng huyết áp vô căn"}],
            "advice": "Theo dõi huyết áp hằng ngày.",
            "follow_up": "teleconsultation",
            "follow_up_note": "Hội chẩn lại sau 2 tuần"
        });
        w.keyed(
            &spec,
            "PUT",
            "/api/v1/consultations/{id}/note",
            &on(noted, "note"),
            json!({"version": 0, "content": content.clone()}),
            Some(json!({"version": 0, "content": {"assessment": "khác"}})),
            200,
        )
        .await;
        let signed = w
            .keyed(
                &spec,
                "POST",
                "/api/v1/consultations/{id}/note/sign",
                &on(noted, "note/sign"),
                json!({"version": 1}),
                Some(json!({"version": 2})),
                200,
            )
            .await;
        assert_eq!(signed.body["status"], "signed", "{}", signed.text);
        assert_eq!(signed.body["entries"].as_array().map(Vec::len), Some(1));
        w.keyed(
            &spec,
            "POST",
            "/api/v1/consultations/{id}/note/addenda",
            &on(noted, "note/addenda"),
            json!({"text": "Bổ sung: đã gọi lại"}),
            Some(json!({"text": "khác"})),
            201,
        )
        .await;

        // Passkeys: the rural clinician enrols one and signs an addendum with it; the specialist,
        // with one too, asks to sign another consultation's draft.
        let origin =
            url::Url::parse(&format!("http://localhost:{}", app.addr().port())).expect("origin");
        let mut key = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true);
        let start = w
            .keyed(
                &rural,
                "POST",
                "/api/v1/me/passkeys/registration",
                "/api/v1/me/passkeys/registration",
                json!({}),
                Some(json!({"x": 1})),
                201,
            )
            .await;
        let credential = webauthn_authenticator_rs::WebauthnAuthenticator::do_registration(
            &mut key,
            origin.clone(),
            serde_json::from_value(start.body["options"].clone()).expect("options"),
        )
        .expect("a credential");
        let finish = json!({"ceremony_id": start.body["ceremony_id"], "name": "phone", "credential": credential});
        let mut other = finish.clone();
        other["name"] = json!("key");
        w.keyed(
            &rural,
            "POST",
            "/api/v1/me/passkeys",
            "/api/v1/me/passkeys",
            finish,
            Some(other),
            201,
        )
        .await;
        let challenge = w
            .keyed(
                &rural,
                "POST",
                "/api/v1/consultations/{id}/note/addenda/challenge",
                &on(noted, "note/addenda/challenge"),
                json!({"text": "Bổ sung: đã hẹn tái khám"}),
                Some(json!({"text": "khác"})),
                201,
            )
            .await;
        let assertion = webauthn_authenticator_rs::WebauthnAuthenticator::do_authentication(
            &mut key,
            origin.clone(),
            serde_json::from_value(challenge.body["options"].clone()).expect("options"),
        )
        .expect("an assertion");
        let by_passkey = w
            .keyed(
                &rural,
                "POST",
                "/api/v1/consultations/{id}/note/addenda",
                &on(noted, "note/addenda"),
                json!({"text": "Bổ sung: đã hẹn tái khám", "passkey": {
                    "ceremony_id": challenge.body["ceremony_id"], "credential": assertion}}),
                Some(json!({"text": "khác"})),
                201,
            )
            .await;
        assert_eq!(
            by_passkey.body["signed_with"], "passkey",
            "{}",
            by_passkey.text
        );
        let mut spec_key = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true);
        let start = spec
            .post("/api/v1/me/passkeys/registration", json!({}))
            .await
            .expect(201);
        let credential = webauthn_authenticator_rs::WebauthnAuthenticator::do_registration(
            &mut spec_key,
            origin,
            serde_json::from_value(start.body["options"].clone()).expect("options"),
        )
        .expect("a credential");
        spec.post(
            "/api/v1/me/passkeys",
            json!({"ceremony_id": start.body["ceremony_id"], "name": "phone", "credential": credential}),
        )
        .await
        .expect(201);
        let drafted = app
            .post("/api/v1/consultations", cast.booking(slots[6]))
            .await
            .expect(201)
            .id();
        spec.put(
            &on(drafted, "note"),
            json!({"version": 0, "content": content}),
        )
        .await
        .expect(200);
        w.keyed(
            &spec,
            "POST",
            "/api/v1/consultations/{id}/note/sign/challenge",
            &on(drafted, "note/sign/challenge"),
            json!({"version": 1}),
            Some(json!({"version": 2})),
            201,
        )
        .await;

        // Credentials: journaled, never stored as answers.
        let link = w
            .unkeyed(
                &app,
                "/api/v1/consultations/{id}/visit-link",
                &on(noted, "visit-link"),
                json!({}),
                201,
            )
            .await;
        assert_eq!(
            app.scalar("SELECT COUNT(*) FROM idempotency_keys WHERE body LIKE '%/visit#%' OR body LIKE '%\"token\"%'")
                .await,
            0,
            "no credential is stored as an answer"
        );
        let token = link.body["token"].as_str().expect("a visit token");
        w.unkeyed(
            &app.anonymous(),
            "/api/v1/auth/visit",
            "/api/v1/auth/visit",
            json!({"token": token, "date_of_birth": telehealth_tests::PATIENT_BIRTH_DATE}),
            200,
        )
        .await;
        w.keyed(
            &app,
            "POST",
            "/api/v1/consultations/{id}/visit-links/revoke",
            &on(noted, "visit-links/revoke"),
            json!({}),
            Some(json!({"x": 1})),
            200,
        )
        .await;
        // Notifications: a patient's contact preferences, a resend, a clinician's calendar feed.
        w.keyed(
            &app,
            "PUT",
            "/api/v1/patients/{id}/contact-preferences",
            &format!("/api/v1/patients/{}/contact-preferences", cast.patient),
            json!({"consent": true, "channel": "sms", "language": "vi"}),
            Some(json!({"consent": false, "channel": "none", "language": "vi"})),
            200,
        )
        .await;
        let dead = {
            let mut c = app.db().acquire().await.expect("a connection");
            let now = chrono::Utc::now();
            telehealth::outbox::store::insert(
                c.conn(),
                &telehealth::outbox::store::NewMessage {
                    idempotency_key: "msg_journal_dead".into(),
                    kind: "consultation.booked",
                    consultation_id: Some(noted),
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
            let id = telehealth::outbox::store::list(c.conn(), Some(noted))
                .await
                .expect("the outbox")[0]
                .id;
            app.exec("UPDATE outbox_messages SET status = 'dead', attempts = 10")
                .await;
            id
        };
        w.keyed(
            &app,
            "POST",
            "/api/v1/outbox/messages/{id}/resend",
            &format!("/api/v1/outbox/messages/{dead}/resend"),
            json!({}),
            Some(json!({"x": 1})),
            200,
        )
        .await;
        let feed_clinician = app.create_clinician(cast.hub, &["cardiology"]).await;
        let feed_maker = app
            .as_new_user("feeds", &[("clinician", None)], None, Some(feed_clinician))
            .await;
        w.keyed(
            &feed_maker,
            "POST",
            "/api/v1/me/calendar-feed",
            "/api/v1/me/calendar-feed",
            json!({}),
            Some(json!({"with_patient_names": true})),
            201,
        )
        .await;
        w.keyed(
            &feed_maker,
            "PUT",
            "/api/v1/me/contact-preferences",
            "/api/v1/me/contact-preferences",
            json!({"channel": "sms", "language": "vi", "phone": "0912 345 678"}),
            Some(json!({"channel": "none", "language": "en"})),
            200,
        )
        .await;
        w.keyed(
            &feed_maker,
            "POST",
            "/api/v1/me/calendar-feed/revoke",
            "/api/v1/me/calendar-feed/revoke",
            json!({}),
            Some(json!({"x": 1})),
            200,
        )
        .await;

        let session = w
            .unkeyed(
                &app.anonymous(),
                "/api/v1/auth/login",
                "/api/v1/auth/login",
                json!({"username": "spec", "password": telehealth_tests::PASSWORD}),
                200,
            )
            .await;
        let signed_in = app.as_token(session.body["token"].as_str().expect("a session token"));
        // Signing out with a key: the answer is stored, but the replay cannot be asked for, since
        // the session it came from has ended.
        let events = app.scalar(CHANGE_EVENTS).await;
        signed_in
            .send(
                signed_in
                    .http
                    .post(signed_in.url("/api/v1/auth/logout"))
                    .header("Idempotency-Key", w.key())
                    .json(&json!({})),
            )
            .await
            .expect(204);
        assert_eq!(app.scalar(CHANGE_EVENTS).await - events, 1);
        w.covered.insert("POST /api/v1/auth/logout".into());

        // Every journaled route was driven, and none answered without journaling.
        let missing: Vec<_> = journaled_routes().difference(&w.covered).cloned().collect();
        assert!(
            missing.is_empty(),
            "write routes this test does not drive: {missing:?}"
        );
        let metrics = scrape(&app).await;
        for route in journaled_routes() {
            let path = route.split_once(' ').map(|(_, p)| p).unwrap_or_default();
            let line = format!("api_unjournaled_writes_total{{route=\"{path}\"}} 0");
            assert!(
                metrics.lines().any(|l| l == line),
                "{route}: expected `{line}` in\n{}",
                metrics
                    .lines()
                    .filter(|l| l.starts_with("api_unjournaled"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        let verified = telehealth::audit::verify(app.db()).await.expect("verify");
        assert_eq!(verified.first_broken, None);
    }
);

both_engines!(
    no_route_family_makes_a_change_whose_event_cannot_be_staged,
    |app: TestApp| async move {
        // A world to write in, made before staging is blocked.
        let cast = Cast::create(&app).await;
        let rules = format!("/api/v1/clinicians/{}/availability/rules", cast.specialist);
        app.post(
            &rules,
            json!({"weekday": 2, "start_time": "08:00:00", "end_time": "12:00:00", "slot_minutes": 30}),
        )
        .await
        .expect(201);
        // A rule nobody is booked in, for the deletion (one with bookings is refused anyway).
        let spare_rule = app
            .post(
                &rules,
                json!({"weekday": 4, "start_time": "08:00:00", "end_time": "09:00:00", "slot_minutes": 30}),
            )
            .await
            .expect(201)
            .id();
        let day = next_weekday(2);
        let slots = app.free_slots(cast.specialist, day, day).await;
        let k = app
            .post("/api/v1/consultations", cast.booking(slots[0]))
            .await
            .expect(201)
            .id();
        let plain = app
            .post(
                "/api/v1/accounts",
                json!({"username": "plain-f", "display_name": "plain", "password": telehealth_tests::PASSWORD, "roles": []}),
            )
            .await
            .expect(201)
            .id();
        let change = app
            .post(
                &format!("/api/v1/accounts/{plain}/roles"),
                json!({"roles": [{"role": "administrator"}]}),
            )
            .await
            .expect(202)
            .id();
        let rural = app
            .as_new_user("rural", &[("clinician", None)], None, Some(cast.rural))
            .await;
        let spec = app
            .as_new_user("spec", &[("clinician", None)], None, Some(cast.specialist))
            .await;
        let stranger = app.create_patient(None).await;
        // The patient has an account: a visit link's first use makes one on its own (it is the
        // patient's identity, not the visit).
        app.as_new_user("pat", &[("patient", None)], Some(cast.patient), None)
            .await;
        let link = app
            .post(&format!("/api/v1/consultations/{k}/visit-link"), json!({}))
            .await
            .expect(201);
        let token = link.body["token"]
            .as_str()
            .expect("a visit token")
            .to_string();
        let spare = app
            .post(
                "/api/v1/accounts",
                json!({"username": "plain-g", "display_name": "plain", "password": telehealth_tests::PASSWORD, "roles": []}),
            )
            .await
            .expect(201)
            .id();
        let signed_in = app.as_token(&app.login("plain-g", telehealth_tests::PASSWORD).await);

        block_staging(&app).await;
        let before = written_rows(&app).await;
        let on = |rest: &str| format!("/api/v1/consultations/{k}/{rest}");
        let (approver, anonymous) = (app.second_admin(), app.anonymous());
        let attempts: Vec<(&TestApp, &str, String, Value)> = vec![
            (
                &app,
                "POST",
                "/api/v1/specialties".into(),
                json!({"code": "neuro_f", "name_en": "N", "name_vi": "N"}),
            ),
            (
                &app,
                "POST",
                "/api/v1/patients".into(),
                json!({"full_name": "A", "date_of_birth": "1990-01-02", "sex": "male"}),
            ),
            (
                &app,
                "POST",
                rules.clone(),
                json!({"weekday": 3, "start_time": "08:00:00", "end_time": "09:00:00", "slot_minutes": 30}),
            ),
            (&app, "DELETE", format!("{rules}/{spare_rule}"), json!({})),
            (
                &app,
                "POST",
                "/api/v1/consultations".into(),
                cast.booking(slots[1]),
            ),
            (&app, "POST", on("cancel"), json!({"reason": "khỏi bệnh"})),
            (
                &app,
                "POST",
                "/api/v1/accounts".into(),
                json!({"username": "plain-h", "display_name": "p", "roles": []}),
            ),
            (
                &app,
                "POST",
                format!("/api/v1/accounts/{spare}/roles"),
                json!({"roles": [{"role": "scheduler", "facility_id": cast.hub}]}),
            ),
            (
                &app,
                "POST",
                format!("/api/v1/accounts/{spare}/revoke-sessions"),
                json!({}),
            ),
            (
                &approver,
                "POST",
                format!("/api/v1/account-changes/{change}/approve"),
                json!({}),
            ),
            (
                &rural,
                "POST",
                format!("/api/v1/patients/{stranger}/break-glass"),
                json!({"reason": "cấp cứu, bệnh nhân bất tỉnh"}),
            ),
            (
                &spec,
                "PUT",
                on("note"),
                json!({"version": 0, "content": {"assessment": "Tăng huyết áp"}}),
            ),
            (&app, "POST", on("visit-link"), json!({})),
            (
                &anonymous,
                "POST",
                "/api/v1/auth/visit".into(),
                json!({"token": token, "date_of_birth": telehealth_tests::PATIENT_BIRTH_DATE}),
            ),
            (
                &anonymous,
                "POST",
                "/api/v1/auth/login".into(),
                json!({"username": "spec", "password": telehealth_tests::PASSWORD}),
            ),
            (&signed_in, "POST", "/api/v1/auth/logout".into(), json!({})),
        ];
        for (caller, method, path, body) in attempts {
            let method_ = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
            let req = caller.http.request(method_, caller.url(&path)).json(&body);
            let req = match &caller.token {
                Some(t) => req.bearer_auth(t),
                None => req,
            };
            let reply = caller.send_any(req).await;
            assert!(
                reply.status >= 500,
                "{method} {path} is refused when its event cannot be staged: {} {}",
                reply.status,
                reply.text
            );
            assert_eq!(
                written_rows(&app).await,
                before,
                "{method} {path}: no change without its event"
            );
        }
    }
);
