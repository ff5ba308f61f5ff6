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

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::accounts::{AccountError, AccountView, NewAccount, get_account};
use super::{AccountId, Grant, Role};
use crate::domain::ids::{AccountChangeId, ClinicianId, PatientId};
use crate::domain::time;
use crate::on_db;
use crate::storage::{BeginWrite, Db, is_foreign_key_violation, is_unique_violation};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Rejected,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::Approved,
            Status::Rejected,
            Status::Expired,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
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

#[derive(sqlx::FromRow)]
struct Row {
    id: AccountChangeId,
    status: String,
    account_id: AccountId,
    account_username: String,
    proposed_by: AccountId,
    proposed_by_username: String,
    proposed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    patient_id: Option<PatientId>,
    clinician_id: Option<ClinicianId>,
    roles_before: String,
    roles_after: String,
    decided_by: Option<AccountId>,
    decided_by_username: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    reason: Option<String>,
}

const SELECT: &str = "SELECT c.id, c.status, c.account_id, a.username AS account_username,
        c.proposed_by, p.username AS proposed_by_username, c.proposed_at, c.expires_at,
        c.patient_id, c.clinician_id, c.roles_before, c.roles_after,
        c.decided_by, d.username AS decided_by_username, c.decided_at, c.reason
     FROM account_changes c
     JOIN accounts a ON a.id = c.account_id
     JOIN accounts p ON p.id = c.proposed_by
     LEFT JOIN accounts d ON d.id = c.decided_by";

impl Row {
    /// A pending change past its time reads as expired even before it is marked so.
    fn into_change(self, now: DateTime<Utc>) -> Result<Change, ChangeError> {
        let corrupt = |what: &str| ChangeError::Corrupt(format!("change {}: {what}", self.id));
        let stored = Status::parse(&self.status).ok_or_else(|| corrupt("unknown status"))?;
        let status = if stored == Status::Pending && self.expires_at <= now {
            Status::Expired
        } else {
            stored
        };
        let roles_before = serde_json::from_str(&self.roles_before)
            .map_err(|_| corrupt("unreadable roles_before"))?;
        let roles_after = serde_json::from_str(&self.roles_after)
            .map_err(|_| corrupt("unreadable roles_after"))?;
        Ok(Change {
            id: self.id,
            status,
            account_id: self.account_id,
            account_username: self.account_username,
            proposed_by: self.proposed_by,
            proposed_by_username: self.proposed_by_username,
            proposed_at: self.proposed_at,
            expires_at: self.expires_at,
            patient_id: self.patient_id,
            clinician_id: self.clinician_id,
            roles_before,
            roles_after,
            decided_by: self.decided_by,
            decided_by_username: self.decided_by_username,
            decided_at: self.decided_at,
            reason: self.reason,
        })
    }
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

fn roles_json(grants: &[Grant]) -> Result<String, ChangeError> {
    serde_json::to_string(grants).map_err(|e| ChangeError::Corrupt(e.to_string()))
}

/// The same roles, in any order.
fn same_roles(a: &[Grant], b: &[Grant]) -> bool {
    a.len() == b.len() && a.iter().all(|g| b.contains(g)) && b.iter().all(|g| a.contains(g))
}

/// Creates the account with neither links nor roles, and proposes its links and roles, in one
/// transaction: the account exists (its name is taken, it may sign in) but reaches nothing until
/// another administrator approves.
pub async fn propose_new_account(
    db: &Db,
    a: NewAccount,
    proposer: AccountId,
) -> Result<(AccountView, Change), ChangeError> {
    let now = time::now();
    let after = roles_json(&a.grants)?;
    let result = on_db!(db, pool => {
        async {
            let mut tx = pool.begin_write().await?;
            let account: AccountId = sqlx::query_scalar(
                "INSERT INTO accounts (username, display_name, password_hash, patient_id, clinician_id, disabled, created_at)
                 VALUES ($1, $2, $3, NULL, NULL, FALSE, $4) RETURNING id",
            )
            .bind(&a.username)
            .bind(&a.display_name)
            .bind(a.password_hash.as_deref())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let change: AccountChangeId = sqlx::query_scalar(
                "INSERT INTO account_changes (account_id, proposed_by, proposed_at, expires_at, patient_id,
                                              clinician_id, roles_before, roles_after, status)
                 VALUES ($1, $2, $3, $4, $5, $6, '[]', $7, 'pending') RETURNING id",
            )
            .bind(account)
            .bind(proposer)
            .bind(now)
            .bind(now + Duration::days(PENDING_DAYS))
            .bind(a.patient_id)
            .bind(a.clinician_id)
            .bind(&after)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>((account, change))
        }
        .await
    });
    let (account, change) = result.map_err(|e| {
        if is_unique_violation(&e) {
            ChangeError::Account(AccountError::Duplicate(a.username.clone()))
        } else {
            ChangeError::Storage(e)
        }
    })?;
    let view = get_account(db, account)
        .await?
        .ok_or(ChangeError::NotFound)?;
    let change = get(db, change).await?.ok_or(ChangeError::NotFound)?;
    Ok((view, change))
}

