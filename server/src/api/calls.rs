//! Joining a consultation's video call: join tokens for the signaling server.
//!
//! The API decides who may join (the consultation's patient and clinicians, and guests a
//! clinician invites). The token carries the consultation's access version; at each join the
//! signaling server checks the token's signature, window and expiry, then asks the platform once
//! whether that version and the participant still stand (`crate::calls`), so a reassignment,
//! cancellation, denial or removal revokes older tokens at once.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use telehealth_signaling::token::{self, JoinClaims, Role as CallRole};

use super::access::{consultation_access, may_see_patient};
use super::ctx::Ctx;
use super::error::ApiError;
use super::reply::{ApiResult, created};
use crate::auth::Principal;
use crate::calls::{CLOSES_AFTER_MINUTES, OPENS_BEFORE_MINUTES};
use crate::domain::code::ErrorCode;
use crate::domain::consultation::{Consultation, Status};
use crate::domain::ids::{ConsultationId, ParticipantId};
use crate::domain::text::BoundedText;
use crate::domain::time;
use crate::scheduling::directory;

/// A participant's token is short-lived: fetch a fresh one to join again later.
pub const TOKEN_MINUTES: i64 = 10;
/// Longest name a clinician may give a guest (family member, interpreter).
pub const MAX_GUEST_NAME: usize = 100;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct JoinTokenBody {
    /// Invite someone without an account (a family member, an interpreter): clinicians only.
    #[serde(default)]
    guest_name: Option<String>,
}

#[derive(Serialize)]
struct JoinToken {
    token: String,
    participant: String,
    role: CallRole,
    consultation: ConsultationId,
    expires_at: DateTime<Utc>,
    opens_at: DateTime<Utc>,
    closes_at: DateTime<Utc>,
    /// The signaling WebSocket, on this server.
    url: &'static str,
    /// A guest's invitation: the page that opens the call with this token, and its QR code.
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    qr_svg: Option<String>,
}

fn too(code: ErrorCode, message: String, opens: DateTime<Utc>, closes: DateTime<Utc>) -> ApiError {
    ApiError::conflict(code, message).with_details(serde_json::json!({
        "opens_at": opens,
        "closes_at": closes,
    }))
}

/// POST /api/v1/consultations/{id}/join-token
pub async fn join_token(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    // Read before the consultation itself: a change committed in between then leaves this token
    // with an older version, refused at join, rather than a current version on stale facts.
    let access = crate::calls::access_version(&ctx.state.db, id.0)
        .await?
        .unwrap_or_default();
    let guest = guest_name(&ctx)?;
    let found = consultation_access(&ctx, id).await?;
    let (p, c) = (found.principal, found.consultation);
    let (participant, name, role) = who_joins(&ctx, &p, &c, guest).await?;
    let now = time::now();
    let (opens, closes) = open_now(&c, now)?;
    // A guest's token is handed on by the clinician, so it lasts the window; everyone else asks
    // again when they rejoin.
    let expires = if role == CallRole::Guest {
        closes
    } else {
        (now + Duration::minutes(TOKEN_MINUTES)).min(closes)
    };
    let claims = JoinClaims {
        consultation: id.0,
        participant: participant.to_string(),
        name,
        role,
        opens_at: opens.timestamp(),
        closes_at: closes.timestamp(),
        expires_at: expires.timestamp(),
        access,
        issued_at: now.timestamp(),
    };
    let token = token::issue(&ctx.state.join_key, &claims);
    // A guest has no account: the link carries the token, after `#` so that it never reaches a
    // server log or a Referer.
    let (link, qr_svg) = if role == CallRole::Guest {
        let link = super::links::absolute(&ctx, &format!("/guest#{token}"));
        let qr = super::links::qr_svg(&link)?;
        (Some(link), Some(qr))
    } else {
        (None, None)
    };
    created(&JoinToken {
        link,
        qr_svg,
        token,
        participant: claims.participant,
        role,
        consultation: id,
        expires_at: expires,
        opens_at: opens,
        closes_at: closes,
        url: "/signaling",
    })
}

/// The guest a clinician invites, if the body names one.
fn guest_name(ctx: &Ctx) -> Result<Option<BoundedText>, ApiError> {
    let body: JoinTokenBody = if ctx.body.is_empty() {
        JoinTokenBody::default()
    } else {
        ctx.json()?
    };
    body.guest_name
        .map(|name| {
            BoundedText::parse(&name, MAX_GUEST_NAME, true)
                .map_err(|e| ApiError::invalid_field("guest_name", e))
        })
        .transpose()
}

