//! Admission: the platform's word, at each join, on whether a join token still admits its bearer.
//!
//! A token is checked offline (signature, window, expiry), but what changed after it was issued
//! only the platform knows: the consultation moved to another clinician or another time, was
//! cancelled or ended, or a clinician denied or removed the bearer. So every join asks the
//! platform once, through [`Admission`], where the consultation stands; nothing is asked per
//! message. The platform answers from its database, so the answer holds on every node that shares
//! it and after restarts.
//!
//! A token carries the consultation's *access version* at issue ([`JoinClaims::access`]). The
//! platform changes that number whenever the consultation's people or its joinability change
//! (reassignment, cancellation, completion), so one comparison revokes every older token. Denials
//! and removals concern one participant: the platform keeps when they happened, and tokens of
//! that participant issued until then are refused.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};

use crate::token::JoinClaims;

/// A boxed future, so that [`Admission`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the signaling hub asks the platform. Implemented by the server against its database.
pub trait Admission: Send + Sync + 'static {
    /// Where consultation `consultation` stands now for `participant` (one indexed lookup);
    /// `Ok(None)` when there is no such consultation.
    fn check<'a>(
        &'a self,
        consultation: i64,
        participant: &'a str,
    ) -> BoxFuture<'a, Result<Option<RoomAccess>, Unavailable>>;

    /// A clinician denied or removed `participant` at `at`: keep it, so that the participant's
    /// tokens issued until then stay refused on every node and after a restart. Must not block
    /// (queue the write); this node refuses them meanwhile from its own memory.
    fn revoked(&self, consultation: i64, participant: &str, at: DateTime<Utc>);
}

/// Whether a consultation's call can be joined at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomState {
    /// Booked or running.
    Open,
    Cancelled,
    /// Completed, not attended, or otherwise over.
    Ended,
}

/// The platform's answer for one join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomAccess {
    pub state: RoomState,
    /// The consultation's current access version: tokens carrying another one are revoked.
    pub version: i64,
    /// The join window as the consultation stands now (unix seconds): after a reschedule it may
    /// differ from the one in the token, and both must contain the moment of joining.
    pub opens_at: i64,
    pub closes_at: i64,
    /// Whether the participant is still one of the consultation's people (its clinicians and
    /// patient by id; guests while their invitation stands).
    pub listed: bool,
    /// When a clinician last denied or removed this participant (unix seconds): tokens issued
    /// at or before it are refused.
    pub revoked_at: Option<i64>,
}

/// The platform could not answer (its database is unreachable): the join is refused, never let
/// through unchecked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the platform cannot check joins right now: {0}")]
pub struct Unavailable(pub String);

/// Why a genuine token, inside its own window, no longer admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    NoSuchConsultation,
    Cancelled,
    Ended,
    /// The access version moved on: the consultation was reassigned (or otherwise changed who
    /// may join) after the token was issued.
    Changed,
    /// The participant is no longer one of the consultation's people.
    NotListed,
    /// A clinician denied or removed the participant after the token was issued.
    DeniedOrRemoved,
    /// The consultation was moved: its current window has not opened.
    TooEarly,
    /// The consultation was moved: its current window has closed.
    TooLate,
    Unavailable,
}

