//! The JSON API under `/api/v1`.
//!
//! Routes live in one table ([`route_table`]): the dispatcher matches requests against it and the
//! OpenAPI test compares it with `/api/v1/openapi.json`, so a route cannot exist without being
//! documented. Handlers share one signature: they receive a [`Ctx`] holding the caller, the path
//! parameters, the raw query and the body, and parse what they need at this edge.

pub mod access;
pub mod account_changes;
pub mod auth;
pub mod availability;
pub mod break_glass;
pub mod calls;
pub mod consultations;
pub mod directory;
pub mod error;
pub mod notes;
pub mod openapi;
pub mod schedule;
pub mod service_errors;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;

use crate::audit;
use crate::auth::Principal;
use crate::domain::code::ErrorCode;
use crate::domain::ids::PatientId;
use crate::state::AppState;
pub use error::{ApiError, FieldError};

/// The client's socket address, put on each request by the connection loop in
/// [`crate::http`], which serves this API.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// What a handler returns.
pub type ApiResult = Result<Response, ApiError>;
type HandlerFuture = Pin<Box<dyn Future<Output = ApiResult> + Send>>;
/// A handler: plain function pointers keep the table simple and cheap to clone.
pub type Handler = fn(Ctx) -> HandlerFuture;

/// Everything a handler may look at, already bounded in size.
pub struct Ctx {
    pub state: AppState,
    /// The caller; `None` only on public routes.
    pub principal: Option<Principal>,
    params: Vec<(String, String)>,
    query: String,
    body: Bytes,
    pub client_addr: Option<String>,
    /// The client's `Accept-Language`, bounded, for the few responses written in words.
    pub accept_language: Option<String>,
    note: Arc<std::sync::Mutex<AuditNote>>,
}

/// One documented endpoint.
#[derive(Clone)]
pub struct Route {
    pub method: Method,
    /// Path template in OpenAPI form, e.g. `/api/v1/facilities/{id}`.
    pub path: &'static str,
    pub handler: Handler,
    /// Public routes answer without a session; every other route needs one.
    pub public: bool,
    pub audit: AuditPolicy,
}

/// Which requests of a route go to the audit trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditPolicy {
    /// Every request: anything touching patient data, identity or the trail itself.
    Always,
    /// Directory reads (facilities, clinicians, free slots) hold no patient data: only refusals.
    Refusals,
    /// The API description.
    Never,
}

/// Wraps an `async fn(Ctx) -> ApiResult` into a table entry.
macro_rules! route {
    ($method:ident $path:literal => $handler:path) => {
        route!(@ $method $path => $handler, false, AuditPolicy::Always)
    };
    (directory $method:ident $path:literal => $handler:path) => {
        route!(@ $method $path => $handler, false, AuditPolicy::Refusals)
    };
    (public $method:ident $path:literal => $handler:path) => {
        route!(@ $method $path => $handler, true, AuditPolicy::Always)
    };
    (public quiet $method:ident $path:literal => $handler:path) => {
        route!(@ $method $path => $handler, true, AuditPolicy::Never)
    };
    (@ $method:ident $path:literal => $handler:path, $public:expr, $audit:expr) => {
        Route {
            method: Method::$method,
            path: $path,
            handler: |ctx| Box::pin($handler(ctx)),
            public: $public,
            audit: $audit,
        }
    };
}

