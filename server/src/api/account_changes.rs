//! Account changes waiting for a second administrator: listed, approved and rejected here;
//! proposed by `POST /api/v1/accounts` and `POST /api/v1/accounts/{id}/roles` (see
//! [`crate::auth::changes`] for which changes wait and why).

use serde::Deserialize;
use warp::http::StatusCode;

use super::ctx::Ctx;
use super::error::ApiError;
use super::reply::{ApiResult, json_response, ok};
use crate::auth::changes::{self, Change, Filter, Status};
use crate::auth::{AccountId, policy};
use crate::domain::code::ErrorCode;
use crate::domain::ids::AccountChangeId;
use crate::domain::text::BoundedText;

/// Longest rejection reason.
const MAX_REASON: usize = 500;

/// Names the change, its account and (for a patient link) the patient in this request's audit
/// event, under `action` (a proposal's journaled event names them itself: see
/// [`crate::auth::changes`]).
pub fn audit_change(ctx: &Ctx, change: &Change, action: &str) {
    ctx.audit(|n| {
        n.action = Some(action.to_string());
        n.record_type = Some("account_change".into());
        n.record_id = Some(changes::record_label(change));
        if change.patient_id.is_some() {
            n.patient_id = change.patient_id;
        }
    });
}

/// A pending change, answered 202: the request is accepted and waits for another administrator.
pub fn accepted(change: &Change) -> ApiResult {
    json_response(StatusCode::ACCEPTED, change)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    account_id: Option<AccountId>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// GET /api/v1/account-changes
pub async fn list(ctx: Ctx) -> ApiResult {
    policy::require_admin(ctx.user()?)?;
    let q: ListQuery = ctx.query()?;
    let status = match q.status.as_deref() {
        None => None,
        Some("pending") => Some(Status::Pending),
        Some("approved") => Some(Status::Approved),
        Some("rejected") => Some(Status::Rejected),
        Some("expired") => Some(Status::Expired),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "status",
                "one of pending, approved, rejected, expired",
            ));
        }
    };
    let (limit, offset) = super::directory::page(q.limit, q.offset)?;
    ok(&changes::list(
        &ctx.state.db,
        &Filter {
            status,
            account_id: q.account_id,
            limit,
            offset,
        },
    )
    .await?)
}

/// The change of a decision route, noted in the audit event before anything is decided, so a
/// refused attempt names the change and its account too.
async fn change_to_decide(ctx: &Ctx, action: &str) -> Result<AccountChangeId, ApiError> {
    let id: AccountChangeId = ctx.param("id")?;
    ctx.audit(|n| {
        n.action = Some(action.to_string());
        n.record_type = Some("account_change".into());
        n.record_id = Some(format!("change={id}"));
    });
    policy::require_admin(ctx.user()?)?;
    let change = changes::get(&ctx.state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("account change"))?;
    audit_change(ctx, &change, action);
    Ok(id)
}

/// Refuses a body with fields: approving takes none (empty or `{}`).
fn no_fields(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.body.is_empty() {
        return Ok(());
    }
    let map: serde_json::Map<String, serde_json::Value> = ctx.json()?;
    if map.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            ErrorCode::InvalidJson,
            "approving takes no fields; send an empty body or {}",
        ))
    }
}

/// POST /api/v1/account-changes/{id}/approve
pub async fn approve(ctx: Ctx) -> ApiResult {
    let id = change_to_decide(&ctx, "approve_account_change").await?;
    no_fields(&ctx)?;
    let decider = ctx.user()?.account_id;
    let change = changes::approve(&ctx.state.db, id, decider, &ctx.journal_ok()).await?;
    // Its sessions act with the new roles and links from their next request on this node.
    ctx.state.sessions.forget_account(change.account_id);
    ok(&change)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    #[serde(default)]
    reason: Option<String>,
}

/// POST /api/v1/account-changes/{id}/reject
pub async fn reject(ctx: Ctx) -> ApiResult {
    let id = change_to_decide(&ctx, "reject_account_change").await?;
    let body: RejectBody = if ctx.body.is_empty() {
        RejectBody::default()
    } else {
        ctx.json()?
    };
    let reason = body
        .reason
        .map(|r| BoundedText::parse(&r, MAX_REASON, true))
        .transpose()
        .map_err(|e| ApiError::invalid_field("reason", e))?;
    let decider = ctx.user()?.account_id;
    let change = changes::reject(
        &ctx.state.db,
        id,
        decider,
        reason.as_ref().map(BoundedText::as_str),
        &ctx.journal_ok(),
    )
    .await?;
    ok(&change)
}
