//! Consultation endpoints: book or hold, confirm, cancel, reschedule, start, complete, no-show,
//! running late.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use warp::http::{HeaderValue, StatusCode};
use warp::reply::Response;

use super::access::{
    ConsultationAccess, clinician_facility, consultation_access, may_see_patient, patient_facts,
};
use super::ctx::Ctx;
use super::error::ApiError;
use super::reply::{ApiResult, created, ok};
use super::validate::Validator;
use crate::auth::Principal;
use crate::auth::policy::{self, BookingRefusal, Visibility};
use crate::domain::code::ErrorCode;
use crate::domain::consultation::Consultation;
use crate::domain::consultation::{Delay, Kind, Status, Urgency};
use crate::domain::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};
use crate::domain::text::BoundedText;
use crate::scheduling::booking::{self, ConsultationFilter, Event, NewBooking};

pub const MAX_REASON: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BookingBody {
    kind: String,
    clinician_id: ClinicianId,
    patient_id: PatientId,
    #[serde(default)]
    requesting_facility_id: Option<FacilityId>,
    #[serde(default)]
    referring_clinician_id: Option<ClinicianId>,
    reason: String,
    #[serde(default)]
    urgency: Option<String>,
    start: DateTime<Utc>,
    /// Hold the slot for a few minutes instead of booking it.
    #[serde(default)]
    hold: bool,
}

fn kinds() -> String {
    Kind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The 429 of a booking request over its account's rate, if it is: when to try again in the
/// message, the details and a `Retry-After` header. Checked before anything else of the request,
/// so a refused one costs the node next to nothing.
fn over_rate(ctx: &Ctx, p: &Principal) -> Option<Response> {
    let refusal = ctx.state.booking_limits.admit(p.account_id).err()?;
    metrics::counter!("booking_requests_refused_total").increment(1);
    let wait = refusal.retry_after_seconds;
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyRequests,
        format!("too many booking requests from your account in a short time; try again in {wait} seconds"),
    )
    .with_details(serde_json::json!({ "retry_after_seconds": wait }))
    .into_response();
    response
        .headers_mut()
        .insert(warp::http::header::RETRY_AFTER, HeaderValue::from(wait));
    Some(response)
}

/// POST /api/v1/consultations
pub async fn create(ctx: Ctx) -> ApiResult {
    if let Some(refused) = over_rate(&ctx, ctx.user()?) {
        return Ok(refused);
    }
    let body: BookingBody = ctx.json()?;
    let mut v = Validator::default();
    let kind = Kind::parse(&body.kind);
    if kind.is_none() {
        v.fail("kind", format!("must be one of {}", kinds()));
    }
    let urgency = match body.urgency.as_deref() {
        None => Some(Urgency::Routine),
        Some(u) => {
            let parsed = Urgency::parse(u);
            if parsed.is_none() {
                v.fail("urgency", "must be routine, soon or urgent");
            }
            parsed
        }
    };
    let reason = v.check("reason", BoundedText::parse(&body.reason, MAX_REASON, true));
    v.finish()?;
    let (Some(kind), Some(urgency), Some(reason)) = (kind, urgency, reason) else {
        return Err(ApiError::internal());
    };
    let p = ctx.user()?;
    // Only for a patient the caller may already see; any other answers like a missing one.
    let (patient, _) = patient_facts(&ctx, body.patient_id).await?;
    let facility = clinician_facility(&ctx, body.clinician_id).await?;
    match policy::can_book(
        p,
        &patient,
        body.clinician_id,
        facility,
        body.referring_clinician_id,
    ) {
        Ok(()) => {}
        Err(BookingRefusal::PatientHidden) => return Err(ctx.hidden("patient")),
        Err(BookingRefusal::Forbidden) => {
            return Err(ApiError::forbidden(
                "book with this clinician (schedulers book for their hospital; clinicians for consultations they take part in)",
            ));
        }
    }
    let c = booking::book(
        &ctx.state.db,
        p,
        NewBooking {
            kind,
            clinician_id: body.clinician_id,
            patient_id: body.patient_id,
            requesting_facility_id: body.requesting_facility_id,
            referring_clinician_id: body.referring_clinician_id,
            reason,
            urgency,
            start: body.start,
            hold: body.hold,
        },
        ctx.state.hold_ttl,
        ctx.state.booking_limits.holds,
        &ctx.journal(StatusCode::CREATED),
    )
    .await?;
    ctx.audit(|n| n.record_id = Some(c.id.to_string()));
    created(&c)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    clinician_id: Option<ClinicianId>,
    patient_id: Option<PatientId>,
    requesting_facility_id: Option<FacilityId>,
    status: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// GET /api/v1/consultations
pub async fn list(ctx: Ctx) -> ApiResult {
    let p: ListParams = ctx.query()?;
    let visible = Visibility::of(ctx.user()?, crate::domain::time::now());
    if visible.is_empty() {
        return Err(ApiError::forbidden("read consultations"));
    }
    if let Some(patient) = p.patient_id {
        ctx.audit_patient(patient);
    }
    let (limit, offset) = super::directory::page(p.limit, p.offset)?;
    let status = match p.status.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::invalid_field(
                "status",
                "must be held, booked, in_progress, completed, cancelled, no_show or expired",
            )
        })?),
    };
    let rows = booking::list(
        &ctx.state.db,
        &ConsultationFilter {
            clinician_id: p.clinician_id,
            patient_id: p.patient_id,
            requesting_facility_id: p.requesting_facility_id,
            status,
            from: p.from,
            to: p.to,
            limit,
            offset,
            visible,
        },
    )
    .await?;
    ctx.audit_patients(rows.iter().map(|c| c.patient_id));
    ok(&rows)
}

