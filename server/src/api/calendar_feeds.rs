//! A clinician's calendar feed: make one (its URL is shown once), see whether one is live,
//! revoke it; and the feed itself, read by a calendar application with the URL's secret token
//! and no session (`GET /api/v1/calendar-feeds/{token}`), every read in the audit trail.

use serde::{Deserialize, Serialize};
use warp::http::{HeaderValue, StatusCode, header};

use super::ctx::Ctx;
use super::directory::NoQuery;
use super::error::ApiError;
use super::reply::{ApiResult, created, ok};
use crate::auth::policy;
use crate::domain::ids::ClinicianId;
use crate::journal::About;
use crate::scheduling::feeds;

/// The caller's clinician, when they may have a feed.
fn feed_owner(ctx: &Ctx) -> Result<ClinicianId, ApiError> {
    policy::own_clinician(ctx.user()?).ok_or_else(|| {
        ApiError::forbidden("have a calendar feed (clinicians have one of their own consultations)")
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFeed {
    #[serde(default)]
    with_patient_names: bool,
}

#[derive(Serialize)]
struct CreatedFeed {
    /// The address to subscribe to: shown this once; keep it like a password.
    url: String,
    #[serde(flatten)]
    feed: feeds::Feed,
}

/// POST /api/v1/me/calendar-feed: a new feed (the live one, if any, stops working).
pub async fn create(ctx: Ctx) -> ApiResult {
    let body: NewFeed = ctx.json()?;
    let clinician = feed_owner(&ctx)?;
    let by = ctx.user()?.account_id;
    let journal = ctx.journal(StatusCode::CREATED);
    let now = crate::domain::time::now();
    let mut tx = ctx.state.db.begin().await?;
    let (token, feed) = feeds::create(tx.conn(), clinician, body.with_patient_names, by, now)
        .await
        .map_err(|e| match e {
            feeds::FeedError::Db(e) => ApiError::from(e),
            feeds::FeedError::NoRandomness => ApiError::internal(),
        })?;
    let url = super::links::absolute(&ctx, &format!("/api/v1/calendar-feeds/{token}"));
    let answer = CreatedFeed { url, feed };
    // A client that lost this answer gets it again with its key (the stored answers are purged
    // after a day, like every other): the URL is useless once the feed is replaced or revoked.
    journal
        .write(tx.conn(), About::record(answer.feed.id), &answer)
        .await?;
    tx.commit().await?;
    created(&answer)
}

/// GET /api/v1/me/calendar-feed
pub async fn get(ctx: Ctx) -> ApiResult {
    let _: NoQuery = ctx.query()?;
    let clinician = feed_owner(&ctx)?;
    let mut c = ctx.state.db.acquire().await?;
    let live = feeds::live(c.conn(), clinician).await?;
    ok(&serde_json::json!({ "live": live }))
}

/// POST /api/v1/me/calendar-feed/revoke
pub async fn revoke(ctx: Ctx) -> ApiResult {
    let clinician = feed_owner(&ctx)?;
    let journal = ctx.journal_ok();
    let now = crate::domain::time::now();
    let mut tx = ctx.state.db.begin().await?;
    let revoked = feeds::revoke(tx.conn(), clinician, now).await?;
    let answer = serde_json::json!({ "revoked": revoked });
    journal
        .write(tx.conn(), About::record(clinician), &answer)
        .await?;
    tx.commit().await?;
    ok(&answer)
}

/// GET /api/v1/calendar-feeds/{token}: the feed, as `text/calendar`.
pub async fn feed(ctx: Ctx) -> ApiResult {
    let token: String = ctx.param("token")?;
    let _: NoQuery = ctx.query()?;
    // A token is 43 base64url characters; anything else is no feed (and is not hashed).
    let well_formed = token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let web_base = super::links::absolute(&ctx, "");
    let host = url::Url::parse(&web_base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "telehealth".to_owned());
    let rendered = if well_formed {
        feeds::render(
            &ctx.state.db,
            &token,
            crate::domain::time::now(),
            &web_base,
            &host,
        )
        .await?
    } else {
        None
    };
    let Some(r) = rendered else {
        return Err(ctx.hidden("calendar feed"));
    };
    ctx.audit(|n| {
        n.record_type = Some("calendar_feed".into());
        n.record_id = Some(r.feed_id.to_string());
    });
    ctx.audit_patients(r.named_patients.iter().copied());
    let _ = r.clinician_id;
    let mut response = warp::Reply::into_response(r.ics);
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    // A calendar application fetches it again itself; nothing in between keeps a copy.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}
