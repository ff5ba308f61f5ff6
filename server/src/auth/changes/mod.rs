//! Account changes that wait for a second administrator.
//!
//! Administrators manage accounts, not patients. Whatever would let an account reach patient
//! records or other accounts — a link to a patient or a clinician, a scheduler or administrator
//! role, a patient or clinician role on a linked account — is proposed by one administrator and
//! applied only when a different administrator approves it. Nobody proposes or decides a change to
//! their own account and nobody decides their own proposal (the database refuses those rows too),
//! so one administrator alone, or one with a puppet account of their own making, cannot reach a
//! record. A pending change lapses after [`PENDING_DAYS`]; decided changes are kept for good.
//!
//! Changes that reach nothing — an account with no links and no privileged roles, or a role taken
//! away — stay immediate, so revoking access never waits for anyone.

pub mod store;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::accounts::{self, AccountError, AccountView, NewAccount};
use super::{AccountId, Grant, Role};
pub use crate::domain::account_change::Status;
use crate::domain::ids::{AccountChangeId, ClinicianId, PatientId};
use crate::domain::time;
use crate::journal::{About, Journal};
use crate::storage::{Conn, Db, OnViolation, is_foreign_key_violation};
use accounts::store::{CLINICIAN_LINK, PATIENT_LINK, USERNAME};
use store::{NewChange, ONE_PENDING, Pending, Row};

/// A pending change lapses after this many days.
pub const PENDING_DAYS: i64 = 7;

/// What an account holds: its links and its roles.
#[derive(Clone, Copy, Debug)]
pub struct Standing<'a> {
    pub patient_id: Option<PatientId>,
    pub clinician_id: Option<ClinicianId>,
    pub grants: &'a [Grant],
}

/// True when going from `before` to `after` gives the account a reach it did not have: a new link,
/// or a privileged grant it did not already hold (as widely).
pub fn needs_approval(before: &Standing<'_>, after: &Standing<'_>) -> bool {
    let new_link = (after.patient_id.is_some() && after.patient_id != before.patient_id)
        || (after.clinician_id.is_some() && after.clinician_id != before.clinician_id);
    new_link
        || after
            .grants
            .iter()
            .any(|g| privileged(g, after) && !covered(g, before.grants))
}

/// A grant that reaches patient data or other accounts. The patient and clinician roles act only
/// through the account's link, so on an unlinked account they reach nothing.
fn privileged(g: &Grant, s: &Standing<'_>) -> bool {
    match g.role {
        Role::Scheduler | Role::Administrator => true,
        Role::Patient => s.patient_id.is_some(),
        Role::Clinician => s.clinician_id.is_some(),
    }
}

/// Held already, or held more widely (a network scheduler covers every hospital).
fn covered(g: &Grant, held: &[Grant]) -> bool {
    held.iter().any(|h| {
        h.role == g.role
            && (g.role != Role::Scheduler
                || h.facility_id.is_none()
                || h.facility_id == g.facility_id)
    })
}

/// A proposed change, as administrators see it.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub id: AccountChangeId,
    pub status: Status,
    pub account_id: AccountId,
    pub account_username: String,
    pub proposed_by: AccountId,
    pub proposed_by_username: String,
    pub proposed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The patient the change links the account to, if any.
    pub patient_id: Option<PatientId>,
    /// The clinician the change links the account to, if any.
    pub clinician_id: Option<ClinicianId>,
    /// The roles the account held when the change was proposed; approval refuses a change whose
    /// account moved on since.
    pub roles_before: Vec<Grant>,
    /// The roles the account holds once the change is approved.
    pub roles_after: Vec<Grant>,
    pub decided_by: Option<AccountId>,
    pub decided_by_username: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// A stored change as administrators see it at `now`: a pending change past its time reads as
/// expired even before it is marked so.
fn change_of(r: Row, now: DateTime<Utc>) -> Result<Change, ChangeError> {
    let status = if r.status == Status::Pending && r.expires_at <= now {
        Status::Expired
    } else {
        r.status
    };
    Ok(Change {
        id: r.id,
        status,
        account_id: r.account_id,
        account_username: r.account_username,
        proposed_by: r.proposed_by,
        proposed_by_username: r.proposed_by_username,
        proposed_at: r.proposed_at,
        expires_at: r.expires_at,
        patient_id: r.patient_id,
        clinician_id: r.clinician_id,
        roles_before: roles_of(r.id, "roles_before", &r.roles_before)?,
        roles_after: roles_of(r.id, "roles_after", &r.roles_after)?,
        decided_by: r.decided_by,
        decided_by_username: r.decided_by_username,
        decided_at: r.decided_at,
        reason: r.reason,
    })
}

