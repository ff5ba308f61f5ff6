//! A consultation's kinds, urgency and life cycle.
//!
//! held → booked → in_progress → completed, or cancelled (with a reason) or no_show. A hold that
//! is not confirmed in time becomes expired. Only live consultations (held, booked, in progress)
//! claim their slot.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        // Stored as its text on both engines: a column holds exactly the strings above (the
        // migrations' CHECK constraints say the same), and a row with any other text fails to
        // decode rather than passing through as a string.
        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
                $name::parse(text).ok_or_else(|| {
                    format!("{text:?} is not a {}", stringify!($name)).into()
                })
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'static str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'static str as sqlx::Encode<'q, DB>>::encode_by_ref(&self.as_str(), buf)
            }
        }
    };
}
// The other domain modules' stored text enums use it too (availability, note, account change).
pub(crate) use text_enum;

text_enum!(
    /// `video_visit`: a patient and a clinician. `teleconsultation`: a rural clinician with the
    /// patient at a care centre, and a specialist at a hub.
    Kind {
        VideoVisit => "video_visit",
        Teleconsultation => "teleconsultation",
    }
);

text_enum!(Urgency {
    Routine => "routine",
    Soon => "soon",
    Urgent => "urgent",
});

text_enum!(Status {
    Held => "held",
    Booked => "booked",
    InProgress => "in_progress",
    Completed => "completed",
    Cancelled => "cancelled",
    NoShow => "no_show",
    Expired => "expired",
});

text_enum!(FacilityKind {
    HubHospital => "hub_hospital",
    CareCentre => "care_centre",
});

text_enum!(FacilityLevel {
    Central => "central",
    Provincial => "provincial",
    Regional => "regional",
    District => "district",
    Commune => "commune",
});

text_enum!(Sex {
    Female => "female",
    Male => "male",
    Other => "other",
    Unknown => "unknown",
});

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
/// One consultation as stored: who, when, why, and where it is in its life cycle.
pub struct Consultation {
    pub id: ConsultationId,
    pub kind: Kind,
    pub status: Status,
    pub clinician_id: ClinicianId,
    pub patient_id: PatientId,
    pub requesting_facility_id: Option<FacilityId>,
    pub referring_clinician_id: Option<ClinicianId>,
    pub reason: String,
    pub urgency: Urgency,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub hold_expires_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
    /// The delay its clinician announced to waiting patients, in minutes; `None` when on time.
    pub running_late_minutes: Option<i32>,
}

impl Consultation {
    /// The status as a client should see it: a hold past its expiry is expired even before the
    /// sweeper has released it.
    pub fn settle(mut self, now: DateTime<Utc>) -> Self {
        if self.status == Status::Held && self.hold_expires_at.is_some_and(|t| t <= now) {
            self.status = Status::Expired;
        }
        self
    }
}

/// A delay a clinician announces to the patients waiting for them: 5 to
/// [`Delay::MAX_MINUTES`] minutes, in steps of 5 (what a waiting room can promise), or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delay(Option<i32>);

impl Delay {
    pub const MAX_MINUTES: i32 = 180;

    /// Parses a number of minutes; 0 means on time again.
    pub fn parse(minutes: i64) -> Result<Delay, &'static str> {
        match minutes {
            0 => Ok(Delay(None)),
            m if !(0..=i64::from(Delay::MAX_MINUTES)).contains(&m) => {
                Err("must be between 0 and 180 minutes")
            }
            m if m % 5 != 0 => Err("must be a multiple of 5 minutes"),
            // In range: at most 180, so it fits.
            m => Ok(Delay(Some(m as i32))),
        }
    }

    pub fn minutes(self) -> Option<i32> {
        self.0
    }
}

/// What a caller may do to a consultation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Confirm,
    Start,
    Complete,
    Cancel,
    NoShow,
    Reschedule,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Confirm => "confirm",
            Transition::Start => "start",
            Transition::Complete => "complete",
            Transition::Cancel => "cancel",
            Transition::NoShow => "no_show",
            Transition::Reschedule => "reschedule",
        }
    }
}

impl Status {
    /// True while the consultation claims its slot.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Held | Status::Booked | Status::InProgress)
    }

    /// The status after `transition`, or `None` when it is not allowed from this one.
    pub fn after(self, transition: Transition) -> Option<Status> {
        use Status::*;
        use Transition as T;
        match (self, transition) {
            (Held, T::Confirm) => Some(Booked),
            (Booked, T::Start) => Some(InProgress),
            // A booked visit can be completed without a video call (the call failed and the
            // specialist phoned): the record must not stay "booked" for ever.
            (Booked | InProgress, T::Complete) => Some(Completed),
            (Held | Booked, T::Cancel) => Some(Cancelled),
            (Booked, T::NoShow) => Some(NoShow),
            (Held | Booked, T::Reschedule) => Some(self),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_whole_steps_of_five_minutes() {
        assert_eq!(Delay::parse(0).map(Delay::minutes), Ok(None));
        assert_eq!(Delay::parse(15).map(Delay::minutes), Ok(Some(15)));
        assert_eq!(Delay::parse(180).map(Delay::minutes), Ok(Some(180)));
        for bad in [-5, 7, 185, i64::MAX, i64::MIN] {
            assert!(Delay::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn life_cycle() {
        assert_eq!(
            Status::Held.after(Transition::Confirm),
            Some(Status::Booked)
        );
        assert_eq!(
            Status::Booked.after(Transition::Start),
            Some(Status::InProgress)
        );
        assert_eq!(
            Status::InProgress.after(Transition::Complete),
            Some(Status::Completed)
        );
        assert_eq!(
            Status::Booked.after(Transition::Cancel),
            Some(Status::Cancelled)
        );
        assert_eq!(Status::Completed.after(Transition::Cancel), None);
        assert_eq!(Status::Cancelled.after(Transition::Reschedule), None);
        assert_eq!(Status::InProgress.after(Transition::Reschedule), None);
        assert!(Status::Held.is_live() && !Status::Expired.is_live());
    }

    #[test]
    fn text_round_trips() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(*s));
        }
        assert_eq!(Kind::parse("video_visit"), Some(Kind::VideoVisit));
        assert_eq!(Kind::parse("phone"), None);
    }
}
