//! The directory: facilities, departments, specialties, clinicians and patients.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::{Result, SchedulingError};
use crate::domain::code::ErrorCode;
use crate::domain::consultation::{FacilityKind, FacilityLevel, Sex};
use crate::domain::ids::{ClinicianId, DepartmentId, FacilityId, PatientId, SpecialtyId};
use crate::domain::text::BoundedText;
use crate::domain::time::{self, Zone};
use crate::on_db;
use crate::storage::{Db, is_unique_violation};

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Facility {
    pub id: FacilityId,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub level: String,
    pub province: String,
    pub address: String,
    pub time_zone: String,
    pub created_at: DateTime<Utc>,
}

impl Facility {
    /// The facility's zone; stored zones were validated on the way in.
    pub fn zone(&self) -> Zone {
        Zone::parse(&self.time_zone).unwrap_or_default()
    }
}

pub struct NewFacility {
    pub code: BoundedText,
    pub name: BoundedText,
    pub kind: FacilityKind,
    pub level: FacilityLevel,
    pub province: BoundedText,
    pub address: BoundedText,
    pub zone: Zone,
}

#[derive(Default)]
pub struct FacilityFilter {
    pub province: Option<String>,
    pub kind: Option<FacilityKind>,
    pub limit: i64,
    pub offset: i64,
}

const FACILITY_COLUMNS: &str =
    "id, code, name, kind, level, province, address, time_zone, created_at";

pub async fn create_facility(db: &Db, f: NewFacility) -> Result<Facility> {
    let now = time::now();
    let result = on_db!(db, pool => sqlx::query_as::<_, Facility>(
        "INSERT INTO facilities (code, name, kind, level, province, address, time_zone, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, code, name, kind, level, province, address, time_zone, created_at",
    )
    .bind(f.code.as_str())
    .bind(f.name.as_str())
    .bind(f.kind.as_str())
    .bind(f.level.as_str())
    .bind(f.province.as_str())
    .bind(f.address.as_str())
    .bind(f.zone.name())
    .bind(now)
    .fetch_one(pool)
    .await);
    result.map_err(|e| {
        if is_unique_violation(&e) {
            SchedulingError::conflict(
                ErrorCode::DuplicateCode,
                format!("a facility with code {:?} already exists", f.code.as_str()),
            )
        } else {
            e.into()
        }
    })
}

pub async fn get_facility(db: &Db, id: FacilityId) -> Result<Facility> {
    on_db!(db, pool => sqlx::query_as::<_, Facility>(
        "SELECT id, code, name, kind, level, province, address, time_zone, created_at
         FROM facilities WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await)?
    .ok_or(SchedulingError::NotFound("facility"))
}

pub async fn list_facilities(db: &Db, filter: &FacilityFilter) -> Result<Vec<Facility>> {
    let rows = on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new("SELECT ");
        q.push(FACILITY_COLUMNS).push(" FROM facilities WHERE 1 = 1");
        if let Some(p) = &filter.province {
            q.push(" AND province = ").push_bind(p.clone());
        }
        if let Some(k) = filter.kind {
            q.push(" AND kind = ").push_bind(k.as_str());
        }
        q.push(" ORDER BY id LIMIT ").push_bind(filter.limit);
        q.push(" OFFSET ").push_bind(filter.offset);
        q.build_query_as::<Facility>().fetch_all(pool).await
    })?;
    Ok(rows)
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Department {
    pub id: DepartmentId,
    pub facility_id: FacilityId,
    pub name: String,
}

pub async fn create_department(
    db: &Db,
    facility_id: FacilityId,
    name: BoundedText,
) -> Result<Department> {
    get_facility(db, facility_id).await?;
    let result = on_db!(db, pool => sqlx::query_as::<_, Department>(
        "INSERT INTO departments (facility_id, name) VALUES ($1, $2)
         RETURNING id, facility_id, name",
    )
    .bind(facility_id)
    .bind(name.as_str())
    .fetch_one(pool)
    .await);
    result.map_err(|e| {
        if is_unique_violation(&e) {
            SchedulingError::conflict(
                ErrorCode::DuplicateDepartment,
                "this facility already has a department with that name",
            )
        } else {
            e.into()
        }
    })
}

