//! Who may see and do what: the one place these rules are written, so every handler asks here and
//! the access property test (`tests/tests/access_model.rs`) can check them against a model of its
//! own.
//!
//! # Care relationships
//! Access to a patient comes from a care relationship, never from a write the caller just made
//! (a booking, a hold, a note), because every such write first requires that the caller may
//! already see the patient.
//!
//! A caller may see patient P (`GET /patients/P`, the timeline) when:
//! 1. they are P (a visit-link session reaches its one consultation and P's own record);
//! 2. they are staff of P's own care centre (the facility P registered with: its clinicians and
//!    its schedulers);
//! 3. they are a clinician of a consultation of P that is booked, in progress or completed — the
//!    consulted specialist or the referring clinician. A hold, an expired hold, a cancelled
//!    booking and a no-show give nobody anything;
//! 4. they schedule for the hospital of the consulted clinician of such a consultation (a
//!    referral to the hub is the hub's reason to see the patient);
//! 5. they are a network-wide scheduler (the national coordination desk);
//! 6. they are a clinician holding an unexpired break-the-glass grant on P (an emergency, with a
//!    reason; listed for review and shown to P's care centre).
//!
//! A caller may read consultation C of patient P when they are P (a visit-link session: C only),
//! a clinician of C (in any status: it is on their own list), a scheduler of the hospital of C's
//! clinician (or the network), a clinician of P's own care centre, or a clinician with a
//! break-the-glass grant on P. They may read C's signed note when they are P, a clinician of C, a
//! clinician of P's own care centre, or a break-the-glass clinician: schedulers see bookings, not
//! clinical records. A patient's timeline lists exactly the consultations whose notes the caller
//! may read, so it never shows what `GET /consultations/{id}` would hide.
//!
//! A patient's contact preferences (consent, channel, language, quiet hours) are read by anyone
//! who may see the patient, and recorded by the patient, their care centre's staff and the
//! schedulers of rules 4 and 5 ([`can_set_patient_contacts`]).
//!
//! Booking, holding, rescheduling onto another clinician, issuing a visit link and inviting a
//! guest all require that the caller may already see the patient; a patient they may not see
//! answers the same 404 as one that does not exist. Administrators manage the directory, accounts
//! and the audit trail: no rule above names them, so they read no patient data unless they also
//! hold a role that gives them a reason to.
//!
//! Records the caller may not see answer 404, so existence does not leak; actions refused on
//! things the caller may see (or on whole collections) answer 403.

use chrono::{DateTime, Utc};

use super::{Principal, Role, Scope};
use crate::domain::consultation::Consultation;
use crate::domain::consultation::Status;
use crate::domain::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};

/// How long a break-the-glass grant lasts.
pub const BREAK_GLASS_MINUTES: i64 = 60;

/// A refusal by role: the caller is who they say, but their roles do not allow this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("your roles do not allow you to {0}")]
pub struct Forbidden(pub &'static str);

pub fn require_admin(p: &Principal) -> Result<(), Forbidden> {
    if p.has(Role::Administrator) {
        Ok(())
    } else {
        Err(Forbidden(
            "manage the directory, accounts or the audit trail",
        ))
    }
}

pub fn require_scheduler_for(p: &Principal, facility: FacilityId) -> Result<(), Forbidden> {
    if p.schedules_for(facility) {
        Ok(())
    } else {
        Err(Forbidden("manage this hospital's schedules"))
    }
}

/// True for the statuses in which a consultation is a care relationship (rule 3 above).
pub fn establishes_relationship(status: Status) -> bool {
    matches!(
        status,
        Status::Booked | Status::InProgress | Status::Completed
    )
}

/// One consultation of a patient that is a care relationship.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CareLink {
    pub clinician_id: ClinicianId,
    pub referring_clinician_id: Option<ClinicianId>,
    /// The hospital of the consulted clinician.
    pub clinician_facility_id: FacilityId,
}

/// Facts about a patient record that decide who sees it.
#[derive(Clone, Debug)]
pub struct PatientFacts {
    pub patient_id: PatientId,
    pub home_facility_id: Option<FacilityId>,
    /// Consultations of this patient that establish a care relationship.
    pub links: Vec<CareLink>,
    /// Clinicians holding an unexpired break-the-glass grant on this patient.
    pub break_glass: Vec<ClinicianId>,
}

