//! Visit links: the link a patient follows into their video visit, issued by whoever manages the
//! consultation and exchanged here for a session limited to it.
//!
//! Like the links patients get from any clinic, a link works as often as they tap it, on any
//! device, until an hour after the visit's end. A device that holds no session of the patient's
//! (a first open, another phone, a cleared browser) confirms the patient's date of birth first;
//! [`accounts::BIRTH_DATE_TRIES`] wrong dates lock the link, which the clinic sees on the
//! consultation, and the clinic can withdraw the links of a visit at any time (ending the
//! sessions they opened) and send a new one.

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
    /// `YYYY-MM-DD`; needed unless the caller already has a session of this patient's.
    #[serde(default)]
    date_of_birth: Option<String>,
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
    let Some(link) = accounts::visit_link(&ctx.state.db, &claims).await? else {
        return Err(refuse("this visit link is not valid"));
    };
    if link.revoked_at.is_some() {
        return Err(refuse("the clinic has withdrawn this visit link"));
    }
    if link.locked_at.is_some() {
        return Err(locked());
    }
    // A device that holds a session of this patient's has confirmed who they are already.
    let known_device = ctx
        .principal
        .as_ref()
        .is_some_and(|p| p.patient_id == Some(claims.patient_id));
    if !known_device {
        let Some(raw) = body.date_of_birth.as_deref() else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::DateOfBirthRequired,
                "confirm the patient's date of birth to open the visit on this device",
            ));
        };
        let entered = chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
            .map_err(|_| ApiError::invalid_field("date_of_birth", "is not a date (YYYY-MM-DD)"))?;
        match accounts::check_birth_date(&ctx.state.db, &claims, entered).await? {
            accounts::BirthDate::Matches => {}
            accounts::BirthDate::Wrong { tries_left } => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::WrongDateOfBirth,
                    format!(
                        "this is not the date of birth the clinic has for the patient; \
                         {tries_left} tries left before the link locks"
                    ),
                )
                .with_details(serde_json::json!({ "tries_left": tries_left })));
            }
            accounts::BirthDate::Locked => {
                tracing::warn!(
                    consultation = %claims.consultation_id,
                    "a visit link locked after too many wrong dates of birth"
                );
                return Err(locked());
            }
        }
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
        return Err(refuse("this visit link is no longer valid"));
    };
    session_answer(&ctx, account, token, expires_at).await
}

fn locked() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::VisitLinkLocked,
        format!(
            "this visit link is locked after {} wrong dates of birth; the clinic can see this \
             and send you a new link: call them",
            accounts::BIRTH_DATE_TRIES
        ),
    )
}

#[derive(Serialize)]
struct VisitLink {
    token: String,
    /// Path for the web client; the token travels in the fragment, which browsers never send.
    path: String,
    expires_at: DateTime<Utc>,
    /// The whole link (`links::absolute`) as a QR code (SVG), for the patient to scan off the
    /// clinic's screen or a printed slip.
    qr_svg: String,
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
    let path = format!("/visit#{token}");
    let url = super::links::absolute(&ctx, &path);
    created(&VisitLink {
        qr_svg: super::links::qr_svg(&url)?,
        path,
        token,
        expires_at,
    })
}

/// Whoever may send a consultation's links may see and withdraw them (never their tokens).
fn may_manage_links(found: &super::access::ConsultationAccess) -> Result<(), ApiError> {
    if !policy::can_manage_consultation(&found.principal, &found.facts()) {
        return Err(ApiError::forbidden(
            "manage visit links for this consultation",
        ));
    }
    Ok(())
}

/// GET /api/v1/consultations/{id}/visit-links
pub async fn list(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    let _: super::directory::NoQuery = ctx.query()?;
    let found = consultation_access(&ctx, id).await?;
    may_manage_links(&found)?;
    ctx.audit(|n| {
        n.record_type = Some("visit_link".into());
        n.record_id = Some(id.to_string());
        n.patient_id = Some(found.consultation.patient_id);
    });
    let links = accounts::visit_links_of(&ctx.state.db, id).await?;
    super::reply::ok(&links)
}

/// POST /api/v1/consultations/{id}/visit-links/revoke: withdraws every live link of the visit
/// and ends the sessions they opened.
pub async fn revoke(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    let found = consultation_access(&ctx, id).await?;
    may_manage_links(&found)?;
    let patient = found.consultation.patient_id;
    let links = accounts::revoke_visit_links(&ctx.state.db, id, patient, &ctx.journal_ok()).await?;
    if let Some(account) = accounts::account_of_patient(&ctx.state.db, patient).await? {
        ctx.state.sessions.forget_account(account);
    }
    super::reply::ok(&serde_json::json!({ "revoked_links": links }))
}