/// Proposes replacing `account`'s roles `before` with `after`.
pub async fn propose_roles(
    db: &Db,
    account: AccountId,
    before: &[Grant],
    after: &[Grant],
    proposer: AccountId,
) -> Result<Change, ChangeError> {
    let now = time::now();
    expire_due(db, now).await?;
    let (before, after) = (roles_json(before)?, roles_json(after)?);
    let inserted = on_db!(db, pool => sqlx::query_scalar::<_, AccountChangeId>(
        "INSERT INTO account_changes (account_id, proposed_by, proposed_at, expires_at, patient_id,
                                      clinician_id, roles_before, roles_after, status)
         VALUES ($1, $2, $3, $4, NULL, NULL, $5, $6, 'pending') RETURNING id",
    )
    .bind(account)
    .bind(proposer)
    .bind(now)
    .bind(now + Duration::days(PENDING_DAYS))
    .bind(&before)
    .bind(&after)
    .fetch_one(pool)
    .await);
    let id = match inserted {
        Ok(id) => id,
        // The one-pending-change-per-account index.
        Err(e) if is_unique_violation(&e) => {
            return Err(match pending_of(db, account).await? {
                Some(id) => ChangeError::Pending(id),
                None => ChangeError::Storage(e),
            });
        }
        Err(e) => return Err(e.into()),
    };
    get(db, id).await?.ok_or(ChangeError::NotFound)
}

/// Marks pending changes past their time as expired, so the one-pending-change index frees their
/// accounts. Reads do not wait for this: a pending change past its time reads as expired.
async fn expire_due(db: &Db, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    on_db!(db, pool => sqlx::query(
        "UPDATE account_changes SET status = 'expired' WHERE status = 'pending' AND expires_at <= $1",
    )
    .bind(now)
    .execute(pool)
    .await
    .map(|_| ()))
}

/// The pending change of `account`, if one is live.
pub async fn pending_of(
    db: &Db,
    account: AccountId,
) -> Result<Option<AccountChangeId>, sqlx::Error> {
    on_db!(db, pool => sqlx::query_scalar(
        "SELECT id FROM account_changes WHERE account_id = $1 AND status = 'pending' AND expires_at > $2",
    )
    .bind(account)
    .bind(time::now())
    .fetch_optional(pool)
    .await)
}

pub async fn get(db: &Db, id: AccountChangeId) -> Result<Option<Change>, ChangeError> {
    let row: Option<Row> = on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new(SELECT);
        q.push(" WHERE c.id = ").push_bind(id);
        q.build_query_as::<Row>().fetch_optional(pool).await
    })?;
    row.map(|r| r.into_change(time::now())).transpose()
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
    let rows: Vec<Row> = on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new(SELECT);
        q.push(" WHERE 1 = 1");
        match f.status {
            None => {}
            Some(Status::Pending) => {
                q.push(" AND c.status = 'pending' AND c.expires_at > ").push_bind(now);
            }
            Some(Status::Expired) => {
                q.push(" AND (c.status = 'expired' OR (c.status = 'pending' AND c.expires_at <= ")
                    .push_bind(now)
                    .push("))");
            }
            Some(s) => {
                q.push(" AND c.status = ").push_bind(s.as_str());
            }
        }
        if let Some(a) = f.account_id {
            q.push(" AND c.account_id = ").push_bind(a);
        }
        q.push(" ORDER BY c.id DESC LIMIT ").push_bind(f.limit);
        q.push(" OFFSET ").push_bind(f.offset);
        q.build_query_as::<Row>().fetch_all(pool).await
    })?;
    rows.into_iter().map(|r| r.into_change(now)).collect()
}

/// The stored fields a decision checks.
#[derive(sqlx::FromRow)]
struct Pending {
    account_id: AccountId,
    proposed_by: AccountId,
    status: String,
    expires_at: DateTime<Utc>,
    patient_id: Option<PatientId>,
    clinician_id: Option<ClinicianId>,
    roles_before: String,
    roles_after: String,
}

