//! What an operator relies on: health and readiness, metrics, request ids, the OpenAPI document,
//! the demo seeding, the command line, and files that only the server's own user can read.

use serde_json::json;
use telehealth::config::Secret;
use telehealth::demo::seed::{self, DemoSize};
use telehealth_tests::{Engine, TestApp, both_engines};

both_engines!(
    health_readiness_metrics_and_request_ids,
    |app: TestApp| async move {
        let r = app.get("/healthz").await.expect(200);
        assert_eq!(r.body["status"], "ok");
        let r = app.get("/readyz").await.expect(200);
        assert_eq!(r.body["status"], "ready");
        // Every response carries a request id; a plain client id is kept, a hostile one replaced.
        let id = r
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(id.len(), 36, "generated request id: {id:?}");
        let r = app
            .send(
                app.http
                    .get(app.url("/api/v1/specialties"))
                    .header("x-request-id", "trace-42"),
            )
            .await
            .expect(200);
        assert_eq!(r.headers["x-request-id"], "trace-42");
        let r = app
            .send(
                app.http
                    .get(app.url("/healthz"))
                    .header("x-request-id", "a b\"c"),
            )
            .await;
        assert_ne!(r.headers["x-request-id"], "a b\"c");
        // Metrics need their token or address: see metrics_are_served_only_with_their_token.
        // The web client is served; unknown files are 404 (its routes: tests/tests/web_client.rs).
        let page = app.get("/").await.expect(200);
        assert!(page.text.contains("<html"));
        let r = app.get("/no/such/file.js").await;
        assert_eq!((r.status, r.error_code()), (404, "not_found"));
    }
);

both_engines!(openapi_documents_every_route, |app: TestApp| async move {
    let doc = app.get("/api/v1/openapi.json").await.expect(200).body;
    assert!(doc["openapi"].as_str().unwrap_or("").starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 20);
    // Every documented operation is routed: none answers "no route" or "method not allowed".
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "1")
            .replace("{rule_id}", "1")
            .replace("{exception_id}", "1");
        for method in item.as_object().expect("operations").keys() {
            let req = match method.as_str() {
                "get" => app.http.get(app.url(&concrete)),
                "post" => app.http.post(app.url(&concrete)).json(&json!({})),
                "delete" => app.http.delete(app.url(&concrete)),
                _ => continue,
            };
            let r = app.send(req).await;
            let code = r.body["error"]["code"].as_str().unwrap_or("");
            assert!(
                code != "no_route" && code != "method_not_allowed",
                "{method} {path} is documented but not routed"
            );
        }
    }
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_database_is_unreachable() {
    let app = TestApp::spawn(Engine::Postgres).await;
    app.get("/readyz").await.expect(200);
    // Drop the database from under the running server. Readiness keeps its answer for a second.
    app.drop_database().await;
    let r = telehealth_tests::eventually("/readyz answers 503", || async {
        let r = app.send_any(app.http.get(app.url("/readyz"))).await;
        (r.status != 200).then_some(r)
    })
    .await;
    assert_eq!((r.status, r.error_code()), (503, "not_ready"));
    assert!(r.headers.contains_key("retry-after"));
    let r = app
        .send_any(app.http.get(app.url("/api/v1/specialties")))
        .await;
    assert_eq!((r.status, r.error_code()), (503, "unavailable"));
    // Liveness is unaffected.
    app.get("/healthz").await.expect(200);
}

