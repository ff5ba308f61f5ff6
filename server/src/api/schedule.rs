//! Schedule read endpoints: free-slot search, facility calendars, finding a patient's bookings at
//! a hospital, and utilisation.

use chrono::{Duration, NaiveDate};
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use super::ctx::Ctx;
use super::error::ApiError;
use super::reply::{ApiResult, ok};
use crate::auth::policy;
use crate::domain::ids::{ClinicianId, FacilityId};
use crate::domain::time::{self, Date};
use crate::scheduling::calendar::{self, CalendarFilter, PatientMatch, SlotQuery};
use crate::scheduling::{SchedulingError, directory};

/// Longest range a slot search may cover, in days.
pub const MAX_SEARCH_DAYS: i64 = 31;
pub const DEFAULT_SLOT_LIMIT: usize = 100;
pub const MAX_SLOT_LIMIT: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SlotParams {
    from: Option<Date>,
    to: Option<Date>,
    specialty: Option<String>,
    clinician_id: Option<ClinicianId>,
    facility_id: Option<FacilityId>,
    province: Option<String>,
    limit: Option<usize>,
}

fn date_range(
    from: Option<Date>,
    to: Option<Date>,
    default_days: i64,
    max_days: i64,
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let from = from.map_or_else(|| time::Zone::default().local_date(time::now()), Date::get);
    let to = to.map_or(from + Duration::days(default_days - 1), Date::get);
    check_range(from, to, max_days)
}

/// `(from, to)` when `to` is not before `from` and the two cover at most `max_days` dates.
fn check_range(
    from: NaiveDate,
    to: NaiveDate,
    max_days: i64,
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    if to < from {
        return Err(ApiError::invalid_field("to", "must be on or after from"));
    }
    if (to - from).num_days() >= max_days {
        return Err(ApiError::invalid_field(
            "to",
            format!("the range may cover at most {max_days} days"),
        ));
    }
    Ok((from, to))
}

/// GET /api/v1/slots
pub async fn search_slots(ctx: Ctx) -> ApiResult {
    let p: SlotParams = ctx.query()?;
    let (from, to) = date_range(p.from, p.to, 7, MAX_SEARCH_DAYS)?;
    let limit = p.limit.unwrap_or(DEFAULT_SLOT_LIMIT);
    if !(1..=MAX_SLOT_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_SLOT_LIMIT}"),
        ));
    }
    let result = calendar::search_slots(
        &ctx.state.db,
        &SlotQuery {
            specialty: p.specialty,
            clinician_id: p.clinician_id,
            facility_id: p.facility_id,
            province: p.province,
            from,
            to,
            limit,
        },
    )
    .await?;
    ok(&result)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarParams {
    date: Option<Date>,
    /// `day` (default) or `week` (seven days from `date`).
    view: Option<String>,
    /// Only the clinicians with this specialty code.
    specialty: Option<String>,
    /// Only this clinician, who must work at the facility.
    clinician_id: Option<ClinicianId>,
}

/// GET /api/v1/facilities/{id}/calendar
pub async fn calendar(ctx: Ctx) -> ApiResult {
    let id: FacilityId = ctx.param("id")?;
    let p: CalendarParams = ctx.query()?;
    let days = match p.view.as_deref() {
        None | Some("day") => 1,
        Some("week") => 7,
        Some(_) => return Err(ApiError::invalid_field("view", "must be day or week")),
    };
    let (from, to) = date_range(p.date, None, days, days)?;
    directory::get_facility(&ctx.state.db, id).await?;
    policy::require_scheduler_for(ctx.user()?, id)?;
    if let Some(clinician) = p.clinician_id {
        // A clinician of another hospital (or none) is a mistake in the request, not an empty
        // calendar that hides it.
        let theirs = match directory::facility_of_clinician(&ctx.state.db, clinician).await {
            Ok(f) => Some(f),
            Err(SchedulingError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if theirs != Some(id) {
            return Err(ApiError::invalid_field(
                "clinician_id",
                format!("clinician {clinician} is not a clinician of this facility"),
            ));
        }
    }
    let filter = CalendarFilter {
        specialty: p.specialty,
        clinician_id: p.clinician_id,
    };
    let calendar = calendar::facility_calendar(&ctx.state.db, id, from, to, &filter).await?;
    ctx.audit_patients(calendar.patients());
    ok(&calendar)
}

/// Most bookings one patient search answers with.
const MAX_FOUND_BOOKINGS: usize = 50;
/// Longest range of dates a patient search covers.
const MAX_FIND_DAYS: i64 = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindParams {
    q: Option<String>,
    from: Option<Date>,
    to: Option<Date>,
}

/// GET /api/v1/facilities/{id}/bookings
pub async fn find_bookings(ctx: Ctx) -> ApiResult {
    let id: FacilityId = ctx.param("id")?;
    let p: FindParams = ctx.query()?;
    // Counted as typed, composed: "Ệ" is one character however the keyboard sent it.
    let q: String = p.q.as_deref().unwrap_or("").trim().nfc().collect();
    let length = q.chars().count();
    if !(2..=100).contains(&length) {
        return Err(ApiError::invalid_field(
            "q",
            "give 2 to 100 characters of the patient's name, phone number or national ID number",
        ));
    }
    if q.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "q",
            "must not contain control characters",
        ));
    }
    let facility = directory::get_facility(&ctx.state.db, id).await?;
    policy::require_scheduler_for(ctx.user()?, id)?;
    let today = facility.zone().local_date(time::now());
    let from = p.from.map_or(today - Duration::days(30), Date::get);
    let to = p.to.map_or(today + Duration::days(92), Date::get);
    let range = check_range(from, to, MAX_FIND_DAYS)?;
    let found = calendar::find_bookings(
        &ctx.state.db,
        &facility,
        &PatientMatch::new(&q),
        range,
        MAX_FOUND_BOOKINGS,
    )
    .await?;
    ctx.audit_patients(found.patients());
    ok(&found)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UtilisationParams {
    from: Option<Date>,
    to: Option<Date>,
}

/// GET /api/v1/facilities/{id}/utilisation
pub async fn utilisation(ctx: Ctx) -> ApiResult {
    let id: FacilityId = ctx.param("id")?;
    let p: UtilisationParams = ctx.query()?;
    let (from, to) = date_range(p.from, p.to, 7, 92)?;
    directory::get_facility(&ctx.state.db, id).await?;
    policy::require_scheduler_for(ctx.user()?, id)?;
    ok(&calendar::utilisation(&ctx.state.db, id, from, to).await?)
}
