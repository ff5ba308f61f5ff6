//! The directory: facilities, departments, specialties, clinicians and patients.
//!
//! The service: what must exist before a row may refer to it, what a violated uniqueness rule
//! means, and which statements share a transaction. Its SQL is in [`store`].

pub mod store;

use super::{Result, SchedulingError};
use crate::domain::code::ErrorCode;
use crate::domain::ids::{ClinicianId, FacilityId, PatientId, SpecialtyId};
use crate::domain::text::{BoundedText, fold_for_search};
use crate::domain::time::{self, Zone};
use crate::journal::{About, Journal};
use crate::storage::{Conn, Db, OnViolation};

pub use store::{
    Clinician, ClinicianFilter, Department, Facility, FacilityFilter, NewClinician, NewFacility,
    NewPatient, Patient, PatientFilter, Specialty,
};

impl Facility {
    /// The facility's zone; stored zones were validated on the way in.
    pub fn zone(&self) -> Zone {
        Zone::parse(&self.time_zone).unwrap_or_default()
    }
}

impl Clinician {
    pub fn zone(&self) -> Zone {
        Zone::parse(&self.time_zone).unwrap_or_default()
    }
}

/// Creates a facility; its audit event (and idempotent answer) commit with it.
pub async fn create_facility(db: &Db, f: NewFacility, journal: &Journal) -> Result<Facility> {
    let mut tx = db.begin().await?;
    let facility = store::insert_facility(tx.conn(), &f, time::now())
        .await
        .on_violation(&store::FACILITY_CODE, || {
            SchedulingError::conflict(
                ErrorCode::DuplicateCode,
                format!("a facility with code {:?} already exists", f.code.as_str()),
            )
        })?;
    journal
        .write(tx.conn(), About::record(facility.id), &facility)
        .await?;
    tx.commit().await?;
    Ok(facility)
}

pub async fn get_facility(db: &Db, id: FacilityId) -> Result<Facility> {
    let mut c = db.acquire().await?;
    existing_facility(c.conn(), id).await
}

/// Facility `id`, or not found.
async fn existing_facility(conn: Conn<'_>, id: FacilityId) -> Result<Facility> {
    store::facility(conn, id)
        .await?
        .ok_or(SchedulingError::NotFound("facility"))
}

pub async fn list_facilities(db: &Db, filter: &FacilityFilter) -> Result<Vec<Facility>> {
    let mut c = db.acquire().await?;
    Ok(store::facilities(c.conn(), filter).await?)
}

/// Creates a department of an existing facility; its audit event (and idempotent answer) commit
/// with it.
pub async fn create_department(
    db: &Db,
    facility_id: FacilityId,
    name: BoundedText,
    journal: &Journal,
) -> Result<Department> {
    let mut tx = db.begin().await?;
    existing_facility(tx.conn(), facility_id).await?;
    let department = store::insert_department(tx.conn(), facility_id, name.as_str())
        .await
        .on_violation(&store::DEPARTMENT_NAME, || {
            SchedulingError::conflict(
                ErrorCode::DuplicateDepartment,
                "this facility already has a department with that name",
            )
        })?;
    journal
        .write(tx.conn(), About::record(department.id), &department)
        .await?;
    tx.commit().await?;
    Ok(department)
}

pub async fn list_departments(db: &Db, facility_id: FacilityId) -> Result<Vec<Department>> {
    let mut c = db.acquire().await?;
    existing_facility(c.conn(), facility_id).await?;
    Ok(store::departments(c.conn(), facility_id).await?)
}

/// Creates a specialty; its audit event (and idempotent answer) commit with it.
pub async fn create_specialty(
    db: &Db,
    code: BoundedText,
    name_en: BoundedText,
    name_vi: BoundedText,
    journal: &Journal,
) -> Result<Specialty> {
    let mut tx = db.begin().await?;
    let specialty =
        store::insert_specialty(tx.conn(), code.as_str(), name_en.as_str(), name_vi.as_str())
            .await
            .on_violation(&store::SPECIALTY_CODE, || {
                SchedulingError::conflict(
                    ErrorCode::DuplicateCode,
                    format!("a specialty with code {:?} already exists", code.as_str()),
                )
            })?;
    journal
        .write(tx.conn(), About::record(specialty.id), &specialty)
        .await?;
    tx.commit().await?;
    Ok(specialty)
}

pub async fn list_specialties(db: &Db) -> Result<Vec<Specialty>> {
    let mut c = db.acquire().await?;
    Ok(store::specialties(c.conn()).await?)
}

/// Creates a clinician in an existing facility (and department of it), with known specialties,
/// all in one transaction with its audit event (and idempotent answer).
pub async fn create_clinician(db: &Db, c: NewClinician, journal: &Journal) -> Result<Clinician> {
    let mut tx = db.begin().await?;
    existing_facility(tx.conn(), c.facility_id).await?;
    if let Some(dep) = c.department_id
        && !store::department_in_facility(tx.conn(), dep, c.facility_id).await?
    {
        return Err(SchedulingError::invalid(
            "department_id",
            "the department does not belong to this facility",
        ));
    }
    let specialty_ids = known_specialties(tx.conn(), &c.specialty_codes).await?;
    let id = store::insert_clinician(tx.conn(), &c, time::now()).await?;
    for s in specialty_ids {
        store::add_specialty(tx.conn(), id, s).await?;
    }
    let clinician = existing_clinician(tx.conn(), id).await?;
    journal
        .write(tx.conn(), About::record(clinician.id), &clinician)
        .await?;
    tx.commit().await?;
    Ok(clinician)
}

