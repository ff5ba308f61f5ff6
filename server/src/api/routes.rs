//! The route table: every endpoint of the API, declared once, and [`Router`], the table compiled
//! for matching. The dispatcher ([`super::dispatch`]) looks requests up here, and a test below
//! compares the table with `openapi.json`, so a route cannot exist without being documented.

use std::future::Future;
use std::pin::Pin;

use warp::http::{Method, StatusCode};

use super::ctx::Ctx;
use super::error::ApiError;
use super::reply::ApiResult;
use super::{
    account_changes, accounts, audit_trail, availability, break_glass, calls, consultations,
    directory, notes, openapi, schedule, sessions, visit_links,
};
use crate::domain::code::ErrorCode;

type HandlerFuture = Pin<Box<dyn Future<Output = ApiResult> + Send>>;
/// A handler: plain function pointers keep the table simple and cheap to clone.
pub type Handler = fn(Ctx) -> HandlerFuture;

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
        route!(public POST "/api/v1/auth/login" => sessions::login),
        route!(public POST "/api/v1/auth/visit" => visit_links::visit),
        route!(POST "/api/v1/auth/logout" => sessions::logout),
        route!(GET "/api/v1/auth/me" => sessions::me),
        route!(GET "/api/v1/accounts" => accounts::list),
        route!(POST "/api/v1/accounts" => accounts::create),
        route!(GET "/api/v1/accounts/{id}" => accounts::get),
        route!(POST "/api/v1/accounts/{id}/roles" => accounts::set_roles),
        route!(POST "/api/v1/accounts/{id}/revoke-sessions" => accounts::revoke_sessions),
        route!(GET "/api/v1/account-changes" => account_changes::list),
        route!(POST "/api/v1/account-changes/{id}/approve" => account_changes::approve),
        route!(POST "/api/v1/account-changes/{id}/reject" => account_changes::reject),
        route!(GET "/api/v1/audit" => audit_trail::list),
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
        route!(POST "/api/v1/consultations/{id}/visit-link" => visit_links::issue),
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

/// The route that serves a request, and the path parameters its template matched.
pub struct Found<'r> {
    pub route: &'r Route,
    pub params: Vec<(String, String)>,
}

/// A request no route serves: the error it is answered with, and the template its metrics are
/// counted under (`unmatched` when no path matched).
pub struct Unrouted {
    pub error: ApiError,
    pub template: &'static str,
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

    /// The route for `method` on `path`: a 404 when no template matches the path, a 405 naming
    /// the allowed methods when one does but not for this method.
    pub fn find(&self, method: &Method, path: &str) -> Result<Found<'_>, Unrouted> {
        let Ok(found) = self.paths.at(path) else {
            return Err(Unrouted {
                error: ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NoRoute,
                    format!("no API endpoint at {path}; see /api/v1/openapi.json"),
                ),
                template: "unmatched",
            });
        };
        let Some(route) = found.value.iter().find(|r| r.method == *method) else {
            let allowed: Vec<&str> = found.value.iter().map(|r| r.method.as_str()).collect();
            return Err(Unrouted {
                error: ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    ErrorCode::MethodNotAllowed,
                    format!("{method} is not allowed here; use {}", allowed.join(", ")),
                ),
                template: found.value.first().map(|r| r.path).unwrap_or("unmatched"),
            });
        };
        let params = found
            .params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Found { route, params })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_table_matches_the_openapi_document() {
        let doc = openapi::document().expect("openapi.json parses");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths is an object") {
            for method in item.as_object().expect("path item is an object").keys() {
                if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    documented.insert(format!("{} {}", method.to_uppercase(), path));
                }
            }
        }
        let routed: BTreeSet<String> = route_table()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from openapi.json: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "openapi.json documents routes that do not exist: {unrouted:?}"
        );
    }
}
