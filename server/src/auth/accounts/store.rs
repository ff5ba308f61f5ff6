//! The SQL of accounts: `accounts`, their roles (`account_roles`), `sessions` and `visit_links`.
//! Each function runs on the caller's connection; the account-change service
//! ([`crate::auth::changes`]) calls several of these in its own transactions.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::auth::{AccountId, Grant, Role};
use crate::domain::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};
use crate::on_conn;
use crate::storage::{Conn, UniqueKey};

/// One account per user name.
pub const USERNAME: UniqueKey = UniqueKey {
    table: "accounts",
    columns: &["username"],
};
/// At most one account is a given patient.
pub const PATIENT_LINK: UniqueKey = UniqueKey {
    table: "accounts",
    columns: &["patient_id"],
};
/// At most one account is a given clinician.
pub const CLINICIAN_LINK: UniqueKey = UniqueKey {
    table: "accounts",
    columns: &["clinician_id"],
};

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Account {
    pub id: AccountId,
    pub username: String,
    pub display_name: String,
    pub patient_id: Option<PatientId>,
    pub clinician_id: Option<ClinicianId>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

/// An account as it is first stored, enabled.
pub struct NewAccountRow<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub password_hash: Option<&'a str>,
    pub patient_id: Option<PatientId>,
    pub clinician_id: Option<ClinicianId>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_account(
    conn: Conn<'_>,
    a: &NewAccountRow<'_>,
) -> Result<AccountId, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar(
        "INSERT INTO accounts (username, display_name, password_hash, patient_id, clinician_id, disabled, created_at)
         VALUES ($1, $2, $3, $4, $5, FALSE, $6) RETURNING id",
    )
    .bind(a.username)
    .bind(a.display_name)
    .bind(a.password_hash)
    .bind(a.patient_id)
    .bind(a.clinician_id)
    .bind(a.created_at)
    .fetch_one(&mut *c)
    .await)
}

pub async fn account(conn: Conn<'_>, id: AccountId) -> Result<Option<Account>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "SELECT id, username, display_name, patient_id, clinician_id, disabled, created_at
         FROM accounts WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)
}

/// A page of accounts, by id.
pub async fn accounts(
    conn: Conn<'_>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Account>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "SELECT id, username, display_name, patient_id, clinician_id, disabled, created_at
         FROM accounts ORDER BY id LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *c)
    .await)
}

/// The roles of an account, by role name; a role this build does not know is left out.
pub async fn grants(conn: Conn<'_>, id: AccountId) -> Result<Vec<Grant>, sqlx::Error> {
    let rows: Vec<(String, Option<FacilityId>)> = on_conn!(conn, c => sqlx::query_as(
        "SELECT role, facility_id FROM account_roles WHERE account_id = $1 ORDER BY role",
    )
    .bind(id)
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows
        .into_iter()
        .filter_map(|(role, facility_id)| {
            Role::parse(&role).map(|role| Grant { role, facility_id })
        })
        .collect())
}

/// Gives an account `grants`, in addition to what it holds.
pub async fn insert_grants(
    conn: Conn<'_>,
    id: AccountId,
    grants: &[Grant],
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => {
        for g in grants {
            sqlx::query("INSERT INTO account_roles (account_id, role, facility_id) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(g.role.as_str())
                .bind(g.facility_id)
                .execute(&mut *c)
                .await?;
        }
        Ok(())
    })
}

/// Takes every role of an account away.
pub async fn delete_grants(conn: Conn<'_>, id: AccountId) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query("DELETE FROM account_roles WHERE account_id = $1")
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|_| ()))
}

/// True when the account holds the administrator role.
pub async fn is_administrator(conn: Conn<'_>, id: AccountId) -> Result<bool, sqlx::Error> {
    let n: i64 = on_conn!(conn, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM account_roles WHERE account_id = $1 AND role = $2",
    )
    .bind(id)
    .bind(Role::Administrator.as_str())
    .fetch_one(&mut *c)
    .await)?;
    Ok(n > 0)
}

