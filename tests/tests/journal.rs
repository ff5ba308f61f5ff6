//! The write journal: a write's audit event commits with it, and a request sent with an
//! `Idempotency-Key` gets its first answer again, on both engines.

use serde_json::{Value, json};
use telehealth_tests::{TestApp, both_engines};

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
