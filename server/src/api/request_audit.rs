//! The audit event of one API request: whether its route and its answer call for one, and what
//! the event says, from the route, the caller, the status and what the handler noted.

use warp::http::{Method, StatusCode};

use super::ctx::AuditNote;
use super::routes::AuditPolicy;
use crate::audit;
use crate::auth::Principal;

/// A request as it was answered, as far as its audit event needs.
pub struct Answered<'a> {
    pub method: &'a Method,
    /// The route's template, `unmatched` when there was none.
    pub template: &'static str,
    pub principal: Option<&'a Principal>,
    pub client_addr: Option<String>,
    pub status: StatusCode,
}

/// Whether a request of a route audited by `policy`, answered with `status`, goes to the trail
/// (`denied`: its handler hid a record from the caller).
pub fn wanted(policy: AuditPolicy, status: StatusCode, denied: bool) -> bool {
    let refused = matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    ) || denied;
    policy == AuditPolicy::Always || (policy == AuditPolicy::Refusals && refused)
}

/// The event for `answered`, with what its handler noted taking precedence over what the route
/// and the caller imply.
pub fn event(answered: Answered<'_>, note: AuditNote) -> audit::Event {
    let Answered {
        method,
        template,
        principal,
        client_addr,
        status,
    } = answered;
    let outcome = outcome(status, note.denied);
    let mut patients = note.patients;
    patients.extend(note.patient_id);
    // One patient goes in the event's own column; several (a list) in its patient rows.
    let (patient_id, patients) = if patients.len() == 1 {
        (patients.into_iter().next(), Vec::new())
    } else {
        (None, patients.into_iter().collect())
    };
    let action = note
        .action
        .unwrap_or_else(|| format!("{method} {template}"));
    let action = if note.replayed {
        format!("{action} (idempotent replay)")
    } else {
        action
    };
    let action = match note.access_reason {
        Some(reason) => format!("{action} ({reason})"),
        None => action,
    };
    audit::Event {
        actor_account_id: principal.map(|p| p.account_id),
        actor: note
            .actor
            .or_else(|| principal.map(|p| p.username.clone()))
            .unwrap_or_else(|| "anonymous".to_string()),
        actor_role: principal
            .map(Principal::roles_label)
            .unwrap_or_else(|| "none".to_string()),
        action,
        record_type: note
            .record_type
            .unwrap_or_else(|| record_type_of(template).to_string()),
        record_id: note.record_id,
        patient_id,
        patients,
        client_addr,
        outcome,
    }
}

/// A success was allowed; a refusal (401, 403, or a record hidden as a 404) denied; anything
/// else failed.
fn outcome(status: StatusCode, denied: bool) -> audit::Outcome {
    if status.is_success() {
        audit::Outcome::Allowed
    } else if denied || status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        audit::Outcome::Denied
    } else {
        audit::Outcome::Failed
    }
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
