//! Break the glass: a clinician opens a record outside the care-relationship rules in an
//! emergency, by giving a reason. The grant lasts [`policy::BREAK_GLASS_MINUTES`], every read
//! under it is marked in the audit trail, and the grants are listed for review: by
//! administrators (all, by clinician) and by the patient's own care centre.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use warp::http::StatusCode;

use super::ctx::Ctx;
use super::error::ApiError;
use super::reply::{ApiResult, created, ok};
use crate::auth::access::{self, GrantFilter};
use crate::auth::{Role, policy};
use crate::domain::code::ErrorCode;
use crate::domain::ids::{ClinicianId, PatientId};
use crate::domain::text::BoundedText;
use crate::domain::time;

/// A reason short enough to read in a review, long enough to say something.
pub const MIN_REASON: usize = 10;
pub const MAX_REASON: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BreakGlassBody {
    reason: String,
}

/// POST /api/v1/patients/{id}/break-glass
pub async fn open(ctx: Ctx) -> ApiResult {
    let id: PatientId = ctx.param("id")?;
    let body: BreakGlassBody = ctx.json()?;
    let reason = BoundedText::parse(&body.reason, MAX_REASON, true)
        .map_err(|e| ApiError::invalid_field("reason", e))?;
    if reason.as_str().chars().count() < MIN_REASON {
        return Err(ApiError::invalid_field(
            "reason",
            format!("say why in at least {MIN_REASON} characters: it is reviewed"),
        ));
    }
    let p = ctx.user()?;
    ctx.audit_patient(id);
    ctx.audit(|n| n.access_reason = Some(policy::Reason::BreakGlass.as_str()));
    let (Some(me), true) = (p.as_clinician(), policy::can_break_glass(p)) else {
        return Err(ApiError::forbidden(
            "break the glass (clinicians do, from their own sign-in)",
        ));
    };
    let Some(facts) = access::patient_facts(&ctx.state.db, id, time::now()).await? else {
        return Err(ApiError::not_found("patient"));
    };
    if let Some(reason) = policy::patient_access(p, &facts) {
        return Err(ApiError::conflict(
            ErrorCode::NotNeeded,
            format!(
                "you may already see this patient ({}); no emergency access is needed",
                reason.as_str()
            ),
        ));
    }
    let grant = access::grant_break_glass(
        &ctx.state.db,
        id,
        me,
        p.account_id,
        reason.as_str(),
        policy::BREAK_GLASS_MINUTES,
        &ctx.journal(StatusCode::CREATED),
    )
    .await?;
    created(&grant)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    patient_id: Option<PatientId>,
    clinician_id: Option<ClinicianId>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// GET /api/v1/break-glass: every grant for administrators, by clinician; a clinician sees the
/// grants on their own care centre's patients and their own.
pub async fn list(ctx: Ctx) -> ApiResult {
    let q: ListQuery = ctx.query()?;
    let (limit, offset) = super::directory::page(q.limit, q.offset)?;
    let p = ctx.user()?;
    if !policy::can_review_break_glass(p) {
        return Err(ApiError::forbidden("review emergency accesses"));
    }
    let scope = if p.has(Role::Administrator) {
        None
    } else {
        match (p.clinician_facility_id, p.as_clinician()) {
            (Some(f), Some(me)) => Some((f, me)),
            _ => return Err(ApiError::forbidden("review emergency accesses")),
        }
    };
    let grants = access::list_grants(
        &ctx.state.db,
        &GrantFilter {
            patient_id: q.patient_id,
            clinician_id: q.clinician_id,
            from: q.from,
            to: q.to,
            scope,
            limit,
            offset,
        },
    )
    .await?;
    ctx.audit_patients(grants.iter().map(|g| g.patient_id));
    ok(&grants)
}
