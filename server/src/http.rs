//! The HTTP edge: the top-level routes, and the connection loop that serves them.
//!
//! warp builds the routes; the loop is written out (as warp 0.4's own is, but with our layers) so
//! that every request gets a request id on its span and response, the client address is known,
//! TLS can be added in front, and shutdown drains connections gracefully.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use warp::Filter;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use crate::api::{self, ApiError, Router};
use crate::state::AppState;

/// The client's socket address, put on each request by the connection loop.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

const REQUEST_ID: &str = "x-request-id";
const WEB_INDEX: &str = include_str!("../../web-client/index.html");

/// Every route the server answers.
pub fn routes(
    state: AppState,
    router: Arc<Router>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let health = warp::path!("healthz").and(warp::get()).map(|| {
        warp::Reply::into_response(warp::reply::json(&serde_json::json!({"status": "ok"})))
    });

    let ready_state = state.clone();
    let ready = warp::path!("readyz").and(warp::get()).then(move || {
        let db = ready_state.db.clone();
        async move {
            let ping = tokio::time::timeout(Duration::from_secs(2), db.ping()).await;
            match ping {
                Ok(Ok(())) => warp::Reply::into_response(warp::reply::json(
                    &serde_json::json!({"status": "ready", "database": db.engine().as_str()}),
                )),
                _ => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_ready",
                    "the database is unreachable",
                )
                .into_response(),
            }
        }
    });

    let metrics_state = state.clone();
    let metrics = warp::path!("metrics").and(warp::get()).map(move || {
        let body = metrics_state
            .metrics
            .as_ref()
            .map(|h| h.render())
            .unwrap_or_default();
        let mut response = warp::Reply::into_response(body);
        response.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        response
    });

    let index = warp::path::end().and(warp::get()).map(|| {
        let mut response = warp::Reply::into_response(warp::reply::html(WEB_INDEX));
        response.headers_mut().insert(
            warp::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        response
    });

    health
        .or(ready)
        .unify()
        .or(metrics)
        .unify()
        .or(index)
        .unify()
        .or(api::api_filter(state, router))
        .unify()
        .recover(render_rejection)
        .unify()
}

/// Renders rejections from the non-API routes in the API's error shape.
async fn render_rejection(rejection: warp::Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "nothing here")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed here",
        )
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        ApiError::bad_request("bad_request", "the request could not be understood")
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

/// Accepts connections on `listener` and serves `routes` until `shutdown` completes, then stops
/// accepting and gives open connections up to `drain` to finish.
pub async fn serve<F>(
    listener: TcpListener,
    routes: F,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
            .map_request(move |mut req: http::Request<_>| {
                req.extensions_mut().insert(ClientAddr(peer));
                req
            })
            .service(warp::service(routes.clone()));
        let connection = auto::Builder::new(TokioExecutor::new())
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open when the drain period ended");
    }
}
