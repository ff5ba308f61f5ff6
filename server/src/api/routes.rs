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
    account_changes, accounts, audit_trail, availability, break_glass, calendar_feeds, calls,
    consultations, directory, notes, notifications, openapi, passkeys, schedule, sessions,
    visit_links,
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
    pub writes: Writes,
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

/// Whether a route changes stored state, and so how its audit event is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// The handler's write stages its audit event, and the answer to an `Idempotency-Key`, in
    /// the transaction of the change ([`crate::journal`]). A success answered without that is a
    /// bug the dispatcher makes up for and counts (`api_unjournaled_writes_total`).
    Journaled,
    /// Changes nothing stored (reads, and the few writes listed in the test below): the
    /// dispatcher records the event before it answers, and an `Idempotency-Key` is not looked at.
    NoWrite,
}

/// Wraps an `async fn(Ctx) -> ApiResult` into a table entry. `write` declares a route whose
/// handler journals its change (see [`Writes`]).
macro_rules! route {
    ($method:ident $path:literal => $handler:path) => {
        route!(@ $method $path => $handler, false, AuditPolicy::Always, Writes::NoWrite)
    };
    (write $method:ident $path:literal => $handler:path) => {
        route!(@ $method $path => $handler, false, AuditPolicy::Always, Writes::Journaled)
    };
    (directory $method:ident $path:literal => $handler:path) => {
        route!(@ $method $path => $handler, false, AuditPolicy::Refusals, Writes::NoWrite)
    };
    (public write $method:ident $path:literal => $handler:path) => {
        route!(@ $method $path => $handler, true, AuditPolicy::Always, Writes::Journaled)
    };
    (public $method:ident $path:literal => $handler:path) => {
        route!(@ $method $path => $handler, true, AuditPolicy::Always, Writes::NoWrite)
    };
    (public quiet $method:ident $path:literal => $handler:path) => {
        route!(@ $method $path => $handler, true, AuditPolicy::Never, Writes::NoWrite)
    };
    (@ $method:ident $path:literal => $handler:path, $public:expr, $audit:expr, $writes:expr) => {
        Route {
            method: Method::$method,
            path: $path,
            handler: |ctx| Box::pin($handler(ctx)),
            public: $public,
            audit: $audit,
            writes: $writes,
        }
    };
}

