//! Accounts, roles, sessions and visit links: the service over [`store`].

pub mod store;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::tokens::{self, VisitClaims};
use super::{AccountId, Grant, Principal, Role};
use crate::domain::ids::{ClinicianId, ConsultationId, PatientId};
use crate::domain::time;
use crate::journal::{About, Journal};
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

/// Creates an account outside any request: the command line's first administrators, the demo's
/// seed, and a patient's account on first use of a visit link (which that request's own event
/// names). An administrator's request uses [`create_account_journaled`].
pub async fn create_account(db: &Db, a: NewAccount) -> Result<AccountView, AccountError> {
    insert_account(db, a, None).await
}

/// Creates an account for an administrator's request: its audit event (and idempotent answer)
/// commit with it.
pub async fn create_account_journaled(
    db: &Db,
    a: NewAccount,
    journal: &Journal,
) -> Result<AccountView, AccountError> {
    insert_account(db, a, Some(journal)).await
}

async fn insert_account(
    db: &Db,
    a: NewAccount,
    journal: Option<&Journal>,
) -> Result<AccountView, AccountError> {
    let mut tx = db.begin().await?;
    let id = store::insert_account(tx.conn(), &a.row(true, time::now()))
        .await
        .map_err(|e| AccountError::of_insert(e, &a.username))?;
    store::insert_grants(tx.conn(), id, &a.grants).await?;
    let created = view(tx.conn(), id)
        .await?
        .ok_or_else(|| AccountError::Invalid("the account vanished".into()))?;
    if let Some(journal) = journal {
        journal
            .write(
                tx.conn(),
                About::record(id).patient(created.account.patient_id),
                &created,
            )
            .await?;
    }
    tx.commit().await?;
    Ok(created)
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

/// Replaces the roles of an account, with the request's audit event (and idempotent answer);
/// returns the account as it is now, or `None` when there is no such account.
pub async fn set_roles(
    db: &Db,
    id: AccountId,
    grants: &[Grant],
    journal: &Journal,
) -> Result<Option<AccountView>, sqlx::Error> {
    let mut tx = db.begin().await?;
    store::delete_grants(tx.conn(), id).await?;
    store::insert_grants(tx.conn(), id, grants).await?;
    let Some(changed) = view(tx.conn(), id).await? else {
        return Ok(None);
    };
    journal
        .write(
            tx.conn(),
            About::record(id).patient(changed.account.patient_id),
            &changed,
        )
        .await?;
    tx.commit().await?;
    Ok(Some(changed))
}

/// The account and password hash for a login attempt.
pub async fn login_record(
    db: &Db,
    username: &str,
) -> Result<Option<(AccountId, Option<String>, bool)>, sqlx::Error> {
    let mut c = db.acquire().await?;
    store::login_record(c.conn(), username).await
}

/// A new session, with the sign-in's audit event in its transaction; returns the token to hand
/// to the client, once. The token is the answer, so no answer is stored for an idempotency key.
pub async fn create_session(
    db: &Db,
    account: AccountId,
    expires_at: DateTime<Utc>,
    journal: &Journal,
) -> Result<(String, DateTime<Utc>), AccountError> {
    let mut tx = db.begin().await?;
    let token = insert_session(tx.conn(), account, None, expires_at).await?;
    journal.stage(tx.conn(), About::record(account)).await?;
    tx.commit().await?;
    Ok((token, expires_at))
}

/// Uses the visit link of `claims` and opens a session for `account` limited to its
/// consultation, with the request's audit event, in one transaction: `None` when the link was
/// used already (nothing is written then).
pub async fn visit_session(
    db: &Db,
    claims: &VisitClaims,
    account: AccountId,
    expires_at: DateTime<Utc>,
    journal: &Journal,
) -> Result<Option<(String, DateTime<Utc>)>, AccountError> {
    let mut tx = db.begin().await?;
    let now = time::now();
    if !store::use_visit_link(
        tx.conn(),
        claims.link_id,
        claims.consultation_id,
        claims.patient_id,
        now,
    )
    .await?
    {
        return Ok(None);
    }
    let token =
        insert_session(tx.conn(), account, Some(claims.consultation_id), expires_at).await?;
    journal
        .stage(
            tx.conn(),
            About::record(claims.consultation_id).patient(claims.patient_id),
        )
        .await?;
    tx.commit().await?;
    Ok(Some((token, expires_at)))
}

/// Inserts a session row; returns its token.
async fn insert_session(
    conn: Conn<'_>,
    account: AccountId,
    consultation: Option<ConsultationId>,
    expires_at: DateTime<Utc>,
) -> Result<String, AccountError> {
    let (token, hash) = tokens::new_session_token()?;
    let session = NewSession {
        token_hash: &hash,
        account,
        consultation,
        created_at: time::now(),
        expires_at,
    };
    store::insert_session(conn, &session).await?;
    Ok(token)
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

/// Ends one session (signing out), with the request's audit event (and idempotent answer, which
/// has no body).
pub async fn revoke_session(
    db: &Db,
    session_id: i64,
    journal: &Journal,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    store::revoke_session(tx.conn(), session_id, time::now()).await?;
    journal.write(tx.conn(), About::request(), &()).await?;
    tx.commit().await
}

/// How many sessions [`revoke_all`] ended.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Revoked {
    pub revoked_sessions: u64,
}

/// Ends every session of an account, with the request's audit event (and idempotent answer).
pub async fn revoke_all(
    db: &Db,
    account: AccountId,
    journal: &Journal,
) -> Result<Revoked, sqlx::Error> {
    let mut tx = db.begin().await?;
    let revoked = Revoked {
        revoked_sessions: store::revoke_sessions_of(tx.conn(), account, time::now()).await?,
    };
    journal
        .write(tx.conn(), About::record(account), &revoked)
        .await?;
    tx.commit().await?;
    Ok(revoked)
}

/// Records a new visit link, with the request's audit event, and returns its claims (the caller
/// signs them). The signed link is a credential, so no answer is stored for an idempotency key.
pub async fn issue_visit_link(
    db: &Db,
    consultation: ConsultationId,
    patient: PatientId,
    issued_by: AccountId,
    expires_at: DateTime<Utc>,
    journal: &Journal,
) -> Result<VisitClaims, sqlx::Error> {
    let mut tx = db.begin().await?;
    let link_id = store::insert_visit_link(
        tx.conn(),
        consultation,
        patient,
        issued_by,
        time::now(),
        expires_at,
    )
    .await?;
    journal
        .stage(tx.conn(), About::record(consultation).patient(patient))
        .await?;
    tx.commit().await?;
    Ok(VisitClaims {
        link_id,
        consultation_id: consultation,
        patient_id: patient,
        expires_at,
    })
}

/// Wrong dates of birth a visit link takes before it locks (the clinic then sends a new one).
pub const BIRTH_DATE_TRIES: i32 = 5;

/// What a date of birth entered with a visit link on a new device came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BirthDate {
    Matches,
    /// Wrong; this many tries are left before the link locks.
    Wrong {
        tries_left: i32,
    },
    /// Wrong, and the link is locked now (or was already).
    Locked,
}

