//! How each service's failures are answered: the one place where a domain error gets its HTTP
//! status. Services define their own error enums and know nothing of HTTP.

use warp::http::StatusCode;

use super::error::{ApiError, ErrorCode, FieldError};
use crate::auth::accounts::AccountError;
use crate::auth::changes::{self, ChangeError, Status};
use crate::auth::policy::Forbidden;
use crate::notes::NotesError;
use crate::notes::passkeys::PasskeyError;
use crate::scheduling::SchedulingError;

impl From<Forbidden> for ApiError {
    fn from(err: Forbidden) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, err.to_string())
    }
}

impl From<SchedulingError> for ApiError {
    fn from(err: SchedulingError) -> Self {
        match err {
            SchedulingError::NotFound(what) => ApiError::not_found(what),
            SchedulingError::Conflict { code, message } => ApiError::conflict(code, message),
            SchedulingError::Invalid { field, message } => ApiError::invalid_field(field, message),
            SchedulingError::TooManyHolds { cap, max } => {
                let message = match cap {
                    crate::scheduling::booking::HoldCap::Account => format!(
                        "you already hold {max} slots, the most one account may hold at once; \
                         confirm or cancel some of them, or wait for them to lapse"
                    ),
                    crate::scheduling::booking::HoldCap::Patient => format!(
                        "this patient already has {max} slots held, the most one patient may \
                         have at once; confirm or cancel some of them, or wait for them to lapse"
                    ),
                };
                ApiError::conflict(ErrorCode::TooManyHolds, message)
                    .with_details(serde_json::json!({ "limit": cap.as_str(), "max": max }))
            }
            SchedulingError::Strands(consultations) => {
                let count = consultations.len();
                let named: Vec<_> = consultations
                    .into_iter()
                    .take(crate::scheduling::availability::MAX_NAMED)
                    .collect();
                ApiError::conflict(
                    ErrorCode::BookingsAffected,
                    format!(
                        "{count} booked consultations would be left outside the clinician's \
                         sessions; move or cancel them first"
                    ),
                )
                .with_details(serde_json::json!({ "count": count, "consultations": named }))
            }
            SchedulingError::Overlaps { message, clash } => {
                ApiError::conflict(ErrorCode::SessionsOverlap, message)
                    .with_details(serde_json::json!({ "clash": clash }))
            }
            SchedulingError::Storage(e) => e.into(),
        }
    }
}

impl From<NotesError> for ApiError {
    fn from(err: NotesError) -> Self {
        match err {
            NotesError::NotFound(what) => ApiError::not_found(what),
            NotesError::Conflict {
                code,
                message,
                current_version,
            } => ApiError::conflict(code, message)
                .with_details(serde_json::json!({ "current_version": current_version })),
            NotesError::Invalid(fields) => ApiError::invalid_fields(
                fields
                    .into_iter()
                    .map(|(field, message)| FieldError {
                        field: field.to_string(),
                        message,
                    })
                    .collect(),
            ),
            NotesError::Corrupt(e) => {
                tracing::error!(error = %e, "unreadable note data");
                ApiError::internal()
            }
            NotesError::NoKey => {
                tracing::error!("a note signing key cannot be made");
                ApiError::internal()
            }
            NotesError::KeyUnusable => {
                tracing::error!(
                    "a clinician's note signing key does not open with this server's notes_kek_file: \
                     is it the deployment's KEK?"
                );
                ApiError::internal()
            }
            NotesError::PasskeyRequired => ApiError::conflict(
                ErrorCode::PasskeyRequired,
                "you have enrolled a passkey, so your signature is made with it: ask for a \
                 signing challenge and answer it with your passkey",
            ),
            NotesError::Passkey(e) => e.into(),
            NotesError::Storage(e) => e.into(),
        }
    }
}

impl From<PasskeyError> for ApiError {
    fn from(err: PasskeyError) -> Self {
        match err {
            PasskeyError::UnknownCeremony => ApiError::not_found("passkey request"),
            e @ PasskeyError::Rejected(_) => {
                ApiError::unprocessable(ErrorCode::PasskeyRejected, e.to_string())
            }
            e @ PasskeyError::NotEnrolled => {
                ApiError::conflict(ErrorCode::PasskeyNotEnrolled, e.to_string())
            }
            e @ PasskeyError::AlreadyEnrolled => {
                ApiError::conflict(ErrorCode::PasskeyEnrolled, e.to_string())
            }
            e @ PasskeyError::TooMany => {
                ApiError::conflict(ErrorCode::TooManyPasskeys, e.to_string())
            }
            PasskeyError::StateShape => {
                tracing::error!("webauthn-rs ceremony state has an unexpected shape");
                ApiError::internal()
            }
            PasskeyError::Json(e) => {
                tracing::error!(error = %e, "passkey data cannot be (de)serialised");
                ApiError::internal()
            }
            PasskeyError::Storage(e) => e.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Duplicate(u) => ApiError::conflict(
                ErrorCode::DuplicateUsername,
                format!("the user name {u:?} is taken"),
            ),
            AccountError::Invalid(m) => ApiError::unprocessable(ErrorCode::ValidationFailed, m),
            AccountError::Random(e) => {
                tracing::error!(error = %e, "no randomness");
                ApiError::internal()
            }
            AccountError::Storage(e) => e.into(),
        }
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::NotFound => ApiError::not_found("account change"),
            ChangeError::Refused(m) => ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::NeedsAnotherAdministrator,
                m,
            ),
            ChangeError::NotPending(Status::Expired) => ApiError::conflict(
                ErrorCode::ChangeExpired,
                format!(
                    "this change lapsed unapproved after {} days; propose it again",
                    changes::PENDING_DAYS
                ),
            ),
            ChangeError::NotPending(s) => ApiError::conflict(
                ErrorCode::ChangeDecided,
                format!("this change is {} already", s.as_str()),
            ),
            e @ ChangeError::Stale(_) => ApiError::conflict(ErrorCode::ChangeStale, e.to_string()),
            ChangeError::AlreadyLinked(m) => ApiError::conflict(ErrorCode::AlreadyLinked, m),
            e @ ChangeError::Pending(id) => {
                ApiError::conflict(ErrorCode::ChangePending, e.to_string())
                    .with_details(serde_json::json!({ "change_id": id }))
            }
            e @ ChangeError::ProposerGone => {
                ApiError::conflict(ErrorCode::ProposerNotAdministrator, e.to_string())
            }
            ChangeError::Account(e) => e.into(),
            ChangeError::Corrupt(m) => {
                tracing::error!(error = %m, "unreadable account change");
                ApiError::internal()
            }
            ChangeError::Storage(e) => e.into(),
        }
    }
}
