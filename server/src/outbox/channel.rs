//! What every channel implements, and what a send comes to.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use super::store::Message;

/// A delivery the receiver acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The receiver's HTTP status, or what the channel has for one.
    pub status: u16,
    /// The channel that delivered it, as stored in `sent_via` (SMS when Zalo refused).
    pub via: &'static str,
}

/// A failed delivery. `reason` is short and never holds a response body or a message's content.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct SendError {
    pub retryable: bool,
    /// Nothing is to be sent any more (the visit a reminder was for was moved or cancelled, the
    /// patient withdrew consent): the message is `cancelled`, not dead.
    pub obsolete: bool,
    /// Not now: the message is to go at this time instead (a patient's quiet hours), with no
    /// attempt counted.
    pub later: Option<DateTime<Utc>>,
    pub reason: String,
}

impl SendError {
    pub fn retry(reason: impl Into<String>) -> SendError {
        SendError {
            retryable: true,
            obsolete: false,
            later: None,
            reason: reason.into(),
        }
    }
    pub fn permanent(reason: impl Into<String>) -> SendError {
        SendError {
            retryable: false,
            obsolete: false,
            later: None,
            reason: reason.into(),
        }
    }
    pub fn obsolete(reason: impl Into<String>) -> SendError {
        SendError {
            retryable: false,
            obsolete: true,
            later: None,
            reason: reason.into(),
        }
    }
    pub fn later(at: DateTime<Utc>, reason: impl Into<String>) -> SendError {
        SendError {
            retryable: false,
            obsolete: false,
            later: Some(at),
            reason: reason.into(),
        }
    }
}

/// One way of sending a message: each is configured per deployment and registered with the
/// dispatcher under the name its messages carry in `channel`.
pub trait Channel: Send + Sync {
    /// Sends `message`, attempted at `now`.
    fn send<'a>(
        &'a self,
        message: &'a Message,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Delivered, SendError>>;
}
