//! Accounts, roles, sessions and visit links in storage.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::tokens::{self, VisitClaims};
use super::{AccountId, Grant, Principal, Role};
use crate::domain::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};
use crate::domain::time;
use crate::on_db;
use crate::storage::{BeginWrite, Db, is_unique_violation};

/// A session lasts at most this long, and ends sooner after this much idleness.
pub const SESSION_LIFETIME_HOURS: i64 = 12;
pub const SESSION_IDLE_MINUTES: i64 = 120;
/// `last_seen_at` is written at most this often, so reading is not a write per request.
const TOUCH_SECONDS: i64 = 60;
/// Longest token accepted from a client before it is even hashed.
const MAX_TOKEN_LEN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("the user name {0:?} is taken")]
    Duplicate(String),
    #[error("{0}")]
    Invalid(String),
    #[error("randomness unavailable: {0}")]
    Random(#[from] getrandom::Error),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

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

#[derive(Clone, Debug, Serialize)]
pub struct AccountView {
    #[serde(flatten)]
    pub account: Account,
    pub roles: Vec<Grant>,
}

pub struct NewAccount {
    pub username: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub patient_id: Option<PatientId>,
    pub clinician_id: Option<ClinicianId>,
    pub grants: Vec<Grant>,
}

/// User names are compared in lower case.
pub fn normalise_username(raw: &str) -> Option<String> {
    let u = raw.trim().to_lowercase();
    let ok = (3..=64).contains(&u.len())
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    ok.then_some(u)
}

pub async fn create_account(db: &Db, a: NewAccount) -> Result<AccountView, AccountError> {
    let now = time::now();
    let result = on_db!(db, pool => {
        async {
            let mut tx = pool.begin_write().await?;
            let id: AccountId = sqlx::query_scalar(
                "INSERT INTO accounts (username, display_name, password_hash, patient_id, clinician_id, disabled, created_at)
                 VALUES ($1, $2, $3, $4, $5, FALSE, $6) RETURNING id",
            )
            .bind(&a.username)
            .bind(&a.display_name)
            .bind(a.password_hash.as_deref())
            .bind(a.patient_id)
            .bind(a.clinician_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            for g in &a.grants {
                sqlx::query("INSERT INTO account_roles (account_id, role, facility_id) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(g.role.as_str())
                    .bind(g.facility_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(id)
        }
        .await
    });
    let id = result.map_err(|e| {
        if is_unique_violation(&e) {
            AccountError::Duplicate(a.username.clone())
        } else {
            AccountError::Storage(e)
        }
    })?;
    get_account(db, id)
        .await?
        .ok_or_else(|| AccountError::Invalid("the account vanished".into()))
}

pub async fn grants_of(db: &Db, id: AccountId) -> Result<Vec<Grant>, sqlx::Error> {
    let rows: Vec<(String, Option<FacilityId>)> = on_db!(db, pool => sqlx::query_as(
        "SELECT role, facility_id FROM account_roles WHERE account_id = $1 ORDER BY role",
    )
    .bind(id)
    .fetch_all(pool)
    .await)?;
    Ok(rows
        .into_iter()
        .filter_map(|(role, facility_id)| {
            Role::parse(&role).map(|role| Grant { role, facility_id })
        })
        .collect())
}

pub async fn get_account(db: &Db, id: AccountId) -> Result<Option<AccountView>, sqlx::Error> {
    let account: Option<Account> = on_db!(db, pool => sqlx::query_as(
        "SELECT id, username, display_name, patient_id, clinician_id, disabled, created_at
         FROM accounts WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await)?;
    match account {
        None => Ok(None),
        Some(account) => Ok(Some(AccountView {
            roles: grants_of(db, account.id).await?,
            account,
        })),
    }
}

pub async fn list_accounts(
    db: &Db,
    limit: i64,
    offset: i64,
) -> Result<Vec<AccountView>, sqlx::Error> {
    let accounts: Vec<Account> = on_db!(db, pool => sqlx::query_as(
        "SELECT id, username, display_name, patient_id, clinician_id, disabled, created_at
         FROM accounts ORDER BY id LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await)?;
    let mut out = Vec::with_capacity(accounts.len());
    for account in accounts {
        out.push(AccountView {
            roles: grants_of(db, account.id).await?,
            account,
        });
    }
    Ok(out)
}

/// Replaces the roles of an account.
pub async fn set_roles(db: &Db, id: AccountId, grants: &[Grant]) -> Result<(), sqlx::Error> {
    on_db!(db, pool => {
        async {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM account_roles WHERE account_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for g in grants {
                sqlx::query("INSERT INTO account_roles (account_id, role, facility_id) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(g.role.as_str())
                    .bind(g.facility_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
        .await
    })
}

/// The account and password hash for a login attempt.
pub async fn login_record(
    db: &Db,
    username: &str,
) -> Result<Option<(AccountId, Option<String>, bool)>, sqlx::Error> {
    on_db!(db, pool => sqlx::query_as::<_, (AccountId, Option<String>, bool)>(
        "SELECT id, password_hash, disabled FROM accounts WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(pool)
    .await)
}

/// A new session; returns the token to hand to the client, once.
pub async fn create_session(
    db: &Db,
    account: AccountId,
    consultation: Option<ConsultationId>,
    expires_at: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>), AccountError> {
    let (token, hash) = tokens::new_session_token()?;
    let now = time::now();
    on_db!(db, pool => sqlx::query(
        "INSERT INTO sessions (token_hash, account_id, consultation_id, created_at, expires_at, last_seen_at)
         VALUES ($1, $2, $3, $4, $5, $4)",
    )
    .bind(&hash)
    .bind(account)
    .bind(consultation)
    .bind(now)
    .bind(expires_at)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok((token, expires_at))
}

pub fn default_expiry() -> DateTime<Utc> {
    time::now() + Duration::hours(SESSION_LIFETIME_HOURS)
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    session_id: i64,
    account_id: AccountId,
    consultation_id: Option<ConsultationId>,
    last_seen_at: DateTime<Utc>,
    username: String,
    patient_id: Option<PatientId>,
    clinician_id: Option<ClinicianId>,
    clinician_facility_id: Option<FacilityId>,
    disabled: bool,
    role: Option<String>,
    role_facility_id: Option<FacilityId>,
}

/// The principal a token belongs to, if the session is live.
/// The stored form of a client's token, or `None` for one that cannot be a session token.
pub fn token_hash(token: &str) -> Option<String> {
    (!token.is_empty() && token.len() <= MAX_TOKEN_LEN).then(|| tokens::hash_token(token))
}

/// The principal whose live session has this token hash (see [`token_hash`]).
pub async fn authenticate(
    db: &Db,
    hash: &str,
    via_cookie: bool,
) -> Result<Option<Principal>, sqlx::Error> {
    let now = time::now();
    // One round trip per request: the session, its account and every role (one row per role).
    let rows: Vec<SessionRow> = on_db!(db, pool => sqlx::query_as(
        "SELECT s.id AS session_id, s.account_id, s.consultation_id, s.last_seen_at, a.username,
                a.patient_id, a.clinician_id, c.facility_id AS clinician_facility_id, a.disabled,
                r.role, r.facility_id AS role_facility_id
         FROM sessions s
         JOIN accounts a ON a.id = s.account_id
         LEFT JOIN clinicians c ON c.id = a.clinician_id
         LEFT JOIN account_roles r ON r.account_id = a.id
         WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2",
    )
    .bind(hash)
    .bind(now)
    .fetch_all(pool)
    .await)?;
    let mut grants: Vec<Grant> = rows
        .iter()
        .filter_map(|r| {
            let role = Role::parse(r.role.as_deref()?)?;
            Some(Grant {
                role,
                facility_id: r.role_facility_id,
            })
        })
        .collect();
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    if row.disabled || row.last_seen_at < now - Duration::minutes(SESSION_IDLE_MINUTES) {
        return Ok(None);
    }
    if row.last_seen_at < now - Duration::seconds(TOUCH_SECONDS) {
        on_db!(db, pool => sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
            .bind(now)
            .bind(row.session_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
    }
    if row.consultation_id.is_some() {
        // A visit-link session is a patient for one consultation, whatever else the account holds.
        grants.retain(|g| g.role == Role::Patient);
    }
    Ok(Some(Principal {
        account_id: row.account_id,
        username: row.username,
        grants,
        patient_id: row.patient_id,
        clinician_id: row.clinician_id,
        clinician_facility_id: row.clinician_facility_id,
        only_consultation: row.consultation_id,
        session_id: row.session_id,
        via_cookie,
    }))
}

pub async fn revoke_session(db: &Db, session_id: i64) -> Result<(), sqlx::Error> {
    on_db!(db, pool => sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(time::now())
        .bind(session_id)
        .execute(pool)
        .await
        .map(|_| ()))
}

/// Ends every session of an account; returns how many were live.
pub async fn revoke_all(db: &Db, account: AccountId) -> Result<u64, sqlx::Error> {
    on_db!(db, pool => sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL")
        .bind(time::now())
        .bind(account)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
}

/// Records a new visit link and returns its claims (the caller signs them).
pub async fn issue_visit_link(
    db: &Db,
    consultation: ConsultationId,
    patient: PatientId,
    issued_by: AccountId,
    expires_at: DateTime<Utc>,
) -> Result<VisitClaims, sqlx::Error> {
    let link_id: i64 = on_db!(db, pool => sqlx::query_scalar(
        "INSERT INTO visit_links (consultation_id, patient_id, issued_by, issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(consultation)
    .bind(patient)
    .bind(issued_by)
    .bind(time::now())
    .bind(expires_at)
    .fetch_one(pool)
    .await)?;
    Ok(VisitClaims {
        link_id,
        consultation_id: consultation,
        patient_id: patient,
        expires_at,
    })
}

/// Marks a visit link used; false when it was used already or does not match its record.
pub async fn consume_visit_link(db: &Db, claims: &VisitClaims) -> Result<bool, sqlx::Error> {
    let n = on_db!(db, pool => sqlx::query(
        "UPDATE visit_links SET used_at = $1
         WHERE id = $2 AND consultation_id = $3 AND patient_id = $4 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(time::now())
    .bind(claims.link_id)
    .bind(claims.consultation_id)
    .bind(claims.patient_id)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

pub async fn account_of_patient(
    db: &Db,
    patient: PatientId,
) -> Result<Option<AccountId>, sqlx::Error> {
    on_db!(db, pool => sqlx::query_scalar("SELECT id FROM accounts WHERE patient_id = $1")
        .bind(patient)
        .fetch_optional(pool)
        .await)
}

pub async fn account_of_clinician(
    db: &Db,
    clinician: ClinicianId,
) -> Result<Option<AccountId>, sqlx::Error> {
    on_db!(db, pool => sqlx::query_scalar("SELECT id FROM accounts WHERE clinician_id = $1")
        .bind(clinician)
        .fetch_optional(pool)
        .await)
}

/// The account of a patient, created on first use of a visit link (patients who never set a
/// password still need an identity for sessions and the audit trail).
pub async fn patient_account(db: &Db, patient: PatientId) -> Result<AccountId, AccountError> {
    if let Some(id) = account_of_patient(db, patient).await? {
        return Ok(id);
    }
    let created = create_account(
        db,
        NewAccount {
            username: format!("patient-{patient}"),
            display_name: format!("patient {patient}"),
            password_hash: None,
            patient_id: Some(patient),
            clinician_id: None,
            grants: vec![Grant {
                role: Role::Patient,
                facility_id: None,
            }],
        },
    )
    .await;
    match created {
        Ok(v) => Ok(v.account.id),
        // Two first uses at once: the other one created it.
        Err(AccountError::Duplicate(_)) => account_of_patient(db, patient)
            .await?
            .ok_or_else(|| AccountError::Invalid("patient account missing".into())),
        Err(e) => Err(e),
    }
}