pub async fn list_departments(db: &Db, facility_id: FacilityId) -> Result<Vec<Department>> {
    get_facility(db, facility_id).await?;
    Ok(on_db!(db, pool => sqlx::query_as::<_, Department>(
        "SELECT id, facility_id, name FROM departments WHERE facility_id = $1 ORDER BY name",
    )
    .bind(facility_id)
    .fetch_all(pool)
    .await)?)
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Specialty {
    pub id: SpecialtyId,
    pub code: String,
    pub name_en: String,
    pub name_vi: String,
}

pub async fn create_specialty(
    db: &Db,
    code: BoundedText,
    name_en: BoundedText,
    name_vi: BoundedText,
) -> Result<Specialty> {
    let result = on_db!(db, pool => sqlx::query_as::<_, Specialty>(
        "INSERT INTO specialties (code, name_en, name_vi) VALUES ($1, $2, $3)
         RETURNING id, code, name_en, name_vi",
    )
    .bind(code.as_str())
    .bind(name_en.as_str())
    .bind(name_vi.as_str())
    .fetch_one(pool)
    .await);
    result.map_err(|e| {
        if is_unique_violation(&e) {
            SchedulingError::conflict(
                ErrorCode::DuplicateCode,
                format!("a specialty with code {:?} already exists", code.as_str()),
            )
        } else {
            e.into()
        }
    })
}

pub async fn list_specialties(db: &Db) -> Result<Vec<Specialty>> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, Specialty>(
        "SELECT id, code, name_en, name_vi FROM specialties ORDER BY code",
    )
    .fetch_all(pool)
    .await)?)
}

/// A clinician with the facts a booking needs: facility, zone, specialties.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Clinician {
    pub id: ClinicianId,
    pub facility_id: FacilityId,
    pub department_id: Option<DepartmentId>,
    pub full_name: String,
    pub title: String,
    pub active: bool,
    pub facility_name: String,
    pub facility_kind: String,
    pub province: String,
    pub time_zone: String,
    /// Specialty codes, comma-separated in storage and split for the API.
    #[serde(serialize_with = "split_codes")]
    pub specialties: String,
}

fn split_codes<S: serde::Serializer>(codes: &str, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(codes.split(',').filter(|c| !c.is_empty()))
}

impl Clinician {
    pub fn zone(&self) -> Zone {
        Zone::parse(&self.time_zone).unwrap_or_default()
    }
}

pub struct NewClinician {
    pub facility_id: FacilityId,
    pub department_id: Option<DepartmentId>,
    pub full_name: BoundedText,
    pub title: BoundedText,
    pub specialty_codes: Vec<String>,
}

#[derive(Default)]
pub struct ClinicianFilter {
    pub facility_id: Option<FacilityId>,
    pub specialty: Option<String>,
    pub province: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// Clinicians joined with their facility; specialties aggregated in a sub-select that both
/// engines accept (`string_agg` is PostgreSQL-only, `group_concat` SQLite-only, so the codes are
/// gathered in a second query instead).
const CLINICIAN_SELECT: &str =
    "SELECT c.id, c.facility_id, c.department_id, c.full_name, c.title, c.active,
        f.name AS facility_name, f.kind AS facility_kind, f.province, f.time_zone, '' AS specialties
 FROM clinicians c JOIN facilities f ON f.id = c.facility_id";

pub async fn create_clinician(db: &Db, c: NewClinician) -> Result<Clinician> {
    get_facility(db, c.facility_id).await?;
    if let Some(dep) = c.department_id {
        let belongs = on_db!(db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM departments WHERE id = $1 AND facility_id = $2",
        )
        .bind(dep)
        .bind(c.facility_id)
        .fetch_one(pool)
        .await)?;
        if belongs == 0 {
            return Err(SchedulingError::invalid(
                "department_id",
                "the department does not belong to this facility",
            ));
        }
    }
    let mut specialty_ids = Vec::with_capacity(c.specialty_codes.len());
    for code in &c.specialty_codes {
        let id = on_db!(db, pool => sqlx::query_scalar::<_, SpecialtyId>(
            "SELECT id FROM specialties WHERE code = $1",
        )
        .bind(code)
        .fetch_optional(pool)
        .await)?;
        match id {
            Some(id) if !specialty_ids.contains(&id) => specialty_ids.push(id),
            Some(_) => {}
            None => {
                return Err(SchedulingError::invalid(
                    "specialties",
                    format!("unknown specialty code {code:?}"),
                ));
            }
        }
    }
    let now = time::now();
    let id = on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        let id = sqlx::query_scalar::<_, ClinicianId>(
            "INSERT INTO clinicians (facility_id, department_id, full_name, title, active, created_at)
             VALUES ($1, $2, $3, $4, TRUE, $5) RETURNING id",
        )
        .bind(c.facility_id)
        .bind(c.department_id)
        .bind(c.full_name.as_str())
        .bind(c.title.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        for s in &specialty_ids {
            sqlx::query("INSERT INTO clinician_specialties (clinician_id, specialty_id) VALUES ($1, $2)")
                .bind(id)
                .bind(*s)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(id)
    })?;
    get_clinician(db, id).await
}

pub async fn get_clinician(db: &Db, id: ClinicianId) -> Result<Clinician> {
    let found = on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new(CLINICIAN_SELECT);
        q.push(" WHERE c.id = ").push_bind(id);
        q.build_query_as::<Clinician>().fetch_optional(pool).await
    })?;
    let mut clinician = found.ok_or(SchedulingError::NotFound("clinician"))?;
    attach_specialties(db, std::slice::from_mut(&mut clinician)).await?;
    Ok(clinician)
}

