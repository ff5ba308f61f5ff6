//! The dispatcher: the warp filter that takes each `/api/v1` request apart, and [`dispatch`],
//! which answers it in named steps: find the route ([`super::routes`]), authenticate the caller
//! and check CSRF ([`super::csrf`]), read the body ([`super::request_body`]), replay a stored
//! answer to its `Idempotency-Key` ([`super::idempotency`]) or run the handler, record the audit
//! event ([`super::request_audit`]) unless the handler's write committed it, and count the
//! request in the metrics.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;

use super::csrf::check_csrf;
use super::ctx::{AuditNote, Ctx};
use super::error::ApiError;
use super::idempotency;
use super::reply::ApiResult;
use super::request_audit::{self, Answered};
use super::request_body::read_body;
use super::routes::{AuditPolicy, Found, Route, Router, Writes};
use crate::auth::Principal;
use crate::journal::{self, Claim, Journal};
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
    let journaled = Arc::new(AtomicBool::new(false));
    let (result, template, policy, writes, principal) = match router.find(&request.method, path) {
        Err(unrouted) => (
            Err(unrouted.error),
            unrouted.template,
            AuditPolicy::Never,
            Writes::NoWrite,
            None,
        ),
        Ok(found) => {
            let (template, policy, writes) =
                (found.route.path, found.route.audit, found.route.writes);
            let shared = Shared {
                note: &note,
                journaled: &journaled,
            };
            let (result, principal) = run(&state, found, path, &request, query, body, shared).await;
            (result, template, policy, writes, principal)
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
    let written = Journal::is_written(&journaled);
    let replayed = note.lock().is_ok_and(|n| n.replayed);
    if unjournaled(writes, response.status(), written, replayed) {
        // A handler of a journaled route committed a change without staging its event in that
        // transaction (a bug): the event is recorded the old way below, after the change, which
        // a crash in between would lose. Counted so that it is found.
        metrics::counter!("api_unjournaled_writes_total", "route" => template).increment(1);
        tracing::error!(
            route = template,
            "a journaled route answered without journaling its write; its event is recorded after the change"
        );
    }
    if !record_audit(&state, policy, &note, answered, written).await
        && response.status() != StatusCode::SERVICE_UNAVAILABLE
    {
        response = ApiError::unavailable().into_response();
    }
    count(&request.method, template, response.status(), started);
    response
}

/// What the dispatcher shares with the handler, to read after it.
#[derive(Clone, Copy)]
struct Shared<'a> {
    note: &'a Arc<Mutex<AuditNote>>,
    /// Set when the handler's write staged its own audit event (see [`crate::journal`]).
    journaled: &'a Arc<AtomicBool>,
}

/// Authenticates the caller, reads the body, and replays a stored answer or runs the route's
/// handler. The caller comes back even when a later step refuses the request, so that the audit
/// event names who was refused.
async fn run<S, B>(
    state: &AppState,
    found: Found<'_>,
    path: &str,
    request: &Incoming,
    query: String,
    body: S,
    shared: Shared<'_>,
) -> (ApiResult, Option<Principal>)
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin + Send,
    B: bytes::Buf,
{
    let Found { route, params } = found;
    let note = shared.note;
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
        // Only a journaled write stores answers; elsewhere the key is not looked at.
        let claim = match route.writes {
            Writes::Journaled => idempotency::claim(
                &request.method,
                &request.headers,
                principal.as_ref(),
                path,
                &query,
                &body,
            )?,
            Writes::NoWrite => None,
        };
        if let Some(claim) = &claim
            && let Some(replayed) = replay(state, claim, note).await?
        {
            return Ok(replayed);
        }
        let ctx = Ctx {
            principal: principal.clone(),
            state: state.clone(),
            params,
            query,
            body,
            client_addr: request.client_addr.clone(),
            accept_language: accept_language(&request.headers),
            own_origin: request.authority.as_ref().map(|a| {
                let scheme = if state.secure_cookies {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{a}")
            }),
            note: note.clone(),
            method: request.method.clone(),
            template: route.path,
            claim: claim.clone(),
            journaled: shared.journaled.clone(),
        };
        match ((route.handler)(ctx).await, &claim) {
            // A twin request with the same key may have committed first (this one then lost the
            // slot, or the key): its answer is this one's too.
            (Err(e), Some(claim)) => match replay(state, claim, note).await {
                Ok(Some(replayed)) => Ok(replayed),
                _ => Err(e),
            },
            (answered, _) => answered,
        }
    }
    .await;
    (result, principal)
}

/// The stored answer to `claim`'s key, replayed (or refused, for another request), if there is
/// one; the audit event then says it was a replay.
async fn replay(
    state: &AppState,
    claim: &Claim,
    note: &Mutex<AuditNote>,
) -> Result<Option<Response>, ApiError> {
    let stored = {
        let mut c = state.db.acquire().await?;
        journal::stored_answer(c.conn(), claim).await?
    };
    let Some(stored) = stored else {
        return Ok(None);
    };
    if let Ok(mut n) = note.lock() {
        n.replayed = true;
    }
    idempotency::replay(claim, stored).map(Some)
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
/// trail could not take it. A write that `journaled` its event committed it already: the chain is
/// flushed so that the event reads in the trail when the client hears back, and a failure of that
/// loses nothing (the writer chains it on its next round).
async fn record_audit(
    state: &AppState,
    policy: AuditPolicy,
    note: &Mutex<AuditNote>,
    answered: Answered<'_>,
    journaled: bool,
) -> bool {
    if journaled && answered.status.is_success() {
        if let Err(err) = state.audit.flush().await {
            tracing::warn!(error = %err, "a write's audit event is committed but not yet chained");
        }
        return true;
    }
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

/// True when a route declared [`Writes::Journaled`] answered a success that neither its write
/// journaled nor a stored answer replayed.
fn unjournaled(writes: Writes, status: StatusCode, written: bool, replayed: bool) -> bool {
    writes == Writes::Journaled && status.is_success() && !written && !replayed
}

/// Registers `api_unjournaled_writes_total` at 0 for every journaled route, so a scrape (and the
/// test that runs every write route) sees each one, not only those that went wrong.
pub fn register_unjournaled_counters(routes: &[Route]) {
    for r in routes.iter().filter(|r| r.writes == Writes::Journaled) {
        metrics::counter!("api_unjournaled_writes_total", "route" => r.path).increment(0);
    }
}

/// Counts the request and its duration, by route template and final status.
fn count(method: &Method, template: &'static str, status: StatusCode, started: Instant) {
    let status_label = status.as_u16().to_string();
    metrics::counter!("http_api_requests_total", "method" => method.to_string(), "route" => template, "status" => status_label)
        .increment(1);
    metrics::histogram!("http_api_request_duration_seconds", "route" => template)
        .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unjournaled_success_of_a_journaled_route_counts() {
        let ok = StatusCode::OK;
        assert!(unjournaled(Writes::Journaled, ok, false, false));
        assert!(unjournaled(
            Writes::Journaled,
            StatusCode::ACCEPTED,
            false,
            false
        ));
        assert!(
            !unjournaled(Writes::Journaled, ok, true, false),
            "journaled"
        );
        assert!(!unjournaled(Writes::Journaled, ok, false, true), "a replay");
        assert!(
            !unjournaled(Writes::Journaled, StatusCode::CONFLICT, false, false),
            "refused"
        );
        assert!(!unjournaled(Writes::NoWrite, ok, false, false), "a read");
    }
}