/// Every API route. The only place routes are declared.
pub fn route_table() -> Vec<Route> {
    vec![
        route!(public quiet GET "/api/v1/openapi.json" => openapi::get),
        route!(public POST "/api/v1/auth/login" => auth::login),
        route!(public POST "/api/v1/auth/visit" => auth::visit),
        route!(POST "/api/v1/auth/logout" => auth::logout),
        route!(GET "/api/v1/auth/me" => auth::me),
        route!(GET "/api/v1/accounts" => auth::list_accounts),
        route!(POST "/api/v1/accounts" => auth::create_account),
        route!(GET "/api/v1/accounts/{id}" => auth::get_account),
        route!(POST "/api/v1/accounts/{id}/roles" => auth::set_roles),
        route!(POST "/api/v1/accounts/{id}/revoke-sessions" => auth::revoke_sessions),
        route!(GET "/api/v1/account-changes" => account_changes::list),
        route!(POST "/api/v1/account-changes/{id}/approve" => account_changes::approve),
        route!(POST "/api/v1/account-changes/{id}/reject" => account_changes::reject),
        route!(GET "/api/v1/audit" => auth::audit),
        route!(directory GET "/api/v1/facilities" => directory::list_facilities),
        route!(POST "/api/v1/facilities" => directory::create_facility),
        route!(directory GET "/api/v1/facilities/{id}" => directory::get_facility),
        route!(directory GET "/api/v1/facilities/{id}/departments" => directory::list_departments),
        route!(POST "/api/v1/facilities/{id}/departments" => directory::create_department),
        route!(GET "/api/v1/facilities/{id}/calendar" => schedule::calendar),
        route!(GET "/api/v1/facilities/{id}/utilisation" => schedule::utilisation),
        route!(directory GET "/api/v1/specialties" => directory::list_specialties),
        route!(POST "/api/v1/specialties" => directory::create_specialty),
        route!(directory GET "/api/v1/clinicians" => directory::list_clinicians),
        route!(POST "/api/v1/clinicians" => directory::create_clinician),
        route!(directory GET "/api/v1/clinicians/{id}" => directory::get_clinician),
        route!(directory GET "/api/v1/clinicians/{id}/availability/rules" => availability::list_rules),
        route!(POST "/api/v1/clinicians/{id}/availability/rules" => availability::create_rule),
        route!(DELETE "/api/v1/clinicians/{id}/availability/rules/{rule_id}" => availability::delete_rule),
        route!(directory GET "/api/v1/clinicians/{id}/availability/exceptions" => availability::list_exceptions),
        route!(POST "/api/v1/clinicians/{id}/availability/exceptions" => availability::create_exception),
        route!(DELETE "/api/v1/clinicians/{id}/availability/exceptions/{exception_id}" => availability::delete_exception),
        route!(GET "/api/v1/patients" => directory::list_patients),
        route!(POST "/api/v1/patients" => directory::create_patient),
        route!(GET "/api/v1/patients/{id}" => directory::get_patient),
        route!(POST "/api/v1/patients/{id}/break-glass" => break_glass::open),
        route!(GET "/api/v1/break-glass" => break_glass::list),
        route!(directory GET "/api/v1/slots" => schedule::search_slots),
        route!(GET "/api/v1/consultations" => consultations::list),
        route!(POST "/api/v1/consultations" => consultations::create),
        route!(GET "/api/v1/consultations/{id}" => consultations::get),
        route!(POST "/api/v1/consultations/{id}/confirm" => consultations::confirm),
        route!(POST "/api/v1/consultations/{id}/cancel" => consultations::cancel),
        route!(POST "/api/v1/consultations/{id}/reschedule" => consultations::reschedule),
        route!(POST "/api/v1/consultations/{id}/start" => consultations::start),
        route!(POST "/api/v1/consultations/{id}/complete" => consultations::complete),
        route!(POST "/api/v1/consultations/{id}/no-show" => consultations::no_show),
        route!(POST "/api/v1/consultations/{id}/visit-link" => auth::issue_visit_link),
        route!(POST "/api/v1/consultations/{id}/join-token" => calls::join_token),
        route!(GET "/api/v1/consultations/{id}/note" => notes::get),
        route!(PUT "/api/v1/consultations/{id}/note" => notes::save_draft),
        route!(POST "/api/v1/consultations/{id}/note/sign" => notes::sign),
        route!(POST "/api/v1/consultations/{id}/note/addenda" => notes::add_addendum),
        route!(GET "/api/v1/consultations/{id}/note/history" => notes::history),
        route!(GET "/api/v1/consultations/{id}/summary" => notes::summary),
        route!(GET "/api/v1/patients/{id}/timeline" => notes::timeline),
        route!(directory GET "/api/v1/clinicians/{id}/signing-key" => notes::signing_key),
    ]
}

/// The routes of one path, one per method.
type MethodTable = Vec<Route>;

/// The compiled table: paths to the handlers of each method.
pub struct Router {
    paths: matchit::Router<MethodTable>,
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("route {0} is declared twice")]
    Duplicate(String),
    #[error("bad route template: {0}")]
    Insert(#[from] matchit::InsertError),
}

