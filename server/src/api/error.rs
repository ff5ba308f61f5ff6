//! The one error shape of the API: `{"error": {"code", "message", "details"}}` with the right status.
//!
//! Every error a client can cause is a 4xx that says what to fix. Storage and internal failures
//! become a 500 (or 503 while the database is unreachable) whose details stay in the log, tagged
//! with the request id, and never reach the client.

use serde::Serialize;
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;

pub use crate::domain::code::ErrorCode;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub details: Value,
}

/// One field that failed validation.
#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{what} not found"),
        )
    }

    /// A request without a session on a route that needs one (and a handler asking for the
    /// caller where there is none).
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "sign in first: send the session cookie or an Authorization: Bearer token",
        )
    }

    /// A refusal by role (see [`crate::auth::policy::Forbidden`]).
    pub fn forbidden(what: &'static str) -> Self {
        crate::auth::policy::Forbidden(what).into()
    }

    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// A request that is well-formed but asks for something invalid.
    pub fn unprocessable(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// One invalid field, with the field named in the details.
    pub fn invalid_field(field: &str, message: impl std::fmt::Display) -> Self {
        Self::invalid_fields(vec![FieldError {
            field: field.to_string(),
            message: message.to_string(),
        }])
    }

    pub fn invalid_fields(fields: Vec<FieldError>) -> Self {
        let summary = fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ValidationFailed,
            format!("invalid input: {summary}"),
        )
        .with_details(json!({ "fields": fields }))
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "something went wrong on our side; it has been logged",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "the database is unreachable; try again shortly",
        )
    }

    pub fn into_response(self) -> Response {
        let body = json!({
            "error": { "code": self.code.as_str(), "message": self.message, "details": self.details }
        });
        let mut response = warp::reply::json(&body).into_response_inner();
        *response.status_mut() = self.status;
        response
    }
}

/// `warp::Reply::into_response` by another name, so the trait need not be in scope everywhere.
trait IntoResponseInner {
    fn into_response_inner(self) -> Response;
}
impl<T: warp::Reply> IntoResponseInner for T {
    fn into_response_inner(self) -> Response {
        warp::Reply::into_response(self)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::error!(error = %err, "database unavailable");
                ApiError::unavailable()
            }
            sqlx::Error::Database(ref db) if is_unavailable(db.code().as_deref()) => {
                tracing::error!(error = %err, "database unavailable");
                ApiError::unavailable()
            }
            // A backstop: handlers check references first, so this means a record vanished
            // between the check and the write.
            ref e if crate::storage::is_foreign_key_violation(e) => {
                tracing::warn!(error = %err, "foreign key violation");
                ApiError::unprocessable(
                    ErrorCode::MissingReference,
                    "the request refers to a record that does not exist (any more)",
                )
            }
            other => {
                tracing::error!(error = %other, "database error");
                ApiError::internal()
            }
        }
    }
}

/// Database error codes that mean "not reachable right now" rather than a bug: PostgreSQL's
/// connection class (08), shutdown and start-up (57P0x), a missing database (3D000), too many
/// connections (53300); SQLite's busy and locked codes after the busy timeout.
fn is_unavailable(code: Option<&str>) -> bool {
    match code {
        Some(c) => {
            c.starts_with("08")
                || c.starts_with("57P0")
                || matches!(c, "3D000" | "53300" | "5" | "6" | "517" | "261")
        }
        None => false,
    }
}

impl From<crate::storage::StorageError> for ApiError {
    fn from(err: crate::storage::StorageError) -> Self {
        match err {
            crate::storage::StorageError::Query(e) => e.into(),
            other => {
                tracing::error!(error = %other, "storage error");
                ApiError::internal()
            }
        }
    }
}