/// Whether a stored change may still be decided by `decider`.
fn check_decidable(p: &Pending, decider: AccountId, now: DateTime<Utc>) -> Result<(), ChangeError> {
    let status = Status::parse(&p.status).ok_or_else(|| ChangeError::Corrupt(p.status.clone()))?;
    if status != Status::Pending {
        return Err(ChangeError::NotPending(status));
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

/// Applies change `id` as approved by `decider`, in one transaction: the change is claimed, the
/// account is checked to be as it was when proposed, then linked and given its roles.
pub async fn approve(
    db: &Db,
    id: AccountChangeId,
    decider: AccountId,
) -> Result<Change, ChangeError> {
    let now = time::now();
    expire_due(db, now).await?;
    on_db!(db, pool => {
        async {
            let mut tx = pool.begin_write().await?;
            let p: Pending = sqlx::query_as(
                "SELECT account_id, proposed_by, status, expires_at, patient_id, clinician_id,
                        roles_before, roles_after
                 FROM account_changes WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(ChangeError::NotFound)?;
            check_decidable(&p, decider, now)?;
            let proposer_is_admin: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM account_roles WHERE account_id = $1 AND role = 'administrator'",
            )
            .bind(p.proposed_by)
            .fetch_one(&mut *tx)
            .await?;
            if proposer_is_admin == 0 {
                return Err(ChangeError::ProposerGone);
            }
            // Claim the change first: of two approvals at once only one passes this update (the
            // other waits on the row and then finds it decided).
            let claimed = sqlx::query(
                "UPDATE account_changes SET status = 'approved', decided_by = $2, decided_at = $3
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(decider)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed != 1 {
                return Err(ChangeError::NotPending(Status::Approved));
            }
            // Takes the account's row lock (PostgreSQL; SQLite holds the write lock already), so
            // nothing changes the account between the check below and the update.
            let current: Option<(Option<PatientId>, Option<ClinicianId>)> = sqlx::query_as(
                "UPDATE accounts SET display_name = display_name WHERE id = $1
                 RETURNING patient_id, clinician_id",
            )
            .bind(p.account_id)
            .fetch_optional(&mut *tx)
            .await?;
            let (patient_now, clinician_now) = current.ok_or(ChangeError::NotFound)?;
            let held: Vec<(String, Option<crate::domain::ids::FacilityId>)> = sqlx::query_as(
                "SELECT role, facility_id FROM account_roles WHERE account_id = $1",
            )
            .bind(p.account_id)
            .fetch_all(&mut *tx)
            .await?;
            let held: Vec<Grant> = held
                .into_iter()
                .filter_map(|(role, facility_id)| {
                    Role::parse(&role).map(|role| Grant { role, facility_id })
                })
                .collect();
            let before: Vec<Grant> = serde_json::from_str(&p.roles_before)
                .map_err(|_| ChangeError::Corrupt(format!("change {id}: roles_before")))?;
            let after: Vec<Grant> = serde_json::from_str(&p.roles_after)
                .map_err(|_| ChangeError::Corrupt(format!("change {id}: roles_after")))?;
            if !same_roles(&held, &before) {
                return Err(ChangeError::Stale("its roles are not the ones it had"));
            }
            if p.patient_id.is_some() && patient_now.is_some() {
                return Err(ChangeError::Stale("it is linked to a patient already"));
            }
            if p.clinician_id.is_some() && clinician_now.is_some() {
                return Err(ChangeError::Stale("it is linked to a clinician already"));
            }
            sqlx::query(
                "UPDATE accounts SET patient_id = COALESCE($2, patient_id),
                                     clinician_id = COALESCE($3, clinician_id)
                 WHERE id = $1",
            )
            .bind(p.account_id)
            .bind(p.patient_id)
            .bind(p.clinician_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    ChangeError::AlreadyLinked(
                        "another account is this patient or clinician already",
                    )
                } else {
                    ChangeError::Storage(e)
                }
            })?;
            sqlx::query("DELETE FROM account_roles WHERE account_id = $1")
                .bind(p.account_id)
                .execute(&mut *tx)
                .await?;
            for g in &after {
                sqlx::query(
                    "INSERT INTO account_roles (account_id, role, facility_id) VALUES ($1, $2, $3)",
                )
                .bind(p.account_id)
                .bind(g.role.as_str())
                .bind(g.facility_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    if is_foreign_key_violation(&e) {
                        ChangeError::Stale("a facility of its roles no longer exists")
                    } else {
                        ChangeError::Storage(e)
                    }
                })?;
            }
            tx.commit().await?;
            Ok::<_, ChangeError>(())
        }
        .await
    })?;
    get(db, id).await?.ok_or(ChangeError::NotFound)
}

/// Records that `decider` rejected change `id`; nothing of it is applied.
pub async fn reject(
    db: &Db,
    id: AccountChangeId,
    decider: AccountId,
    reason: Option<&str>,
) -> Result<Change, ChangeError> {
    let now = time::now();
    expire_due(db, now).await?;
    on_db!(db, pool => {
        async {
            let mut tx = pool.begin_write().await?;
            let p: Pending = sqlx::query_as(
                "SELECT account_id, proposed_by, status, expires_at, patient_id, clinician_id,
                        roles_before, roles_after
                 FROM account_changes WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(ChangeError::NotFound)?;
            check_decidable(&p, decider, now)?;
            let n = sqlx::query(
                "UPDATE account_changes SET status = 'rejected', decided_by = $2, decided_at = $3, reason = $4
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .bind(decider)
            .bind(now)
            .bind(reason)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Err(ChangeError::NotPending(Status::Rejected));
            }
            tx.commit().await?;
            Ok::<_, ChangeError>(())
        }
        .await
    })?;
    get(db, id).await?.ok_or(ChangeError::NotFound)
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
