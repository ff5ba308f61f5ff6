//! Booking on the write journal (issue 12, finding 3): a booking, a hold and every transition
//! commit with their audit event or not at all, and a retry with the same `Idempotency-Key` gets
//! its first answer instead of colliding with its own booking. On both engines, and on
//! PostgreSQL both ways a booking is written: one statement without a key, a transaction with one.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use telehealth_tests::{Cast, Engine, Reply, TestApp, both_engines, next_weekday};

/// Makes every staging of an audit event fail, so a write that needs one cannot commit.
async fn block_staging(app: &TestApp) {
    app.exec(match app.engine {
        Engine::Sqlite => {
            "CREATE TRIGGER block_stage BEFORE INSERT ON audit_pending
             BEGIN SELECT RAISE(ABORT, 'staging blocked by the test'); END;"
        }
        Engine::Postgres => {
            "CREATE FUNCTION block_stage() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'staging blocked by the test'; END $$;
             CREATE TRIGGER block_stage BEFORE INSERT ON audit_pending
             FOR EACH ROW EXECUTE FUNCTION block_stage();"
        }
    })
    .await;
}

/// Makes every append to the chain fail, so staged events stay in `audit_pending` to be read.
async fn block_chain(app: &TestApp) {
    app.exec(match app.engine {
        Engine::Sqlite => {
            "CREATE TRIGGER block_chain BEFORE INSERT ON audit_events
             BEGIN SELECT RAISE(ABORT, 'chain blocked by the test'); END;"
        }
        Engine::Postgres => {
            "CREATE FUNCTION block_chain() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'chain blocked by the test'; END $$;
             CREATE TRIGGER block_chain BEFORE INSERT ON audit_events
             FOR EACH ROW EXECUTE FUNCTION block_chain();"
        }
    })
    .await;
}

/// `POST path` with `body`, letting a 5xx through.
async fn post_any(app: &TestApp, path: &str, body: &Value) -> Reply {
    app.send_any(
        app.http
            .post(app.url(path))
            .bearer_auth(app.token.clone().unwrap_or_default())
            .json(body),
    )
    .await
}

async fn post_with_key(app: &TestApp, path: &str, key: &str, body: &Value) -> Reply {
    app.send(
        app.http
            .post(app.url(path))
            .header("Idempotency-Key", key)
            .json(body),
    )
    .await
}

async fn cast_with_slots(app: &TestApp) -> (Cast, Vec<DateTime<Utc>>) {
    let cast = Cast::create(app).await;
    app.add_daily_rule(cast.specialist, "08:00:00", "10:00:00", 30, 0)
        .await;
    let day = next_weekday(3);
    let slots = app.free_slots(cast.specialist, day, day).await;
    assert_eq!(slots.len(), 4);
    (cast, slots)
}

fn held(cast: &Cast, start: DateTime<Utc>) -> Value {
    let mut body = cast.booking(start);
    body["hold"] = json!(true);
    body
}

both_engines!(
    a_booking_commits_with_its_audit_event_or_not_at_all,
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        // The chain refuses appends: the booking's event must wait, staged with it.
        block_chain(&app).await;
        let booked = post_any(&app, "/api/v1/consultations", &cast.booking(slots[0])).await;
        assert_eq!(booked.status, 201, "{}", booked.text);
        let hold = post_any(&app, "/api/v1/consultations", &held(&cast, slots[1])).await;
        assert_eq!(hold.status, 201, "{}", hold.text);
        let staged = app
            .scalar(
                "SELECT COUNT(*) FROM audit_pending
                 WHERE action = 'POST /api/v1/consultations' AND outcome = 'allowed'
                   AND record_type = 'consultation' AND patient_id = 1
                   AND record_id IN ('1', '2')",
            )
            .await;
        assert_eq!(staged, 2, "each booking's event, naming it and its patient");
        let confirmed = post_any(
            &app,
            &format!("/api/v1/consultations/{}/confirm", hold.id()),
            &json!({}),
        )
        .await;
        assert_eq!(confirmed.status, 200, "{}", confirmed.text);
        assert_eq!(
            app.scalar("SELECT COUNT(*) FROM audit_pending WHERE record_id = '2'")
                .await,
            2,
            "the confirm's event too"
        );
    }
);