/// The patient and clinician an account is, taking the account's row lock (PostgreSQL; SQLite's
/// write transaction holds the database's lock already), so nothing changes the account before
/// the caller's transaction ends. `None` when there is no such account.
pub async fn lock_links(
    conn: Conn<'_>,
    id: AccountId,
) -> Result<Option<(Option<PatientId>, Option<ClinicianId>)>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "UPDATE accounts SET display_name = display_name WHERE id = $1
         RETURNING patient_id, clinician_id",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)
}

/// Links an account to a patient and to a clinician, where given (`None` keeps the link it has).
pub async fn link(
    conn: Conn<'_>,
    id: AccountId,
    patient: Option<PatientId>,
    clinician: Option<ClinicianId>,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "UPDATE accounts SET patient_id = COALESCE($2, patient_id),
                             clinician_id = COALESCE($3, clinician_id)
         WHERE id = $1",
    )
    .bind(id)
    .bind(patient)
    .bind(clinician)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// The account id, password hash and disabled flag of a user name.
pub async fn login_record(
    conn: Conn<'_>,
    username: &str,
) -> Result<Option<(AccountId, Option<String>, bool)>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "SELECT id, password_hash, disabled FROM accounts WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(&mut *c)
    .await)
}

pub async fn account_of_patient(
    conn: Conn<'_>,
    patient: PatientId,
) -> Result<Option<AccountId>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar("SELECT id FROM accounts WHERE patient_id = $1")
        .bind(patient)
        .fetch_optional(&mut *c)
        .await)
}

pub async fn account_of_clinician(
    conn: Conn<'_>,
    clinician: ClinicianId,
) -> Result<Option<AccountId>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar("SELECT id FROM accounts WHERE clinician_id = $1")
        .bind(clinician)
        .fetch_optional(&mut *c)
        .await)
}

/// A session to store: the token's hash, never the token.
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub account: AccountId,
    pub consultation: Option<ConsultationId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert_session(conn: Conn<'_>, s: &NewSession<'_>) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "INSERT INTO sessions (token_hash, account_id, consultation_id, created_at, expires_at, last_seen_at)
         VALUES ($1, $2, $3, $4, $5, $4)",
    )
    .bind(s.token_hash)
    .bind(s.account)
    .bind(s.consultation)
    .bind(s.created_at)
    .bind(s.expires_at)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// A live session with its account, one row per role the account holds (one row with no role
/// when it holds none).
#[derive(sqlx::FromRow)]
pub struct SessionRow {
    pub session_id: i64,
    pub account_id: AccountId,
    pub consultation_id: Option<ConsultationId>,
    pub last_seen_at: DateTime<Utc>,
    pub username: String,
    pub patient_id: Option<PatientId>,
    pub clinician_id: Option<ClinicianId>,
    pub clinician_facility_id: Option<FacilityId>,
    pub disabled: bool,
    pub role: Option<String>,
    pub role_facility_id: Option<FacilityId>,
}

/// The unrevoked, unexpired session with this token hash: the session, its account and every
/// role, in one round trip.
pub async fn session(
    conn: Conn<'_>,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Vec<SessionRow>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "SELECT s.id AS session_id, s.account_id, s.consultation_id, s.last_seen_at, a.username,
                a.patient_id, a.clinician_id, c.facility_id AS clinician_facility_id, a.disabled,
                r.role, r.facility_id AS role_facility_id
         FROM sessions s
         JOIN accounts a ON a.id = s.account_id
         LEFT JOIN clinicians c ON c.id = a.clinician_id
         LEFT JOIN account_roles r ON r.account_id = a.id
         WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_all(&mut *c)
    .await)
}

pub async fn touch_session(
    conn: Conn<'_>,
    session_id: i64,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
        .bind(now)
        .bind(session_id)
        .execute(&mut *c)
        .await
        .map(|_| ()))
}

pub async fn revoke_session(
    conn: Conn<'_>,
    session_id: i64,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(session_id)
        .execute(&mut *c)
        .await
        .map(|_| ()))
}

/// Revokes every live session of an account; returns how many there were.
pub async fn revoke_sessions_of(
    conn: Conn<'_>,
    account: AccountId,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(account)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
}

/// Records a visit link; returns its id.
pub async fn insert_visit_link(
    conn: Conn<'_>,
    consultation: ConsultationId,
    patient: PatientId,
    issued_by: AccountId,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar(
        "INSERT INTO visit_links (consultation_id, patient_id, issued_by, issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(consultation)
    .bind(patient)
    .bind(issued_by)
    .bind(issued_at)
    .bind(expires_at)
    .fetch_one(&mut *c)
    .await)
}

