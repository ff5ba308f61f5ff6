//! Who may see and do what. One place, so the route × role test has one thing to check.
//!
//! - Patients see their own consultations and patient record (a visit-link session: one
//!   consultation only).
//! - Clinicians see consultations they take part in (as the consulted clinician or the referring
//!   one) and the patients of those; a care-centre clinician also sees and registers the patients
//!   of their own centre, because they book for them.
//! - Schedulers manage availability and bookings of their hospital's clinicians (a scheduler with
//!   no facility covers the whole network).
//! - Administrators manage facilities, people and roles and read the audit trail; they do not
//!   read patient data unless they also hold a role that gives them a reason to.
//!
//! Records the caller may not see answer 404, so existence does not leak; actions refused on
//! things the caller may see (or on whole collections) answer 403.

use super::{Principal, Role};
use crate::api::ApiError;
use crate::domain::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};
use crate::scheduling::booking::Consultation;

pub fn forbidden(what: &str) -> ApiError {
    ApiError::new(
        warp::http::StatusCode::FORBIDDEN,
        "forbidden",
        format!("your roles do not allow you to {what}"),
    )
}

pub fn require_admin(p: &Principal) -> Result<(), ApiError> {
    if p.has(Role::Administrator) {
        Ok(())
    } else {
        Err(forbidden(
            "manage the directory, accounts or the audit trail",
        ))
    }
}

pub fn require_scheduler_for(p: &Principal, facility: FacilityId) -> Result<(), ApiError> {
    if p.schedules_for(facility) {
        Ok(())
    } else {
        Err(forbidden("manage this hospital's schedules"))
    }
}

fn takes_part(p: &Principal, c: &Consultation) -> bool {
    p.as_clinician()
        .is_some_and(|me| c.clinician_id == me || c.referring_clinician_id == Some(me))
}

fn is_own(p: &Principal, c: &Consultation) -> bool {
    p.as_patient().is_some_and(|me| c.patient_id == me)
        && p.only_consultation.is_none_or(|only| only == c.id)
}

/// May `p` read consultation `c`, whose clinician works at `clinician_facility`?
pub fn can_read_consultation(
    p: &Principal,
    c: &Consultation,
    clinician_facility: FacilityId,
) -> bool {
    if p.only_consultation.is_some() {
        return is_own(p, c);
    }
    is_own(p, c) || takes_part(p, c) || p.schedules_for(clinician_facility)
}

/// May `p` cancel, reschedule or confirm it? (Reading it is checked first.)
pub fn can_manage_consultation(
    p: &Principal,
    c: &Consultation,
    clinician_facility: FacilityId,
) -> bool {
    p.only_consultation.is_none() && (takes_part(p, c) || p.schedules_for(clinician_facility))
}

/// May `p` run it (start, complete, record a no-show)? Clinicians of the consultation and its
/// schedulers.
pub fn can_run_consultation(
    p: &Principal,
    c: &Consultation,
    clinician_facility: FacilityId,
) -> bool {
    can_manage_consultation(p, c, clinician_facility)
}

/// May `p` write the draft of `c`'s encounter note, read its drafts and history, and add signed
/// addenda? The consultation's clinicians (consulted and referring), from a full session.
pub fn can_write_note(p: &Principal, c: &Consultation) -> bool {
    p.only_consultation.is_none() && takes_part(p, c)
}

/// May `p` sign `c`'s note? Only the consulted clinician, who is responsible for it; the
/// referring clinician contributes to the draft and signs addenda of their own.
pub fn can_sign_note(p: &Principal, c: &Consultation) -> bool {
    p.only_consultation.is_none() && p.as_clinician() == Some(c.clinician_id)
}

/// May `p` read the signed note of `c`? Its clinicians and its patient (also from a visit link).
/// Schedulers see the booking, not the clinical record.
pub fn can_read_signed_note(p: &Principal, c: &Consultation) -> bool {
    takes_part(p, c) && p.only_consultation.is_none() || is_own(p, c)
}

