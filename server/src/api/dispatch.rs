//! The dispatcher: the warp filter that takes each `/api/v1` request apart, and [`dispatch`],
//! which answers it in named steps: find the route ([`super::routes`]), authenticate the caller
//! and check CSRF ([`super::csrf`]), read the body ([`super::request_body`]), run the handler,
//! record the audit event ([`super::request_audit`]) and count the request in the metrics.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;

use super::csrf::check_csrf;
use super::ctx::{AuditNote, Ctx};
use super::error::ApiError;
use super::reply::ApiResult;
use super::request_audit::{self, Answered};
use super::request_body::read_body;
use super::routes::{AuditPolicy, Found, Route, Router};
use crate::auth::Principal;
use crate::state::AppState;

/// The client's socket address, put on each request by the connection loop in
/// [`crate::http`], which serves this API.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// The warp filter that serves everything under `/api/v1`.
pub fn api_filter(
    state: AppState,
    router: Arc<Router>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path("api")
        .and(warp::path("v1"))
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        // The request's own authority: the Host header, or on HTTP/2 `:authority` (an unusable
        // one is None, which the CSRF check refuses).
        .and(warp::host::optional().or(warp::any().map(|| None)).unify())
        .and(warp::ext::optional::<ClientAddr>())
        .and(warp::body::stream())
        .then(
            move |method: Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers: HeaderMap,
                  authority: Option<warp::host::Authority>,
                  addr: Option<ClientAddr>,
                  body| {
                let state = state.clone();
                let router = router.clone();
                let request = Incoming {
                    method,
                    headers,
                    authority,
                    client_addr: addr.map(|a| a.0.ip().to_string()),
                };
                async move { dispatch(state, router, path.as_str(), request, query, body).await }
            },
        )
}

/// The parts of a request the dispatcher reads besides its path, query and body.
struct Incoming {
    method: Method,
    headers: HeaderMap,
    authority: Option<warp::host::Authority>,
    client_addr: Option<String>,
}

/// Answers one request: every request is counted in the metrics, and every one its route audits
/// is in the audit trail before it is answered.
async fn dispatch<S, B>(
    state: AppState,
    router: Arc<Router>,
    path: &str,
    request: Incoming,
    query: String,
    body: S,
) -> Response
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin + Send,
    B: bytes::Buf,
{
    let started = Instant::now();
    let note = Arc::new(Mutex::new(AuditNote::default()));
    let (result, template, policy, principal) = match router.find(&request.method, path) {
        Err(unrouted) => (
            Err(unrouted.error),
            unrouted.template,
            AuditPolicy::Never,
            None,
        ),
        Ok(found) => {
            let (template, policy) = (found.route.path, found.route.audit);
            let (result, principal) = run(&state, found, &request, query, body, &note).await;
            (result, template, policy, principal)
        }
    };
    let mut response = result.unwrap_or_else(ApiError::into_response);
    let answered = Answered {
        method: &request.method,
        template,
        principal: principal.as_ref(),
        client_addr: request.client_addr.clone(),
        status: response.status(),
    };
    // Nothing is answered that the audit trail does not hold. An answer that is already a 503
    // (the database failed the handler too) stays: it says more, such as `storage_full`.
    if !record_audit(&state, policy, &note, answered).await
        && response.status() != StatusCode::SERVICE_UNAVAILABLE
    {
        response = ApiError::unavailable().into_response();
    }
    count(&request.method, template, response.status(), started);
    response
}

/// Authenticates the caller, reads the body and runs the route's handler. The caller comes back
/// even when a later step refuses the request, so that the audit event names who was refused.
async fn run<S, B>(
    state: &AppState,
    found: Found<'_>,
    request: &Incoming,
    query: String,
    body: S,
    note: &Arc<Mutex<AuditNote>>,
) -> (ApiResult, Option<Principal>)
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin + Send,
    B: bytes::Buf,
{
    let Found { route, params } = found;
    // The `id` path parameter is the record an event is about unless the handler says otherwise.
    if let Some((_, id)) = params.iter().find(|(k, _)| k == "id")
        && let Ok(mut n) = note.lock()
    {
        n.record_id = Some(id.chars().take(40).collect());
    }
    let principal = match state.principal_for(&request.headers).await {
        Ok(principal) => principal,
        Err(e) => return (Err(e.into()), None),
    };
    let result = async {
        admit(state, route, request, principal.as_ref())?;
        let body = read_body(
            &request.method,
            &request.headers,
            body,
            state.max_body_bytes,
        )
        .await?;
        let ctx = Ctx {
            principal: principal.clone(),
            state: state.clone(),
            params,
            query,
            body,
            client_addr: request.client_addr.clone(),
            accept_language: accept_language(&request.headers),
            note: note.clone(),
        };
        (route.handler)(ctx).await
    }
    .await;
    (result, principal)
}

/// Lets the request through to its handler: a session on every route that is not public, and
/// no cross-site write made with the session cookie.
fn admit(
    state: &AppState,
    route: &Route,
    request: &Incoming,
    principal: Option<&Principal>,
) -> Result<(), ApiError> {
    match principal {
        None if !route.public => Err(ApiError::unauthenticated()),
        None => Ok(()),
        Some(p) => check_csrf(
            &request.method,
            &request.headers,
            request.authority.as_ref(),
            // Cookies are Secure exactly when the server serves TLS.
            state.secure_cookies,
            p,
        ),
    }
}

/// The client's `Accept-Language`, at most 200 characters.
fn accept_language(headers: &HeaderMap) -> Option<String> {
    headers
        .get(warp::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect())
}

/// Writes the request's audit event when its route and answer call for one; false when the
/// trail could not take it.
async fn record_audit(
    state: &AppState,
    policy: AuditPolicy,
    note: &Mutex<AuditNote>,
    answered: Answered<'_>,
) -> bool {
    let note = {
        let noted = note.lock();
        let denied = noted.as_ref().is_ok_and(|n| n.denied);
        if !request_audit::wanted(policy, answered.status, denied) {
            return true;
        }
        noted.map(|n| n.clone()).unwrap_or_default()
    };
    state
        .audit
        .record(request_audit::event(answered, note))
        .await
        .is_ok()
}

/// Counts the request and its duration, by route template and final status.
fn count(method: &Method, template: &'static str, status: StatusCode, started: Instant) {
    let status_label = status.as_u16().to_string();
    metrics::counter!("http_api_requests_total", "method" => method.to_string(), "route" => template, "status" => status_label)
        .increment(1);
    metrics::histogram!("http_api_request_duration_seconds", "route" => template)
        .record(started.elapsed().as_secs_f64());
}