/// Every API route. The only place routes are declared.
pub fn route_table() -> Vec<Route> {
    vec![
        route!(public quiet GET "/api/v1/openapi.json" => openapi::get),
        route!(public write POST "/api/v1/auth/login" => sessions::login),
        route!(public write POST "/api/v1/auth/visit" => visit_links::visit),
        route!(write POST "/api/v1/auth/logout" => sessions::logout),
        route!(GET "/api/v1/auth/me" => sessions::me),
        route!(GET "/api/v1/me/passkeys" => passkeys::list),
        route!(GET "/api/v1/me/calendar-feed" => calendar_feeds::get),
        route!(GET "/api/v1/me/contact-preferences" => notifications::get_my_contacts),
        route!(write PUT "/api/v1/me/contact-preferences" => notifications::put_my_contacts),
        route!(write POST "/api/v1/me/calendar-feed" => calendar_feeds::create),
        route!(write POST "/api/v1/me/calendar-feed/revoke" => calendar_feeds::revoke),
        route!(public GET "/api/v1/calendar-feeds/{token}" => calendar_feeds::feed),
        route!(write POST "/api/v1/me/passkeys/registration" => passkeys::start),
        route!(write POST "/api/v1/me/passkeys" => passkeys::finish),
        route!(GET "/api/v1/accounts" => accounts::list),
        route!(write POST "/api/v1/accounts" => accounts::create),
        route!(GET "/api/v1/accounts/{id}" => accounts::get),
        route!(write POST "/api/v1/accounts/{id}/roles" => accounts::set_roles),
        route!(write POST "/api/v1/accounts/{id}/revoke-sessions" => accounts::revoke_sessions),
        route!(GET "/api/v1/account-changes" => account_changes::list),
        route!(write POST "/api/v1/account-changes/{id}/approve" => account_changes::approve),
        route!(write POST "/api/v1/account-changes/{id}/reject" => account_changes::reject),
        route!(GET "/api/v1/audit" => audit_trail::list),
        route!(directory GET "/api/v1/facilities" => directory::list_facilities),
        route!(write POST "/api/v1/facilities" => directory::create_facility),
        route!(directory GET "/api/v1/facilities/{id}" => directory::get_facility),
        route!(directory GET "/api/v1/facilities/{id}/departments" => directory::list_departments),
        route!(write POST "/api/v1/facilities/{id}/departments" => directory::create_department),
        route!(GET "/api/v1/facilities/{id}/calendar" => schedule::calendar),
        route!(GET "/api/v1/facilities/{id}/utilisation" => schedule::utilisation),
        route!(GET "/api/v1/facilities/{id}/bookings" => schedule::find_bookings),
        route!(write POST "/api/v1/facilities/{id}/availability/rules" => availability::apply_template),
        route!(directory GET "/api/v1/specialties" => directory::list_specialties),
        route!(write POST "/api/v1/specialties" => directory::create_specialty),
        route!(directory GET "/api/v1/clinicians" => directory::list_clinicians),
        route!(write POST "/api/v1/clinicians" => directory::create_clinician),
        route!(directory GET "/api/v1/clinicians/{id}" => directory::get_clinician),
        route!(directory GET "/api/v1/clinicians/{id}/availability/rules" => availability::list_rules),
        route!(write POST "/api/v1/clinicians/{id}/availability/rules" => availability::create_rule),
        route!(write PUT "/api/v1/clinicians/{id}/availability/rules/{rule_id}" => availability::update_rule),
        route!(write DELETE "/api/v1/clinicians/{id}/availability/rules/{rule_id}" => availability::delete_rule),
        route!(directory GET "/api/v1/clinicians/{id}/availability/exceptions" => availability::list_exceptions),
        route!(write POST "/api/v1/clinicians/{id}/availability/exceptions" => availability::create_exception),
        route!(write DELETE "/api/v1/clinicians/{id}/availability/exceptions/{exception_id}" => availability::delete_exception),
        route!(GET "/api/v1/patients" => directory::list_patients),
        route!(write POST "/api/v1/patients" => directory::create_patient),
        route!(GET "/api/v1/patients/{id}" => directory::get_patient),
        route!(write POST "/api/v1/patients/{id}/break-glass" => break_glass::open),
        route!(GET "/api/v1/patients/{id}/contact-preferences" => notifications::get_contacts),
        route!(write PUT "/api/v1/patients/{id}/contact-preferences" => notifications::put_contacts),
        route!(GET "/api/v1/break-glass" => break_glass::list),
        route!(directory GET "/api/v1/slots" => schedule::search_slots),
        route!(GET "/api/v1/consultations" => consultations::list),
        route!(write POST "/api/v1/consultations" => consultations::create),
        route!(GET "/api/v1/consultations/{id}" => consultations::get),
        route!(write POST "/api/v1/consultations/{id}/confirm" => consultations::confirm),
        route!(write POST "/api/v1/consultations/{id}/cancel" => consultations::cancel),
        route!(write POST "/api/v1/consultations/{id}/reschedule" => consultations::reschedule),
        route!(write POST "/api/v1/consultations/{id}/start" => consultations::start),
        route!(write POST "/api/v1/consultations/{id}/complete" => consultations::complete),
        route!(write POST "/api/v1/consultations/{id}/no-show" => consultations::no_show),
        route!(write POST "/api/v1/consultations/{id}/running-late" => consultations::running_late),
        route!(GET "/api/v1/rooms" => calls::rooms),
        route!(write POST "/api/v1/consultations/{id}/visit-link" => visit_links::issue),
        route!(GET "/api/v1/consultations/{id}/visit-links" => visit_links::list),
        route!(write POST "/api/v1/consultations/{id}/visit-links/revoke" => visit_links::revoke),
        route!(GET "/api/v1/consultations/{id}/messages" => notifications::consultation_log),
        route!(GET "/api/v1/outbox/dead" => notifications::dead_letters),
        route!(write POST "/api/v1/outbox/messages/{id}/resend" => notifications::resend),
        route!(POST "/api/v1/consultations/{id}/join-token" => calls::join_token),
        route!(GET "/api/v1/consultations/{id}/note" => notes::get),
        route!(write PUT "/api/v1/consultations/{id}/note" => notes::save_draft),
        route!(write POST "/api/v1/consultations/{id}/note/sign" => notes::sign),
        route!(write POST "/api/v1/consultations/{id}/note/sign/challenge" => notes::sign_challenge),
        route!(write POST "/api/v1/consultations/{id}/note/addenda" => notes::add_addendum),
        route!(write POST "/api/v1/consultations/{id}/note/addenda/challenge" => notes::addendum_challenge),
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

    /// The routes that take a method other than GET and still store nothing, and why. Any other
    /// such route must be declared `write` (journaled).
    const STORE_NOTHING: &[(&str, &str, &str)] = &[(
        "POST",
        "/api/v1/consultations/{id}/join-token",
        "issues a signed, short-lived call token; nothing is stored, the event is recorded before the answer",
    )];

    #[test]
    fn every_route_that_changes_state_is_journaled() {
        for r in route_table() {
            let name = format!("{} {}", r.method, r.path);
            let exempt = STORE_NOTHING
                .iter()
                .any(|(m, p, _)| *m == r.method.as_str() && *p == r.path);
            match (r.method == Method::GET, r.writes) {
                (true, Writes::Journaled) => panic!("{name} is a read declared as a write"),
                (true, Writes::NoWrite) => {}
                (false, Writes::Journaled) => {
                    assert!(!exempt, "{name} is journaled: take it off STORE_NOTHING")
                }
                (false, Writes::NoWrite) => assert!(
                    exempt,
                    "{name} may change state but is not declared `write`: journal its change \
                     (ctx.journal in the service's transaction) and declare it in the table"
                ),
            }
        }
        for (m, p, _) in STORE_NOTHING {
            assert!(
                route_table()
                    .iter()
                    .any(|r| r.method.as_str() == *m && r.path == *p),
                "STORE_NOTHING names {m} {p}, which is not a route"
            );
        }
    }

    #[test]
    fn every_keyed_write_documents_its_idempotency_key() {
        let doc = openapi::document().expect("openapi.json parses");
        let key = serde_json::json!({"$ref": "#/components/parameters/IdempotencyKey"});
        for r in route_table() {
            if r.writes != Writes::Journaled || r.public {
                continue;
            }
            let op = &doc["paths"][r.path][r.method.as_str().to_lowercase()];
            let documented = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.contains(&key));
            assert!(
                documented,
                "{} {}: no Idempotency-Key parameter",
                r.method, r.path
            );
            assert!(
                op["responses"]["422"].is_object() && op["responses"]["400"].is_object(),
                "{} {}: 400 invalid_idempotency_key and 422 idempotency_key_reused are undocumented",
                r.method,
                r.path
            );
        }
    }

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
