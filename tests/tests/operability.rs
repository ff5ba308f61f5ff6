//! What an operator relies on: health and readiness, metrics, request ids, the OpenAPI document,
//! the demo seeding, and the command line.

use serde_json::json;
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
        // Metrics count API requests by route template.
        app.get("/api/v1/specialties").await.expect(200);
        let metrics = app.get("/metrics").await.expect(200);
        assert!(
            metrics.text.contains("http_api_requests_total"),
            "{}",
            metrics.text
        );
        assert!(metrics.text.contains("route=\"/api/v1/specialties\""));
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
    // Drop the database from under the running server.
    app.finish_database_only().await;
    let r = app.send_any(app.http.get(app.url("/readyz"))).await;
    assert_eq!((r.status, r.error_code()), (503, "not_ready"));
    let r = app
        .send_any(app.http.get(app.url("/api/v1/specialties")))
        .await;
    assert_eq!((r.status, r.error_code()), (503, "unavailable"));
    // Liveness is unaffected.
    app.get("/healthz").await.expect(200);
    app.finish().await;
}

async fn demo_twice(engine: Engine) {
    let app = TestApp::spawn(engine).await;
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
    let slots = app
        .get("/api/v1/slots?specialty=cardiology")
        .await
        .expect(200);
    assert!(!slots.body["slots"].as_array().expect("slots").is_empty());
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_seed_is_idempotent_on_sqlite() {
    demo_twice(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_seed_is_idempotent_on_postgres() {
    demo_twice(Engine::Postgres).await;
}