/// Records a use of link `id`, when it is unexpired at `now`, neither withdrawn nor locked, and
/// for this consultation and patient; false otherwise. A link opens the visit as often as the
/// patient needs until it expires (each new device confirming their date of birth first).
pub async fn use_visit_link(
    conn: Conn<'_>,
    id: i64,
    consultation: ConsultationId,
    patient: PatientId,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let n = on_conn!(conn, c => sqlx::query(
        "UPDATE visit_links SET used_at = COALESCE(used_at, $1), last_used_at = $1, uses = uses + 1
         WHERE id = $2 AND consultation_id = $3 AND patient_id = $4 AND expires_at > $1
           AND revoked_at IS NULL AND locked_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .bind(consultation)
    .bind(patient)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// A visit link as the clinic sees it (never its token, which is not stored).
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct VisitLinkRow {
    pub id: i64,
    pub issued_by: AccountId,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// How many times it opened the visit, first and last.
    pub uses: i32,
    pub used_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Wrong dates of birth entered with it.
    pub failed_attempts: i32,
    pub locked_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

macro_rules! visit_link_columns {
    () => {
        "id, issued_by, issued_at, expires_at, uses, used_at, last_used_at, failed_attempts, \
         locked_at, revoked_at"
    };
}

/// Link `id` of this consultation and patient.
pub async fn visit_link(
    conn: Conn<'_>,
    id: i64,
    consultation: ConsultationId,
    patient: PatientId,
) -> Result<Option<VisitLinkRow>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        visit_link_columns!(),
        " FROM visit_links WHERE id = $1 AND consultation_id = $2 AND patient_id = $3"
    );
    on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(id)
        .bind(consultation)
        .bind(patient)
        .fetch_optional(&mut *c)
        .await)
}

/// The links of a consultation, newest first.
pub async fn visit_links_of(
    conn: Conn<'_>,
    consultation: ConsultationId,
) -> Result<Vec<VisitLinkRow>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        visit_link_columns!(),
        " FROM visit_links WHERE consultation_id = $1 ORDER BY id DESC LIMIT 50"
    );
    on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(consultation)
        .fetch_all(&mut *c)
        .await)
}

/// Counts a wrong date of birth against link `id` and locks it at `max` of them; returns the
/// count and whether it is locked now (None when the link is locked or gone already).
pub async fn wrong_birth_date(
    conn: Conn<'_>,
    id: i64,
    max: i32,
    now: DateTime<Utc>,
) -> Result<Option<(i32, bool)>, sqlx::Error> {
    let row: Option<(i32, Option<DateTime<Utc>>)> = on_conn!(conn, c => sqlx::query_as(
        "UPDATE visit_links SET failed_attempts = failed_attempts + 1,
                locked_at = CASE WHEN failed_attempts + 1 >= $2 THEN $3 ELSE locked_at END
         WHERE id = $1 AND locked_at IS NULL
         RETURNING failed_attempts, locked_at",
    )
    .bind(id)
    .bind(max)
    .bind(now)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(row.map(|(n, locked)| (n, locked.is_some())))
}

/// Withdraws every live link of a consultation; returns how many.
pub async fn revoke_visit_links(
    conn: Conn<'_>,
    consultation: ConsultationId,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "UPDATE visit_links SET revoked_at = $2
         WHERE consultation_id = $1 AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(consultation)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
}

/// Ends the visit-link sessions of a consultation (the patient's sessions limited to it).
pub async fn revoke_visit_sessions(
    conn: Conn<'_>,
    consultation: ConsultationId,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "UPDATE sessions SET revoked_at = $2 WHERE consultation_id = $1 AND revoked_at IS NULL",
    )
    .bind(consultation)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
}

/// The patient's date of birth, which a new device confirms before a visit link opens on it.
pub async fn patient_birth_date(
    conn: Conn<'_>,
    patient: PatientId,
) -> Result<Option<chrono::NaiveDate>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar("SELECT date_of_birth FROM patients WHERE id = $1")
        .bind(patient)
        .fetch_optional(&mut *c)
        .await)
}
