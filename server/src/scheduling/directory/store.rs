//! The directory's SQL: facilities, departments, specialties, clinicians and patients as stored,
//! and the uniqueness rules of their tables.
//!
//! Every function runs on the caller's [`Conn`] and begins no transaction; which statements go
//! together, and what a missing row or a violated key means, is the service's business
//! ([`super`]).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::domain::consultation::{FacilityKind, FacilityLevel, Sex};
use crate::domain::ids::{ClinicianId, DepartmentId, FacilityId, PatientId, SpecialtyId};
use crate::domain::text::{BoundedText, fold_for_search};
use crate::domain::time::Zone;
use crate::on_conn;
use crate::storage::{Conn, UniqueKey};

/// `facilities.code UNIQUE`.
pub const FACILITY_CODE: UniqueKey = UniqueKey {
    table: "facilities",
    columns: &["code"],
};
/// `departments UNIQUE (facility_id, name)`.
pub const DEPARTMENT_NAME: UniqueKey = UniqueKey {
    table: "departments",
    columns: &["facility_id", "name"],
};
/// `specialties.code UNIQUE`.
pub const SPECIALTY_CODE: UniqueKey = UniqueKey {
    table: "specialties",
    columns: &["code"],
};
/// `patients.national_id UNIQUE`.
pub const PATIENT_NATIONAL_ID: UniqueKey = UniqueKey {
    table: "patients",
    columns: &["national_id"],
};

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Facility {
    pub id: FacilityId,
    pub code: String,
    pub name: String,
    pub kind: FacilityKind,
    pub level: FacilityLevel,
    pub province: String,
    pub address: String,
    pub time_zone: String,
    pub created_at: DateTime<Utc>,
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

pub async fn insert_facility(
    conn: Conn<'_>,
    f: &NewFacility,
    now: DateTime<Utc>,
) -> Result<Facility, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, Facility>(
        "INSERT INTO facilities (code, name, kind, level, province, address, time_zone, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, code, name, kind, level, province, address, time_zone, created_at",
    )
    .bind(f.code.as_str())
    .bind(f.name.as_str())
    .bind(f.kind)
    .bind(f.level)
    .bind(f.province.as_str())
    .bind(f.address.as_str())
    .bind(f.zone.name())
    .bind(now)
    .fetch_one(&mut *c)
    .await)
}

pub async fn facility(conn: Conn<'_>, id: FacilityId) -> Result<Option<Facility>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, Facility>(
        "SELECT id, code, name, kind, level, province, address, time_zone, created_at
         FROM facilities WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)
}

pub async fn facilities(
    conn: Conn<'_>,
    filter: &FacilityFilter,
) -> Result<Vec<Facility>, sqlx::Error> {
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new("SELECT ");
        q.push(FACILITY_COLUMNS).push(" FROM facilities WHERE 1 = 1");
        if let Some(p) = &filter.province {
            q.push(" AND province = ").push_bind(p.clone());
        }
        if let Some(k) = filter.kind {
            q.push(" AND kind = ").push_bind(k);
        }
        q.push(" ORDER BY id LIMIT ").push_bind(filter.limit);
        q.push(" OFFSET ").push_bind(filter.offset);
        q.build_query_as::<Facility>().fetch_all(&mut *c).await
    })
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Department {
    pub id: DepartmentId,
    pub facility_id: FacilityId,
    pub name: String,
}

pub async fn insert_department(
    conn: Conn<'_>,
    facility_id: FacilityId,
    name: &str,
) -> Result<Department, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, Department>(
        "INSERT INTO departments (facility_id, name) VALUES ($1, $2)
         RETURNING id, facility_id, name",
    )
    .bind(facility_id)
    .bind(name)
    .fetch_one(&mut *c)
    .await)
}

pub async fn departments(
    conn: Conn<'_>,
    facility_id: FacilityId,
) -> Result<Vec<Department>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, Department>(
        "SELECT id, facility_id, name FROM departments WHERE facility_id = $1 ORDER BY name",
    )
    .bind(facility_id)
    .fetch_all(&mut *c)
    .await)
}

