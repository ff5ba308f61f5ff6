//! Who is calling, and what they may see.
//!
//! Every API request but a few public ones carries a session token (an HttpOnly cookie for the
//! web client, or a Bearer header for API clients); [`crate::state::AppState::principal_for`] turns it into a
//! [`Principal`]. The access rules live in [`policy`], so handlers ask one place.

pub mod access;
pub mod accounts;
pub mod cache;
pub mod changes;
pub mod password;
pub mod policy;
pub mod throttle;
pub mod tokens;

use serde::Serialize;

use crate::domain::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};

/// An account's id.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct AccountId(pub i64);

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for AccountId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(AccountId)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Patient,
    Clinician,
    Scheduler,
    Administrator,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Patient,
        Role::Clinician,
        Role::Scheduler,
        Role::Administrator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Clinician => "clinician",
            Role::Scheduler => "scheduler",
            Role::Administrator => "administrator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One role an account holds; a scheduler's `facility_id` is their hospital (`None`: the network).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Grant {
    pub role: Role,
    pub facility_id: Option<FacilityId>,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, Serialize)]
pub struct Principal {
    pub account_id: AccountId,
    pub username: String,
    pub grants: Vec<Grant>,
    /// The patient record this account is, if any.
    pub patient_id: Option<PatientId>,
    /// The clinician this account is, if any, and where they work.
    pub clinician_id: Option<ClinicianId>,
    pub clinician_facility_id: Option<FacilityId>,
    /// A visit-link session reaches this one consultation and nothing else of the patient's.
    pub only_consultation: Option<ConsultationId>,
    #[serde(skip)]
    pub session_id: i64,
    /// True when the token came in a cookie: such requests must pass the CSRF check.
    #[serde(skip)]
    pub via_cookie: bool,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.grants.iter().any(|g| g.role == role)
    }

    /// The roles held, for the audit trail: `scheduler+clinician`.
    pub fn roles_label(&self) -> String {
        let mut roles: Vec<&str> = self.grants.iter().map(|g| g.role.as_str()).collect();
        roles.sort_unstable();
        roles.dedup();
        if roles.is_empty() {
            "none".to_string()
        } else {
            roles.join("+")
        }
    }

    /// The hospitals whose schedules this caller manages: `None` when not a scheduler,
    /// `Some(Scope::Network)` for a network-wide scheduler.
    pub fn scheduler_scope(&self) -> Option<Scope> {
        let grants: Vec<&Grant> = self
            .grants
            .iter()
            .filter(|g| g.role == Role::Scheduler)
            .collect();
        if grants.is_empty() {
            None
        } else if grants.iter().any(|g| g.facility_id.is_none()) {
            Some(Scope::Network)
        } else {
            Some(Scope::Facilities(
                grants.iter().filter_map(|g| g.facility_id).collect(),
            ))
        }
    }

    /// True when this caller schedules for `facility`.
    pub fn schedules_for(&self, facility: FacilityId) -> bool {
        match self.scheduler_scope() {
            Some(Scope::Network) => true,
            Some(Scope::Facilities(f)) => f.contains(&facility),
            None => false,
        }
    }

    /// The clinician this caller is, when they hold the clinician role.
    pub fn as_clinician(&self) -> Option<ClinicianId> {
        self.has(Role::Clinician)
            .then_some(self.clinician_id)
            .flatten()
    }

    /// The patient this caller is, when they hold the patient role.
    pub fn as_patient(&self) -> Option<PatientId> {
        self.has(Role::Patient).then_some(self.patient_id).flatten()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Network,
    Facilities(Vec<FacilityId>),
}