#[derive(Serialize)]
struct ConsultationDetail {
    #[serde(flatten)]
    consultation: Consultation,
    events: Vec<EventView>,
    /// Its video calls, as the signaling server recorded them.
    calls: Vec<crate::calls::Call>,
}

/// A life-cycle event as its reader may see it. Staff of the clinician's hospital see who did
/// it and the reason they gave; everyone else sees what happened and when, and only the details
/// the platform itself wrote (a call's duration). See [`policy::can_see_staff_notes`].
#[derive(Serialize)]
struct EventView {
    occurred_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
    action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl EventView {
    fn new(e: Event, staff: bool) -> EventView {
        if staff {
            return EventView {
                occurred_at: e.occurred_at,
                actor: Some(e.actor),
                action: e.action,
                detail: Some(e.detail),
            };
        }
        // The signaling server's own events; every other detail is a person's free text.
        let written_by_platform = e.action.starts_with("call_") && !e.detail.is_empty();
        EventView {
            occurred_at: e.occurred_at,
            actor: None,
            detail: written_by_platform.then_some(e.detail),
            action: e.action,
        }
    }
}

/// GET /api/v1/consultations/{id}
pub async fn get(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    let found = consultation_access(&ctx, id).await?;
    let staff = policy::can_see_staff_notes(&found.principal, found.context.clinician_facility);
    let consultation = found.consultation;
    let events = booking::events(&ctx.state.db, id)
        .await?
        .into_iter()
        .map(|e| EventView::new(e, staff))
        .collect();
    let calls = crate::calls::calls_of(&ctx.state.db, id.0).await?;
    ok(&ConsultationDetail {
        consultation,
        events,
        calls,
    })
}

/// Consultation `id` and its caller, when they may manage (confirm, cancel, reschedule) it.
async fn manage(ctx: &Ctx, id: ConsultationId) -> Result<ConsultationAccess, ApiError> {
    let found = consultation_access(ctx, id).await?;
    if policy::can_manage_consultation(&found.principal, &found.facts()) {
        Ok(found)
    } else {
        Err(ApiError::forbidden("change this consultation"))
    }
}

/// The caller, when they may run (start, complete, mark no-show) consultation `id`.
async fn run(ctx: &Ctx, id: ConsultationId) -> Result<Principal, ApiError> {
    let found = consultation_access(ctx, id).await?;
    if policy::can_run_consultation(&found.principal, &found.facts()) {
        Ok(found.principal)
    } else {
        Err(ApiError::forbidden("run this consultation"))
    }
}

/// Transitions that take no body refuse one, so a client does not believe it sent something.
fn no_body(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.body.is_empty() {
        Ok(())
    } else {
        let map: serde_json::Map<String, serde_json::Value> = ctx.json()?;
        if map.is_empty() {
            Ok(())
        } else {
            Err(ApiError::bad_request(
                ErrorCode::InvalidJson,
                "this endpoint takes no fields; send an empty body or {}",
            ))
        }
    }
}

/// POST /api/v1/consultations/{id}/confirm
pub async fn confirm(ctx: Ctx) -> ApiResult {
    if let Some(refused) = over_rate(&ctx, ctx.user()?) {
        return Ok(refused);
    }
    let id: ConsultationId = ctx.param("id")?;
    no_body(&ctx)?;
    let p = manage(&ctx, id).await?.principal;
    ok(&booking::confirm(&ctx.state.db, &p, id, &ctx.journal_ok()).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

/// POST /api/v1/consultations/{id}/cancel
pub async fn cancel(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    let body: ReasonBody = ctx.json()?;
    let reason = BoundedText::parse(&body.reason, MAX_REASON, true)
        .map_err(|e| ApiError::invalid_field("reason", e))?;
    let p = manage(&ctx, id).await?.principal;
    let cancelled = booking::cancel(&ctx.state.db, &p, id, &reason, &ctx.journal_ok()).await?;
    // Whoever waits in its room learns at once, and nobody can join it again.
    ctx.state
        .hub
        .close_room(id.0, telehealth_signaling::CloseReason::Cancelled);
    ok(&cancelled)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RescheduleBody {
    start: DateTime<Utc>,
    #[serde(default)]
    clinician_id: Option<ClinicianId>,
    reason: String,
}

/// POST /api/v1/consultations/{id}/reschedule
pub async fn reschedule(ctx: Ctx) -> ApiResult {
    if let Some(refused) = over_rate(&ctx, ctx.user()?) {
        return Ok(refused);
    }
    let id: ConsultationId = ctx.param("id")?;
    let body: RescheduleBody = ctx.json()?;
    let reason = BoundedText::parse(&body.reason, MAX_REASON, true)
        .map_err(|e| ApiError::invalid_field("reason", e))?;
    let found = manage(&ctx, id).await?;
    let p = &found.principal;
    if let Some(new_clinician) = body.clinician_id {
        // Moving the patient to another clinician is a new booking for them: the caller must
        // see the patient in their own right.
        let Some((patient, _)) = may_see_patient(&ctx, found.consultation.patient_id).await? else {
            return Err(ApiError::forbidden(
                "move this patient to another clinician (you do not look after them)",
            ));
        };
        let facility = clinician_facility(&ctx, new_clinician).await?;
        if policy::can_book(p, &patient, new_clinician, facility, None).is_err() {
            return Err(ApiError::forbidden("move bookings to this clinician"));
        }
    }
    let c = booking::reschedule(
        &ctx.state.db,
        p,
        id,
        body.clinician_id,
        body.start,
        &reason,
        &ctx.journal_ok(),
    )
    .await?;
    // Join tokens follow the consultation: who lost access leaves its room now.
    crate::calls::after_reschedule(&ctx.state.hub, &c, crate::domain::time::now());
    ok(&c)
}

/// POST /api/v1/consultations/{id}/start
pub async fn start(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    no_body(&ctx)?;
    let p = run(&ctx, id).await?;
    ok(&booking::start(&ctx.state.db, &p, id, &ctx.journal_ok()).await?)
}

/// POST /api/v1/consultations/{id}/complete
pub async fn complete(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    no_body(&ctx)?;
    let p = run(&ctx, id).await?;
    let done = booking::complete(&ctx.state.db, &p, id, &ctx.journal_ok()).await?;
    // The visit is over: whoever is still in its room (or waiting) is told, and the call ends.
    ctx.state
        .hub
        .close_room(id.0, telehealth_signaling::CloseReason::Completed);
    ok(&done)
}

/// POST /api/v1/consultations/{id}/no-show
pub async fn no_show(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    no_body(&ctx)?;
    let p = run(&ctx, id).await?;
    let missed = booking::no_show(&ctx.state.db, &p, id, &ctx.journal_ok()).await?;
    ctx.state
        .hub
        .close_room(id.0, telehealth_signaling::CloseReason::NoShow);
    ok(&missed)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunningLateBody {
    minutes: i64,
}

/// POST /api/v1/consultations/{id}/running-late
pub async fn running_late(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    let body: RunningLateBody = ctx.json()?;
    // Who may comes first: a caller who may not learns nothing from the value's rules.
    let p = run(&ctx, id).await?;
    let delay = Delay::parse(body.minutes).map_err(|e| ApiError::invalid_field("minutes", e))?;
    let late = booking::running_late(&ctx.state.db, &p, id, delay, &ctx.journal_ok()).await?;
    // Those already waiting learn at once; who joins later reads it from the consultation.
    let minutes = delay.minutes().map_or(0, i32::unsigned_abs);
    ctx.state.hub.announce_running_late(id.0, minutes);
    ok(&late)
}