both_engines!(demo_seed_is_idempotent, |app: TestApp| async move {
    let size = DemoSize {
        care_centres: 40,
        patients_per_centre: 2,
    };
    let first = seed::seed(app.db(), size, false).await.expect("first seed");
    assert!(first.created);
    assert_eq!(first.facilities, 48);
    assert_eq!(first.patients, 80);
    assert!(first.consultations_on_demo_day > 0);
    let snapshot = app.snapshot().await;
    let second = seed::seed(app.db(), size, false)
        .await
        .expect("second seed");
    assert!(!second.created);
    assert_eq!(
        app.snapshot().await,
        snapshot,
        "seeding twice duplicated rows"
    );
    // The seeded network answers real questions.
    let hubs = app
        .get("/api/v1/facilities?kind=hub_hospital")
        .await
        .expect(200);
    assert_eq!(hubs.body.as_array().map(Vec::len), Some(8));
    let hub = hubs.body[0]["id"].as_i64().expect("hub id");
    let cal = app
        .get(&format!(
            "/api/v1/facilities/{hub}/calendar?date={}",
            first.demo_day
        ))
        .await
        .expect(200);
    let booked = cal.body["clinicians"]
        .as_array()
        .expect("clinicians")
        .iter()
        .flat_map(|c| {
            c["days"][0]["entries"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|e| e["state"] != "free")
        .count();
    assert!(booked > 0, "the demo day at the first hub has bookings");
    // The seed folds the names it writes: a patient is found by name typed without diacritics.
    assert_eq!(
        app.scalar("SELECT COUNT(*) FROM patients WHERE search_name IS NULL")
            .await,
        0
    );
    let booking = cal.body["clinicians"]
        .as_array()
        .expect("clinicians")
        .iter()
        .filter_map(|c| c["days"][0]["entries"].as_array())
        .flatten()
        .find_map(|e| e["booking"].as_object())
        .cloned()
        .expect("a booking");
    let typed = telehealth::domain::text::fold_for_search(
        booking["patient_name"].as_str().expect("patient name"),
    );
    let day = first.demo_day.to_string();
    let found = app
        .send(
            app.http
                .get(app.url(&format!("/api/v1/facilities/{hub}/bookings")))
                .query(&[("q", typed.as_str()), ("from", &day), ("to", &day)]),
        )
        .await
        .expect(200);
    assert!(
        found.body["bookings"]
            .as_array()
            .expect("bookings")
            .iter()
            .any(|b| b["id"] == booking["id"]),
        "{typed:?}: {}",
        found.text
    );
    let slots = app
        .get("/api/v1/slots?specialty=cardiology")
        .await
        .expect(200);
    assert!(!slots.body["slots"].as_array().expect("slots").is_empty());
});

const METRICS_TOKEN: &str = "scrape-3f9c2a7d41b8e650";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_only_with_their_token() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.metrics_token = Some(Secret::new(METRICS_TOKEN));
    })
    .await;
    app.get("/api/v1/specialties").await.expect(200);
    // No token, a wrong one, and a signed-in administrator's session are all refused.
    let scrape = |token: Option<&str>| {
        let req = app.http.get(app.url("/metrics"));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    };
    let root_session = app.token.clone().expect("root is signed in");
    for token in [None, Some("scrape-wrong"), Some(root_session.as_str())] {
        let r = app.send_any(scrape(token)).await;
        assert_eq!(
            (r.status, r.error_code()),
            (401, "metrics_token_required"),
            "{token:?}"
        );
        assert!(!r.text.contains("http_api_requests"), "{}", r.text);
        assert!(r.headers.contains_key("www-authenticate"));
    }
    // Metrics count API requests by route template.
    let r = app.send_any(scrape(Some(METRICS_TOKEN))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("http_api_requests_total"), "{}", r.text);
    assert!(r.text.contains("route=\"/api/v1/specialties\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_have_an_address_of_their_own() {
    let app = TestApp::spawn_with(Engine::Sqlite, |s| {
        s.metrics_listen = Some("127.0.0.1:0".parse().expect("literal address"));
    })
    .await;
    app.get("/api/v1/specialties").await.expect(200);
    // Not on the public port, not even for an administrator.
    let r = app.get("/metrics").await;
    assert_eq!((r.status, r.error_code()), (404, "not_found"));
    assert!(!r.text.contains("http_api_requests"));
    let metrics = app.metrics_addr().expect("a metrics address");
    let r = app
        .send_any(app.http.get(format!("http://{metrics}/metrics")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("http_api_requests_total"), "{}", r.text);
    // That address serves nothing else.
    let r = app
        .send_any(app.http.get(format!("http://{metrics}/api/v1/specialties")))
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_until_configured() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    app.get("/api/v1/specialties").await.expect(200);
    for r in [
        app.get("/metrics").await,
        app.anonymous().get("/metrics").await,
    ] {
        assert_eq!((r.status, r.error_code()), (404, "not_found"));
        assert!(!r.text.contains("http_api_requests"));
        // The operator is told how to turn them on.
        assert!(r.text.contains("metrics_token"), "{}", r.text);
    }
}

/// Starts the server on a data directory that does not exist yet (with a self-signed
/// certificate, and on SQLite the embedded database there) and checks that the directory and
/// every secret or health-data file in it are its owner's only, under the usual umask 022.
#[cfg(unix)]
async fn fresh_data_directory_is_private(engine: Engine) {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn_with(engine, |s| {
        s.data_dir = s.data_dir.join("fresh");
        if engine == Engine::Sqlite {
            s.database_url = None;
        }
        s.tls_self_signed = true;
    })
    .await;
    let data_dir = &app.settings().data_dir;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(data_dir), 0o700, "the data directory");
    assert_eq!(mode(&data_dir.join("tls")), 0o700, "the TLS directory");
    let mut private = vec![
        data_dir.join("visit-link.key"),
        data_dir.join("tls").join("key.pem"),
    ];
    if engine == Engine::Sqlite {
        // The pool is open and migrations have written: the WAL and its index exist.
        for name in ["telehealth.db", "telehealth.db-wal", "telehealth.db-shm"] {
            private.push(data_dir.join(name));
        }
    }
    for file in private {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[cfg(unix)]
both_engines!(
    fresh_data_directory_is_private,
    engine = fresh_data_directory_is_private
);
