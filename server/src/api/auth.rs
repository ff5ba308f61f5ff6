//! Identity endpoints: sign in and out, visit links, accounts and roles, the audit trail.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use warp::http::{HeaderValue, StatusCode};

use super::{ApiError, ApiResult, Ctx, account_changes, created, json_response, no_content, ok};
use crate::audit::{self, AuditQuery};
use crate::auth::accounts::{self, NewAccount};
use crate::auth::changes;
use crate::auth::throttle::{Refusal, Rule};
use crate::auth::tokens::{self, VisitLinkError};
use crate::auth::{AccountId, Grant, Role, password, policy};
use crate::domain::code::ErrorCode;
use crate::domain::consultation::Status;
use crate::domain::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};
use crate::domain::time;
use crate::scheduling::{booking, directory};
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

async fn start_session(
    ctx: &Ctx,
    account: AccountId,
    consultation: Option<ConsultationId>,
    expires_at: DateTime<Utc>,
) -> ApiResult {
    let (token, expires_at) =
        accounts::create_session(&ctx.state.db, account, consultation, expires_at).await?;
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
    start_session(&ctx, account, None, accounts::default_expiry()).await
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
    accounts::revoke_session(&ctx.state.db, p.session_id).await?;
    ctx.state.sessions.forget_session(p.session_id);
    ctx.audit(|n| n.action = Some("logout".into()));
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
    if !accounts::consume_visit_link(&ctx.state.db, &claims).await? {
        return Err(refuse("this visit link has already been used"));
    }
    let account = accounts::patient_account(&ctx.state.db, claims.patient_id).await?;
    // The session lasts until a while after the visit, and no longer than a normal one.
    let until = (consultation.end_at + Duration::hours(2)).min(accounts::default_expiry());
    start_session(&ctx, account, Some(consultation.id), until).await
}

/// The facility of a consultation's clinician, which decides who schedules it.
pub async fn clinician_facility(ctx: &Ctx, clinician: ClinicianId) -> Result<FacilityId, ApiError> {
    Ok(directory::facility_of_clinician(&ctx.state.db, clinician).await?)
}

#[derive(Serialize)]
struct VisitLink {
    token: String,
    /// Path for the web client; the token travels in the fragment, which browsers never send.
    path: String,
    expires_at: DateTime<Utc>,
}

/// POST /api/v1/consultations/{id}/visit-link
pub async fn issue_visit_link(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    let found = super::access::consultation_access(&ctx, id).await?;
    let (p, c) = (&found.principal, &found.consultation);
    if !policy::can_manage_consultation(p, &found.facts()) {
        return Err(ApiError::forbidden(
            "send visit links for this consultation",
        ));
    }
    // A link opens the patient's visit: only someone who looks after the patient sends one.
    if super::access::may_see_patient(&ctx, c.patient_id)
        .await?
        .is_none()
    {
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
    let claims =
        accounts::issue_visit_link(&ctx.state.db, id, c.patient_id, p.account_id, expires_at)
            .await?;
    let token = tokens::sign_visit_link(&ctx.state.visit_secret, &claims)
        .map_err(|_| ApiError::internal())?;
    created(&VisitLink {
        path: format!("/visit#{token}"),
        token,
        expires_at,
    })
}

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
pub async fn create_account(ctx: Ctx) -> ApiResult {
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
    let display_name = crate::domain::text::BoundedText::parse(&body.display_name, 200, false)
        .map_err(|e| ApiError::invalid_field("display_name", e))?;
    let grants = parse_grants(&body.roles)?;
    let password_hash = match body.password {
        None => None,
        Some(pw) => Some({
            // The strength estimate and the hash both take milliseconds of CPU.
            let names = [username.clone(), display_name.as_str().to_string()];
            tokio::task::spawn_blocking(move || {
                password::hash_new(&pw, &[names[0].as_str(), names[1].as_str()])
            })
            .await
            .map_err(|_| ApiError::internal())?
            .map_err(|e| ApiError::invalid_field("password", e))?
        }),
    };
    if let Some(p) = body.patient_id {
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
    if let Some(c) = body.clinician_id {
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
    for g in &grants {
        if let Some(f) = g.facility_id {
            directory::get_facility(&ctx.state.db, f).await?;
        }
    }
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
        let (_, change) = changes::propose_new_account(&ctx.state.db, new, proposer).await?;
        account_changes::audit_change(&ctx, &change, "propose_account_change");
        return account_changes::accepted(&change);
    }
    let view = accounts::create_account(&ctx.state.db, new).await?;
    ctx.audit(|n| n.record_id = Some(view.account.id.to_string()));
    created(&view)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// GET /api/v1/accounts
pub async fn list_accounts(ctx: Ctx) -> ApiResult {
    policy::require_admin(ctx.user()?)?;
    let q: PageQuery = ctx.query()?;
    let (limit, offset) = super::directory::page(q.limit, q.offset)?;
    let rows = accounts::list_accounts(&ctx.state.db, limit, offset).await?;
    // A patient's account names the patient.
    ctx.audit_patients(rows.iter().filter_map(|a| a.account.patient_id));
    ok(&rows)
}

/// GET /api/v1/accounts/{id}
pub async fn get_account(ctx: Ctx) -> ApiResult {
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
    for g in &grants {
        if let Some(f) = g.facility_id {
            directory::get_facility(&ctx.state.db, f).await?;
        }
    }
    let linked = |grants| changes::Standing {
        patient_id: current.account.patient_id,
        clinician_id: current.account.clinician_id,
        grants,
    };
    if changes::needs_approval(&linked(&current.roles), &linked(&grants)) {
        let change =
            changes::propose_roles(&ctx.state.db, id, &current.roles, &grants, proposer).await?;
        account_changes::audit_change(&ctx, &change, "propose_account_change");
        return account_changes::accepted(&change);
    }
    accounts::set_roles(&ctx.state.db, id, &grants).await?;
    ctx.state.sessions.forget_account(id);
    match accounts::get_account(&ctx.state.db, id).await? {
        Some(v) => ok(&v),
        None => Err(ApiError::not_found("account")),
    }
}

#[derive(Serialize)]
struct Revoked {
    revoked_sessions: u64,
}

/// POST /api/v1/accounts/{id}/revoke-sessions
pub async fn revoke_sessions(ctx: Ctx) -> ApiResult {
    let id: AccountId = ctx.param("id")?;
    policy::require_admin(ctx.user()?)?;
    if accounts::get_account(&ctx.state.db, id).await?.is_none() {
        return Err(ApiError::not_found("account"));
    }
    let n = accounts::revoke_all(&ctx.state.db, id).await?;
    ctx.state.sessions.forget_account(id);
    ok(&Revoked {
        revoked_sessions: n,
    })
}

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
pub async fn audit(ctx: Ctx) -> ApiResult {
    policy::require_admin(ctx.user()?)?;
    let q: AuditParams = ctx.query()?;
    let (limit, offset) = super::directory::page(q.limit, q.offset)?;
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
