//! HTTPS and the connection edge: the server behind rustls with its self-signed development
//! certificate, the security headers on every response, and the limits on request heads.
//!
//! The harness client speaks plain HTTP (reqwest's TLS would add a second crypto provider), so
//! HTTPS requests here go through a rustls client that trusts only the generated certificate,
//! with hyper's HTTP/1.1 client connection on top.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use telehealth::config::Settings;
use telehealth::http::{ServeOptions, serve};
use telehealth::startup::{Application, StartupError};
use telehealth::tls::{self, TlsError};
use telehealth_tests::{Engine, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use warp::Filter;

const HTTP11: &[&[u8]] = &[b"http/1.1"];

/// A server with a self-signed certificate, which it makes in its data directory.
async fn spawn_tls() -> TestApp {
    TestApp::spawn_with(Engine::Sqlite, |s| s.tls_self_signed = true).await
}

fn cert_path(data_dir: &Path) -> PathBuf {
    data_dir.join(tls::SELF_SIGNED_DIR).join(tls::CERT_FILE)
}

/// The self-signed certificate of a server [`spawn_tls`] started.
fn ca_of(app: &TestApp) -> PathBuf {
    cert_path(&app.settings().data_dir)
}

/// A TLS client that trusts exactly the certificates in `ca_pem`.
fn client_config(ca_pem: &Path, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).expect("certificate file opens") {
        roots
            .add(cert.expect("certificate parses"))
            .expect("certificate is a usable root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Connects and completes a verified TLS handshake for `name` (a DNS name or an IP address).
async fn tls_connect(
    addr: SocketAddr,
    ca_pem: &Path,
    name: &str,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    let name = ServerName::try_from(name.to_string()).expect("valid server name");
    tokio_rustls::TlsConnector::from(client_config(ca_pem, alpn))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the server's certificate")
}

/// One HTTP/1.1 GET over an established stream, read whole.
async fn get_over<S>(stream: S, path: &str) -> http::Response<Bytes>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http/1.1 client handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = http::Request::get(path)
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .expect("request builds");
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body is read").to_bytes();
    http::Response::from_parts(parts, body)
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

fn assert_security_headers(headers: &http::HeaderMap) {
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(headers, "referrer-policy"), "no-referrer");
    assert_eq!(header(headers, "x-frame-options"), "DENY");
    let csp = header(headers, "content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "media-src 'self' blob:",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert_eq!(
        header(headers, "permissions-policy"),
        "camera=(self), microphone=(self), geolocation=()"
    );
    assert_eq!(header(headers, "cross-origin-opener-policy"), "same-origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn https_request_gets_hsts_and_the_security_headers() {
    let app = spawn_tls().await;
    let ca = ca_of(&app);

    let stream = tls_connect(app.addr(), &ca, "localhost", HTTP11).await;
    let response = get_over(stream, "/healthz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(response.body()).expect("json body");
    assert_eq!(body["status"], "ok");
    assert_security_headers(response.headers());
    assert_eq!(
        header(response.headers(), "strict-transport-security"),
        "max-age=31536000; includeSubDomains"
    );
    assert!(
        response.headers().get("x-request-id").is_some(),
        "request ids survive TLS"
    );

    // The certificate also names the loopback address, and API answers are never cached.
    let stream = tls_connect(app.addr(), &ca, "127.0.0.1", HTTP11).await;
    let response = get_over(stream, "/api/v1/specialties").await;
    assert!(
        response.status().as_u16() < 500,
        "status {}",
        response.status()
    );
    assert_eq!(header(response.headers(), "cache-control"), "no-store");

    // Browsers offer HTTP/2 first, and get it.
    let stream = tls_connect(app.addr(), &ca, "localhost", &[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_http_to_the_tls_port_fails() {
    let app = spawn_tls().await;
    let result = app.http.get(app.url("/healthz")).send().await;
    assert!(
        result.is_err(),
        "a plain-HTTP request to the HTTPS port must not get an HTTP answer: {result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_client_does_not_hold_up_other_handshakes() {
    let app = spawn_tls().await;
    // Connected, never says hello: its handshake waits in its own task, not in the accept loop.
    let _silent = TcpStream::connect(app.addr()).await.expect("tcp connect");
    let request = async {
        let stream = tls_connect(app.addr(), &ca_of(&app), "localhost", HTTP11).await;
        get_over(stream, "/healthz").await
    };
    let response = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("served while another client stalls its handshake");
    assert_eq!(response.status(), 200);
}

/// Settings for an [`Application`] of its own in `data_dir`, with its SQLite file there too.
fn settings_in(data_dir: &Path) -> Settings {
    Settings {
        listen: "127.0.0.1:0".parse().expect("literal address"),
        data_dir: data_dir.to_path_buf(),
        ..Settings::default()
    }
}

async fn build_err(settings: &Settings) -> StartupError {
    match Application::build(settings).await {
        Ok(_) => panic!("the server started with bad TLS settings: {settings:?}"),
        Err(err) => err,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_self_signed_certificate_is_kept_across_restarts() {
    let app = spawn_tls().await;
    assert!(app.base_url().starts_with("https://127.0.0.1:"));
    let data_dir = app.settings().data_dir.clone();
    let key_path = data_dir.join(tls::SELF_SIGNED_DIR).join(tls::KEY_FILE);
    let cert = std::fs::read(cert_path(&data_dir)).expect("certificate written");
    let key = std::fs::read(&key_path).expect("key written");

    let app = app.restart().await;
    assert!(app.base_url().starts_with("https://127.0.0.1:"));
    assert_eq!(
        std::fs::read(cert_path(&data_dir)).expect("certificate"),
        cert,
        "same certificate after a restart"
    );
    assert_eq!(std::fs::read(&key_path).expect("key"), key);
    // The restarted server speaks HTTPS with it: a client that trusts only the old certificate
    // completes its handshake.
    let stream = tls_connect(app.addr(), &ca_of(&app), "127.0.0.1", HTTP11).await;
    assert_eq!(get_over(stream, "/healthz").await.status(), 200);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path)
            .expect("key metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the private key is for its owner only");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_tls_settings_are_clear_startup_errors() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let missing = dir.path().join("nowhere").join("cert.pem");
    let settings = Settings {
        tls_cert: Some(missing.clone()),
        tls_key: Some(dir.path().join("nowhere").join("key.pem")),
        ..settings_in(dir.path())
    };
    let err = build_err(&settings).await;
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "the message names the file: {err}"
    );
    assert!(
        matches!(&err, StartupError::Tls(TlsError::Missing { what: "certificate", path }) if *path == missing),
        "{err:?}"
    );

    let only_cert = Settings {
        tls_key: None,
        ..settings.clone()
    };
    assert!(matches!(
        build_err(&only_cert).await,
        StartupError::Tls(TlsError::Incomplete { missing: "tls_key" })
    ));
    let both_ways = Settings {
        tls_self_signed: true,
        ..settings.clone()
    };
    assert!(matches!(
        build_err(&both_ways).await,
        StartupError::Tls(TlsError::Conflict)
    ));

    // A file that is not PEM, and a key that belongs to another certificate.
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let loopback = "127.0.0.1".parse().expect("literal address");
    tls::self_signed(&a, loopback).expect("certificate a");
    tls::self_signed(&b, loopback).expect("certificate b");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("file written");
    let not_pem = Settings {
        tls_cert: Some(garbage),
        tls_key: Some(a.join(tls::KEY_FILE)),
        ..settings_in(dir.path())
    };
    let err = build_err(&not_pem).await;
    assert!(
        matches!(
            err,
            StartupError::Tls(TlsError::Invalid {
                what: "certificate",
                ..
            })
        ),
        "{err:?}"
    );
    let mismatched = Settings {
        tls_cert: Some(a.join(tls::CERT_FILE)),
        tls_key: Some(b.join(tls::KEY_FILE)),
        ..settings_in(dir.path())
    };
    let err = build_err(&mismatched).await;
    assert!(
        matches!(err, StartupError::Tls(TlsError::Rejected(_))),
        "{err:?}"
    );

    // Nothing was started on the way: no database file appeared.
    assert!(!dir.path().join("telehealth.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_http_gets_security_headers_but_no_hsts() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let r = app.get("/healthz").await.expect(200);
    assert_security_headers(&r.headers);
    assert!(r.headers.get("strict-transport-security").is_none());

    // A handler's own Cache-Control stays; API answers default to no-store.
    let r = app.send(app.http.get(app.url("/"))).await.expect(200);
    assert_eq!(header(&r.headers, "cache-control"), "no-cache");
    assert_security_headers(&r.headers);
    let r = app.send(app.http.get(app.url("/api/v1/specialties"))).await;
    assert_eq!(header(&r.headers, "cache-control"), "no-store");
    let r = app
        .send(app.http.get(app.url("/api/v1/no-such-thing")))
        .await;
    assert_eq!(header(&r.headers, "cache-control"), "no-store");
    assert_security_headers(&r.headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_request_head_is_refused_not_a_server_error() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let padding = "a".repeat(100 * 1024);
    let result = app
        .http
        .get(app.url("/healthz"))
        .header("x-padding", padding)
        .send()
        .await;
    match result {
        Ok(response) => assert_eq!(response.status().as_u16(), 431),
        // Closing the connection is a refusal too.
        Err(err) => assert!(!err.is_timeout(), "refused by timing out: {err}"),
    }
    // The server is unharmed, and a large but allowed head still passes.
    app.get("/healthz").await.expect(200);
    app.send(
        app.http
            .get(app.url("/healthz"))
            .header("x-padding", "a".repeat(32 * 1024)),
    )
    .await
    .expect(200);
}

/// A server of its own on `http::serve`: `/hello`, and a WebSocket echo at `/ws`.
struct Served {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

async fn serve_test_routes(options: ServeOptions) -> Served {
    let hello = warp::path!("hello").map(|| warp::Reply::into_response("hello"));
    let ws = warp::path!("ws").and(warp::ws()).map(|ws: warp::ws::Ws| {
        warp::Reply::into_response(ws.on_upgrade(|socket| async move {
            let (tx, rx) = socket.split();
            let _ = rx.forward(tx).await;
        }))
    });
    let routes = hello.or(ws).unify().recover(|_: warp::Rejection| async {
        Ok::<_, Infallible>(warp::Reply::into_response(http::StatusCode::NOT_FOUND))
    });
    let routes = routes.unify();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(serve(listener, routes, options, async {
        let _ = stopped.await;
    }));
    Served { addr, stop, done }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_upgrades_work_through_tls() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let config = tls::self_signed(dir.path(), "127.0.0.1".parse().expect("literal address"))
        .expect("self-signed certificate");
    let served = serve_test_routes(ServeOptions {
        tls: Some(config),
        ..ServeOptions::default()
    })
    .await;
    let stream = tls_connect(
        served.addr,
        &dir.path().join(tls::CERT_FILE),
        "localhost",
        HTTP11,
    )
    .await;
    let (mut socket, response) = tokio_tungstenite::client_async("wss://localhost/ws", stream)
        .await
        .expect("WebSocket handshake over TLS");
    assert_eq!(response.status(), 101);
    socket
        .send(tokio_tungstenite::tungstenite::Message::text("ping"))
        .await
        .expect("send");
    let echo = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("echo in time")
        .expect("a message")
        .expect("a good message");
    assert_eq!(echo.into_text().expect("text").as_str(), "ping");
    socket.close(None).await.expect("close");

    let _ = served.stop.send(());
    tokio::time::timeout(Duration::from_secs(15), served.done)
        .await
        .expect("shut down within the drain period")
        .expect("serve task");
}

/// Reads until the server closes (or fails) the connection; `None` if it is still open.
async fn closed_within(stream: &mut (impl AsyncReadExt + Unpin), limit: Duration) -> Option<()> {
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(()),
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_and_slow_clients_are_cut_off() {
    let short = Duration::from_millis(300);
    let served = serve_test_routes(ServeOptions {
        header_read_timeout: short,
        ..ServeOptions::default()
    })
    .await;
    // Connects and sends nothing at all.
    let mut silent = TcpStream::connect(served.addr).await.expect("tcp connect");
    assert!(
        closed_within(&mut silent, Duration::from_secs(5))
            .await
            .is_some(),
        "a silent client keeps its connection"
    );
    // Starts a request head and never finishes it.
    let mut slow = TcpStream::connect(served.addr).await.expect("tcp connect");
    slow.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .expect("partial head sent");
    assert!(
        closed_within(&mut slow, Duration::from_secs(5))
            .await
            .is_some(),
        "a slow head keeps its connection"
    );
    let _ = served.stop.send(());
    let _ = served.done.await;

    // Over TLS, a client that never completes its handshake is dropped too.
    let dir = tempfile::tempdir().expect("temporary folder");
    let config = tls::self_signed(dir.path(), "127.0.0.1".parse().expect("literal address"))
        .expect("self-signed certificate");
    let served = serve_test_routes(ServeOptions {
        tls: Some(config),
        handshake_timeout: short,
        ..ServeOptions::default()
    })
    .await;
    let mut silent = TcpStream::connect(served.addr).await.expect("tcp connect");
    assert!(
        closed_within(&mut silent, Duration::from_secs(5))
            .await
            .is_some(),
        "a stalled handshake keeps its connection"
    );
    let _ = served.stop.send(());
    let _ = served.done.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_shutdown_drains_promptly() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let config = tls::self_signed(dir.path(), "127.0.0.1".parse().expect("literal address"))
        .expect("self-signed certificate");
    // Long timeouts, so finishing quickly shows shutdown did not wait for them.
    let server_waits = Duration::from_secs(60);
    let served = serve_test_routes(ServeOptions {
        tls: Some(config),
        handshake_timeout: server_waits,
        drain: server_waits,
        ..ServeOptions::default()
    })
    .await;
    // An idle keep-alive connection after one request, and one stuck before its handshake.
    let ca = dir.path().join(tls::CERT_FILE);
    let stream = tls_connect(served.addr, &ca, "localhost", HTTP11).await;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http/1.1 client handshake");
    let client_conn = tokio::spawn(connection);
    let request = http::Request::get("/hello")
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .expect("request builds");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(response.headers(), "strict-transport-security"),
        "max-age=31536000; includeSubDomains"
    );
    let _ = response.into_body().collect().await.expect("body");
    let _stuck = TcpStream::connect(served.addr).await.expect("tcp connect");
    // Let the server's tasks see both connections before shutting down.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let _ = served.stop.send(());
    // The test waits longer than the server would, so that a serve which waited out its drain
    // period or the stuck handshake returns, late, and fails the assertion below.
    tokio::time::timeout(server_waits * 2, served.done)
        .await
        .expect("serve returns at all")
        .expect("serve task");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "shutdown took {took:?}: it waited for the idle or the stuck connection \
         (the server would wait {server_waits:?} for them)"
    );
    // The idle client connection was closed by the server, cleanly.
    let ended = tokio::time::timeout(Duration::from_secs(5), client_conn)
        .await
        .expect("client connection ends");
    assert!(matches!(ended, Ok(Ok(()))), "{ended:?}");
}

/// The platform's own signaling route answers over TLS (`wss://`): rural networks that open only
/// 443 reach calls through the same port as the web client.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signaling_speaks_over_tls() {
    let app = spawn_tls().await;
    let stream = tls_connect(app.addr(), &ca_of(&app), "localhost", HTTP11).await;
    let (mut socket, response) =
        tokio_tungstenite::client_async("wss://localhost/signaling", stream)
            .await
            .expect("WebSocket handshake over TLS at /signaling");
    assert_eq!(response.status(), 101);
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            r#"{"v":1,"type":"join","token":"j1.not.valid"}"#,
        ))
        .await
        .expect("send");
    let answer = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("an answer in time")
        .expect("a message")
        .expect("a good message");
    let answer: serde_json::Value =
        serde_json::from_str(answer.into_text().expect("text").as_str()).expect("JSON");
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["code"], "token_invalid", "{answer}");
}

/// One request over HTTP/2 (as browsers speak to the server), with `headers` and an optional
/// JSON body: the server sees the authority only in the `:authority` pseudo-header.
async fn h2_request(
    app: &TestApp,
    ca: &Path,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: serde_json::Value,
) -> http::Response<Bytes> {
    let stream = tls_connect(app.addr(), ca, "localhost", &[b"h2"]).await;
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .expect("http/2 client handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("https://localhost:{}{path}", app.addr().port()))
        .header(http::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .expect("request builds");
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body is read").to_bytes();
    http::Response::from_parts(parts, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_https_only_the_https_origin_passes_the_cross_site_check() {
    let app = spawn_tls().await;
    let ca = ca_of(&app);
    let login = h2_request(
        &app,
        &ca,
        http::Method::POST,
        "/api/v1/auth/login",
        &[],
        serde_json::json!({"username": "root", "password": telehealth_tests::PASSWORD}),
    )
    .await;
    assert_eq!(login.status(), 200);
    let cookie = header(login.headers(), "set-cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    let port = app.addr().port();
    let specialty = |code: &str| serde_json::json!({"code": code, "name_en": "S", "name_vi": "S"});
    // The http:// page of the same host and port is another origin (a network attacker can
    // serve it), and so is another port.
    for origin in [
        format!("http://localhost:{port}"),
        format!("https://localhost:{}", port.wrapping_add(1)),
        "https://localhost".to_string(),
    ] {
        let r = h2_request(
            &app,
            &ca,
            http::Method::POST,
            "/api/v1/specialties",
            &[("cookie", &cookie), ("origin", &origin)],
            specialty("refused"),
        )
        .await;
        assert_eq!(r.status(), 403, "{origin}");
    }
    // The page's own origin works over HTTP/2, where there is no Host header.
    let own = format!("https://localhost:{port}");
    let r = h2_request(
        &app,
        &ca,
        http::Method::POST,
        "/api/v1/specialties",
        &[("cookie", &cookie), ("origin", &own)],
        specialty("accepted"),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", String::from_utf8_lossy(r.body()));
    assert_eq!(app.count("specialties").await, 1);
}