/// Why a caller may see a patient, for the audit trail and the break-the-glass report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Own,
    HomeFacility,
    CareTeam,
    Referral,
    Network,
    BreakGlass,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Own => "own_record",
            Reason::HomeFacility => "home_facility",
            Reason::CareTeam => "care_team",
            Reason::Referral => "referral",
            Reason::Network => "network_scheduler",
            Reason::BreakGlass => "break_glass",
        }
    }
}

/// Staff of `facility`: its clinicians and its schedulers.
fn works_at(p: &Principal, facility: FacilityId) -> bool {
    (p.as_clinician().is_some() && p.clinician_facility_id == Some(facility))
        || matches!(p.scheduler_scope(), Some(Scope::Facilities(f)) if f.contains(&facility))
}

/// A clinician of `p`'s own care centre for a patient registered at `home`.
fn clinician_of_home(p: &Principal, home: Option<FacilityId>) -> bool {
    p.as_clinician().is_some() && home.is_some() && p.clinician_facility_id == home
}

/// May `p` see patient `f`, and why? The rules 1–6 of the module documentation, in order.
pub fn patient_access(p: &Principal, f: &PatientFacts) -> Option<Reason> {
    if p.as_patient() == Some(f.patient_id) {
        return Some(Reason::Own);
    }
    if p.only_consultation.is_some() {
        return None;
    }
    if f.home_facility_id.is_some_and(|home| works_at(p, home)) {
        return Some(Reason::HomeFacility);
    }
    if let Some(me) = p.as_clinician()
        && f.links
            .iter()
            .any(|l| l.clinician_id == me || l.referring_clinician_id == Some(me))
    {
        return Some(Reason::CareTeam);
    }
    if f.links
        .iter()
        .any(|l| p.schedules_for(l.clinician_facility_id))
    {
        return Some(Reason::Referral);
    }
    if matches!(p.scheduler_scope(), Some(Scope::Network)) {
        return Some(Reason::Network);
    }
    if let Some(me) = p.as_clinician()
        && f.break_glass.contains(&me)
    {
        return Some(Reason::BreakGlass);
    }
    None
}

pub fn can_read_patient(p: &Principal, f: &PatientFacts) -> bool {
    patient_access(p, f).is_some()
}

/// May `p` break the glass on a patient? Clinicians from a full session, when no rule already
/// lets them see the patient (a grant is never needed then, and would only blur the report).
pub fn can_break_glass(p: &Principal) -> bool {
    p.only_consultation.is_none() && p.as_clinician().is_some()
}

/// May `p` read the list of break-the-glass grants? Administrators read every grant (they review
/// them); clinicians read the grants on their own centre's patients and their own.
pub fn can_review_break_glass(p: &Principal) -> bool {
    p.only_consultation.is_none() && (p.has(Role::Administrator) || p.as_clinician().is_some())
}

/// Facts about one consultation that decide who reads and changes it.
#[derive(Clone, Copy, Debug)]
pub struct ConsultationFacts<'a> {
    pub consultation: &'a Consultation,
    /// The hospital of its consulted clinician, which schedules it.
    pub clinician_facility: FacilityId,
    /// Its patient's own care centre.
    pub patient_home: Option<FacilityId>,
    /// The caller holds an unexpired break-the-glass grant on its patient.
    pub caller_broke_glass: bool,
}

fn takes_part(p: &Principal, c: &Consultation) -> bool {
    p.as_clinician()
        .is_some_and(|me| c.clinician_id == me || c.referring_clinician_id == Some(me))
}

fn is_own(p: &Principal, c: &Consultation) -> bool {
    p.as_patient().is_some_and(|me| c.patient_id == me)
        && p.only_consultation.is_none_or(|only| only == c.id)
}

/// The clinical readers of a consultation other than its own people: the patient's care centre
/// and a clinician who broke the glass.
fn clinical_outsider(p: &Principal, f: &ConsultationFacts<'_>) -> bool {
    p.only_consultation.is_none()
        && (clinician_of_home(p, f.patient_home)
            || (p.as_clinician().is_some() && f.caller_broke_glass))
}

