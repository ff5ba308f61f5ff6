//! Accounts and their roles: created, listed, read, given roles and signed out everywhere by an
//! administrator. A change that reaches further waits for a second administrator
//! ([`super::account_changes`]).

use serde::Deserialize;
use warp::http::StatusCode;

use super::account_changes;
use super::ctx::Ctx;
use super::directory::page;
use super::error::ApiError;
use super::reply::{ApiResult, created, ok};
use crate::auth::accounts::{self, NewAccount};
use crate::auth::changes;
use crate::auth::{AccountId, Grant, Role, password, policy};
use crate::domain::code::ErrorCode;
use crate::domain::ids::{ClinicianId, FacilityId, PatientId};
use crate::domain::text::BoundedText;
use crate::scheduling::directory;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    role: String,
    #[serde(default)]
    facility_id: Option<FacilityId>,
}

fn parse_grants(raw: &[GrantBody]) -> Result<Vec<Grant>, ApiError> {
    if raw.len() > 4 {
        return Err(ApiError::invalid_field(
            "roles",
            "at most one entry per role",
        ));
    }
    let mut out: Vec<Grant> = Vec::new();
    for g in raw {
        let role = Role::parse(&g.role).ok_or_else(|| {
            ApiError::invalid_field(
                "roles",
                "each role is patient, clinician, scheduler or administrator",
            )
        })?;
        if out.iter().any(|o| o.role == role) {
            return Err(ApiError::invalid_field("roles", "a role is listed twice"));
        }
        out.push(Grant {
            role,
            facility_id: g.facility_id,
        });
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccountBody {
    username: String,
    display_name: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    patient_id: Option<PatientId>,
    #[serde(default)]
    clinician_id: Option<ClinicianId>,
    #[serde(default)]
    roles: Vec<GrantBody>,
}

/// POST /api/v1/accounts: an account that reaches nothing is created at once (201); one with a
/// link or a privileged role is created bare and its links and roles proposed (202), to be applied
/// when another administrator approves.
pub async fn create(ctx: Ctx) -> ApiResult {
    let p = ctx.user()?;
    policy::require_admin(p)?;
    let proposer = p.account_id;
    let body: NewAccountBody = ctx.json()?;
    let username = accounts::normalise_username(&body.username).ok_or_else(|| {
        ApiError::invalid_field(
            "username",
            "3 to 64 characters: letters, digits, and . _ - @",
        )
    })?;
    let display_name = BoundedText::parse(&body.display_name, 200, false)
        .map_err(|e| ApiError::invalid_field("display_name", e))?;
    let grants = parse_grants(&body.roles)?;
    let password_hash = match body.password {
        None => None,
        Some(pw) => {
            Some(hash_password(pw, [username.clone(), display_name.as_str().to_string()]).await?)
        }
    };
    check_links(&ctx, body.patient_id, body.clinician_id).await?;
    check_facilities(&ctx, &grants).await?;
    let needs_approval = changes::needs_approval(
        &changes::Standing {
            patient_id: None,
            clinician_id: None,
            grants: &[],
        },
        &changes::Standing {
            patient_id: body.patient_id,
            clinician_id: body.clinician_id,
            grants: &grants,
        },
    );
    let new = NewAccount {
        username,
        display_name: display_name.into_string(),
        password_hash,
        patient_id: body.patient_id,
        clinician_id: body.clinician_id,
        grants,
    };
    if needs_approval {
        propose(&ctx);
        let journal = ctx.journal(StatusCode::ACCEPTED);
        let (_, change) =
            changes::propose_new_account(&ctx.state.db, new, proposer, &journal).await?;
        return account_changes::accepted(&change);
    }
    let journal = ctx.journal(StatusCode::CREATED);
    let view = accounts::create_account_journaled(&ctx.state.db, new, &journal).await?;
    created(&view)
}

/// Names a proposal as this request's action; the change it makes is named by the write (its id
/// is known only then).
fn propose(ctx: &Ctx) {
    ctx.audit(|n| {
        n.action = Some("propose_account_change".into());
        n.record_type = Some("account_change".into());
    });
}

/// Hashes a new account's password once it passes the strength rules, which refuse one that
/// contains the account's `names`.
async fn hash_password(password: String, names: [String; 2]) -> Result<String, ApiError> {
    // The strength estimate and the hash both take milliseconds of CPU.
    tokio::task::spawn_blocking(move || {
        password::hash_new(&password, &[names[0].as_str(), names[1].as_str()])
    })
    .await
    .map_err(|_| ApiError::internal())?
    .map_err(|e| ApiError::invalid_field("password", e))
}

/// The patient and clinician a new account links to exist and have no account yet.
async fn check_links(
    ctx: &Ctx,
    patient: Option<PatientId>,
    clinician: Option<ClinicianId>,
) -> Result<(), ApiError> {
    if let Some(p) = patient {
        directory::get_patient(&ctx.state.db, p).await?;
        if accounts::account_of_patient(&ctx.state.db, p)
            .await?
            .is_some()
        {
            return Err(ApiError::conflict(
                ErrorCode::AlreadyLinked,
                "this patient already has an account",
            ));
        }
    }
    if let Some(c) = clinician {
        directory::get_clinician(&ctx.state.db, c).await?;
        if accounts::account_of_clinician(&ctx.state.db, c)
            .await?
            .is_some()
        {
            return Err(ApiError::conflict(
                ErrorCode::AlreadyLinked,
                "this clinician already has an account",
            ));
        }
    }
    Ok(())
}

/// Every facility a grant names exists (a 404 otherwise).
async fn check_facilities(ctx: &Ctx, grants: &[Grant]) -> Result<(), ApiError> {
    for g in grants {
        if let Some(f) = g.facility_id {
            directory::get_facility(&ctx.state.db, f).await?;
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// GET /api/v1/accounts
pub async fn list(ctx: Ctx) -> ApiResult {
    policy::require_admin(ctx.user()?)?;
    let q: PageQuery = ctx.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let rows = accounts::list_accounts(&ctx.state.db, limit, offset).await?;
    // A patient's account names the patient.
    ctx.audit_patients(rows.iter().filter_map(|a| a.account.patient_id));
    ok(&rows)
}

/// GET /api/v1/accounts/{id}
pub async fn get(ctx: Ctx) -> ApiResult {
    let id: AccountId = ctx.param("id")?;
    let p = ctx.user()?;
    if p.account_id != id {
        policy::require_admin(p)?;
    }
    match accounts::get_account(&ctx.state.db, id).await? {
        Some(v) => {
            if let Some(patient) = v.account.patient_id {
                ctx.audit_patient(patient);
            }
            ok(&v)
        }
        None => Err(ApiError::not_found("account")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesBody {
    roles: Vec<GrantBody>,
}

/// POST /api/v1/accounts/{id}/roles: replaces the account's roles. Nobody changes their own
/// (403). Taking roles away is immediate (200); a grant that reaches further is proposed (202) and
/// applied when another administrator approves it.
pub async fn set_roles(ctx: Ctx) -> ApiResult {
    let id: AccountId = ctx.param("id")?;
    let p = ctx.user()?;
    policy::require_admin(p)?;
    if p.account_id == id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::OwnRoles,
            "no one changes their own roles; ask another administrator to propose the change",
        ));
    }
    let proposer = p.account_id;
    let body: RolesBody = ctx.json()?;
    let grants = parse_grants(&body.roles)?;
    let Some(current) = accounts::get_account(&ctx.state.db, id).await? else {
        return Err(ApiError::not_found("account"));
    };
    check_facilities(&ctx, &grants).await?;
    let linked = |grants| changes::Standing {
        patient_id: current.account.patient_id,
        clinician_id: current.account.clinician_id,
        grants,
    };
    if changes::needs_approval(&linked(&current.roles), &linked(&grants)) {
        propose(&ctx);
        let journal = ctx.journal(StatusCode::ACCEPTED);
        let change = changes::propose_roles(
            &ctx.state.db,
            id,
            &current.roles,
            &grants,
            proposer,
            &journal,
        )
        .await?;
        return account_changes::accepted(&change);
    }
    let changed = accounts::set_roles(&ctx.state.db, id, &grants, &ctx.journal_ok()).await?;
    ctx.state.sessions.forget_account(id);
    match changed {
        Some(v) => ok(&v),
        None => Err(ApiError::not_found("account")),
    }
}

/// POST /api/v1/accounts/{id}/revoke-sessions
pub async fn revoke_sessions(ctx: Ctx) -> ApiResult {
    let id: AccountId = ctx.param("id")?;
    policy::require_admin(ctx.user()?)?;
    if accounts::get_account(&ctx.state.db, id).await?.is_none() {
        return Err(ApiError::not_found("account"));
    }
    let revoked = accounts::revoke_all(&ctx.state.db, id, &ctx.journal_ok()).await?;
    ctx.state.sessions.forget_account(id);
    ok(&revoked)
}
