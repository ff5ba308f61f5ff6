//! The HTTP edge: the top-level routes, and the connection loop that serves them.
//!
//! warp builds the routes; the loop is written out (as warp 0.4's own is, but with our layers) so
//! that every request gets a request id on its span and response, the client address is known,
//! every response carries the security headers, TLS (see [`crate::tls`]) is terminated in front
//! when configured, request heads are bounded in size and time, and shutdown drains connections
//! gracefully.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::TryFutureExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use warp::Filter;
use warp::http::header::{self, HeaderName};
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use crate::api::dispatch::{ClientAddr, api_filter};
use crate::api::error::ApiError;
use crate::api::routes::Router;
use crate::config::Secret;
use crate::domain::code::ErrorCode;
use crate::state::AppState;
use crate::storage::readiness::Readiness;

const REQUEST_ID: &str = "x-request-id";

/// Who may read `/metrics` on one listener. The counts name routes and load, not people, but
/// they tell an outsider how the service is used and when it is busy: never public.
#[derive(Clone, Debug)]
pub enum MetricsAccess {
    /// Not served on this listener (404), with a word on how to turn them on.
    Off,
    /// Not served here because they have an address of their own (`metrics_listen`).
    Elsewhere,
    /// Served to requests that carry `Authorization: Bearer <token>`.
    Token(Secret),
    /// Served to whoever reaches this listener: the metrics address of its own.
    Open,
}

/// GET /metrics, as `access` allows.
fn metrics_route(
    state: AppState,
    access: MetricsAccess,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .map(move |authorization: Option<String>| {
            let allowed = match &access {
                MetricsAccess::Open => true,
                MetricsAccess::Token(token) => authorization
                    .as_deref()
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .is_some_and(|given| same_secret(given.trim(), token.expose())),
                MetricsAccess::Off => {
                    return ApiError::new(
                        StatusCode::NOT_FOUND,
                        ErrorCode::NotFound,
                        "metrics are not served: set metrics_token (then send it as a Bearer token) or metrics_listen (an address of their own)",
                    )
                    .into_response();
                }
                MetricsAccess::Elsewhere => {
                    return ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "nothing here")
                        .into_response();
                }
            };
            if !allowed {
                let mut response = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::MetricsTokenRequired,
                    "send the metrics token (setting metrics_token) as 'Authorization: Bearer <token>'; a session token is not one",
                )
                .into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"metrics\""),
                );
                return response;
            }
            let body = state
                .metrics
                .as_ref()
                .map(|h| h.render())
                .unwrap_or_default();
            let mut response = warp::Reply::into_response(body);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        })
}

/// Compares two secrets in time that does not depend on where they differ (their SHA-256
/// digests are compared, so neither the length nor a prefix of the token leaks).
fn same_secret(given: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The routes of the metrics address (`metrics_listen`): `/metrics` and nothing else.
pub fn metrics_routes(
    state: AppState,
    access: MetricsAccess,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    metrics_route(state, access)
        .recover(render_rejection)
        .unify()
}

/// Every route the server answers.
pub fn routes(
    state: AppState,
    router: Arc<Router>,
    metrics: MetricsAccess,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let health = warp::path!("healthz").and(warp::get()).map(|| {
        warp::Reply::into_response(warp::reply::json(&serde_json::json!({"status": "ok"})))
    });

    // Ready when the database takes a write now (storage/readiness.rs: a write probe, its
    // answer kept for a second, one probe at a time).
    let readiness = Arc::new(Readiness::new(state.db.clone()));
    let ready = warp::path!("readyz").and(warp::get()).then(move || {
        let readiness = readiness.clone();
        async move {
            let database = readiness.engine().as_str();
            match readiness.check().await {
                Ok(()) => warp::Reply::into_response(warp::reply::json(
                    &serde_json::json!({"status": "ready", "database": database}),
                )),
                Err(why) => ApiError::not_ready(why, database).into_response(),
            }
        }
    });

    let metrics = metrics_route(state.clone(), metrics);

    // The signaling WebSocket checks its own join tokens: no session, no CSRF (a token is bound
    // to one consultation, one participant and a short time).
    let signaling =
        telehealth_signaling::ws::routes(state.hub.clone()).map(warp::Reply::into_response);

    health
        .or(ready)
        .unify()
        .or(metrics)
        .unify()
        .or(signaling)
        .unify()
        .or(api_filter(state, router))
        .unify()
        // Last: it answers every GET outside the server's own prefixes (the client's routes).
        .or(crate::web_client::filter())
        .unify()
        .recover(render_rejection)
        .unify()
}

/// Renders rejections from the non-API routes in the API's error shape.
async fn render_rejection(rejection: warp::Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "nothing here")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "this method is not allowed here",
        )
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        ApiError::bad_request(ErrorCode::BadRequest, "the request could not be understood")
    };
    Ok(error.into_response())
}