impl Refused {
    /// The protocol's error code.
    pub fn code(self) -> &'static str {
        match self {
            Refused::Cancelled | Refused::Ended => "room_closed",
            Refused::NoSuchConsultation
            | Refused::Changed
            | Refused::NotListed
            | Refused::DeniedOrRemoved => "token_revoked",
            Refused::TooEarly => "too_early",
            Refused::TooLate => "too_late",
            Refused::Unavailable => "unavailable",
        }
    }

    /// What the person is told.
    pub fn message(self) -> &'static str {
        match self {
            Refused::NoSuchConsultation => "this join token names no consultation",
            Refused::Cancelled => "this consultation was cancelled; its call is closed",
            Refused::Ended => "this consultation has ended; its call is closed",
            Refused::Changed => {
                "the consultation changed after this join token was issued: ask for a new one"
            }
            Refused::NotListed => "you no longer take part in this consultation",
            Refused::DeniedOrRemoved => {
                "a clinician refused or removed you from this call; this join token no longer works"
            }
            Refused::TooEarly => {
                "the consultation was moved and its call has not opened yet: ask for a new join token"
            }
            Refused::TooLate => "the consultation was moved and its call has closed",
            Refused::Unavailable => "joining cannot be checked right now: try again shortly",
        }
    }

    /// The WebSocket close code that follows the error.
    pub fn close_code(self) -> u16 {
        match self {
            Refused::Unavailable => 1013,
            _ => 1008,
        }
    }
}

/// Decides a join from the token's claims and the platform's answer, at `now` (unix seconds).
pub fn judge(claims: &JoinClaims, access: Option<&RoomAccess>, now: i64) -> Result<(), Refused> {
    let access = access.ok_or(Refused::NoSuchConsultation)?;
    match access.state {
        RoomState::Open => {}
        RoomState::Cancelled => return Err(Refused::Cancelled),
        RoomState::Ended => return Err(Refused::Ended),
    }
    if claims.access != access.version {
        return Err(Refused::Changed);
    }
    if !access.listed {
        return Err(Refused::NotListed);
    }
    if access.revoked_at.is_some_and(|at| claims.issued_at <= at) {
        return Err(Refused::DeniedOrRemoved);
    }
    if now >= access.closes_at {
        return Err(Refused::TooLate);
    }
    if now < access.opens_at {
        return Err(Refused::TooEarly);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Role;

    fn claims() -> JoinClaims {
        JoinClaims {
            consultation: 42,
            participant: "g1".into(),
            name: "Interpreter".into(),
            role: Role::Guest,
            opens_at: 1_000,
            closes_at: 5_000,
            expires_at: 5_000,
            access: 3,
            issued_at: 1_200,
        }
    }

    fn open() -> RoomAccess {
        RoomAccess {
            state: RoomState::Open,
            version: 3,
            opens_at: 1_000,
            closes_at: 5_000,
            listed: true,
            revoked_at: None,
        }
    }

    #[test]
    fn each_change_refuses_with_its_own_reason() {
        let c = claims();
        assert_eq!(judge(&c, Some(&open()), 1_500), Ok(()));
        assert_eq!(judge(&c, None, 1_500), Err(Refused::NoSuchConsultation));
        let with = |f: fn(&mut RoomAccess)| {
            let mut a = open();
            f(&mut a);
            judge(&c, Some(&a), 1_500)
        };
        assert_eq!(
            with(|a| a.state = RoomState::Cancelled),
            Err(Refused::Cancelled)
        );
        assert_eq!(with(|a| a.state = RoomState::Ended), Err(Refused::Ended));
        assert_eq!(with(|a| a.version = 4), Err(Refused::Changed));
        assert_eq!(with(|a| a.listed = false), Err(Refused::NotListed));
        // Revoked at the second the token was issued: refused (a token of that same second may
        // predate the denial); issued later: admitted.
        assert_eq!(
            with(|a| a.revoked_at = Some(1_200)),
            Err(Refused::DeniedOrRemoved)
        );
        assert_eq!(with(|a| a.revoked_at = Some(1_199)), Ok(()));
        // Moved later or earlier: the current window decides too.
        assert_eq!(with(|a| a.opens_at = 2_000), Err(Refused::TooEarly));
        assert_eq!(with(|a| a.closes_at = 1_400), Err(Refused::TooLate));
        assert_eq!(Refused::Changed.code(), "token_revoked");
        assert_eq!(Refused::Cancelled.code(), "room_closed");
        assert_eq!(Refused::Unavailable.close_code(), 1013);
    }
}
