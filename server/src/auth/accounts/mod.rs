//! Accounts, roles, sessions and visit links: the service over [`store`].

pub mod store;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::tokens::{self, VisitClaims};
use super::{AccountId, Grant, Principal, Role};
use crate::domain::ids::{ClinicianId, ConsultationId, PatientId};
use crate::domain::time;
use crate::storage::{Conn, Db};
pub use store::Account;
use store::{CLINICIAN_LINK, NewAccountRow, NewSession, PATIENT_LINK, USERNAME};

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

impl AccountError {
    /// The error of a failed account insert. A taken user name is [`AccountError::Duplicate`];
    /// so is a taken patient or clinician link, which callers check before inserting and which
    /// only a concurrent insert can take in between (the visit link's first use relies on it:
    /// see [`patient_account`]). Anything else is a storage failure.
    pub fn of_insert(err: sqlx::Error, username: &str) -> AccountError {
        if [USERNAME, PATIENT_LINK, CLINICIAN_LINK]
            .iter()
            .any(|key| key.violated_by(&err))
        {
            AccountError::Duplicate(username.to_string())
        } else {
            AccountError::Storage(err)
        }
    }
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

impl NewAccount {
    /// The row to insert, created `now`; `linked` false leaves the patient and clinician links
    /// out (they wait for approval).
    pub fn row(&self, linked: bool, now: DateTime<Utc>) -> NewAccountRow<'_> {
        NewAccountRow {
            username: &self.username,
            display_name: &self.display_name,
            password_hash: self.password_hash.as_deref(),
            patient_id: self.patient_id.filter(|_| linked),
            clinician_id: self.clinician_id.filter(|_| linked),
            created_at: now,
        }
    }
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
    let mut tx = db.begin().await?;
    let id = store::insert_account(tx.conn(), &a.row(true, time::now()))
        .await
        .map_err(|e| AccountError::of_insert(e, &a.username))?;
    store::insert_grants(tx.conn(), id, &a.grants).await?;
    tx.commit().await?;
    get_account(db, id)
        .await?
        .ok_or_else(|| AccountError::Invalid("the account vanished".into()))
}

pub async fn grants_of(db: &Db, id: AccountId) -> Result<Vec<Grant>, sqlx::Error> {
    let mut c = db.acquire().await?;
    store::grants(c.conn(), id).await
}

pub async fn get_account(db: &Db, id: AccountId) -> Result<Option<AccountView>, sqlx::Error> {
    let mut c = db.acquire().await?;
    view(c.conn(), id).await
}

/// An account with its roles, on the caller's connection.
pub async fn view(mut conn: Conn<'_>, id: AccountId) -> Result<Option<AccountView>, sqlx::Error> {
    let Some(account) = store::account(conn.reborrow(), id).await? else {
        return Ok(None);
    };
    Ok(Some(AccountView {
        roles: store::grants(conn, account.id).await?,
        account,
    }))
}

pub async fn list_accounts(
    db: &Db,
    limit: i64,
    offset: i64,
) -> Result<Vec<AccountView>, sqlx::Error> {
    let mut c = db.acquire().await?;
    let accounts = store::accounts(c.conn(), limit, offset).await?;
    let mut out = Vec::with_capacity(accounts.len());
    for account in accounts {
        out.push(AccountView {
            roles: store::grants(c.conn(), account.id).await?,
            account,
        });
    }
    Ok(out)
}

/// Replaces the roles of an account.
pub async fn set_roles(db: &Db, id: AccountId, grants: &[Grant]) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    store::delete_grants(tx.conn(), id).await?;
    store::insert_grants(tx.conn(), id, grants).await?;
    tx.commit().await
}

/// The account and password hash for a login attempt.
pub async fn login_record(
    db: &Db,
    username: &str,
) -> Result<Option<(AccountId, Option<String>, bool)>, sqlx::Error> {
    let mut c = db.acquire().await?;
    store::login_record(c.conn(), username).await
}

/// A new session; returns the token to hand to the client, once.
pub async fn create_session(
    db: &Db,
    account: AccountId,
    consultation: Option<ConsultationId>,
    expires_at: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>), AccountError> {
    let (token, hash) = tokens::new_session_token()?;
    let mut c = db.acquire().await?;
    let session = NewSession {
        token_hash: &hash,
        account,
        consultation,
        created_at: time::now(),
        expires_at,
    };
    store::insert_session(c.conn(), &session).await?;
    Ok((token, expires_at))
}

pub fn default_expiry() -> DateTime<Utc> {
    time::now() + Duration::hours(SESSION_LIFETIME_HOURS)
}

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
    let mut c = db.acquire().await?;
    let rows = store::session(c.conn(), hash, now).await?;
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
        store::touch_session(c.conn(), row.session_id, now).await?;
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
    let mut c = db.acquire().await?;
    store::revoke_session(c.conn(), session_id, time::now()).await
}

/// Ends every session of an account; returns how many were live.
pub async fn revoke_all(db: &Db, account: AccountId) -> Result<u64, sqlx::Error> {
    let mut c = db.acquire().await?;
    store::revoke_sessions_of(c.conn(), account, time::now()).await
}

/// Records a new visit link and returns its claims (the caller signs them).
pub async fn issue_visit_link(
    db: &Db,
    consultation: ConsultationId,
    patient: PatientId,
    issued_by: AccountId,
    expires_at: DateTime<Utc>,
) -> Result<VisitClaims, sqlx::Error> {
    let mut c = db.acquire().await?;
    let link_id = store::insert_visit_link(
        c.conn(),
        consultation,
        patient,
        issued_by,
        time::now(),
        expires_at,
    )
    .await?;
    Ok(VisitClaims {
        link_id,
        consultation_id: consultation,
        patient_id: patient,
        expires_at,
    })
}

/// Marks a visit link used; false when it was used already or does not match its record.
pub async fn consume_visit_link(db: &Db, claims: &VisitClaims) -> Result<bool, sqlx::Error> {
    let mut c = db.acquire().await?;
    store::use_visit_link(
        c.conn(),
        claims.link_id,
        claims.consultation_id,
        claims.patient_id,
        time::now(),
    )
    .await
}

pub async fn account_of_patient(
    db: &Db,
    patient: PatientId,
) -> Result<Option<AccountId>, sqlx::Error> {
    let mut c = db.acquire().await?;
    store::account_of_patient(c.conn(), patient).await
}

pub async fn account_of_clinician(
    db: &Db,
    clinician: ClinicianId,
) -> Result<Option<AccountId>, sqlx::Error> {
    let mut c = db.acquire().await?;
    store::account_of_clinician(c.conn(), clinician).await
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
