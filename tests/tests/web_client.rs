//! The web client's files as the server serves them: the entry page for the client's routes,
//! versioned files cached for ever, revalidation with ETags, gzip, and the server's own paths
//! never swallowed by the client's fallback. (What the client does is tested in a real browser:
//! `tests/e2e/`.)

use telehealth_tests::{Engine, TestApp};

fn header<'a>(r: &'a telehealth_tests::Reply, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_client_is_served_with_caching_and_a_fallback_for_its_routes() {
    let app = TestApp::spawn(Engine::Sqlite).await;

    let index = app.get("/").await.expect(200);
    assert!(header(&index, "content-type").starts_with("text/html"));
    assert_eq!(header(&index, "cache-control"), "no-cache");
    assert!(
        header(&index, "content-security-policy").contains("script-src 'self'"),
        "the client's page carries the strict policy"
    );
    // The page names its build; no placeholder is left.
    assert!(!index.text.contains("__BUILD__"), "{}", index.text);
    let start = index.text.find("/v/").expect("versioned asset URLs") + 3;
    let build: String = index.text[start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    assert_eq!(build.len(), 16, "{}", index.text);
    // No inline script or style: the policy would block them.
    assert!(!index.text.contains("<script>") && !index.text.contains("<style"));
    assert!(!index.text.contains(" style="));

    // The client's own routes get the same page.
    for route in [
        "/visit",
        "/book",
        "/call/12",
        "/index.html",
        "/signin",
        "/schedule/availability",
        "/consultations/7",
    ] {
        let r = app.get(route).await.expect(200);
        assert_eq!(r.text, index.text, "{route}");
    }
    // Paths that are not the client's are not answered with its page.
    for path in ["/etc/passwd", "/no/such/page", "/wp-admin"] {
        app.get(path).await.expect(404);
    }

    // Revalidation: the ETag answers 304 with no body.
    let etag = header(&index, "etag").to_string();
    assert!(etag.starts_with('"'));
    let r = app
        .send(app.http.get(app.url("/")).header("if-none-match", &etag))
        .await
        .expect(304);
    assert!(r.text.is_empty());

    // Versioned files are immutable under the current build, revalidated under any other.
    let js = app.get(&format!("/v/{build}/js/app.js")).await.expect(200);
    assert!(header(&js, "content-type").starts_with("application/javascript"));
    assert_eq!(
        header(&js, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let css = app.get(&format!("/v/{build}/app.css")).await.expect(200);
    assert!(header(&css, "content-type").starts_with("text/css"));
    let old = app.get("/v/0000000000000000/app.css").await.expect(200);
    assert_eq!(header(&old, "cache-control"), "no-cache");
    let plain = app.get("/app.css").await.expect(200);
    assert_eq!(header(&plain, "cache-control"), "no-cache");
    assert_eq!(plain.text, css.text);

    // gzip when asked for, identity otherwise.
    let r = app
        .send(app.http.get(app.url("/")).header("accept-encoding", "gzip"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "content-encoding"), "gzip");
    assert!(header(&r, "vary").contains("accept-encoding"));

    // Missing files are 404, and the server's own paths never fall back to the page.
    for path in [
        "/missing.js",
        "/v/whatever/missing.js",
        "/v/whatever/index.html",
        "/api/v2/anything",
        "/signaling/x",
        "/metrics/x",
        "/healthz/x",
    ] {
        let r = app.get(path).await;
        assert_eq!((r.status, r.error_code()), (404, "not_found"), "{path}");
    }
}
