//! Visit links: a one-time link a patient follows into their video visit, issued by whoever
//! manages the consultation and exchanged here for a session limited to it.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;

use super::access::{consultation_access, may_see_patient};
use super::ctx::Ctx;
use super::error::ApiError;
use super::reply::{ApiResult, created};
use super::sessions::session_answer;
use crate::auth::accounts;
use crate::auth::policy;
use crate::auth::tokens::{self, VisitLinkError};
use crate::domain::code::ErrorCode;
use crate::domain::consultation::Status;
use crate::domain::ids::ConsultationId;
use crate::domain::time;
use crate::scheduling::booking;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VisitBody {
    token: String,
}

/// POST /api/v1/auth/visit: exchanges a one-time visit link for a session limited to its
/// consultation.
pub async fn visit(ctx: Ctx) -> ApiResult {
    let body: VisitBody = ctx.json()?;
    ctx.audit(|n| {
        n.action = Some("visit_link".into());
        n.record_type = Some("consultation".into());
    });
    let refuse = |why: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidVisitLink,
            format!("{why}; ask the clinic for a new link"),
        )
    };
    let claims = tokens::verify_visit_link(&ctx.state.visit_secret, &body.token, time::now())
        .map_err(|e| match e {
            VisitLinkError::Expired => refuse("this visit link has expired"),
            _ => refuse("this visit link is not valid"),
        })?;
    ctx.audit(|n| {
        n.record_id = Some(claims.consultation_id.to_string());
        n.patient_id = Some(claims.patient_id);
    });
    let consultation = booking::get(&ctx.state.db, claims.consultation_id)
        .await
        .map_err(|_| refuse("this visit link is not valid"))?;
    if consultation.patient_id != claims.patient_id {
        return Err(refuse("this visit link is not valid"));
    }
    // The patient's account exists before the link is used (made on a first visit, by itself: a
    // concurrent first use may make it too); then the link's use, the session and the event
    // commit together, so a used link always has its session and its event.
    let account = accounts::patient_account(&ctx.state.db, claims.patient_id).await?;
    // The session lasts until a while after the visit, and no longer than a normal one.
    let until = (consultation.end_at + Duration::hours(2)).min(accounts::default_expiry());
    let Some((token, expires_at)) =
        accounts::visit_session(&ctx.state.db, &claims, account, until, &ctx.journal_ok()).await?
    else {
        return Err(refuse("this visit link has already been used"));
    };
    session_answer(&ctx, account, token, expires_at).await
}

#[derive(Serialize)]
struct VisitLink {
    token: String,
    /// Path for the web client; the token travels in the fragment, which browsers never send.
    path: String,
    expires_at: DateTime<Utc>,
}

/// POST /api/v1/consultations/{id}/visit-link
pub async fn issue(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    let found = consultation_access(&ctx, id).await?;
    let (p, c) = (&found.principal, &found.consultation);
    if !policy::can_manage_consultation(p, &found.facts()) {
        return Err(ApiError::forbidden(
            "send visit links for this consultation",
        ));
    }
    // A link opens the patient's visit: only someone who looks after the patient sends one.
    if may_see_patient(&ctx, c.patient_id).await?.is_none() {
        return Err(ApiError::forbidden(
            "send visit links to this patient (you do not look after them)",
        ));
    }
    if !matches!(c.status, Status::Booked | Status::InProgress) {
        return Err(ApiError::conflict(
            ErrorCode::InvalidTransition,
            format!(
                "a visit link needs a booked consultation; this one is {}",
                c.status
            ),
        ));
    }
    let expires_at = c.end_at + Duration::hours(1);
    let journal = ctx.journal(StatusCode::CREATED);
    let claims = accounts::issue_visit_link(
        &ctx.state.db,
        id,
        c.patient_id,
        p.account_id,
        expires_at,
        &journal,
    )
    .await?;
    let token = tokens::sign_visit_link(&ctx.state.visit_secret, &claims)
        .map_err(|_| ApiError::internal())?;
    created(&VisitLink {
        path: format!("/visit#{token}"),
        token,
        expires_at,
    })
}
