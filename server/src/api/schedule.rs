//! Schedule read endpoints: free-slot search, facility calendars and utilisation.

use chrono::{Duration, NaiveDate};
use serde::Deserialize;

use super::ctx::Ctx;
use super::error::ApiError;
use super::reply::{ApiResult, ok};
use crate::auth::policy;
use crate::domain::ids::{ClinicianId, FacilityId};
use crate::domain::time::{self, Date};
use crate::scheduling::calendar::{self, SlotQuery};

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
    crate::scheduling::directory::get_facility(&ctx.state.db, id).await?;
    policy::require_scheduler_for(ctx.user()?, id)?;
    let calendar = calendar::facility_calendar(&ctx.state.db, id, from, to).await?;
    ctx.audit_patients(calendar.patients());
    ok(&calendar)
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
    crate::scheduling::directory::get_facility(&ctx.state.db, id).await?;
    policy::require_scheduler_for(ctx.user()?, id)?;
    ok(&calendar::utilisation(&ctx.state.db, id, from, to).await?)
}