/// May `p` read consultation `f.consultation` (the booking, its events and calls)?
pub fn can_read_consultation(p: &Principal, f: &ConsultationFacts<'_>) -> bool {
    let c = f.consultation;
    if p.only_consultation.is_some() {
        return is_own(p, c);
    }
    is_own(p, c)
        || takes_part(p, c)
        || p.schedules_for(f.clinician_facility)
        || clinical_outsider(p, f)
}

/// May `p` cancel, reschedule or confirm it? (Reading it is checked first.)
pub fn can_manage_consultation(p: &Principal, f: &ConsultationFacts<'_>) -> bool {
    p.only_consultation.is_none()
        && (takes_part(p, f.consultation) || p.schedules_for(f.clinician_facility))
}

/// May `p` run it (start, complete, record a no-show)? Clinicians of the consultation and its
/// schedulers.
pub fn can_run_consultation(p: &Principal, f: &ConsultationFacts<'_>) -> bool {
    can_manage_consultation(p, f)
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

/// May `p` read the signed note of the consultation? Its clinicians, its patient (also from a
/// visit link), the patient's care centre's clinicians and a break-the-glass clinician.
/// Schedulers see the booking, not the clinical record.
pub fn can_read_signed_note(p: &Principal, f: &ConsultationFacts<'_>) -> bool {
    let c = f.consultation;
    (takes_part(p, c) && p.only_consultation.is_none()) || is_own(p, c) || clinical_outsider(p, f)
}

/// May `p`, who may see the patient (checked first), read the patient's timeline of
/// consultations and signed notes? The patient (not from a visit link, which reaches one
/// consultation) and clinicians. The timeline lists only what [`ClinicalVisibility`] admits.
pub fn can_read_timeline(p: &Principal, patient: PatientId) -> bool {
    p.only_consultation.is_none() && (p.as_patient() == Some(patient) || p.as_clinician().is_some())
}

/// Why a booking (or a move to another clinician) is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookingRefusal {
    /// The caller may not see the patient: answered exactly like a patient that does not exist.
    PatientHidden,
    /// The caller may see the patient but not book with this clinician.
    Forbidden,
}

/// May `p` book patient `patient` with `clinician` (at `clinician_facility`), referred by
/// `referring`? Only for a patient they may already see: schedulers for their hospital's
/// clinicians, clinicians for consultations they take part in.
pub fn can_book(
    p: &Principal,
    patient: &PatientFacts,
    clinician: ClinicianId,
    clinician_facility: FacilityId,
    referring: Option<ClinicianId>,
) -> Result<(), BookingRefusal> {
    if patient_access(p, patient).is_none() {
        return Err(BookingRefusal::PatientHidden);
    }
    if p.only_consultation.is_some() {
        return Err(BookingRefusal::Forbidden);
    }
    let allowed = p.schedules_for(clinician_facility)
        || p.as_clinician()
            .is_some_and(|me| me == clinician || referring == Some(me));
    if allowed {
        Ok(())
    } else {
        Err(BookingRefusal::Forbidden)
    }
}

/// May `p` record how patient `f` is told of their visits (consent, channel, language, quiet
/// hours)? The patient themselves (a visit-link session too: it is their own record), the staff
/// of their care centre, and the schedulers who may see them (they book by telephone and ask
/// then): rules 1, 2, 4 and 5. Not the consulted or referring clinician of another centre, who has
/// no reason to change it, nor a break-the-glass reader. Written out rather than read off
/// [`patient_access`]'s reason, which names only the first rule that matched.
pub fn can_set_patient_contacts(p: &Principal, f: &PatientFacts) -> bool {
    if p.as_patient() == Some(f.patient_id) {
        return true;
    }
    if p.only_consultation.is_some() {
        return false;
    }
    f.home_facility_id.is_some_and(|home| works_at(p, home))
        || f.links
            .iter()
            .any(|l| p.schedules_for(l.clinician_facility_id))
        || matches!(p.scheduler_scope(), Some(Scope::Network))
}

/// The clinician whose own settings `p` manages (their calendar feed, how they are told of
/// what needs them): a clinician, from a full session, and only their own.
pub fn own_clinician(p: &Principal) -> Option<ClinicianId> {
    if p.only_consultation.is_some() {
        return None;
    }
    p.as_clinician()
}

