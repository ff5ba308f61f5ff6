//! The API's side of access control: load the facts of a request's patient or consultation,
//! ask [`crate::auth::policy`], and answer a hidden record with the same 404 as a missing one
//! (recorded as a denial). Handlers that need an access decision import it from here.

use super::ctx::Ctx;
use super::error::ApiError;
use crate::auth::Principal;
use crate::auth::access::{self, ConsultationContext};
use crate::auth::policy::{self, ConsultationFacts, PatientFacts, Reason};
use crate::domain::consultation::Consultation;
use crate::domain::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};
use crate::domain::time;
use crate::scheduling::booking;
use crate::scheduling::{SchedulingError, directory};

/// A consultation the caller may read, with what decided it.
pub struct ConsultationAccess {
    pub principal: Principal,
    pub consultation: Consultation,
    pub context: ConsultationContext,
}

impl ConsultationAccess {
    pub fn facts(&self) -> ConsultationFacts<'_> {
        ConsultationFacts {
            consultation: &self.consultation,
            clinician_facility: self.context.clinician_facility,
            patient_home: self.context.patient_home,
            caller_broke_glass: self.context.grants > 0,
        }
    }
}

/// Consultation `id`, when the caller may read it (otherwise a 404 recorded as a denial).
pub async fn consultation_access(
    ctx: &Ctx,
    id: ConsultationId,
) -> Result<ConsultationAccess, ApiError> {
    let principal = ctx.user()?.clone();
    let consultation = match booking::get(&ctx.state.db, id).await {
        Ok(c) => c,
        Err(SchedulingError::NotFound(_)) => return Err(ctx.hidden("consultation")),
        Err(e) => return Err(e.into()),
    };
    ctx.audit_patient(consultation.patient_id);
    let context = access::consultation_context(
        &ctx.state.db,
        consultation.clinician_id,
        consultation.patient_id,
        principal.as_clinician(),
        time::now(),
    )
    .await?
    .ok_or_else(|| ctx.hidden("consultation"))?;
    let found = ConsultationAccess {
        principal,
        consultation,
        context,
    };
    if !policy::can_read_consultation(&found.principal, &found.facts()) {
        return Err(ctx.hidden("consultation"));
    }
    // A read that rests on a break-the-glass grant alone is marked for review.
    let without_grant = ConsultationFacts {
        caller_broke_glass: false,
        ..found.facts()
    };
    if found.context.grants > 0 && !policy::can_read_consultation(&found.principal, &without_grant)
    {
        ctx.audit(|n| n.access_reason = Some(Reason::BreakGlass.as_str()));
    }
    Ok(found)
}

/// The facts of patient `id` and why the caller may see them, or `None` when they may not (or
/// there is no such patient). Storage failures stay errors, so a refusal is never a hidden 503.
pub async fn may_see_patient(
    ctx: &Ctx,
    id: PatientId,
) -> Result<Option<(PatientFacts, Reason)>, ApiError> {
    ctx.audit_patient(id);
    let caller = ctx.user()?;
    let Some(facts) = access::patient_facts(&ctx.state.db, id, time::now()).await? else {
        return Ok(None);
    };
    let Some(reason) = policy::patient_access(caller, &facts) else {
        return Ok(None);
    };
    if reason == Reason::BreakGlass {
        ctx.audit(|n| n.access_reason = Some(reason.as_str()));
    }
    Ok(Some((facts, reason)))
}

/// [`may_see_patient`], with a patient the caller may not see answered by the same 404 as one
/// that does not exist.
pub async fn patient_facts(ctx: &Ctx, id: PatientId) -> Result<(PatientFacts, Reason), ApiError> {
    may_see_patient(ctx, id)
        .await?
        .ok_or_else(|| ctx.hidden("patient"))
}

/// Patient `id`, when the caller may read the record.
pub async fn patient_access(ctx: &Ctx, id: PatientId) -> Result<directory::Patient, ApiError> {
    patient_facts(ctx, id).await?;
    match directory::get_patient(&ctx.state.db, id).await {
        Ok(p) => Ok(p),
        Err(SchedulingError::NotFound(_)) => Err(ctx.hidden("patient")),
        Err(e) => Err(e.into()),
    }
}

/// The facility of a consultation's clinician, which decides who schedules it.
pub async fn clinician_facility(ctx: &Ctx, clinician: ClinicianId) -> Result<FacilityId, ApiError> {
    Ok(directory::facility_of_clinician(&ctx.state.db, clinician).await?)
}
