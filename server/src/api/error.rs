//! The one error shape of the API: `{"error": {"code", "message", "details"}}` with the right status.
//!
//! Every error a client can cause is a 4xx that says what to fix. A database fault (down,
//! silent, busy, read-only, out of disk: [`crate::storage::Outage`]) is a 503 with a stable code
//! (`storage_full` for a full disk, `unavailable` for the rest, `details.reason` naming which)
//! and a `Retry-After` in seconds; other storage and internal failures are a 500. Either way the
//! database's own words stay in the log, tagged with the request id, and never reach the client.

use serde::Serialize;
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;

pub use crate::domain::code::ErrorCode;
use crate::storage::Outage;
use crate::storage::readiness::NotReady;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub details: Value,
    /// Seconds, for a `Retry-After` header.
    pub retry_after: Option<u64>,
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
            retry_after: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// Answers with `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
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

    /// The database cannot be used now, for a reason not known here (the audit trail could not
    /// take the request's event).
    pub fn unavailable() -> Self {
        Self::outage(Outage::Unreachable)
    }

    /// The 503 of a database fault: what it means for the request, and when to try again (a full
    /// disk needs an operator, the rest usually passes in seconds).
    pub fn outage(outage: Outage) -> Self {
        let (code, message, seconds) = match outage {
            Outage::Full => (
                ErrorCode::StorageFull,
                "the database has no room for more data, so nothing was saved; an operator has to free disk space; try again later",
                30,
            ),
            Outage::ReadOnly => (
                ErrorCode::Unavailable,
                "the database accepts no changes right now, so nothing was saved; try again shortly",
                5,
            ),
            Outage::TimedOut => (
                ErrorCode::Unavailable,
                "the database did not answer in time; try again shortly",
                2,
            ),
            Outage::Busy => (
                ErrorCode::Unavailable,
                "the database is busy; try again shortly",
                1,
            ),
            Outage::Unreachable => (
                ErrorCode::Unavailable,
                "the database is unreachable; try again shortly",
                2,
            ),
        };
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
            .with_details(json!({ "reason": outage.as_str() }))
            .retry_after(seconds)
    }

    /// The 503 of `/readyz`: which database, and why it cannot take writes.
    pub fn not_ready(why: NotReady, database: &str) -> Self {
        let (message, seconds) = match why {
            NotReady::Outage(Outage::Full) => ("the database has no room for more data", 30),
            NotReady::Outage(Outage::ReadOnly) => ("the database accepts no changes", 5),
            NotReady::Outage(Outage::TimedOut) => ("the database did not answer in time", 2),
            NotReady::Outage(Outage::Busy) => ("the database is busy", 1),
            NotReady::Outage(Outage::Unreachable) => ("the database is unreachable", 2),
            NotReady::Failed => ("the database refused the readiness probe", 5),
        };
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotReady,
            message,
        )
        .with_details(json!({ "database": database, "reason": why.reason() }))
        .retry_after(seconds)
    }

    pub fn into_response(self) -> Response {
        let body = json!({
            "error": { "code": self.code.as_str(), "message": self.message, "details": self.details }
        });
        let mut response = warp::reply::json(&body).into_response_inner();
        *response.status_mut() = self.status;
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                warp::http::header::RETRY_AFTER,
                warp::http::HeaderValue::from(seconds),
            );
        }
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
        if let Some(outage) = crate::storage::outage(&err) {
            tracing::error!(error = %err, reason = outage.as_str(), "database unavailable");
            return ApiError::outage(outage);
        }
        match err {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An error as the SQLite driver reports one, with its extended result code.
    fn sqlite_error(sql: &'static str, setup: &'static str) -> sqlx::Error {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
                .await
                .expect("in-memory SQLite");
            sqlx::raw_sql(setup)
                .execute(&mut conn)
                .await
                .expect("setup");
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .expect_err("the statement fails")
        })
    }

    #[test]
    fn every_database_fault_is_a_503_with_retry_after_and_no_sql() {
        let full = sqlite_error(
            "INSERT INTO t VALUES (zeroblob(100000))",
            "PRAGMA max_page_count = 2; CREATE TABLE t (b BLOB)",
        );
        let timed_out = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the database gave no answer within 750 ms",
        ));
        let reset = sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into());
        for (err, code, reason) in [
            (full, "storage_full", "storage_full"),
            (timed_out, "unavailable", "timed_out"),
            (reset, "unavailable", "unreachable"),
            (sqlx::Error::PoolTimedOut, "unavailable", "unreachable"),
        ] {
            let text = err.to_string();
            let api = ApiError::from(err);
            assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
            assert_eq!(
                (api.code.as_str(), api.details["reason"].as_str()),
                (code, Some(reason)),
                "{text}"
            );
            assert!(api.retry_after.is_some_and(|s| s >= 1));
            assert!(!api.message.contains("INSERT") && !api.message.contains(&text));
            let response = api.into_response();
            assert!(response.headers().contains_key("retry-after"));
        }
    }

    #[test]
    fn a_refused_statement_is_not_a_fault() {
        let unique = sqlite_error(
            "INSERT INTO t VALUES (1)",
            "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1)",
        );
        let api = ApiError::from(unique);
        assert_eq!(api.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(api.retry_after, None);
    }
}