/// May `p` register a patient (at `home`)?
pub fn can_register_patient(p: &Principal, home: Option<FacilityId>) -> bool {
    p.only_consultation.is_none()
        && (p.scheduler_scope().is_some()
            || (p.as_clinician().is_some() && home.is_some() && home == p.clinician_facility_id))
}

/// The consultations `p` may list: a SQL-level filter, the same rules as
/// [`can_read_consultation`] (the property test holds them together).
#[derive(Clone, Debug, Default)]
pub struct Visibility {
    pub patient: Option<PatientId>,
    pub only_consultation: Option<ConsultationId>,
    /// Consultations this clinician takes part in.
    pub clinician: Option<ClinicianId>,
    /// Consultations of patients registered at this care centre (the caller is its clinician).
    pub home_facility: Option<FacilityId>,
    /// Consultations of patients on whom this clinician holds a grant unexpired at `now`.
    pub break_glass: Option<(ClinicianId, DateTime<Utc>)>,
    /// Consultations with clinicians of these hospitals (the caller schedules for them).
    /// `Some(vec![])` never matches.
    pub facilities: Option<Vec<FacilityId>>,
    pub network: bool,
}

impl Visibility {
    /// Everything `p` may read of consultations (bookings).
    pub fn of(p: &Principal, now: DateTime<Utc>) -> Visibility {
        let mut v = Visibility::clinical_of(p, now);
        if p.only_consultation.is_none() {
            match p.scheduler_scope() {
                Some(Scope::Network) => v.network = true,
                Some(Scope::Facilities(f)) => v.facilities = Some(f),
                None => {}
            }
        }
        v
    }

    /// The consultations whose signed notes `p` may read: [`Visibility::of`] without the
    /// schedulers' view of bookings.
    pub fn clinical_of(p: &Principal, now: DateTime<Utc>) -> Visibility {
        if let Some(only) = p.only_consultation {
            return Visibility {
                patient: p.as_patient(),
                only_consultation: Some(only),
                ..Visibility::default()
            };
        }
        let clinician = p.as_clinician();
        Visibility {
            patient: p.as_patient(),
            only_consultation: None,
            clinician,
            home_facility: clinician.and(p.clinician_facility_id),
            break_glass: clinician.map(|me| (me, now)),
            facilities: None,
            network: false,
        }
    }

    /// True when the caller may see no consultation at all.
    pub fn is_empty(&self) -> bool {
        self.patient.is_none()
            && self.clinician.is_none()
            && self.facilities.is_none()
            && !self.network
    }

    /// Appends ` AND (…)`: the rows of `consultations` aliased `c` this filter admits.
    pub fn push_sql<DB>(&self, q: &mut sqlx::QueryBuilder<DB>)
    where
        DB: sqlx::Database,
        for<'t> PatientId: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        for<'t> ConsultationId: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        for<'t> ClinicianId: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        for<'t> FacilityId: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        for<'t> DateTime<Utc>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    {
        q.push(" AND (1 = 0");
        if let Some(patient) = self.patient {
            q.push(" OR (c.patient_id = ").push_bind(patient);
            if let Some(only) = self.only_consultation {
                q.push(" AND c.id = ").push_bind(only);
            }
            q.push(")");
        }
        if let Some(me) = self.clinician {
            q.push(" OR c.clinician_id = ").push_bind(me);
            q.push(" OR c.referring_clinician_id = ").push_bind(me);
        }
        if let Some(home) = self.home_facility {
            q.push(
                " OR c.patient_id IN (SELECT hp.id FROM patients hp WHERE hp.home_facility_id = ",
            )
            .push_bind(home)
            .push(")");
        }
        if let Some((me, now)) = self.break_glass {
            q.push(" OR c.patient_id IN (SELECT bg.patient_id FROM break_glass_grants bg WHERE bg.clinician_id = ")
                .push_bind(me)
                .push(" AND bg.expires_at > ")
                .push_bind(now)
                .push(")");
        }
        if let Some(facilities) = self.facilities.as_ref().filter(|f| !f.is_empty()) {
            q.push(
                " OR c.clinician_id IN (SELECT sc.id FROM clinicians sc WHERE sc.facility_id IN (",
            );
            let mut sep = q.separated(", ");
            for f in facilities {
                sep.push_bind(*f);
            }
            q.push("))");
        }
        if self.network {
            q.push(" OR 1 = 1");
        }
        q.push(")");
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