impl Router {
    pub fn new(routes: Vec<Route>) -> Result<Router, RouterError> {
        let mut grouped: Vec<(&'static str, MethodTable)> = Vec::new();
        for r in routes {
            match grouped.iter_mut().find(|(p, _)| *p == r.path) {
                Some((_, methods)) => {
                    if methods.iter().any(|m| m.method == r.method) {
                        return Err(RouterError::Duplicate(format!("{} {}", r.method, r.path)));
                    }
                    methods.push(r);
                }
                None => grouped.push((r.path, vec![r])),
            }
        }
        let mut paths = matchit::Router::new();
        for (path, methods) in grouped {
            paths.insert(path, methods)?;
        }
        Ok(Router { paths })
    }
}

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
                    query,
                    headers,
                    authority,
                    client_addr: addr.map(|a| a.0.ip().to_string()),
                };
                async move { dispatch(state, router, path.as_str(), request, body).await }
            },
        )
}

/// The parts of a request the dispatcher reads before the body.
struct Incoming {
    method: Method,
    query: String,
    headers: HeaderMap,
    authority: Option<warp::host::Authority>,
    client_addr: Option<String>,
}

/// What a handler adds to the audit event of its request.
#[derive(Default, Clone)]
pub struct AuditNote {
    /// Overrides the route as the action (e.g. `login`).
    pub action: Option<String>,
    /// Overrides the caller as the actor (a login names the account it tried).
    pub actor: Option<String>,
    pub record_type: Option<String>,
    pub record_id: Option<String>,
    pub patient_id: Option<PatientId>,
    /// Every patient a list or calendar returned.
    pub patients: std::collections::BTreeSet<PatientId>,
    /// Set when the access rested on an exception to the care-relationship rules
    /// (`break_glass`): it is named in the event's action so reviews find it.
    pub access_reason: Option<&'static str>,
    /// The handler hid a record the caller may not see (answered 404).
    pub denied: bool,
}

fn unauthenticated() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthenticated,
        "sign in first: send the session cookie or an Authorization: Bearer token",
    )
}

/// Refuses state-changing requests authenticated by cookie that come from another site: a
/// `Sec-Fetch-Site` other than same-origin, or an `Origin` whose scheme, host or port is not the
/// server's own (`tls`: it serves HTTPS; `authority`: the host and port the request was sent
/// to). The cookie is SameSite=Strict and the API takes only JSON bodies, so this is the third
/// fence.
fn check_csrf(
    method: &Method,
    headers: &HeaderMap,
    authority: Option<&warp::host::Authority>,
    tls: bool,
    principal: &Principal,
) -> Result<(), ApiError> {
    if !principal.via_cookie || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let cross_site = ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::CrossSiteRequest,
        "this request came from another site and was refused",
    );
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Err(cross_site);
    }
    let Some(origin) = header("origin") else {
        return Ok(());
    };
    // The server's own origin: its scheme (https exactly when it serves TLS, so an http:// page
    // on the same host, which a network attacker can serve, is another origin), and the host
    // and port the request was sent to, a missing port being the scheme's default.
    let (scheme, default_port) = if tls { ("https", 443) } else { ("http", 80) };
    let Some(own) = authority else {
        return Err(cross_site);
    };
    let own_port = own.port_u16().unwrap_or(default_port);
    // An Origin is `scheme://host[:port]` and nothing more; "null" and anything else fail.
    let bare = origin
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.contains(['/', '?', '#', '@']));
    let same = bare
        && origin.parse::<warp::http::Uri>().ok().is_some_and(|uri| {
            let (Some(their_scheme), Some(theirs)) = (uri.scheme_str(), uri.authority()) else {
                return false;
            };
            their_scheme.eq_ignore_ascii_case(scheme)
                && theirs.host().eq_ignore_ascii_case(own.host())
                && theirs.port_u16().unwrap_or(default_port) == own_port
        });
    if same { Ok(()) } else { Err(cross_site) }
}

