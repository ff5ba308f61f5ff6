//! Consultation endpoints: book or hold, confirm, cancel, reschedule, start, complete, no-show.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::{clinician_facility, consultation_access};
use super::{ApiError, ApiResult, Ctx, Validator, created, ok};
use crate::auth::Principal;
use crate::auth::policy::{self, Visibility};
use crate::domain::consultation::{Kind, Status, Urgency};
use crate::domain::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};
use crate::domain::text::BoundedText;
use crate::scheduling::booking::{self, Consultation, ConsultationFilter, Event, NewBooking};

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

/// POST /api/v1/consultations
pub async fn create(ctx: Ctx) -> ApiResult {
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
    ctx.audit_patient(body.patient_id);
    let facility = clinician_facility(&ctx, body.clinician_id).await?;
    if !policy::can_book(p, body.clinician_id, facility, body.referring_clinician_id) {
        return Err(policy::forbidden(
            "book with this clinician (schedulers book for their hospital; clinicians for consultations they take part in)",
        ));
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
    let visible = Visibility::of(ctx.user()?);
    if visible.is_empty() {
        return Err(policy::forbidden("read consultations"));
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
    ok(&rows)
}

#[derive(Serialize)]
struct ConsultationDetail {
    #[serde(flatten)]
    consultation: Consultation,
    events: Vec<Event>,
    /// Its video calls, as the signaling server recorded them.
    calls: Vec<crate::calls::Call>,
}

/// GET /api/v1/consultations/{id}
pub async fn get(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    let (_, consultation, _) = consultation_access(&ctx, id).await?;
    let events = booking::events(&ctx.state.db, id).await?;
    let calls = crate::calls::calls_of(&ctx.state.db, id.0).await?;
    ok(&ConsultationDetail {
        consultation,
        events,
        calls,
    })
}

/// The caller, when they may manage (confirm, cancel, reschedule) consultation `id`.
async fn manage(ctx: &Ctx, id: ConsultationId) -> Result<Principal, ApiError> {
    let (p, c, facility) = consultation_access(ctx, id).await?;
    if policy::can_manage_consultation(&p, &c, facility) {
        Ok(p)
    } else {
        Err(policy::forbidden("change this consultation"))
    }
}

/// The caller, when they may run (start, complete, mark no-show) consultation `id`.
async fn run(ctx: &Ctx, id: ConsultationId) -> Result<Principal, ApiError> {
    let (p, c, facility) = consultation_access(ctx, id).await?;
    if policy::can_run_consultation(&p, &c, facility) {
        Ok(p)
    } else {
        Err(policy::forbidden("run this consultation"))
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
                "invalid_json",
                "this endpoint takes no fields; send an empty body or {}",
            ))
        }
    }
}

/// POST /api/v1/consultations/{id}/confirm
pub async fn confirm(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    no_body(&ctx)?;
    let p = manage(&ctx, id).await?;
    ok(&booking::confirm(&ctx.state.db, &p, id).await?)
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
    let p = manage(&ctx, id).await?;
    let cancelled = booking::cancel(&ctx.state.db, &p, id, &reason).await?;
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
    let id: ConsultationId = ctx.param("id")?;
    let body: RescheduleBody = ctx.json()?;
    let reason = BoundedText::parse(&body.reason, MAX_REASON, true)
        .map_err(|e| ApiError::invalid_field("reason", e))?;
    let p = manage(&ctx, id).await?;
    if let Some(new_clinician) = body.clinician_id {
        let facility = clinician_facility(&ctx, new_clinician).await?;
        if !policy::can_book(&p, new_clinician, facility, None) {
            return Err(policy::forbidden("move bookings to this clinician"));
        }
    }
    let c = booking::reschedule(
        &ctx.state.db,
        &p,
        id,
        body.clinician_id,
        body.start,
        &reason,
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
    ok(&booking::start(&ctx.state.db, &p, id).await?)
}

/// POST /api/v1/consultations/{id}/complete
pub async fn complete(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    no_body(&ctx)?;
    let p = run(&ctx, id).await?;
    ok(&booking::complete(&ctx.state.db, &p, id).await?)
}

/// POST /api/v1/consultations/{id}/no-show
pub async fn no_show(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    no_body(&ctx)?;
    let p = run(&ctx, id).await?;
    ok(&booking::no_show(&ctx.state.db, &p, id).await?)
}
