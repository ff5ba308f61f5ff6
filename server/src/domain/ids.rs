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

/// Who a join token admits to a consultation's call, as the signaling server names them:
/// `c12` (clinician 12), `p7` (patient 7), or `g` and a random suffix (a guest a clinician
/// invited, who has no record of their own). Built and parsed only here, so the two ends agree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ParticipantId {
    Clinician(ClinicianId),
    Patient(PatientId),
    /// The suffix after `g`.
    Guest(String),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a participant id (c<clinician>, p<patient> or g<guest>)")]
pub struct NotAParticipant(pub String);

impl std::fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParticipantId::Clinician(id) => write!(f, "c{id}"),
            ParticipantId::Patient(id) => write!(f, "p{id}"),
            ParticipantId::Guest(suffix) => write!(f, "g{suffix}"),
        }
    }
}

impl std::str::FromStr for ParticipantId {
    type Err = NotAParticipant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refuse = || NotAParticipant(s.to_string());
        if let Some(suffix) = s.strip_prefix('g') {
            Ok(ParticipantId::Guest(suffix.to_string()))
        } else if let Some(n) = s.strip_prefix('c') {
            n.parse()
                .map(ParticipantId::Clinician)
                .map_err(|_| refuse())
        } else if let Some(n) = s.strip_prefix('p') {
            n.parse().map(ParticipantId::Patient).map_err(|_| refuse())
        } else {
            Err(refuse())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participant_ids_round_trip() {
        for id in [
            ParticipantId::Clinician(ClinicianId(12)),
            ParticipantId::Patient(PatientId(7)),
            ParticipantId::Guest("3f9a0c".into()),
        ] {
            assert_eq!(id.to_string().parse::<ParticipantId>(), Ok(id));
        }
        assert_eq!(ParticipantId::Clinician(ClinicianId(12)).to_string(), "c12");
        assert_eq!(ParticipantId::Patient(PatientId(7)).to_string(), "p7");
    }

    #[test]
    fn other_text_is_no_participant() {
        for text in ["", "x12", "c", "cxyz", "p", "p7x", "12", "C12"] {
            assert_eq!(
                text.parse::<ParticipantId>(),
                Err(NotAParticipant(text.to_string())),
                "{text:?}"
            );
        }
    }
}