/// The grants stored as JSON in `field` of change `id`.
fn roles_of(id: AccountChangeId, field: &str, json: &str) -> Result<Vec<Grant>, ChangeError> {
    serde_json::from_str(json)
        .map_err(|_| ChangeError::Corrupt(format!("change {id}: unreadable {field}")))
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no such account change")]
    NotFound,
    #[error("{0}")]
    Refused(&'static str),
    #[error("this change is {} already", .0.as_str())]
    NotPending(Status),
    #[error("the account changed since this was proposed: {0}; propose it again")]
    Stale(&'static str),
    #[error("{0}")]
    AlreadyLinked(&'static str),
    #[error("change {0} for this account is pending; approve or reject it first")]
    Pending(AccountChangeId),
    #[error("its proposer is no longer an administrator; propose it again")]
    ProposerGone,
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("stored account change is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

/// How an audit event names a change: `change=4 account=17`.
pub fn record_label(change: &Change) -> String {
    format!("change={} account={}", change.id, change.account_id)
}

/// What a proposal's audit event is about: the change, its account and the patient it links.
fn about(change: &Change) -> About {
    About::record(record_label(change)).patient(change.patient_id)
}

fn roles_json(grants: &[Grant]) -> Result<String, ChangeError> {
    serde_json::to_string(grants).map_err(|e| ChangeError::Corrupt(e.to_string()))
}

/// The same roles, in any order.
fn same_roles(a: &[Grant], b: &[Grant]) -> bool {
    a.len() == b.len() && a.iter().all(|g| b.contains(g)) && b.iter().all(|g| a.contains(g))
}

/// Creates the account with neither links nor roles, and proposes its links and roles, in one
/// transaction: the account exists (its name is taken, it may sign in) but reaches nothing until
/// another administrator approves. The request's audit event (and idempotent answer, the change)
/// commit with both.
pub async fn propose_new_account(
    db: &Db,
    a: NewAccount,
    proposer: AccountId,
    journal: &Journal,
) -> Result<(AccountView, Change), ChangeError> {
    let now = time::now();
    let after = roles_json(&a.grants)?;
    let mut tx = db.begin().await?;
    let account = accounts::store::insert_account(tx.conn(), &a.row(false, now))
        .await
        .on_violation(&USERNAME, || {
            ChangeError::Account(AccountError::Duplicate(a.username.clone()))
        })?;
    let change = NewChange {
        account,
        proposed_by: proposer,
        proposed_at: now,
        expires_at: now + Duration::days(PENDING_DAYS),
        patient_id: a.patient_id,
        clinician_id: a.clinician_id,
        roles_before: "[]",
        roles_after: &after,
    };
    let change = store::insert(tx.conn(), &change).await?;
    let view = accounts::view(tx.conn(), account)
        .await?
        .ok_or(ChangeError::NotFound)?;
    let change = get_on(tx.conn(), change).await?;
    journal.write(tx.conn(), about(&change), &change).await?;
    tx.commit().await?;
    Ok((view, change))
}

/// Proposes replacing `account`'s roles `before` with `after`, with the request's audit event
/// (and idempotent answer).
pub async fn propose_roles(
    db: &Db,
    account: AccountId,
    before: &[Grant],
    after: &[Grant],
    proposer: AccountId,
    journal: &Journal,
) -> Result<Change, ChangeError> {
    let now = time::now();
    expire_due(db, now).await?;
    let (before, after) = (roles_json(before)?, roles_json(after)?);
    let change = NewChange {
        account,
        proposed_by: proposer,
        proposed_at: now,
        expires_at: now + Duration::days(PENDING_DAYS),
        patient_id: None,
        clinician_id: None,
        roles_before: &before,
        roles_after: &after,
    };
    let mut tx = db.begin().await?;
    let id = match store::insert(tx.conn(), &change).await {
        Ok(id) => id,
        Err(e) if ONE_PENDING.violated_by(&e) => {
            // On PostgreSQL the failed insert ended the transaction: look on a connection of its
            // own.
            drop(tx);
            return Err(match pending_of(db, account).await? {
                Some(id) => ChangeError::Pending(id),
                None => ChangeError::Storage(e),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let change = get_on(tx.conn(), id).await?;
    journal.write(tx.conn(), about(&change), &change).await?;
    tx.commit().await?;
    Ok(change)
}

/// Change `id` as it reads on the caller's connection (in the transaction that wrote it).
async fn get_on(conn: Conn<'_>, id: AccountChangeId) -> Result<Change, ChangeError> {
    let row = store::get(conn, id).await?.ok_or(ChangeError::NotFound)?;
    change_of(row, time::now())
}

/// Marks pending changes past their time as expired, so the one-pending-change index frees their
/// accounts. Reads do not wait for this: a pending change past its time reads as expired.
async fn expire_due(db: &Db, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let mut c = db.acquire().await?;
    store::expire_due(c.conn(), now).await
}

/// The pending change of `account`, if one is live.
pub async fn pending_of(
    db: &Db,
    account: AccountId,
) -> Result<Option<AccountChangeId>, sqlx::Error> {
    let mut c = db.acquire().await?;
    store::pending_of(c.conn(), account, time::now()).await
}

pub async fn get(db: &Db, id: AccountChangeId) -> Result<Option<Change>, ChangeError> {
    let mut c = db.acquire().await?;
    let row = store::get(c.conn(), id).await?;
    row.map(|r| change_of(r, time::now())).transpose()
}

/// Which changes to list.
#[derive(Clone, Copy, Debug, Default)]
pub struct Filter {
    pub status: Option<Status>,
    pub account_id: Option<AccountId>,
    pub limit: i64,
    pub offset: i64,
}

/// Changes matching `f`, newest first.
pub async fn list(db: &Db, f: &Filter) -> Result<Vec<Change>, ChangeError> {
    let now = time::now();
    let mut c = db.acquire().await?;
    let rows = store::list(c.conn(), f.status, f.account_id, now, f.limit, f.offset).await?;
    rows.into_iter().map(|r| change_of(r, now)).collect()
}

/// Whether a stored change may still be decided by `decider`.
fn check_decidable(p: &Pending, decider: AccountId, now: DateTime<Utc>) -> Result<(), ChangeError> {
    if p.status != Status::Pending {
        return Err(ChangeError::NotPending(p.status));
    }
    if p.expires_at <= now {
        return Err(ChangeError::NotPending(Status::Expired));
    }
    if decider == p.proposed_by {
        return Err(ChangeError::Refused(
            "you proposed this change; another administrator must decide it",
        ));
    }
    if decider == p.account_id {
        return Err(ChangeError::Refused(
            "this change is to your own account; another administrator must decide it",
        ));
    }
    Ok(())
}

/// The change `id` if `decider` may still decide it, read in the caller's transaction.
async fn decidable(
    conn: Conn<'_>,
    id: AccountChangeId,
    decider: AccountId,
    now: DateTime<Utc>,
) -> Result<Pending, ChangeError> {
    let p = store::pending(conn, id)
        .await?
        .ok_or(ChangeError::NotFound)?;
    check_decidable(&p, decider, now)?;
    Ok(p)
}

/// Applies change `id` as approved by `decider`, in one transaction: the change is claimed, the
/// account is checked to be as it was when proposed, then linked and given its roles, and the
/// request's audit event (and idempotent answer) are written.
pub async fn approve(
    db: &Db,
    id: AccountChangeId,
    decider: AccountId,
    journal: &Journal,
) -> Result<Change, ChangeError> {
    let now = time::now();
    expire_due(db, now).await?;
    let mut tx = db.begin().await?;
    let p = decidable(tx.conn(), id, decider, now).await?;
    if !accounts::store::is_administrator(tx.conn(), p.proposed_by).await? {
        return Err(ChangeError::ProposerGone);
    }
    // Claim the change first: of two approvals at once only one passes this update (the other
    // waits on the row and then finds it decided).
    if !store::decide(tx.conn(), id, Status::Approved, decider, now, None).await? {
        return Err(ChangeError::NotPending(Status::Approved));
    }
    apply(tx.conn(), id, &p).await?;
    let change = get_on(tx.conn(), id).await?;
    journal.write(tx.conn(), about(&change), &change).await?;
    tx.commit().await?;
    Ok(change)
}

/// Links the account of claimed change `id` and gives it the change's roles, if it is still as
/// it was when the change was proposed.
async fn apply(mut conn: Conn<'_>, id: AccountChangeId, p: &Pending) -> Result<(), ChangeError> {
    let (patient_now, clinician_now) = accounts::store::lock_links(conn.reborrow(), p.account_id)
        .await?
        .ok_or(ChangeError::NotFound)?;
    let held = accounts::store::grants(conn.reborrow(), p.account_id).await?;
    let before = roles_of(id, "roles_before", &p.roles_before)?;
    let after = roles_of(id, "roles_after", &p.roles_after)?;
    if !same_roles(&held, &before) {
        return Err(ChangeError::Stale("its roles are not the ones it had"));
    }
    if p.patient_id.is_some() && patient_now.is_some() {
        return Err(ChangeError::Stale("it is linked to a patient already"));
    }
    if p.clinician_id.is_some() && clinician_now.is_some() {
        return Err(ChangeError::Stale("it is linked to a clinician already"));
    }
    accounts::store::link(conn.reborrow(), p.account_id, p.patient_id, p.clinician_id)
        .await
        .map_err(|e| {
            if PATIENT_LINK.violated_by(&e) || CLINICIAN_LINK.violated_by(&e) {
                ChangeError::AlreadyLinked("another account is this patient or clinician already")
            } else {
                ChangeError::Storage(e)
            }
        })?;
    accounts::store::delete_grants(conn.reborrow(), p.account_id).await?;
    accounts::store::insert_grants(conn, p.account_id, &after)
        .await
        .map_err(|e| {
            if is_foreign_key_violation(&e) {
                ChangeError::Stale("a facility of its roles no longer exists")
            } else {
                ChangeError::Storage(e)
            }
        })
}

/// Records that `decider` rejected change `id`, with the request's audit event (and idempotent
/// answer); nothing of it is applied.
pub async fn reject(
    db: &Db,
    id: AccountChangeId,
    decider: AccountId,
    reason: Option<&str>,
    journal: &Journal,
) -> Result<Change, ChangeError> {
    let now = time::now();
    expire_due(db, now).await?;
    let mut tx = db.begin().await?;
    decidable(tx.conn(), id, decider, now).await?;
    if !store::decide(tx.conn(), id, Status::Rejected, decider, now, reason).await? {
        return Err(ChangeError::NotPending(Status::Rejected));
    }
    let change = get_on(tx.conn(), id).await?;
    journal.write(tx.conn(), about(&change), &change).await?;
    tx.commit().await?;
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::FacilityId;

    fn grant(role: Role, facility: Option<i64>) -> Grant {
        Grant {
            role,
            facility_id: facility.map(FacilityId),
        }
    }

    fn standing(grants: &[Grant]) -> Standing<'_> {
        Standing {
            patient_id: None,
            clinician_id: None,
            grants,
        }
    }

    #[test]
    fn scheduler_and_administrator_grants_need_approval() {
        for g in [
            grant(Role::Scheduler, None),
            grant(Role::Scheduler, Some(3)),
            grant(Role::Administrator, None),
        ] {
            assert!(needs_approval(&standing(&[]), &standing(&[g])), "{g:?}");
        }
        // Widening a hospital scheduler to another hospital or the network is new reach too.
        let hub = [grant(Role::Scheduler, Some(3))];
        assert!(needs_approval(
            &standing(&hub),
            &standing(&[grant(Role::Scheduler, Some(4))])
        ));
        assert!(needs_approval(
            &standing(&hub),
            &standing(&[grant(Role::Scheduler, None)])
        ));
    }

    #[test]
    fn taking_away_or_narrowing_is_immediate() {
        let held = [
            grant(Role::Scheduler, None),
            grant(Role::Administrator, None),
        ];
        assert!(!needs_approval(&standing(&held), &standing(&[])));
        assert!(!needs_approval(
            &standing(&held),
            &standing(&[grant(Role::Scheduler, Some(3))])
        ));
        assert!(!needs_approval(&standing(&held), &standing(&held)));
    }

    #[test]
    fn links_and_the_roles_acting_through_them_need_approval() {
        let unlinked = standing(&[]);
        let patient_role = [grant(Role::Patient, None)];
        let clinician_role = [grant(Role::Clinician, None)];
        // Unlinked, the patient and clinician roles reach nothing.
        assert!(!needs_approval(&unlinked, &standing(&patient_role)));
        assert!(!needs_approval(&unlinked, &standing(&clinician_role)));
        let linked = Standing {
            patient_id: Some(PatientId(7)),
            ..standing(&patient_role)
        };
        assert!(needs_approval(&unlinked, &linked));
        // An approved link with no role yet: the role that acts through it is new reach.
        let link_only = Standing {
            patient_id: Some(PatientId(7)),
            ..standing(&[])
        };
        assert!(needs_approval(&link_only, &linked));
        let clinician = Standing {
            clinician_id: Some(ClinicianId(2)),
            ..standing(&[])
        };
        assert!(needs_approval(&unlinked, &clinician));
    }
}
