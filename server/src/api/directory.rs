//! Directory endpoints: facilities, departments, specialties, clinicians, patients.

use chrono::NaiveDate;
use serde::Deserialize;
use warp::http::StatusCode;

use super::ctx::Ctx;
use super::error::ApiError;
use super::reply::{ApiResult, created, ok};
use super::validate::Validator;
use crate::auth::Scope;
use crate::auth::policy;
use crate::domain::consultation::{FacilityKind, FacilityLevel, Sex};
use crate::domain::ids::{ClinicianId, DepartmentId, FacilityId, PatientId};
use crate::domain::text::BoundedText;
use crate::domain::time::{self, Zone};
use crate::scheduling::directory::{
    self, ClinicianFilter, FacilityFilter, NewClinician, NewFacility, NewPatient, PatientFilter,
};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;
pub const MAX_NAME: usize = 200;

/// `limit` and `offset` query parameters, bounded. (Not a flattened struct: serde's `flatten`
/// breaks both `deny_unknown_fields` and number parsing in query strings.)
pub fn page(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid_field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let offset = offset.unwrap_or(0);
        if !(0..=1_000_000).contains(&offset) {
            return Err(ApiError::invalid_field(
                "offset",
                "must be between 0 and 1000000",
            ));
        }
        Ok((limit, offset))
    }
}

/// For endpoints that take no query parameters: anything given is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

pub fn text(v: &mut Validator, field: &str, raw: &str, max: usize) -> Option<BoundedText> {
    v.check(field, BoundedText::parse(raw, max, false))
}

