//! What the audit trail records: an event as a request describes it, and as it is stored in the
//! chain.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::auth::AccountId;
use crate::domain::ids::PatientId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action was allowed and done.
    Allowed,
    /// Refused for lack of permission (or not visible to the caller).
    Denied,
    /// Attempted but failed (bad input, conflict, wrong password).
    Failed,
}

impl Outcome {
    /// The outcome a stored string names; `None` for any other string.
    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Allowed, Outcome::Denied, Outcome::Failed]
            .into_iter()
            .find(|o| o.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// One thing that happened, before it is chained.
#[derive(Clone, Debug)]
pub struct Event {
    pub actor_account_id: Option<AccountId>,
    /// The user name, or `anonymous`.
    pub actor: String,
    pub actor_role: String,
    /// What was done, e.g. `GET /api/v1/consultations/{id}` or `login`.
    pub action: String,
    /// The kind of record, e.g. `consultation`, `patient`, `session`.
    pub record_type: String,
    pub record_id: Option<String>,
    /// The patient whose data this touched, when there is one.
    pub patient_id: Option<PatientId>,
    /// The patients it touched when there were several (a list): `patient_id` is then `None`.
    pub patients: Vec<PatientId>,
    pub client_addr: Option<String>,
    pub outcome: Outcome,
}

/// A stored event.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Stored {
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_account_id: Option<AccountId>,
    pub actor: String,
    pub actor_role: String,
    pub action: String,
    pub record_type: String,
    pub record_id: Option<String>,
    pub patient_id: Option<PatientId>,
    /// The patients of a list read, from `audit_event_patients`.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patients: Vec<PatientId>,
    pub client_addr: Option<String>,
    pub outcome: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Which events to list (newest first).
#[derive(Default)]
pub struct AuditQuery {
    pub patient_id: Option<PatientId>,
    pub actor: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: i64,
    pub offset: i64,
}
