//! The SQL of stored idempotent answers (`idempotency_keys`). The audit half of the journal is
//! [`crate::audit::store`]'s.

use chrono::{DateTime, Utc};

use super::{Claim, StoredAnswer};
use crate::on_conn;
use crate::storage::{Conn, UniqueKey};

/// One answer per caller and key: of two concurrent requests with the same key, one commits.
pub const IDEMPOTENCY_KEY: UniqueKey = UniqueKey {
    table: "idempotency_keys",
    columns: &["scope", "idem_key"],
};

pub async fn insert_answer(
    conn: Conn<'_>,
    claim: &Claim,
    status: u16,
    body: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => {
    // A key older than its lifetime may be reused: its old answer gives way (a fresh one stays,
    // and the insert fails on it).
    sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND idem_key = $2 AND created_at <= $3")
        .bind(claim.scope.as_str())
        .bind(claim.key.as_str())
        .bind(at - chrono::Duration::hours(super::KEY_LIFETIME_HOURS))
        .execute(&mut *c)
        .await?;
    sqlx::query(
        "INSERT INTO idempotency_keys (scope, idem_key, fingerprint, status, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(claim.scope.as_str())
    .bind(claim.key.as_str())
    .bind(claim.fingerprint.as_str())
    .bind(i32::from(status))
    .bind(body)
    .bind(at)
    .execute(&mut *c)
    .await
    .map(|_| ())
    })
}

/// The answer stored for the claim's scope and key, if stored after `since`.
pub async fn answer(
    conn: Conn<'_>,
    claim: &Claim,
    since: DateTime<Utc>,
) -> Result<Option<StoredAnswer>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, StoredAnswer>(
        "SELECT fingerprint, status, body FROM idempotency_keys
         WHERE scope = $1 AND idem_key = $2 AND created_at > $3",
    )
    .bind(claim.scope.as_str())
    .bind(claim.key.as_str())
    .bind(since)
    .fetch_optional(&mut *c)
    .await)
}

pub async fn purge(conn: Conn<'_>, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query("DELETE FROM idempotency_keys WHERE created_at <= $1")
        .bind(before)
        .execute(&mut *c)
        .await
        .map(|d| d.rows_affected()))
}
