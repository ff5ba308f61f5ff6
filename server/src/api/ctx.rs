//! [`Ctx`], what a handler receives, and [`AuditNote`], what a handler adds to its request's
//! audit event. The dispatcher ([`super::dispatch`]) builds both; handlers parse what they need
//! from the context at this edge.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use warp::http::{Method, StatusCode};

use super::error::ApiError;
use super::request_audit::{self, Answered};
use crate::auth::Principal;
use crate::domain::code::ErrorCode;
use crate::domain::ids::PatientId;
use crate::journal::{Claim, Journal};
use crate::state::AppState;

/// Everything a handler may look at, already bounded in size.
pub struct Ctx {
    pub state: AppState,
    /// The caller; `None` only on public routes.
    pub principal: Option<Principal>,
    /// The path parameters the route template matched, by name.
    pub(super) params: Vec<(String, String)>,
    /// The raw query string.
    pub(super) query: String,
    /// The body, at most the configured limit; JSON whenever it is not empty.
    pub(super) body: Bytes,
    pub client_addr: Option<String>,
    /// The client's `Accept-Language`, bounded, for the few responses written in words.
    pub accept_language: Option<String>,
    /// `scheme://host[:port]` as this request addressed the server, for links handed on to
    /// someone else (a QR code) when no `public_url` is configured.
    pub own_origin: Option<String>,
    /// Shared with the dispatcher, which reads it after the handler to write the audit event.
    pub(super) note: Arc<Mutex<AuditNote>>,
    /// The request as its audit event names it: method and route template.
    pub(super) method: Method,
    pub(super) template: &'static str,
    /// The request's `Idempotency-Key`, when it sent one (see [`super::idempotency`]).
    pub(super) claim: Option<Claim>,
    /// Shared with the dispatcher: set when the handler's write staged its audit event.
    pub(super) journaled: Arc<AtomicBool>,
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
    pub patients: BTreeSet<PatientId>,
    /// Set when the access rested on an exception to the care-relationship rules
    /// (`break_glass`): it is named in the event's action so reviews find it.
    pub access_reason: Option<&'static str>,
    /// The handler hid a record the caller may not see (answered 404).
    pub denied: bool,
    /// The answer was the stored first answer to the request's `Idempotency-Key`: the event says
    /// so, and names no second change.
    pub replayed: bool,
}

impl Ctx {
    /// The signed-in caller (the dispatcher guarantees one on non-public routes).
    pub fn user(&self) -> Result<&Principal, ApiError> {
        self.principal
            .as_ref()
            .ok_or_else(ApiError::unauthenticated)
    }

    /// The journal of this write request, whose success is answered with `status`: its audit
    /// event as noted so far (the service adds the record it wrote) and its idempotency claim.
    /// Build it just before calling the service, after noting what the handler knows.
    pub fn journal(&self, status: StatusCode) -> Journal {
        let note = self.note.lock().map(|n| n.clone()).unwrap_or_default();
        let answered = Answered {
            method: &self.method,
            template: self.template,
            principal: self.principal.as_ref(),
            client_addr: self.client_addr.clone(),
            status,
        };
        Journal::new(
            request_audit::event(answered, note),
            self.claim.clone(),
            status.as_u16(),
            self.journaled.clone(),
        )
        .with_outbox(self.state.outbox.clone())
    }

    /// [`Ctx::journal`] for a write answered 200.
    pub fn journal_ok(&self) -> Journal {
        self.journal(StatusCode::OK)
    }

    /// Adds to this request's audit event.
    pub fn audit(&self, f: impl FnOnce(&mut AuditNote)) {
        if let Ok(mut n) = self.note.lock() {
            f(&mut n);
        }
    }

    /// Records an event of its own for something this request came across (beside the
    /// request's event, which the dispatcher writes), before the answer is sent: named `action`,
    /// about `record_type` `record_id` of `patient`, with `outcome`.
    pub async fn record_event(
        &self,
        action: &str,
        record_type: &str,
        record_id: String,
        patient: PatientId,
        outcome: crate::audit::Outcome,
    ) -> Result<(), ApiError> {
        let note = AuditNote {
            action: Some(action.to_string()),
            record_type: Some(record_type.to_string()),
            record_id: Some(record_id),
            patient_id: Some(patient),
            ..AuditNote::default()
        };
        let answered = Answered {
            method: &self.method,
            template: self.template,
            principal: self.principal.as_ref(),
            client_addr: self.client_addr.clone(),
            status: StatusCode::OK,
        };
        let mut event = request_audit::event(answered, note);
        event.outcome = outcome;
        // Like the dispatcher's own event: an answer the trail cannot hold is a 503, not a 500.
        self.state.audit.record(event).await.map_err(|e| {
            tracing::error!(error = %e, "an audit event could not be recorded");
            ApiError::unavailable()
        })
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