/// Keeps a client-supplied request id only when it is short and plain, so it is safe in logs.
fn sanitize_request_id<B>(mut req: http::Request<B>) -> http::Request<B> {
    let keep = req.headers().get(REQUEST_ID).is_some_and(|v| {
        v.len() <= 64
            && v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    });
    if !keep {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

/// The most a request head (request line and headers) may take, on HTTP/1 and HTTP/2 alike:
/// generous for bearer tokens and cookies, small enough that a client cannot make the server
/// buffer megabytes before a handler runs. Over it, HTTP/1 gets 431 and HTTP/2 a stream error.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The length of the HTTP/2 connection preface, which hyper reads to choose the protocol.
const PROTOCOL_SNIFF_BYTES: usize = 24;

/// Headers every response carries unless its handler set its own. The content security policy
/// is the web client's: scripts, styles and connections from this origin only (no inline
/// script), media from blob: URLs for camera previews, and no framing by other sites.
static SECURITY_HEADERS: [(HeaderName, HeaderValue); 6] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
             media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
             form-action 'self'; object-src 'none'",
        ),
    ),
    (
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(self), microphone=(self), geolocation=()"),
    ),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    ),
];

/// Sent only over TLS: on plain HTTP a browser ignores it, and it would be a lie.
static HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000; includeSubDomains");

/// API responses carry health data, which no browser or proxy cache may keep.
static NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// How [`serve`] treats connections.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Serve HTTPS only, with this configuration; `None` serves plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How long a client has to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// How long a client has to send each request head (and, before the first, enough bytes to
    /// tell HTTP/1 from HTTP/2): against slowloris clients that hold connections open.
    pub header_read_timeout: Duration,
    /// How long open connections get to finish once shutdown starts.
    pub drain: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            tls: None,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(10),
        }
    }
}

/// Accepts connections on `listener` and serves `routes` until `shutdown` completes, then stops
/// accepting and gives open connections up to `options.drain` to finish.
pub async fn serve<F>(
    listener: TcpListener,
    routes: F,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let acceptor = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let is_tls = acceptor.is_some();
    let builder = connection_builder(options.header_read_timeout);
    let graceful = GracefulShutdown::new();
    // Connections still in their TLS handshake have sent no request yet: at shutdown they are
    // dropped rather than waited for.
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = tower::ServiceBuilder::new()
            .map_request(sanitize_request_id)
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &http::Request<_>| {
                        let id = req
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        // The path only: query strings may carry names and are never logged.
                        tracing::info_span!(
                            "request",
                            request_id = %id,
                            method = %req.method(),
                            path = %req.uri().path(),
                        )
                    })
                    .on_response(DefaultOnResponse::new().level(Level::INFO)),
            )
            .layer(EdgePolicyLayer { tls: is_tls })
            .map_request(move |mut req: http::Request<_>| {
                req.extensions_mut().insert(ClientAddr(peer));
                req
            })
            .service(warp::service(routes.clone()));
        let service = TowerToHyperService::new(service);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let mut stopping = stopping_rx.clone();
        let handshake_timeout = options.handshake_timeout;
        let first_bytes_timeout = options.header_read_timeout;
        // The handshake runs here, not in the accept loop, so a slow client delays only itself.
        tokio::spawn(async move {
            let io: Box<dyn ByteStream> = match acceptor {
                None => Box::new(stream),
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                    tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(tls)) => Box::new(tls),
                            // Scanners and plain-HTTP clients end here; not worth a warning.
                            Ok(Err(err)) => {
                                tracing::debug!(%peer, error = %err, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        _ = stopping.changed() => return,
                    }
                }
            };
            let io = TokioIo::new(ClientStream::new(io, first_bytes_timeout));
            let connection = builder
                .serve_connection_with_upgrades(io, service)
                .into_owned();
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drop(stopping_tx);
    if tokio::time::timeout(options.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open when the drain period ended");
    }
}