fn parse_enum<T>(
    v: &mut Validator,
    field: &str,
    raw: &str,
    parse: fn(&str) -> Option<T>,
    all: &[&str],
) -> Option<T> {
    let parsed = parse(raw);
    if parsed.is_none() {
        v.fail(field, format!("must be one of {}", all.join(", ")));
    }
    parsed
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FacilityBody {
    code: String,
    name: String,
    kind: String,
    level: String,
    province: String,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
}

/// POST /api/v1/facilities
pub async fn create_facility(ctx: Ctx) -> ApiResult {
    policy::require_admin(ctx.user()?)?;
    let body: FacilityBody = ctx.json()?;
    let mut v = Validator::default();
    let code = text(&mut v, "code", &body.code, 40);
    let name = text(&mut v, "name", &body.name, MAX_NAME);
    let kinds: Vec<&str> = FacilityKind::ALL.iter().map(|k| k.as_str()).collect();
    let kind = parse_enum(&mut v, "kind", &body.kind, FacilityKind::parse, &kinds);
    let levels: Vec<&str> = FacilityLevel::ALL.iter().map(|k| k.as_str()).collect();
    let level = parse_enum(&mut v, "level", &body.level, FacilityLevel::parse, &levels);
    let province = text(&mut v, "province", &body.province, 100);
    let address = text(
        &mut v,
        "address",
        body.address.as_deref().unwrap_or("-"),
        300,
    );
    let zone = v.check(
        "time_zone",
        Zone::parse(body.time_zone.as_deref().unwrap_or(time::DEFAULT_ZONE)),
    );
    v.finish()?;
    let (
        Some(code),
        Some(name),
        Some(kind),
        Some(level),
        Some(province),
        Some(address),
        Some(zone),
    ) = (code, name, kind, level, province, address, zone)
    else {
        return Err(ApiError::internal());
    };
    let f = directory::create_facility(
        &ctx.state.db,
        NewFacility {
            code,
            name,
            kind,
            level,
            province,
            address,
            zone,
        },
        &ctx.journal(StatusCode::CREATED),
    )
    .await?;
    created(&f)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FacilityQuery {
    province: Option<String>,
    kind: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// GET /api/v1/facilities
pub async fn list_facilities(ctx: Ctx) -> ApiResult {
    let q: FacilityQuery = ctx.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => Some(FacilityKind::parse(k).ok_or_else(|| {
            ApiError::invalid_field("kind", "must be hub_hospital or care_centre")
        })?),
    };
    let rows = directory::list_facilities(
        &ctx.state.db,
        &FacilityFilter {
            province: q.province,
            kind,
            limit,
            offset,
        },
    )
    .await?;
    ok(&rows)
}

/// GET /api/v1/facilities/{id}
pub async fn get_facility(ctx: Ctx) -> ApiResult {
    let id: FacilityId = ctx.param("id")?;
    ok(&directory::get_facility(&ctx.state.db, id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DepartmentBody {
    name: String,
}

/// POST /api/v1/facilities/{id}/departments
pub async fn create_department(ctx: Ctx) -> ApiResult {
    policy::require_admin(ctx.user()?)?;
    let id: FacilityId = ctx.param("id")?;
    let body: DepartmentBody = ctx.json()?;
    let name = BoundedText::parse(&body.name, MAX_NAME, false)
        .map_err(|e| ApiError::invalid_field("name", e))?;
    created(
        &directory::create_department(&ctx.state.db, id, name, &ctx.journal(StatusCode::CREATED))
            .await?,
    )
}

/// GET /api/v1/facilities/{id}/departments
pub async fn list_departments(ctx: Ctx) -> ApiResult {
    let id: FacilityId = ctx.param("id")?;
    ok(&directory::list_departments(&ctx.state.db, id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecialtyBody {
    code: String,
    name_en: String,
    name_vi: String,
}

/// POST /api/v1/specialties
pub async fn create_specialty(ctx: Ctx) -> ApiResult {
    policy::require_admin(ctx.user()?)?;
    let body: SpecialtyBody = ctx.json()?;
    let mut v = Validator::default();
    let code = text(&mut v, "code", &body.code, 60);
    if !body
        .code
        .chars()
        .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
    {
        v.fail("code", "use lower-case letters, digits and underscores");
    }
    let en = text(&mut v, "name_en", &body.name_en, MAX_NAME);
    let vi = text(&mut v, "name_vi", &body.name_vi, MAX_NAME);
    v.finish()?;
    let (Some(code), Some(en), Some(vi)) = (code, en, vi) else {
        return Err(ApiError::internal());
    };
    created(
        &directory::create_specialty(
            &ctx.state.db,
            code,
            en,
            vi,
            &ctx.journal(StatusCode::CREATED),
        )
        .await?,
    )
}

/// GET /api/v1/specialties
pub async fn list_specialties(ctx: Ctx) -> ApiResult {
    let _: NoQuery = ctx.query()?;
    ok(&directory::list_specialties(&ctx.state.db).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClinicianBody {
    facility_id: FacilityId,
    #[serde(default)]
    department_id: Option<DepartmentId>,
    full_name: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    specialties: Vec<String>,
}

/// POST /api/v1/clinicians
pub async fn create_clinician(ctx: Ctx) -> ApiResult {
    policy::require_admin(ctx.user()?)?;
    let body: ClinicianBody = ctx.json()?;
    let mut v = Validator::default();
    let full_name = text(&mut v, "full_name", &body.full_name, MAX_NAME);
    let title = text(&mut v, "title", body.title.as_deref().unwrap_or("BS"), 40);
    if body.specialties.len() > 10 {
        v.fail("specialties", "at most 10 specialties");
    }
    v.finish()?;
    let (Some(full_name), Some(title)) = (full_name, title) else {
        return Err(ApiError::internal());
    };
    let c = directory::create_clinician(
        &ctx.state.db,
        NewClinician {
            facility_id: body.facility_id,
            department_id: body.department_id,
            full_name,
            title,
            specialty_codes: body.specialties,
        },
        &ctx.journal(StatusCode::CREATED),
    )
    .await?;
    created(&c)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClinicianQuery {
    facility_id: Option<FacilityId>,
    specialty: Option<String>,
    province: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// GET /api/v1/clinicians
pub async fn list_clinicians(ctx: Ctx) -> ApiResult {
    let q: ClinicianQuery = ctx.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let rows = directory::list_clinicians(
        &ctx.state.db,
        &ClinicianFilter {
            facility_id: q.facility_id,
            specialty: q.specialty,
            province: q.province,
            limit,
            offset,
        },
    )
    .await?;
    ok(&rows)
}

/// GET /api/v1/clinicians/{id}
pub async fn get_clinician(ctx: Ctx) -> ApiResult {
    let id: ClinicianId = ctx.param("id")?;
    ok(&directory::get_clinician(&ctx.state.db, id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatientBody {
    full_name: String,
    date_of_birth: NaiveDate,
    sex: String,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    national_id: Option<String>,
    #[serde(default)]
    home_facility_id: Option<FacilityId>,
}

/// POST /api/v1/patients
pub async fn create_patient(ctx: Ctx) -> ApiResult {
    let body: PatientBody = ctx.json()?;
    let mut v = Validator::default();
    let full_name = text(&mut v, "full_name", &body.full_name, MAX_NAME);
    let sexes: Vec<&str> = Sex::ALL.iter().map(|k| k.as_str()).collect();
    let sex = parse_enum(&mut v, "sex", &body.sex, Sex::parse, &sexes);
    let today = time::now().date_naive();
    if body.date_of_birth > today {
        v.fail("date_of_birth", "is in the future");
    }
    if body.date_of_birth < NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN) {
        v.fail("date_of_birth", "is before 1900");
    }
    let phone = body.phone.map(|p| p.replace([' ', '.', '-'], ""));
    if let Some(p) = &phone {
        let digits = p.strip_prefix('+').unwrap_or(p);
        if !(8..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
            v.fail(
                "phone",
                "must be 8 to 15 digits, optionally starting with +",
            );
        }
    }
    if let Some(n) = &body.national_id
        && (n.len() != 12 || !n.chars().all(|c| c.is_ascii_digit()))
    {
        v.fail(
            "national_id",
            "must be the 12-digit citizen identity number",
        );
    }
    v.finish()?;
    let (Some(full_name), Some(sex)) = (full_name, sex) else {
        return Err(ApiError::internal());
    };
    if !policy::can_register_patient(ctx.user()?, body.home_facility_id) {
        return Err(ApiError::forbidden(
            "register patients here (clinicians register at their own centre; schedulers anywhere)",
        ));
    }
    let patient = directory::create_patient(
        &ctx.state.db,
        NewPatient {
            full_name,
            date_of_birth: body.date_of_birth,
            sex,
            phone,
            national_id: body.national_id,
            home_facility_id: body.home_facility_id,
        },
        &ctx.journal(StatusCode::CREATED),
    )
    .await?;
    created(&patient)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatientQuery {
    home_facility_id: Option<FacilityId>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// GET /api/v1/patients
pub async fn list_patients(ctx: Ctx) -> ApiResult {
    let q: PatientQuery = ctx.query()?;
    let (limit, offset) = page(q.limit, q.offset)?;
    let caller = ctx.user()?;
    // Lists are for those who look after a whole population: the network's schedulers, and a
    // care centre's clinicians for their own centre.
    let home_facility_id = if matches!(caller.scheduler_scope(), Some(Scope::Network)) {
        q.home_facility_id
    } else if let (Some(_), Some(own)) = (caller.as_clinician(), caller.clinician_facility_id) {
        if q.home_facility_id.is_some_and(|f| f != own) {
            return Err(ApiError::forbidden("list the patients of another facility"));
        }
        Some(own)
    } else {
        return Err(ApiError::forbidden("list patients"));
    };
    let rows = directory::list_patients(
        &ctx.state.db,
        &PatientFilter {
            home_facility_id,
            limit,
            offset,
        },
    )
    .await?;
    ctx.audit_patients(rows.iter().map(|p| p.id));
    ok(&rows)
}

/// GET /api/v1/patients/{id}
pub async fn get_patient(ctx: Ctx) -> ApiResult {
    let id: PatientId = ctx.param("id")?;
    ok(&super::access::patient_access(&ctx, id).await?)
}
