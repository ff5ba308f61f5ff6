//! The SQL of account changes: `account_changes`, read with the user names of the account, its
//! proposer and its decider. Each function runs on the caller's connection; the rules and which
//! account writes go with a decision are [`crate::auth::changes`]'s.

use chrono::{DateTime, Utc};

use crate::auth::AccountId;
use crate::domain::account_change::Status;
use crate::domain::ids::{AccountChangeId, ClinicianId, PatientId};
use crate::on_conn;
use crate::storage::{Conn, UniqueKey};

/// At most one pending change per account (a partial index: `WHERE status = 'pending'`).
pub const ONE_PENDING: UniqueKey = UniqueKey {
    table: "account_changes",
    columns: &["account_id"],
};

/// A stored change with the user names it shows; the roles are JSON lists of grants.
#[derive(sqlx::FromRow)]
pub struct Row {
    pub id: AccountChangeId,
    pub status: Status,
    pub account_id: AccountId,
    pub account_username: String,
    pub proposed_by: AccountId,
    pub proposed_by_username: String,
    pub proposed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub patient_id: Option<PatientId>,
    pub clinician_id: Option<ClinicianId>,
    pub roles_before: String,
    pub roles_after: String,
    pub decided_by: Option<AccountId>,
    pub decided_by_username: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

const SELECT: &str = "SELECT c.id, c.status, c.account_id, a.username AS account_username,
        c.proposed_by, p.username AS proposed_by_username, c.proposed_at, c.expires_at,
        c.patient_id, c.clinician_id, c.roles_before, c.roles_after,
        c.decided_by, d.username AS decided_by_username, c.decided_at, c.reason
     FROM account_changes c
     JOIN accounts a ON a.id = c.account_id
     JOIN accounts p ON p.id = c.proposed_by
     LEFT JOIN accounts d ON d.id = c.decided_by";

/// A change to propose, pending until `expires_at`.
pub struct NewChange<'a> {
    pub account: AccountId,
    pub proposed_by: AccountId,
    pub proposed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub patient_id: Option<PatientId>,
    pub clinician_id: Option<ClinicianId>,
    pub roles_before: &'a str,
    pub roles_after: &'a str,
}

pub async fn insert(conn: Conn<'_>, n: &NewChange<'_>) -> Result<AccountChangeId, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar(
        "INSERT INTO account_changes (account_id, proposed_by, proposed_at, expires_at, patient_id,
                                      clinician_id, roles_before, roles_after, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(n.account)
    .bind(n.proposed_by)
    .bind(n.proposed_at)
    .bind(n.expires_at)
    .bind(n.patient_id)
    .bind(n.clinician_id)
    .bind(n.roles_before)
    .bind(n.roles_after)
    .bind(Status::Pending)
    .fetch_one(&mut *c)
    .await)
}

/// Marks pending changes past their time at `now` as expired.
pub async fn expire_due(conn: Conn<'_>, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "UPDATE account_changes SET status = $1 WHERE status = $2 AND expires_at <= $3",
    )
    .bind(Status::Expired)
    .bind(Status::Pending)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// The change of `account` that is pending and unexpired at `now`, if there is one.
pub async fn pending_of(
    conn: Conn<'_>,
    account: AccountId,
    now: DateTime<Utc>,
) -> Result<Option<AccountChangeId>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar(
        "SELECT id FROM account_changes WHERE account_id = $1 AND status = $2 AND expires_at > $3",
    )
    .bind(account)
    .bind(Status::Pending)
    .bind(now)
    .fetch_optional(&mut *c)
    .await)
}

pub async fn get(conn: Conn<'_>, id: AccountChangeId) -> Result<Option<Row>, sqlx::Error> {
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(SELECT);
        q.push(" WHERE c.id = ").push_bind(id);
        q.build_query_as::<Row>().fetch_optional(&mut *c).await
    })
}

/// Changes of `status` as it reads at `now` (a pending change past its time reads as expired),
/// of `account`, newest first.
pub async fn list(
    conn: Conn<'_>,
    status: Option<Status>,
    account: Option<AccountId>,
    now: DateTime<Utc>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Row>, sqlx::Error> {
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(SELECT);
        q.push(" WHERE 1 = 1");
        match status {
            None => {}
            Some(Status::Pending) => {
                q.push(" AND c.status = ").push_bind(Status::Pending);
                q.push(" AND c.expires_at > ").push_bind(now);
            }
            Some(Status::Expired) => {
                q.push(" AND (c.status = ").push_bind(Status::Expired);
                q.push(" OR (c.status = ").push_bind(Status::Pending);
                q.push(" AND c.expires_at <= ").push_bind(now).push("))");
            }
            Some(s) => {
                q.push(" AND c.status = ").push_bind(s);
            }
        }
        if let Some(a) = account {
            q.push(" AND c.account_id = ").push_bind(a);
        }
        q.push(" ORDER BY c.id DESC LIMIT ").push_bind(limit);
        q.push(" OFFSET ").push_bind(offset);
        q.build_query_as::<Row>().fetch_all(&mut *c).await
    })
}

/// The stored fields a decision checks.
#[derive(sqlx::FromRow)]
pub struct Pending {
    pub account_id: AccountId,
    pub proposed_by: AccountId,
    pub status: Status,
    pub expires_at: DateTime<Utc>,
    pub patient_id: Option<PatientId>,
    pub clinician_id: Option<ClinicianId>,
    pub roles_before: String,
    pub roles_after: String,
}

pub async fn pending(conn: Conn<'_>, id: AccountChangeId) -> Result<Option<Pending>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "SELECT account_id, proposed_by, status, expires_at, patient_id, clinician_id,
                roles_before, roles_after
         FROM account_changes WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)
}

/// Records the decision on change `id`, if it is still pending: `Approved` or `Rejected` (with
/// the reason given). False when it was not pending any more.
pub async fn decide(
    conn: Conn<'_>,
    id: AccountChangeId,
    status: Status,
    decider: AccountId,
    now: DateTime<Utc>,
    reason: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let n = on_conn!(conn, c => sqlx::query(
        "UPDATE account_changes SET status = $2, decided_by = $3, decided_at = $4, reason = $5
         WHERE id = $1 AND status = $6",
    )
    .bind(id)
    .bind(status)
    .bind(decider)
    .bind(now)
    .bind(reason)
    .bind(Status::Pending)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