/// The per-connection protocol settings: head size limits and the head read timeout.
fn connection_builder(header_read_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        // hyper answers a head that does not fit in its read buffer with 431.
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    builder
}

/// The response policy of the edge: refuses request heads over [`MAX_HEAD_BYTES`] with 431, and
/// adds [`SECURITY_HEADERS`], HSTS when serving TLS, and `Cache-Control: no-store` on `/api/`,
/// each unless the handler already set that header.
#[derive(Clone, Copy, Debug)]
struct EdgePolicyLayer {
    tls: bool,
}

impl<S> tower::Layer<S> for EdgePolicyLayer {
    type Service = EdgePolicy<S>;

    fn layer(&self, inner: S) -> EdgePolicy<S> {
        EdgePolicy {
            inner,
            tls: self.tls,
        }
    }
}

#[derive(Clone, Debug)]
struct EdgePolicy<S> {
    inner: S,
    tls: bool,
}

type Finish = fn(Response) -> Response;

impl<S, ReqBody> tower::Service<http::Request<ReqBody>> for EdgePolicy<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = futures::future::MapOk<
        futures::future::Either<S::Future, futures::future::Ready<Result<Response, S::Error>>>,
        Finish,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let path = req.uri().path();
        let api = path == "/api" || path.starts_with("/api/");
        // A plain function per case keeps the future's type nameable, with no allocation.
        let finish: Finish = match (self.tls, api) {
            (false, false) => add_security_headers::<false, false>,
            (false, true) => add_security_headers::<false, true>,
            (true, false) => add_security_headers::<true, false>,
            (true, true) => add_security_headers::<true, true>,
        };
        // hyper's HTTP/1 buffer limit is approximate (one read may overshoot it), so the exact
        // limit is applied here, to both protocols alike.
        let answer = if head_len(&req) > MAX_HEAD_BYTES {
            futures::future::Either::Right(futures::future::ready(Ok(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ErrorCode::HeadersTooLarge,
                "the request headers are too large",
            )
            .into_response())))
        } else {
            futures::future::Either::Left(self.inner.call(req))
        };
        answer.map_ok(finish)
    }
}

/// About the size of a request head as sent in HTTP/1.1: request line and header lines.
fn head_len<B>(req: &http::Request<B>) -> usize {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    // Method, target, " HTTP/1.1" and CRLF.
    let line = req.method().as_str().len() + target + 12;
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
}

fn add_security_headers<const TLS: bool, const API: bool>(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in &SECURITY_HEADERS {
        headers.entry(name).or_insert_with(|| value.clone());
    }
    if TLS {
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert_with(|| HSTS.clone());
    }
    if API {
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert_with(|| NO_STORE.clone());
    }
    response
}

/// A client connection's bytes, plain or decrypted.
trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}

/// A client connection that fails its reads if the first [`PROTOCOL_SNIFF_BYTES`] bytes do not
/// arrive in time.
///
/// hyper's header read timeout starts only once it has told HTTP/1 from HTTP/2, and telling them
/// apart waits for those first bytes without any limit: without this, a client that connects and
/// sends nothing would hold a connection (and a task) for ever.
struct ClientStream {
    io: Box<dyn ByteStream>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    awaited: usize,
}

impl ClientStream {
    fn new(io: Box<dyn ByteStream>, timeout: Duration) -> Self {
        ClientStream {
            io,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            awaited: PROTOCOL_SNIFF_BYTES,
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                this.awaited = this.awaited.saturating_sub(read);
                // Enough to choose the protocol (or end of stream): hyper's own timeouts rule.
                if this.awaited == 0 || read == 0 {
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the client sent no request in time",
                    )));
                }
                Poll::Pending
            }
            failed => failed,
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
