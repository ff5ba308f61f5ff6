//! Availability endpoints: a clinician's weekly rules and dated exceptions, and a weekly template
//! for many clinicians of a facility at once.

use chrono::{Duration, NaiveTime};
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;

use super::ctx::Ctx;
use super::error::ApiError;
use super::reply::{ApiResult, created, no_content, ok};
use super::validate::Validator;
use crate::auth::policy;
use crate::domain::availability::{Exception, ExceptionKind, IsoWeekday, Session, WeeklyRule};
use crate::domain::ids::{ClinicianId, ExceptionId, FacilityId, RuleId};
use crate::domain::text::BoundedText;
use crate::domain::time::{self, Date};
use crate::scheduling::{availability, directory};

/// Longest note on an exception, in characters.
const MAX_NOTE: usize = 500;

/// Refuses unless the caller schedules for `clinician`'s hospital (404 for an unknown clinician).
async fn schedules(ctx: &Ctx, clinician: ClinicianId) -> Result<(), ApiError> {
    let facility = directory::facility_of_clinician(&ctx.state.db, clinician).await?;
    Ok(policy::require_scheduler_for(ctx.user()?, facility)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    /// ISO weekday: 1 = Monday … 7 = Sunday.
    weekday: i64,
    start_time: NaiveTime,
    end_time: NaiveTime,
    slot_minutes: u32,
    #[serde(default)]
    buffer_minutes: u32,
    #[serde(default)]
    valid_from: Option<Date>,
    #[serde(default)]
    valid_until: Option<Date>,
}

/// POST /api/v1/clinicians/{id}/availability/rules
pub async fn create_rule(ctx: Ctx) -> ApiResult {
    let clinician: ClinicianId = ctx.param("id")?;
    let rule = parse_rule(ctx.json()?)?;
    schedules(&ctx, clinician).await?;
    let journal = ctx.journal(StatusCode::CREATED);
    created(&availability::create_rule(&ctx.state.db, clinician, &rule, &journal).await?)
}

/// PUT /api/v1/clinicians/{id}/availability/rules/{rule_id}
pub async fn update_rule(ctx: Ctx) -> ApiResult {
    let clinician: ClinicianId = ctx.param("id")?;
    let id: RuleId = ctx.param("rule_id")?;
    let rule = parse_rule(ctx.json()?)?;
    schedules(&ctx, clinician).await?;
    let journal = ctx.journal(StatusCode::OK);
    ok(&availability::update_rule(&ctx.state.db, clinician, id, &rule, &journal).await?)
}

/// A weekly rule from its body, every field checked (all problems reported at once).
fn parse_rule(body: RuleBody) -> Result<WeeklyRule, ApiError> {
    let mut v = Validator::default();
    let rule = check_rule(&mut v, "", body);
    v.finish()?;
    rule.ok_or_else(ApiError::internal)
}

/// The weekly rule of `body`, or `None` with every problem noted in `v`, each field named after
/// `prefix` (`rules[2].` in a template, so `rules[2].start_time`).
fn check_rule(v: &mut Validator, prefix: &str, body: RuleBody) -> Option<WeeklyRule> {
    let weekday = IsoWeekday::new(body.weekday);
    if weekday.is_none() {
        v.fail(
            &format!("{prefix}weekday"),
            "must be 1 (Monday) to 7 (Sunday)",
        );
    }
    let session = v.check(
        &format!("{prefix}start_time"),
        Session::new(
            body.start_time,
            body.end_time,
            body.slot_minutes,
            body.buffer_minutes,
        ),
    );
    if let (Some(from), Some(until)) = (body.valid_from, body.valid_until)
        && until < from
    {
        v.fail(&format!("{prefix}valid_until"), "is before valid_from");
        return None;
    }
    Some(WeeklyRule {
        weekday: weekday?,
        session: session?,
        valid_from: body.valid_from.map(Date::get),
        valid_until: body.valid_until.map(Date::get),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    clinician_ids: Vec<ClinicianId>,
    rules: Vec<RuleBody>,
}

/// Most clinicians one template goes to: a large hub's whole specialist staff.
const MAX_TEMPLATE_CLINICIANS: usize = 100;
/// Most rules in one template: no clinician may have more.
const MAX_TEMPLATE_RULES: usize = availability::MAX_RULES_PER_CLINICIAN as usize;

/// The clinicians and rules of a template, every field checked (all problems reported at once);
/// rules of the template that overlap one another are refused here, before any storage.
fn parse_template(body: TemplateBody) -> Result<(Vec<ClinicianId>, Vec<WeeklyRule>), ApiError> {
    let mut v = Validator::default();
    let ids = body.clinician_ids;
    if !(1..=MAX_TEMPLATE_CLINICIANS).contains(&ids.len()) {
        v.fail(
            "clinician_ids",
            format!(
                "give 1 to {MAX_TEMPLATE_CLINICIANS} clinicians (got {})",
                ids.len()
            ),
        );
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = ids.iter().find(|id| !seen.insert(**id)) {
        v.fail(
            "clinician_ids",
            format!("clinician {twice} is listed twice; list each clinician once"),
        );
    }
    let count = body.rules.len();
    if !(1..=MAX_TEMPLATE_RULES).contains(&count) {
        v.fail(
            "rules",
            format!("give 1 to {MAX_TEMPLATE_RULES} weekly rules (got {count})"),
        );
    }
    let parsed: Vec<Option<WeeklyRule>> = body
        .rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| check_rule(&mut v, &format!("rules[{i}]."), r))
        .collect();
    let rules: Vec<WeeklyRule> = parsed.into_iter().flatten().collect();
    // Only when every rule parsed do the indices of `rules` match the body's.
    if rules.len() == count
        && let Some((i, j)) = first_overlapping_pair(&rules)
    {
        let (a, b) = (&rules[i], &rules[j]);
        v.fail(
            "rules",
            format!(
                "rules[{i}] ({}–{}) and rules[{j}] ({}–{}) overlap on weekday {} on the same \
                 dates; a clinician's sessions may not overlap",
                a.session.start().format("%H:%M"),
                a.session.end().format("%H:%M"),
                b.session.start().format("%H:%M"),
                b.session.end().format("%H:%M"),
                a.weekday.get(),
            ),
        );
    }
    v.finish()?;
    Ok((ids, rules))
}

/// The indices of the first two of `rules` that overlap, if any.
fn first_overlapping_pair(rules: &[WeeklyRule]) -> Option<(usize, usize)> {
    rules.iter().enumerate().find_map(|(i, a)| {
        rules[i + 1..]
            .iter()
            .position(|b| a.overlaps(b))
            .map(|k| (i, i + 1 + k))
    })
}

/// POST /api/v1/facilities/{id}/availability/rules
pub async fn apply_template(ctx: Ctx) -> ApiResult {
    let facility: FacilityId = ctx.param("id")?;
    let (clinicians, rules) = parse_template(ctx.json()?)?;
    directory::get_facility(&ctx.state.db, facility).await?;
    policy::require_scheduler_for(ctx.user()?, facility)?;
    // Each event is about one rule, not about the facility the path names.
    ctx.audit(|n| n.record_type = Some("availability_rule".to_string()));
    let journal = ctx.journal(StatusCode::CREATED);
    created(
        &availability::apply_template(&ctx.state.db, facility, &clinicians, &rules, &journal)
            .await?,
    )
}

/// GET /api/v1/clinicians/{id}/availability/rules
pub async fn list_rules(ctx: Ctx) -> ApiResult {
    let clinician: ClinicianId = ctx.param("id")?;
    let _: super::directory::NoQuery = ctx.query()?;
    directory::get_clinician(&ctx.state.db, clinician).await?;
    ok(&availability::list_rules(&ctx.state.db, clinician).await?)
}

/// DELETE /api/v1/clinicians/{id}/availability/rules/{rule_id}
pub async fn delete_rule(ctx: Ctx) -> ApiResult {
    let clinician: ClinicianId = ctx.param("id")?;
    let rule: RuleId = ctx.param("rule_id")?;
    schedules(&ctx, clinician).await?;
    let journal = ctx.journal(StatusCode::NO_CONTENT);
    availability::delete_rule(&ctx.state.db, clinician, rule, &journal).await?;
    no_content()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionBody {
    date: Date,
    /// `leave` or `extra`.
    kind: String,
    #[serde(default)]
    start_time: Option<NaiveTime>,
    #[serde(default)]
    end_time: Option<NaiveTime>,
    #[serde(default)]
    slot_minutes: Option<u32>,
    #[serde(default)]
    buffer_minutes: Option<u32>,
    #[serde(default)]
    note: Option<String>,
}

/// POST /api/v1/clinicians/{id}/availability/exceptions
pub async fn create_exception(ctx: Ctx) -> ApiResult {
    let clinician: ClinicianId = ctx.param("id")?;
    let body: ExceptionBody = ctx.json()?;
    let mut v = Validator::default();
    // An empty note is no note; any other is bounded text like every other.
    let note = match body
        .note
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        None => String::new(),
        Some(n) => v
            .check("note", BoundedText::parse(n, MAX_NOTE, true))
            .map(BoundedText::into_string)
            .unwrap_or_default(),
    };
    let exception = match ExceptionKind::parse(&body.kind) {
        Some(ExceptionKind::Leave) => match (body.start_time, body.end_time) {
            (None, None) => Some(Exception::Leave {
                date: body.date.get(),
                window: None,
            }),
            (Some(s), Some(e)) if s < e => Some(Exception::Leave {
                date: body.date.get(),
                window: Some((s, e)),
            }),
            (Some(_), Some(_)) => {
                v.fail("end_time", "must be after start_time");
                None
            }
            _ => {
                v.fail(
                    "start_time",
                    "give both start_time and end_time for part of a day, or neither for the whole day",
                );
                None
            }
        },
        Some(ExceptionKind::Extra) => match (body.start_time, body.end_time, body.slot_minutes) {
            (Some(s), Some(e), Some(slot)) => v
                .check(
                    "start_time",
                    Session::new(s, e, slot, body.buffer_minutes.unwrap_or(0)),
                )
                .map(|session| Exception::Extra {
                    date: body.date.get(),
                    session,
                }),
            _ => {
                v.fail(
                    "start_time",
                    "an extra session needs start_time, end_time and slot_minutes",
                );
                None
            }
        },
        None => {
            v.fail("kind", "must be leave or extra");
            None
        }
    };
    v.finish()?;
    let Some(exception) = exception else {
        return Err(ApiError::internal());
    };
    schedules(&ctx, clinician).await?;
    let journal = ctx.journal(StatusCode::CREATED);
    created(
        &availability::create_exception(
            &ctx.state.db,
            clinician,
            &exception,
            &note,
            Some(&journal),
        )
        .await?,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionQuery {
    from: Option<Date>,
    to: Option<Date>,
}

/// GET /api/v1/clinicians/{id}/availability/exceptions
pub async fn list_exceptions(ctx: Ctx) -> ApiResult {
    let clinician: ClinicianId = ctx.param("id")?;
    let q: ExceptionQuery = ctx.query()?;
    let today = time::now().date_naive();
    let from = q.from.map_or(today - Duration::days(30), Date::get);
    let to = q.to.map_or(from + Duration::days(365), Date::get);
    if to < from || (to - from).num_days() > 731 {
        return Err(ApiError::invalid_field(
            "to",
            "must be on or after from, at most two years later",
        ));
    }
    let facility = directory::facility_of_clinician(&ctx.state.db, clinician).await?;
    let rows = availability::list_exceptions(&ctx.state.db, clinician, from, to).await?;
    if policy::can_see_staff_notes(ctx.user()?, facility) {
        ok(&rows)
    } else {
        ok(&rows
            .into_iter()
            .map(PublicException::from)
            .collect::<Vec<_>>())
    }
}

/// An exception as those outside the clinician's hospital see it: the dates and hours, which
/// shape the free slots anyone may search, without the note (a leave note often says why).
#[derive(Serialize)]
struct PublicException {
    id: ExceptionId,
    clinician_id: ClinicianId,
    on_date: chrono::NaiveDate,
    kind: ExceptionKind,
    start_time: Option<NaiveTime>,
    end_time: Option<NaiveTime>,
    slot_minutes: Option<i32>,
    buffer_minutes: Option<i32>,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl From<availability::ExceptionRow> for PublicException {
    fn from(r: availability::ExceptionRow) -> Self {
        PublicException {
            id: r.id,
            clinician_id: r.clinician_id,
            on_date: r.on_date,
            kind: r.kind,
            start_time: r.start_time,
            end_time: r.end_time,
            slot_minutes: r.slot_minutes,
            buffer_minutes: r.buffer_minutes,
            created_at: r.created_at,
        }
    }
}

/// DELETE /api/v1/clinicians/{id}/availability/exceptions/{exception_id}
pub async fn delete_exception(ctx: Ctx) -> ApiResult {
    let clinician: ClinicianId = ctx.param("id")?;
    let id: ExceptionId = ctx.param("exception_id")?;
    schedules(&ctx, clinician).await?;
    let journal = ctx.journal(StatusCode::NO_CONTENT);
    availability::delete_exception(&ctx.state.db, clinician, id, &journal).await?;
    no_content()
}
