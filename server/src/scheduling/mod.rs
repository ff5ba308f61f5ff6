//! The scheduling service: directory (facilities, people), availability, booking, calendars.
//!
//! Plain SQL in `$1` style, run on either engine. The directory, availability and booking keep
//! theirs in a `store` module of functions taking the caller's [`crate::storage::Conn`], and
//! their services decide which calls share a transaction; the calendar's reads still run on the
//! pool. Functions take already-parsed domain values; the API layer parses.

pub mod availability;
pub mod booking;
pub mod calendar;
pub mod consistency;
pub mod directory;
pub mod feeds;

use crate::domain::code::ErrorCode;

/// Errors of the scheduling service that a client can cause, plus storage failures.
#[derive(Debug, thiserror::Error)]
pub enum SchedulingError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: ErrorCode, message: String },
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A new hold would take the booker or the patient past a hold cap
    /// ([`booking::limits`]).
    #[error("{} already has {max} holds standing", cap.as_str())]
    TooManyHolds { cap: booking::HoldCap, max: u32 },
    /// A change to availability would leave these consultations outside every session: they
    /// must be moved or cancelled first.
    #[error("{} booked consultations would be left outside the clinician's sessions", .0.len())]
    Strands(Vec<availability::store::LiveConsultation>),
    /// A new or changed session overlaps another of the same clinician.
    #[error("{message}")]
    Overlaps {
        message: String,
        clash: serde_json::Value,
    },
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

impl SchedulingError {
    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        SchedulingError::Conflict {
            code,
            message: message.into(),
        }
    }
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        SchedulingError::Invalid {
            field,
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, SchedulingError>;