both_engines!(
    no_booking_or_transition_commits_without_its_audit_event,
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        let hold = app
            .post("/api/v1/consultations", held(&cast, slots[1]))
            .await
            .expect(201)
            .id();
        block_staging(&app).await;
        let before = app.snapshot().await;
        // A booking (one statement on PostgreSQL), a hold (a transaction) and each kind of
        // change: refused, and nothing of them written.
        let booked = post_any(&app, "/api/v1/consultations", &cast.booking(slots[0])).await;
        assert!(booked.status >= 500, "{} {}", booked.status, booked.text);
        let other = post_any(&app, "/api/v1/consultations", &held(&cast, slots[2])).await;
        assert!(other.status >= 500, "{} {}", other.status, other.text);
        for (path, body) in [
            (format!("/api/v1/consultations/{hold}/confirm"), json!({})),
            (
                format!("/api/v1/consultations/{hold}/reschedule"),
                json!({"start": slots[3].to_rfc3339(), "reason": "Đổi giờ"}),
            ),
            (
                format!("/api/v1/consultations/{hold}/cancel"),
                json!({"reason": "Hủy"}),
            ),
        ] {
            let changed = post_any(&app, &path, &body).await;
            assert!(
                changed.status >= 500,
                "{path}: {} {}",
                changed.status,
                changed.text
            );
        }
        assert_eq!(app.snapshot().await, before, "nothing was written");
        let still = app
            .get(&format!("/api/v1/consultations/{hold}"))
            .await
            .expect(200);
        assert_eq!(still.body["status"], "held");
        assert_eq!(still.body["start_at"], json!(slots[1]));
    }
);

both_engines!(
    a_booking_retried_with_its_key_gets_its_own_booking_back,
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        let body = cast.booking(slots[0]);
        let first = post_with_key(&app, "/api/v1/consultations", "book-1", &body)
            .await
            .expect(201);
        // The client never heard back (a crash, a lost connection) and sends it again: its own
        // booking, not 409 slot_taken.
        let again = post_with_key(&app, "/api/v1/consultations", "book-1", &body)
            .await
            .expect(201);
        assert_eq!(first.body, again.body);
        assert_eq!(app.count("consultations").await, 1);
        // The same key for another booking is refused; a new key books anew.
        let other = post_with_key(
            &app,
            "/api/v1/consultations",
            "book-1",
            &cast.booking(slots[1]),
        )
        .await
        .expect(422);
        assert_eq!(other.error_code(), "idempotency_key_reused");
        let hold = post_with_key(
            &app,
            "/api/v1/consultations",
            "hold-1",
            &held(&cast, slots[1]),
        )
        .await
        .expect(201);
        let hold_again = post_with_key(
            &app,
            "/api/v1/consultations",
            "hold-1",
            &held(&cast, slots[1]),
        )
        .await
        .expect(201);
        assert_eq!(hold.body, hold_again.body);
        assert_eq!(app.count("consultations").await, 2);
        let verified = telehealth::audit::verify(app.db()).await.expect("verify");
        assert_eq!(verified.first_broken, None);
    }
);

both_engines!(
    transitions_retried_with_their_key_get_their_first_answer,
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        let hold = app
            .post("/api/v1/consultations", held(&cast, slots[0]))
            .await
            .expect(201)
            .id();
        let steps = [
            (format!("/api/v1/consultations/{hold}/confirm"), json!({})),
            (
                format!("/api/v1/consultations/{hold}/reschedule"),
                json!({"start": slots[2].to_rfc3339(), "reason": "Đổi giờ"}),
            ),
            (
                format!("/api/v1/consultations/{hold}/cancel"),
                json!({"reason": "Hủy"}),
            ),
        ];
        for (n, (path, body)) in steps.iter().enumerate() {
            let key = format!("step-{n}");
            let first = post_with_key(&app, path, &key, body).await.expect(200);
            // Sent again without the key, the confirm and the cancel would be refused (409) and
            // the reschedule made twice; with it, the first answer, and nothing more written.
            let again = post_with_key(&app, path, &key, body).await.expect(200);
            assert_eq!(first.body, again.body, "{path}");
        }
        let events = app
            .get(&format!("/api/v1/consultations/{hold}"))
            .await
            .expect(200)
            .body["events"]
            .as_array()
            .map(|e| e.len())
            .unwrap_or_default();
        assert_eq!(events, 4, "held, confirm, reschedule, cancel: once each");
    }
);