/// The ids of specialty `codes`, each once, or which code is unknown.
async fn known_specialties(mut conn: Conn<'_>, codes: &[String]) -> Result<Vec<SpecialtyId>> {
    let mut ids = Vec::with_capacity(codes.len());
    for code in codes {
        match store::specialty_id(conn.reborrow(), code).await? {
            Some(id) if !ids.contains(&id) => ids.push(id),
            Some(_) => {}
            None => {
                return Err(SchedulingError::invalid(
                    "specialties",
                    format!("unknown specialty code {code:?}"),
                ));
            }
        }
    }
    Ok(ids)
}

pub async fn get_clinician(db: &Db, id: ClinicianId) -> Result<Clinician> {
    let mut c = db.acquire().await?;
    existing_clinician(c.conn(), id).await
}

/// Clinician `id` with their specialties, or not found.
async fn existing_clinician(mut conn: Conn<'_>, id: ClinicianId) -> Result<Clinician> {
    let mut clinician = store::clinician(conn.reborrow(), id)
        .await?
        .ok_or(SchedulingError::NotFound("clinician"))?;
    attach_specialties(conn, std::slice::from_mut(&mut clinician)).await?;
    Ok(clinician)
}

/// Where a clinician works: one indexed lookup, for access checks on every booking.
pub async fn facility_of_clinician(db: &Db, id: ClinicianId) -> Result<FacilityId> {
    let mut c = db.acquire().await?;
    store::facility_of_clinician(c.conn(), id)
        .await?
        .ok_or(SchedulingError::NotFound("clinician"))
}

pub async fn list_clinicians(db: &Db, filter: &ClinicianFilter) -> Result<Vec<Clinician>> {
    let mut c = db.acquire().await?;
    let mut rows = store::clinicians(c.conn(), filter).await?;
    attach_specialties(c.conn(), &mut rows).await?;
    Ok(rows)
}

/// Fills in the specialty codes of `clinicians` with one query.
async fn attach_specialties(conn: Conn<'_>, clinicians: &mut [Clinician]) -> Result<()> {
    if clinicians.is_empty() {
        return Ok(());
    }
    let ids: Vec<ClinicianId> = clinicians.iter().map(|c| c.id).collect();
    let pairs = store::specialty_codes(conn, &ids).await?;
    for c in clinicians.iter_mut() {
        c.specialties = pairs
            .iter()
            .filter(|(id, _)| *id == c.id)
            .map(|(_, code)| code.as_str())
            .collect::<Vec<_>>()
            .join(",");
    }
    Ok(())
}

/// Registers a patient; the audit event naming them (and the idempotent answer) commits with the
/// record.
pub async fn create_patient(db: &Db, p: NewPatient, journal: &Journal) -> Result<Patient> {
    let mut tx = db.begin().await?;
    if let Some(f) = p.home_facility_id {
        existing_facility(tx.conn(), f).await?;
    }
    let patient = store::insert_patient(tx.conn(), &p, time::now())
        .await
        .on_violation(&store::PATIENT_NATIONAL_ID, || {
            SchedulingError::conflict(
                ErrorCode::DuplicateNationalId,
                "a patient with this national ID number already exists",
            )
        })?;
    journal
        .write(
            tx.conn(),
            About::record(patient.id).patient(patient.id),
            &patient,
        )
        .await?;
    tx.commit().await?;
    Ok(patient)
}

pub async fn get_patient(db: &Db, id: PatientId) -> Result<Patient> {
    let mut c = db.acquire().await?;
    store::patient(c.conn(), id)
        .await?
        .ok_or(SchedulingError::NotFound("patient"))
}

pub async fn list_patients(db: &Db, filter: &PatientFilter) -> Result<Vec<Patient>> {
    let mut c = db.acquire().await?;
    Ok(store::patients(c.conn(), filter).await?)
}

/// Patients whose folded name is filled in per transaction by [`fold_missing_names`].
const FOLD_BATCH: i64 = 500;

/// Fills in `patients.search_name` where it is NULL (rows written before the column, or by a
/// tool that does not fold), a batch per transaction so no one transaction holds the write lock
/// for long; returns how many. Run at start: a name search does not find a patient until then.
/// Two nodes starting at once write the same values, so they need not coordinate.
pub async fn fold_missing_names(db: &Db) -> Result<u64> {
    let mut done = 0u64;
    loop {
        let mut tx = db.begin().await?;
        let batch = store::unfolded_names(tx.conn(), FOLD_BATCH).await?;
        if batch.is_empty() {
            return Ok(done);
        }
        for (id, name) in &batch {
            store::set_search_name(tx.conn(), *id, &fold_for_search(name)).await?;
        }
        tx.commit().await?;
        done += batch.len() as u64;
    }
}
