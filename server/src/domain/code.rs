//! The stable codes by which clients tell one failure from another (`"error": {"code": ...}`).
//!
//! Clients and their translations branch on these strings, so they never change once published;
//! inside the server they are an enum, so a typo is a compile error and code can match on them.
//! Which HTTP status a code is answered with is the API layer's business, not this one's.

use serde::{Serialize, Serializer};

macro_rules! error_codes {
    ($($variant:ident => $wire:literal,)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, for the tests that check the wire strings.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as clients see it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)*
                }
            }
        }
    };
}

error_codes! {
    AlreadyLinked => "already_linked",
    BadRequest => "bad_request",
    BodyTooLarge => "body_too_large",
    BodyUnreadable => "body_unreadable",
    BookingsAffected => "bookings_affected",
    Busy => "busy",
    ChangeDecided => "change_decided",
    ChangeExpired => "change_expired",
    ChangePending => "change_pending",
    ChangeStale => "change_stale",
    ConsultationNotOpen => "consultation_not_open",
    CrossSiteRequest => "cross_site_request",
    DateOfBirthRequired => "date_of_birth_required",
    DuplicateCode => "duplicate_code",
    DuplicateDepartment => "duplicate_department",
    DuplicateNationalId => "duplicate_national_id",
    DuplicateUsername => "duplicate_username",
    Forbidden => "forbidden",
    HeadersTooLarge => "headers_too_large",
    HoldExpired => "hold_expired",
    IdempotencyKeyReused => "idempotency_key_reused",
    Internal => "internal",
    InvalidCredentials => "invalid_credentials",
    InvalidIdempotencyKey => "invalid_idempotency_key",
    InvalidJson => "invalid_json",
    InvalidPath => "invalid_path",
    InvalidQuery => "invalid_query",
    InvalidTransition => "invalid_transition",
    InvalidVisitLink => "invalid_visit_link",
    MessagePending => "message_pending",
    MethodNotAllowed => "method_not_allowed",
    MetricsTokenRequired => "metrics_token_required",
    MissingBody => "missing_body",
    MissingReference => "missing_reference",
    NeedsAnotherAdministrator => "needs_another_administrator",
    NoDraft => "no_draft",
    NoRoute => "no_route",
    NotFound => "not_found",
    NotJoinable => "not_joinable",
    NotNeeded => "not_needed",
    NotReady => "not_ready",
    NoteNotSigned => "note_not_signed",
    NoteSigned => "note_signed",
    OwnRoles => "own_roles",
    PasskeyEnrolled => "passkey_enrolled",
    PasskeyNotEnrolled => "passkey_not_enrolled",
    PasskeyRejected => "passkey_rejected",
    PasskeyRequired => "passkey_required",
    ProposerNotAdministrator => "proposer_not_administrator",
    SessionsOverlap => "sessions_overlap",
    SlotTaken => "slot_taken",
    StorageFull => "storage_full",
    TooEarly => "too_early",
    TooLate => "too_late",
    TooManyAttempts => "too_many_attempts",
    TooManyExceptions => "too_many_exceptions",
    TooManyHolds => "too_many_holds",
    TooManyPasskeys => "too_many_passkeys",
    TooManyRequests => "too_many_requests",
    TooManyRules => "too_many_rules",
    Unauthenticated => "unauthenticated",
    Unavailable => "unavailable",
    UnsupportedMediaType => "unsupported_media_type",
    ValidationFailed => "validation_failed",
    VersionConflict => "version_conflict",
    VisitLinkLocked => "visit_link_locked",
    WrongDateOfBirth => "wrong_date_of_birth",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn wire_codes_are_distinct_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} is used twice");
            assert!(
                !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{s} is not snake_case"
            );
        }
    }
}