async fn dispatch<S, B>(
    state: AppState,
    router: Arc<Router>,
    path: &str,
    request: Incoming,
    body: S,
) -> Response
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin + Send,
    B: bytes::Buf,
{
    let started = Instant::now();
    let Incoming {
        method,
        query,
        headers,
        authority,
        client_addr,
    } = request;
    let note = Arc::new(std::sync::Mutex::new(AuditNote::default()));
    let mut principal: Option<Principal> = None;
    let mut audit_policy = AuditPolicy::Never;
    let (result, template) = match router.paths.at(path) {
        Err(_) => (
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NoRoute,
                format!("no API endpoint at {path}; see /api/v1/openapi.json"),
            )),
            "unmatched",
        ),
        Ok(found) => {
            let params: Vec<(String, String)> = found
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            match found.value.iter().find(|r| r.method == method) {
                None => {
                    let allowed: Vec<&str> =
                        found.value.iter().map(|r| r.method.as_str()).collect();
                    (
                        Err(ApiError::new(
                            StatusCode::METHOD_NOT_ALLOWED,
                            ErrorCode::MethodNotAllowed,
                            format!("{method} is not allowed here; use {}", allowed.join(", ")),
                        )),
                        found.value.first().map(|r| r.path).unwrap_or("unmatched"),
                    )
                }
                Some(route) => {
                    audit_policy = route.audit;
                    if let Some((_, id)) = params.iter().find(|(k, _)| k == "id")
                        && let Ok(mut n) = note.lock()
                    {
                        n.record_id = Some(id.chars().take(40).collect());
                    }
                    let result = async {
                        principal = state.principal_for(&headers).await?;
                        match &principal {
                            None if !route.public => return Err(unauthenticated()),
                            Some(p) => check_csrf(
                                &method,
                                &headers,
                                authority.as_ref(),
                                // Cookies are Secure exactly when the server serves TLS.
                                state.secure_cookies,
                                p,
                            )?,
                            None => {}
                        }
                        let body = read_body(&method, &headers, body, state.max_body_bytes).await?;
                        let ctx = Ctx {
                            principal: principal.clone(),
                            state: state.clone(),
                            params,
                            query,
                            body,
                            client_addr: client_addr.clone(),
                            accept_language: headers
                                .get(warp::http::header::ACCEPT_LANGUAGE)
                                .and_then(|v| v.to_str().ok())
                                .map(|v| v.chars().take(200).collect()),
                            note: note.clone(),
                        };
                        (route.handler)(ctx).await
                    }
                    .await;
                    (result, route.path)
                }
            }
        }
    };
    let mut response = result.unwrap_or_else(ApiError::into_response);
    let status = response.status();
    let refused = matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    ) || note.lock().is_ok_and(|n| n.denied);
    if audit_policy == AuditPolicy::Always || (audit_policy == AuditPolicy::Refusals && refused) {
        let n = note.lock().map(|n| n.clone()).unwrap_or_default();
        let outcome = if status.is_success() {
            audit::Outcome::Allowed
        } else if n.denied || status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
        {
            audit::Outcome::Denied
        } else {
            audit::Outcome::Failed
        };
        let mut patients = n.patients;
        patients.extend(n.patient_id);
        // One patient goes in the event's own column; several (a list) in its patient rows.
        let (patient_id, patients) = if patients.len() == 1 {
            (patients.into_iter().next(), Vec::new())
        } else {
            (None, patients.into_iter().collect())
        };
        let action = n.action.unwrap_or_else(|| format!("{method} {template}"));
        let action = match n.access_reason {
            Some(reason) => format!("{action} ({reason})"),
            None => action,
        };
        let event = audit::Event {
            actor_account_id: principal.as_ref().map(|p| p.account_id),
            actor: n
                .actor
                .or_else(|| principal.as_ref().map(|p| p.username.clone()))
                .unwrap_or_else(|| "anonymous".to_string()),
            actor_role: principal
                .as_ref()
                .map(Principal::roles_label)
                .unwrap_or_else(|| "none".to_string()),
            action,
            record_type: n
                .record_type
                .unwrap_or_else(|| record_type_of(template).to_string()),
            record_id: n.record_id,
            patient_id,
            patients,
            client_addr,
            outcome,
        };
        // Nothing is answered that the audit trail does not hold.
        if state.audit.record(event).await.is_err() {
            response = ApiError::unavailable().into_response();
        }
    }
    let status_label = response.status().as_u16().to_string();
    metrics::counter!("http_api_requests_total", "method" => method.to_string(), "route" => template, "status" => status_label)
        .increment(1);
    metrics::histogram!("http_api_request_duration_seconds", "route" => template)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `consultation` from `/api/v1/consultations/{id}/cancel`.