/// Link `claims.link_id` as stored, if it is this consultation's and patient's.
pub async fn visit_link(
    db: &Db,
    claims: &VisitClaims,
) -> Result<Option<store::VisitLinkRow>, sqlx::Error> {
    let mut c = db.acquire().await?;
    store::visit_link(
        c.conn(),
        claims.link_id,
        claims.consultation_id,
        claims.patient_id,
    )
    .await
}

/// Checks `entered` against the patient's date of birth; a wrong one counts against the link,
/// which locks at [`BIRTH_DATE_TRIES`].
pub async fn check_birth_date(
    db: &Db,
    claims: &VisitClaims,
    entered: chrono::NaiveDate,
) -> Result<BirthDate, sqlx::Error> {
    let mut c = db.acquire().await?;
    let born = store::patient_birth_date(c.conn(), claims.patient_id).await?;
    if born == Some(entered) {
        return Ok(BirthDate::Matches);
    }
    let counted =
        store::wrong_birth_date(c.conn(), claims.link_id, BIRTH_DATE_TRIES, time::now()).await?;
    Ok(match counted {
        Some((n, false)) => BirthDate::Wrong {
            tries_left: BIRTH_DATE_TRIES - n,
        },
        _ => BirthDate::Locked,
    })
}

/// A consultation's visit links, newest first.
pub async fn visit_links_of(
    db: &Db,
    consultation: ConsultationId,
) -> Result<Vec<store::VisitLinkRow>, sqlx::Error> {
    let mut c = db.acquire().await?;
    store::visit_links_of(c.conn(), consultation).await
}

/// Withdraws every live visit link of `consultation` and ends the sessions they opened, with the
/// request's journal; returns how many links.
pub async fn revoke_visit_links(
    db: &Db,
    consultation: ConsultationId,
    patient: PatientId,
    journal: &Journal,
) -> Result<u64, sqlx::Error> {
    let now = time::now();
    let mut tx = db.begin().await?;
    let links = store::revoke_visit_links(tx.conn(), consultation, now).await?;
    store::revoke_visit_sessions(tx.conn(), consultation, now).await?;
    let answer = serde_json::json!({ "revoked_links": links });
    journal
        .write(
            tx.conn(),
            About::record(consultation).patient(patient),
            &answer,
        )
        .await?;
    tx.commit().await?;
    Ok(links)
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
