//! Who is calling. Every handler receives a [`Principal`]; until identity lands (the next issue),
//! the server acts for a fixed development principal, and this module is the seam where real
//! authentication will plug in without touching the handlers.

use serde::Serialize;

use crate::domain::ids::FacilityId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Patient,
    Clinician,
    Scheduler,
    Administrator,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, Serialize)]
pub struct Principal {
    /// Stable subject, written into consultation events as the actor.
    pub subject: String,
    pub roles: Vec<Role>,
    pub facility_id: Option<FacilityId>,
}

impl Principal {
    /// The principal every request runs as before identity exists: an administrator and
    /// scheduler of the whole network. Never used once authentication lands.
    pub fn development() -> Principal {
        Principal {
            subject: "dev:operator".to_string(),
            roles: vec![Role::Administrator, Role::Scheduler],
            facility_id: None,
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}
