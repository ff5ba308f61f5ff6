//! A clinician's passkeys: enrol one (a WebAuthn registration in two steps) and list them.
//! Signing with them is part of the note endpoints (`note/sign/challenge`, `note/sign`).
//!
//! Only clinicians have passkeys, and only for themselves: the routes are under `/me`, so there
//! is no other clinician's id to name.

use serde::Deserialize;
use warp::http::StatusCode;

use super::ctx::Ctx;
use super::directory::NoQuery;
use super::error::ApiError;
use super::reply::{ApiResult, created, ok};
use crate::auth::Principal;
use crate::domain::ids::ClinicianId;
use crate::domain::text::BoundedText;
use crate::notes::passkeys::{self, RegisterPublicKeyCredential};

/// A passkey's name, as its owner tells them apart ("phone", "blue key").
const MAX_NAME: usize = 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinishBody {
    ceremony_id: String,
    name: String,
    /// The `PublicKeyCredential` from `navigator.credentials.create`, binary fields in base64url.
    credential: Box<RegisterPublicKeyCredential>,
}

fn clinician(p: &Principal) -> Result<ClinicianId, ApiError> {
    p.as_clinician().ok_or_else(|| {
        ApiError::forbidden("enrol passkeys: they sign notes, so only clinicians have them")
    })
}

fn audit_passkey(ctx: &Ctx) {
    ctx.audit(|n| n.record_type = Some("passkey".to_string()));
}

/// GET /api/v1/me/passkeys
pub async fn list(ctx: Ctx) -> ApiResult {
    let _: NoQuery = ctx.query()?;
    audit_passkey(&ctx);
    let me = clinician(ctx.user()?)?;
    let mine = passkeys::published(&ctx.state.db, &ctx.state.notes.kek, me).await?;
    ok(&mine)
}

/// POST /api/v1/me/passkeys/registration: the options for `navigator.credentials.create`.
pub async fn start(ctx: Ctx) -> ApiResult {
    audit_passkey(&ctx);
    let p = ctx.user()?;
    let me = clinician(p)?;
    let challenge = passkeys::start_registration(
        &ctx.state.db,
        &ctx.state.notes.passkeys,
        &ctx.state.notes.kek,
        (p.account_id, me),
        &p.username,
        &p.username,
        &ctx.journal(StatusCode::CREATED),
    )
    .await?;
    created(&challenge)
}

/// POST /api/v1/me/passkeys: the authenticator's new credential, checked against the
/// registration it answers, and stored.
pub async fn finish(ctx: Ctx) -> ApiResult {
    audit_passkey(&ctx);
    let p = ctx.user()?;
    let me = clinician(p)?;
    let body: FinishBody = ctx.json()?;
    let name = BoundedText::parse(&body.name, MAX_NAME, false)
        .map_err(|e| ApiError::invalid_field("name", e))?;
    if body.ceremony_id.len() > 64 {
        return Err(ApiError::invalid_field(
            "ceremony_id",
            "is not a ceremony id",
        ));
    }
    let enrolled = passkeys::finish_registration(
        &ctx.state.db,
        &ctx.state.notes.passkeys,
        &ctx.state.notes.kek,
        (p.account_id, me),
        &body.ceremony_id,
        name.as_str(),
        &body.credential,
        &ctx.journal(StatusCode::CREATED),
    )
    .await?;
    created(&enrolled)
}