fn record_type_of(template: &str) -> &str {
    let collection = template
        .strip_prefix("/api/v1/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("api");
    match collection {
        "consultations" => "consultation",
        "patients" => "patient",
        "clinicians" => "clinician",
        "facilities" => "facility",
        "specialties" => "specialty",
        "accounts" => "account",
        "account-changes" => "account_change",
        "auth" => "session",
        "slots" => "slot",
        "audit" => "audit",
        "break-glass" => "break_glass",
        other => other,
    }
}

/// Reads the body up to `limit` bytes; JSON is the only body the API accepts.
async fn read_body<S, B>(
    method: &Method,
    headers: &HeaderMap,
    mut body: S,
    limit: usize,
) -> Result<Bytes, ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin + Send,
    B: bytes::Buf,
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTooLarge,
            format!("the request body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(warp::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| {
            ApiError::bad_request(
                ErrorCode::BodyUnreadable,
                "the request body could not be read",
            )
        })?;
        if buf.len() + chunk.remaining() > limit {
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    if !buf.is_empty() && matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        let is_json = headers
            .get(warp::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with Content-Type: application/json",
            ));
        }
    }
    Ok(buf.freeze())
}

impl Ctx {
    /// The signed-in caller (the dispatcher guarantees one on non-public routes).
    pub fn user(&self) -> Result<&Principal, ApiError> {
        self.principal.as_ref().ok_or_else(unauthenticated)
    }

    /// Adds to this request's audit event.
    pub fn audit(&self, f: impl FnOnce(&mut AuditNote)) {
        if let Ok(mut n) = self.note.lock() {
            f(&mut n);
        }
    }

    /// Notes the patient whose data this request touches.
    pub fn audit_patient(&self, patient: PatientId) {
        self.audit(|n| n.patient_id = Some(patient));
    }

    /// Notes every patient a list returned.
    pub fn audit_patients(&self, patients: impl IntoIterator<Item = PatientId>) {
        self.audit(|n| n.patients.extend(patients));
    }

    /// A 404 for a record the caller may not see, recorded as a denial.
    pub fn hidden(&self, what: &str) -> ApiError {
        self.audit(|n| n.denied = true);
        ApiError::not_found(what)
    }

    /// A path parameter parsed as `T`; an unparsable value names the parameter.
    pub fn param<T: std::str::FromStr>(&self, name: &str) -> Result<T, ApiError> {
        let raw = self
            .params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(ApiError::internal)?;
        raw.parse().map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidPath,
                format!("path parameter {name} must be a positive whole number, got {raw:?}"),
            )
        })
    }

    /// The JSON body as `T`. Missing, malformed, mistyped or unknown fields are a 400 naming them.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request(
                ErrorCode::MissingBody,
                "this endpoint needs a JSON body",
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidJson,
                format!("the JSON body is not acceptable: {e}"),
            )
            .with_details(serde_json::json!({ "line": e.line(), "column": e.column() }))
        })
    }

    /// The query string as `T`; unknown parameters are refused so that typos do not pass silently.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_urlencoded::from_str(&self.query).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidQuery,
                format!("the query string is not acceptable: {e}"),
            )
        })
    }
}

/// A JSON response with `status`.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> ApiResult {
    let mut response = warp::Reply::into_response(warp::reply::json(body));
    *response.status_mut() = status;
    Ok(response)
}

pub fn ok<T: Serialize>(body: &T) -> ApiResult {
    json_response(StatusCode::OK, body)
}

pub fn created<T: Serialize>(body: &T) -> ApiResult {
    json_response(StatusCode::CREATED, body)
}

pub fn no_content() -> ApiResult {
    Ok(warp::Reply::into_response(warp::reply::with_status(
        warp::reply(),
        StatusCode::NO_CONTENT,
    )))
}

/// Collects validation failures so a client learns every problem at once.
#[derive(Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn check<T, E: std::fmt::Display>(&mut self, field: &str, r: Result<T, E>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(FieldError {
                    field: field.to_string(),
                    message: e.to_string(),
                });
                None
            }
        }
    }

    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_string(),
            message: message.into(),
        });
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(self.errors))
        }
    }
}