/// Who the token admits, by what name and in which role: the caller (the consultation's
/// clinician or patient), or the guest a clinician of it invites.
async fn who_joins(
    ctx: &Ctx,
    p: &Principal,
    c: &Consultation,
    guest: Option<BoundedText>,
) -> Result<(ParticipantId, String, CallRole), ApiError> {
    let me_clinician = p.as_clinician().filter(|me| {
        p.only_consultation.is_none()
            && (*me == c.clinician_id || c.referring_clinician_id == Some(*me))
    });
    let me_patient = p.as_patient().filter(|me| *me == c.patient_id);
    match (guest, me_clinician, me_patient) {
        (Some(guest), Some(_), _) => {
            // Bringing someone else into a patient's visit needs a care relationship of one's own.
            if may_see_patient(ctx, c.patient_id).await?.is_none() {
                return Err(ApiError::forbidden(
                    "invite guests to this patient's call (you do not look after them)",
                ));
            }
            let mut random = [0u8; 8];
            getrandom::fill(&mut random).map_err(|_| ApiError::internal())?;
            let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let name = guest.as_str().to_string();
            Ok((ParticipantId::Guest(suffix), name, CallRole::Guest))
        }
        (Some(_), None, _) => Err(ApiError::forbidden(
            "invite guests to this call (clinicians of the consultation do)",
        )),
        (None, Some(me), _) => {
            let clinician = directory::get_clinician(&ctx.state.db, me).await?;
            let id = ParticipantId::Clinician(me);
            Ok((id, clinician.full_name, CallRole::Clinician))
        }
        (None, None, Some(me)) => {
            let patient = directory::get_patient(&ctx.state.db, me).await?;
            Ok((
                ParticipantId::Patient(me),
                patient.full_name,
                CallRole::Patient,
            ))
        }
        (None, None, None) => Err(ApiError::forbidden(
            "join this call (only its patient and clinicians join; schedulers see the calendar)",
        )),
    }
}

/// The consultation's call window, when it has a call and `now` is inside that window.
fn open_now(
    c: &Consultation,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let (opens, closes) = crate::calls::join_window(c.start_at, c.end_at);
    if !matches!(c.status, Status::Booked | Status::InProgress) {
        return Err(ApiError::conflict(
            ErrorCode::NotJoinable,
            format!(
                "only a booked or running consultation has a call; this one is {}",
                c.status
            ),
        ));
    }
    if now < opens {
        return Err(too(
            ErrorCode::TooEarly,
            format!("the call opens {OPENS_BEFORE_MINUTES} minutes before the consultation"),
            opens,
            closes,
        ));
    }
    if now > closes {
        return Err(too(
            ErrorCode::TooLate,
            format!("the call closed {CLOSES_AFTER_MINUTES} minutes after the consultation"),
            opens,
            closes,
        ));
    }
    Ok((opens, closes))
}

/// Most consultations one presence request may ask about (a specialist's day, with room).
pub const MAX_ROOMS_PER_REQUEST: usize = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomsQuery {
    /// Comma-separated consultation ids.
    consultation_ids: String,
}

#[derive(Serialize)]
struct RoomPerson {
    name: String,
    role: CallRole,
    /// `connected`, or `reconnecting` within the grace period.
    state: telehealth_signaling::protocol::Presence,
    since: DateTime<Utc>,
}

#[derive(Serialize)]
struct RoomState {
    consultation_id: ConsultationId,
    call_started_at: Option<DateTime<Utc>>,
    in_call: Vec<RoomPerson>,
    waiting: Vec<RoomPerson>,
}

/// Parses `1,2,3` into at most [`MAX_ROOMS_PER_REQUEST`] distinct consultation ids.
fn consultation_ids(list: &str) -> Result<Vec<ConsultationId>, ApiError> {
    let mut ids = Vec::new();
    for part in list.split(',') {
        let id: i64 = part.trim().parse().map_err(|_| {
            ApiError::invalid_field(
                "consultation_ids",
                "must be consultation ids separated by commas",
            )
        })?;
        if id <= 0 {
            return Err(ApiError::invalid_field(
                "consultation_ids",
                "ids are positive",
            ));
        }
        if !ids.contains(&ConsultationId(id)) {
            ids.push(ConsultationId(id));
        }
    }
    if ids.len() > MAX_ROOMS_PER_REQUEST {
        return Err(ApiError::invalid_field(
            "consultation_ids",
            format!("at most {MAX_ROOMS_PER_REQUEST} consultations at a time"),
        ));
    }
    Ok(ids)
}

/// GET /api/v1/rooms?consultation_ids=1,2,3
///
/// Who is in the call and who waits, for consultations the caller runs (their day list). This
/// node's rooms only: a deployment of several nodes answers for the rooms each one holds.
pub async fn rooms(ctx: Ctx) -> ApiResult {
    let q: RoomsQuery = ctx.query()?;
    let ids = consultation_ids(&q.consultation_ids)?;
    let mut out = Vec::with_capacity(ids.len());
    let mut patients = Vec::with_capacity(ids.len());
    for id in ids {
        let found = consultation_access(&ctx, id).await?;
        if !crate::auth::policy::can_run_consultation(&found.principal, &found.facts()) {
            return Err(ApiError::forbidden(
                "see who is in this consultation's room",
            ));
        }
        patients.push(found.consultation.patient_id);
        let presence = ctx.state.hub.presence(id.0);
        let (mut in_call, mut waiting) = (Vec::new(), Vec::new());
        let mut call_started_at = None;
        if let Some(p) = presence {
            call_started_at = p.call_started;
            for m in p.members {
                let person = RoomPerson {
                    name: m.name,
                    role: m.role,
                    state: m.state,
                    since: m.since,
                };
                if m.admitted {
                    in_call.push(person);
                } else {
                    waiting.push(person);
                }
            }
        }
        out.push(RoomState {
            consultation_id: id,
            call_started_at,
            in_call,
            waiting,
        });
    }
    ctx.audit_patients(patients);
    super::reply::ok(&serde_json::json!({ "rooms": out }))
}
