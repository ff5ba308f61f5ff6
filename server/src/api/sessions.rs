//! Sessions: sign in with a password (within the sign-in limits), sign out, and who am I.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use warp::http::{HeaderValue, StatusCode};

use super::ctx::Ctx;
use super::error::ApiError;
use super::reply::{ApiResult, json_response, no_content, ok};
use crate::auth::accounts;
use crate::auth::throttle::{Refusal, Rule};
use crate::auth::{AccountId, password};
use crate::domain::code::ErrorCode;
use crate::domain::time;
use crate::state::SESSION_COOKIE;

fn session_cookie(ctx: &Ctx, token: &str, max_age: i64) -> HeaderValue {
    let secure = if ctx.state.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let value = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(Serialize)]
struct SessionBody<'a> {
    /// Also usable as `Authorization: Bearer <token>` by API clients.
    token: &'a str,
    expires_at: DateTime<Utc>,
    account: &'a accounts::AccountView,
}

/// The answer to a sign-in: the new session's token, in the body and as the session cookie,
/// with the account it signs in as.
pub(super) async fn session_answer(
    ctx: &Ctx,
    account: AccountId,
    token: String,
    expires_at: DateTime<Utc>,
) -> ApiResult {
    let view = accounts::get_account(&ctx.state.db, account)
        .await?
        .ok_or_else(ApiError::internal)?;
    let mut response = json_response(
        StatusCode::OK,
        &SessionBody {
            token: &token,
            expires_at,
            account: &view,
        },
    )?;
    let max_age = (expires_at - time::now()).num_seconds().max(0);
    response.headers_mut().insert(
        warp::http::header::SET_COOKIE,
        session_cookie(ctx, &token, max_age),
    );
    response.headers_mut().insert(
        warp::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

/// POST /api/v1/auth/login
///
/// The attempt is reserved against the sign-in limits ([`crate::auth::throttle`]) before the
/// password is checked, so parallel guesses are counted while they are still in flight.
pub async fn login(ctx: Ctx) -> ApiResult {
    let body: LoginBody = ctx.json()?;
    let username = accounts::normalise_username(&body.username)
        .unwrap_or_else(|| body.username.chars().take(64).collect());
    ctx.audit(|n| {
        n.action = Some("login".into());
        n.actor = Some(username.clone());
        n.record_type = Some("session".into());
    });
    let reservation = match ctx
        .state
        .sign_in
        .reserve(&ctx.state.db, &username, ctx.client_addr.as_deref())
        .await?
    {
        Ok(r) => r,
        Err(refusal) => return too_many_attempts(refusal),
    };
    let record = accounts::login_record(&ctx.state.db, &username).await?;
    let password = body.password;
    // An unknown name costs a check against a dummy hash: it answers as slowly as a wrong password.
    let account = match record {
        Some((id, Some(hash), false)) => {
            let ok = tokio::task::spawn_blocking(move || password::verify(&password, &hash))
                .await
                .unwrap_or(false);
            ok.then_some(id)
        }
        _ => {
            let _ = tokio::task::spawn_blocking(move || password::verify_dummy(&password)).await;
            None
        }
    };
    metrics::counter!("auth_password_checks_total", "result" => if account.is_some() { "right" } else { "wrong" })
        .increment(1);
    reservation.finish(account.is_some()).await?;
    let Some(account) = account else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            "the user name or password is wrong",
        ));
    };
    ctx.audit(|n| n.record_id = Some(account.to_string()));
    // The session and the sign-in's event commit together.
    let (token, expires_at) = accounts::create_session(
        &ctx.state.db,
        account,
        accounts::default_expiry(),
        &ctx.journal_ok(),
    )
    .await?;
    session_answer(&ctx, account, token, expires_at).await
}

/// The 429 of a refused sign-in: which limit, and when to try again, in the message, the
/// details and a `Retry-After` header.
fn too_many_attempts(refusal: Refusal) -> ApiResult {
    metrics::counter!("auth_sign_in_refused_total", "limit" => refusal.rule.as_str()).increment(1);
    let wait = refusal.retry_after_seconds;
    let when = if wait < 120 {
        format!("{wait} seconds")
    } else {
        format!("{} minutes", wait.div_ceil(60))
    };
    let message = match refusal.rule {
        Rule::Pair => format!(
            "too many failed sign-ins for this user name from your network; try again in {when}, \
             sign in from another network, or ask an administrator to reset your password"
        ),
        Rule::AccountSlowdown => format!(
            "this user name has had many failed sign-ins from several places, so sign-ins for it \
             are slowed down; try again in {when}"
        ),
        Rule::AddressCeiling => format!(
            "too many failed sign-ins from your network; try again in {when} (accounts that \
             have signed in from this network before are not affected)"
        ),
        Rule::AddressRate => {
            format!("too many sign-ins from your network at once; try again in {when}")
        }
    };
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyAttempts,
        message,
    )
    .with_details(serde_json::json!({
        "limit": refusal.rule.as_str(),
        "retry_after_seconds": wait,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(warp::http::header::RETRY_AFTER, HeaderValue::from(wait));
    Ok(response)
}

/// POST /api/v1/auth/logout
pub async fn logout(ctx: Ctx) -> ApiResult {
    let p = ctx.user()?;
    ctx.audit(|n| n.action = Some("logout".into()));
    let journal = ctx.journal(StatusCode::NO_CONTENT);
    accounts::revoke_session(&ctx.state.db, p.session_id, &journal).await?;
    ctx.state.sessions.forget_session(p.session_id);
    let mut response = no_content()?;
    response
        .headers_mut()
        .insert(warp::http::header::SET_COOKIE, session_cookie(&ctx, "", 0));
    Ok(response)
}

/// GET /api/v1/auth/me
pub async fn me(ctx: Ctx) -> ApiResult {
    ok(ctx.user()?)
}