/// True when department `id` exists and belongs to `facility_id`.
pub async fn department_in_facility(
    conn: Conn<'_>,
    id: DepartmentId,
    facility_id: FacilityId,
) -> Result<bool, sqlx::Error> {
    let count = on_conn!(conn, c => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM departments WHERE id = $1 AND facility_id = $2",
    )
    .bind(id)
    .bind(facility_id)
    .fetch_one(&mut *c)
    .await)?;
    Ok(count > 0)
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Specialty {
    pub id: SpecialtyId,
    pub code: String,
    pub name_en: String,
    pub name_vi: String,
}

pub async fn insert_specialty(
    conn: Conn<'_>,
    code: &str,
    name_en: &str,
    name_vi: &str,
) -> Result<Specialty, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, Specialty>(
        "INSERT INTO specialties (code, name_en, name_vi) VALUES ($1, $2, $3)
         RETURNING id, code, name_en, name_vi",
    )
    .bind(code)
    .bind(name_en)
    .bind(name_vi)
    .fetch_one(&mut *c)
    .await)
}

pub async fn specialties(conn: Conn<'_>) -> Result<Vec<Specialty>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, Specialty>(
        "SELECT id, code, name_en, name_vi FROM specialties ORDER BY code",
    )
    .fetch_all(&mut *c)
    .await)
}

pub async fn specialty_id(conn: Conn<'_>, code: &str) -> Result<Option<SpecialtyId>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar::<_, SpecialtyId>(
        "SELECT id FROM specialties WHERE code = $1",
    )
    .bind(code)
    .fetch_optional(&mut *c)
    .await)
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
    pub facility_kind: FacilityKind,
    pub province: String,
    pub time_zone: String,
    /// Specialty codes, comma-separated in storage and split for the API.
    #[serde(serialize_with = "split_codes")]
    pub specialties: String,
}

fn split_codes<S: serde::Serializer>(codes: &str, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(codes.split(',').filter(|c| !c.is_empty()))
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

/// Clinicians joined with their facility. The specialty codes are left empty and read by
/// [`specialty_codes`]: aggregating them here would need `string_agg` on PostgreSQL and
/// `group_concat` on SQLite, two query texts for one statement.
const CLINICIAN_SELECT: &str =
    "SELECT c.id, c.facility_id, c.department_id, c.full_name, c.title, c.active,
        f.name AS facility_name, f.kind AS facility_kind, f.province, f.time_zone, '' AS specialties
 FROM clinicians c JOIN facilities f ON f.id = c.facility_id";

/// Inserts the clinician (active) without specialties; see [`add_specialty`].
pub async fn insert_clinician(
    conn: Conn<'_>,
    c: &NewClinician,
    now: DateTime<Utc>,
) -> Result<ClinicianId, sqlx::Error> {
    on_conn!(conn, db => sqlx::query_scalar::<_, ClinicianId>(
        "INSERT INTO clinicians (facility_id, department_id, full_name, title, active, created_at)
         VALUES ($1, $2, $3, $4, TRUE, $5) RETURNING id",
    )
    .bind(c.facility_id)
    .bind(c.department_id)
    .bind(c.full_name.as_str())
    .bind(c.title.as_str())
    .bind(now)
    .fetch_one(&mut *db)
    .await)
}

pub async fn add_specialty(
    conn: Conn<'_>,
    clinician: ClinicianId,
    specialty: SpecialtyId,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "INSERT INTO clinician_specialties (clinician_id, specialty_id) VALUES ($1, $2)",
    )
    .bind(clinician)
    .bind(specialty)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// One clinician, with `specialties` empty.
pub async fn clinician(conn: Conn<'_>, id: ClinicianId) -> Result<Option<Clinician>, sqlx::Error> {
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(CLINICIAN_SELECT);
        q.push(" WHERE c.id = ").push_bind(id);
        q.build_query_as::<Clinician>().fetch_optional(&mut *c).await
    })
}