/// Where a clinician works: one indexed lookup, for access checks on every booking.
pub async fn facility_of_clinician(db: &Db, id: ClinicianId) -> Result<FacilityId> {
    on_db!(db, pool => sqlx::query_scalar::<_, FacilityId>(
        "SELECT facility_id FROM clinicians WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await)?
    .ok_or(SchedulingError::NotFound("clinician"))
}

pub async fn list_clinicians(db: &Db, filter: &ClinicianFilter) -> Result<Vec<Clinician>> {
    let mut rows = on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new(CLINICIAN_SELECT);
        q.push(" WHERE 1 = 1");
        if let Some(f) = filter.facility_id {
            q.push(" AND c.facility_id = ").push_bind(f);
        }
        if let Some(p) = &filter.province {
            q.push(" AND f.province = ").push_bind(p.clone());
        }
        if let Some(s) = &filter.specialty {
            q.push(
                " AND c.id IN (SELECT cs.clinician_id FROM clinician_specialties cs
                   JOIN specialties s ON s.id = cs.specialty_id WHERE s.code = ",
            )
            .push_bind(s.clone())
            .push(")");
        }
        q.push(" ORDER BY c.id LIMIT ").push_bind(filter.limit);
        q.push(" OFFSET ").push_bind(filter.offset);
        q.build_query_as::<Clinician>().fetch_all(pool).await
    })?;
    attach_specialties(db, &mut rows).await?;
    Ok(rows)
}

/// Fills in the specialty codes of `clinicians` with one query.
async fn attach_specialties(db: &Db, clinicians: &mut [Clinician]) -> Result<()> {
    if clinicians.is_empty() {
        return Ok(());
    }
    let pairs: Vec<(ClinicianId, String)> = on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT cs.clinician_id, s.code FROM clinician_specialties cs
             JOIN specialties s ON s.id = cs.specialty_id WHERE cs.clinician_id IN (",
        );
        let mut ids = q.separated(", ");
        for c in clinicians.iter() {
            ids.push_bind(c.id);
        }
        q.push(") ORDER BY s.code");
        q.build_query_as::<(ClinicianId, String)>().fetch_all(pool).await
    })?;
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

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Patient {
    pub id: PatientId,
    pub full_name: String,
    pub date_of_birth: NaiveDate,
    pub sex: String,
    pub phone: Option<String>,
    pub national_id: Option<String>,
    pub home_facility_id: Option<FacilityId>,
    pub created_at: DateTime<Utc>,
}

pub struct NewPatient {
    pub full_name: BoundedText,
    pub date_of_birth: NaiveDate,
    pub sex: Sex,
    pub phone: Option<String>,
    pub national_id: Option<String>,
    pub home_facility_id: Option<FacilityId>,
}

#[derive(Default)]
pub struct PatientFilter {
    pub home_facility_id: Option<FacilityId>,
    pub limit: i64,
    pub offset: i64,
}

const PATIENT_COLUMNS: &str =
    "id, full_name, date_of_birth, sex, phone, national_id, home_facility_id, created_at";

pub async fn create_patient(db: &Db, p: NewPatient) -> Result<Patient> {
    if let Some(f) = p.home_facility_id {
        get_facility(db, f).await?;
    }
    let now = time::now();
    let result = on_db!(db, pool => sqlx::query_as::<_, Patient>(
        "INSERT INTO patients (full_name, date_of_birth, sex, phone, national_id, home_facility_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, full_name, date_of_birth, sex, phone, national_id, home_facility_id, created_at",
    )
    .bind(p.full_name.as_str())
    .bind(p.date_of_birth)
    .bind(p.sex.as_str())
    .bind(p.phone.as_deref())
    .bind(p.national_id.as_deref())
    .bind(p.home_facility_id)
    .bind(now)
    .fetch_one(pool)
    .await);
    result.map_err(|e| {
        if is_unique_violation(&e) {
            SchedulingError::conflict(
                ErrorCode::DuplicateNationalId,
                "a patient with this national ID number already exists",
            )
        } else {
            e.into()
        }
    })
}

pub async fn get_patient(db: &Db, id: PatientId) -> Result<Patient> {
    on_db!(db, pool => sqlx::query_as::<_, Patient>(
        "SELECT id, full_name, date_of_birth, sex, phone, national_id, home_facility_id, created_at
         FROM patients WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await)?
    .ok_or(SchedulingError::NotFound("patient"))
}

pub async fn list_patients(db: &Db, filter: &PatientFilter) -> Result<Vec<Patient>> {
    Ok(on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new("SELECT ");
        q.push(PATIENT_COLUMNS).push(" FROM patients WHERE 1 = 1");
        if let Some(f) = filter.home_facility_id {
            q.push(" AND home_facility_id = ").push_bind(f);
        }
        q.push(" ORDER BY id LIMIT ").push_bind(filter.limit);
        q.push(" OFFSET ").push_bind(filter.offset);
        q.build_query_as::<Patient>().fetch_all(pool).await
    })?)
}
