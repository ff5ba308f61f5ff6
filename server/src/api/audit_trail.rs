//! The audit trail, read by administrators: filtered by patient, actor and time.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::ctx::Ctx;
use super::directory::page;
use super::reply::{ApiResult, ok};
use crate::audit::{self, AuditQuery};
use crate::auth::policy;
use crate::domain::ids::PatientId;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    patient_id: Option<PatientId>,
    actor: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// GET /api/v1/audit
pub async fn list(ctx: Ctx) -> ApiResult {
    policy::require_admin(ctx.user()?)?;
    let q: AuditParams = ctx.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let events = audit::query(
        &ctx.state.db,
        &AuditQuery {
            patient_id: q.patient_id,
            actor: q.actor.map(|a| a.to_lowercase()),
            from: q.from,
            to: q.to,
            limit,
            offset,
        },
    )
    .await?;
    ok(&events)
}