/// The clinicians of `ids` that exist, with `specialties` empty, by id.
pub async fn clinicians_by_id(
    conn: Conn<'_>,
    ids: &[ClinicianId],
) -> Result<Vec<Clinician>, sqlx::Error> {
    // `IN ()` is not SQL.
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(CLINICIAN_SELECT);
        q.push(" WHERE c.id IN (");
        let mut sep = q.separated(", ");
        for id in ids {
            sep.push_bind(*id);
        }
        q.push(") ORDER BY c.id");
        q.build_query_as::<Clinician>().fetch_all(&mut *c).await
    })
}

/// A page of clinicians, with `specialties` empty.
pub async fn clinicians(
    conn: Conn<'_>,
    filter: &ClinicianFilter,
) -> Result<Vec<Clinician>, sqlx::Error> {
    on_conn!(conn, c => {
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
        q.build_query_as::<Clinician>().fetch_all(&mut *c).await
    })
}

/// The specialty codes of `clinicians`, as (clinician, code) pairs in code order.
pub async fn specialty_codes(
    conn: Conn<'_>,
    clinicians: &[ClinicianId],
) -> Result<Vec<(ClinicianId, String)>, sqlx::Error> {
    // `IN ()` is not SQL.
    if clinicians.is_empty() {
        return Ok(Vec::new());
    }
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT cs.clinician_id, s.code FROM clinician_specialties cs
             JOIN specialties s ON s.id = cs.specialty_id WHERE cs.clinician_id IN (",
        );
        let mut ids = q.separated(", ");
        for id in clinicians {
            ids.push_bind(*id);
        }
        q.push(") ORDER BY s.code");
        q.build_query_as::<(ClinicianId, String)>().fetch_all(&mut *c).await
    })
}

pub async fn facility_of_clinician(
    conn: Conn<'_>,
    id: ClinicianId,
) -> Result<Option<FacilityId>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar::<_, FacilityId>(
        "SELECT facility_id FROM clinicians WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Patient {
    pub id: PatientId,
    pub full_name: String,
    pub date_of_birth: NaiveDate,
    pub sex: Sex,
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

pub async fn insert_patient(
    conn: Conn<'_>,
    p: &NewPatient,
    now: DateTime<Utc>,
) -> Result<Patient, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, Patient>(
        "INSERT INTO patients (full_name, date_of_birth, sex, phone, national_id, home_facility_id, created_at,
                               search_name)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING id, full_name, date_of_birth, sex, phone, national_id, home_facility_id, created_at",
    )
    .bind(p.full_name.as_str())
    .bind(p.date_of_birth)
    .bind(p.sex)
    .bind(p.phone.as_deref())
    .bind(p.national_id.as_deref())
    .bind(p.home_facility_id)
    .bind(now)
    .bind(fold_for_search(p.full_name.as_str()))
    .fetch_one(&mut *c)
    .await)
}

/// Up to `limit` patients whose folded name is not stored yet (rows from before
/// `patients.search_name`), as (id, full name), by id.
pub async fn unfolded_names(
    conn: Conn<'_>,
    limit: i64,
) -> Result<Vec<(PatientId, String)>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, (PatientId, String)>(
        "SELECT id, full_name FROM patients WHERE search_name IS NULL ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *c)
    .await)
}

pub async fn set_search_name(
    conn: Conn<'_>,
    id: PatientId,
    search_name: &str,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query("UPDATE patients SET search_name = $2 WHERE id = $1")
        .bind(id)
        .bind(search_name)
        .execute(&mut *c)
        .await
        .map(|_| ()))
}

pub async fn patient(conn: Conn<'_>, id: PatientId) -> Result<Option<Patient>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, Patient>(
        "SELECT id, full_name, date_of_birth, sex, phone, national_id, home_facility_id, created_at
         FROM patients WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)
}

pub async fn patients(conn: Conn<'_>, filter: &PatientFilter) -> Result<Vec<Patient>, sqlx::Error> {
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new("SELECT ");
        q.push(PATIENT_COLUMNS).push(" FROM patients WHERE 1 = 1");
        if let Some(f) = filter.home_facility_id {
            q.push(" AND home_facility_id = ").push_bind(f);
        }
        q.push(" ORDER BY id LIMIT ").push_bind(filter.limit);
        q.push(" OFFSET ").push_bind(filter.offset);
        q.build_query_as::<Patient>().fetch_all(&mut *c).await
    })
}
