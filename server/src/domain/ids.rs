//! Typed identifiers, so a patient id cannot be passed where a clinician id is expected.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

id_type!(
    /// A hub hospital or a care centre.
    FacilityId
);
id_type!(DepartmentId);
id_type!(SpecialtyId);
id_type!(ClinicianId);
id_type!(PatientId);
id_type!(ConsultationId);
id_type!(RuleId);
id_type!(ExceptionId);
id_type!(
    /// A proposed change to an account that waits for a second administrator.
    AccountChangeId
);