/// May `p`, who may read the patient record (checked first), read the patient's timeline of
/// consultations and signed notes? The patient (not from a visit link, which reaches one
/// consultation) and clinicians allowed to see the patient.
pub fn can_read_timeline(p: &Principal, patient: PatientId) -> bool {
    p.only_consultation.is_none() && (p.as_patient() == Some(patient) || p.as_clinician().is_some())
}

/// May `p` book a consultation with `clinician` (at `clinician_facility`), referred by `referring`?
pub fn can_book(
    p: &Principal,
    clinician: ClinicianId,
    clinician_facility: FacilityId,
    referring: Option<ClinicianId>,
) -> bool {
    if p.only_consultation.is_some() {
        return false;
    }
    p.schedules_for(clinician_facility)
        || p.as_clinician()
            .is_some_and(|me| me == clinician || referring == Some(me))
}

/// Facts about a patient record that decide who sees it.
pub struct PatientFacts {
    pub patient_id: PatientId,
    pub home_facility_id: Option<FacilityId>,
    /// The caller takes part in, or schedules, a consultation of this patient.
    pub shares_a_consultation: bool,
}

pub fn can_read_patient(p: &Principal, f: &PatientFacts) -> bool {
    if p.only_consultation.is_some() {
        return p.as_patient() == Some(f.patient_id);
    }
    p.as_patient() == Some(f.patient_id)
        || f.shares_a_consultation
        || matches!(p.scheduler_scope(), Some(super::Scope::Network))
        || (p.as_clinician().is_some()
            && f.home_facility_id.is_some()
            && p.clinician_facility_id == f.home_facility_id)
}

/// May `p` register a patient (at `home`)?
pub fn can_register_patient(p: &Principal, home: Option<FacilityId>) -> bool {
    p.only_consultation.is_none()
        && (p.scheduler_scope().is_some()
            || (p.as_clinician().is_some() && home.is_some() && home == p.clinician_facility_id))
}

/// The consultations `p` may list: a SQL-level filter.
#[derive(Clone, Debug, Default)]
pub struct Visibility {
    pub patient: Option<PatientId>,
    pub only_consultation: Option<ConsultationId>,
    pub clinician: Option<ClinicianId>,
    /// `Some(vec![])` never matches; `None` with `network` false adds nothing.
    pub facilities: Option<Vec<FacilityId>>,
    pub network: bool,
}

impl Visibility {
    pub fn of(p: &Principal) -> Visibility {
        if let Some(only) = p.only_consultation {
            return Visibility {
                patient: p.as_patient(),
                only_consultation: Some(only),
                ..Visibility::default()
            };
        }
        let (facilities, network) = match p.scheduler_scope() {
            Some(super::Scope::Network) => (None, true),
            Some(super::Scope::Facilities(f)) => (Some(f), false),
            None => (None, false),
        };
        Visibility {
            patient: p.as_patient(),
            only_consultation: None,
            clinician: p.as_clinician(),
            facilities,
            network,
        }
    }

    /// True when the caller may see no consultation at all.
    pub fn is_empty(&self) -> bool {
        self.patient.is_none()
            && self.clinician.is_none()
            && self.facilities.is_none()
            && !self.network
    }
}

/// May `p` see what the staff of `hospital` write for each other about its clinicians' work:
/// who changed a booking (their user names), the reasons given for rescheduling, and clinicians'
/// leave notes? The hospital's own clinicians and the schedulers who cover it, from a full
/// session. Patients (also from a visit link), clinicians elsewhere (a referring clinician at a
/// care centre too) and administrators see what happened and when, not who or why. The
/// consultation's own `cancel_reason` is not covered: its patient needs to know why a visit
/// will not happen, and staff write it knowing the patient reads it.
pub fn can_see_staff_notes(p: &Principal, hospital: FacilityId) -> bool {
    p.only_consultation.is_none()
        && (p.schedules_for(hospital)
            || (p.as_clinician().is_some() && p.clinician_facility_id == Some(hospital)))
}
