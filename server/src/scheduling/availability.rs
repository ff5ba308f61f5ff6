//! Storage of weekly rules and dated exceptions, and loading them as domain values.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Serialize;

use super::{Result, SchedulingError};
use crate::domain::availability::{Exception, IsoWeekday, Session, WeeklyRule};
use crate::domain::code::ErrorCode;
use crate::domain::ids::{ClinicianId, ExceptionId, RuleId};
use crate::domain::time;
use crate::on_db;
use crate::storage::Db;

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct RuleRow {
    pub id: RuleId,
    pub clinician_id: ClinicianId,
    pub weekday: i32,
    pub start_time: NaiveTime,
    pub end_time: NaiveTime,
    pub slot_minutes: i32,
    pub buffer_minutes: i32,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct ExceptionRow {
    pub id: ExceptionId,
    pub clinician_id: ClinicianId,
    pub on_date: NaiveDate,
    pub kind: String,
    pub start_time: Option<NaiveTime>,
    pub end_time: Option<NaiveTime>,
    pub slot_minutes: Option<i32>,
    pub buffer_minutes: Option<i32>,
    pub note: String,
    pub created_at: DateTime<Utc>,
}

impl ExceptionRow {
    fn to_exception(&self) -> Option<Exception> {
        match self.kind.as_str() {
            "leave" => Some(Exception::Leave {
                date: self.on_date,
                window: self.start_time.zip(self.end_time),
            }),
            "extra" => Some(Exception::Extra {
                date: self.on_date,
                session: Session::new(
                    self.start_time?,
                    self.end_time?,
                    u32::try_from(self.slot_minutes?).ok()?,
                    u32::try_from(self.buffer_minutes.unwrap_or(0)).ok()?,
                )
                .ok()?,
            }),
            _ => None,
        }
    }
}

/// Upper bound on rules per clinician: enough for any real week, small enough to stay cheap.
pub const MAX_RULES_PER_CLINICIAN: i64 = 50;

pub async fn create_rule(db: &Db, clinician: ClinicianId, rule: &WeeklyRule) -> Result<RuleRow> {
    let count = on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM availability_rules WHERE clinician_id = $1",
    )
    .bind(clinician)
    .fetch_one(pool)
    .await)?;
    if count >= MAX_RULES_PER_CLINICIAN {
        return Err(SchedulingError::conflict(
            ErrorCode::TooManyRules,
            format!(
                "a clinician may have at most {MAX_RULES_PER_CLINICIAN} weekly rules; delete one first"
            ),
        ));
    }
    let s = rule.session;
    Ok(on_db!(db, pool => sqlx::query_as::<_, RuleRow>(
        "INSERT INTO availability_rules
           (clinician_id, weekday, start_time, end_time, slot_minutes, buffer_minutes, valid_from, valid_until, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         RETURNING id, clinician_id, weekday, start_time, end_time, slot_minutes, buffer_minutes,
                   valid_from, valid_until, created_at",
    )
    .bind(clinician)
    .bind(i32::from(rule.weekday.get()))
    .bind(s.start())
    .bind(s.end())
    .bind(s.slot_minutes() as i32)
    .bind(s.buffer_minutes() as i32)
    .bind(rule.valid_from)
    .bind(rule.valid_until)
    .bind(time::now())
    .fetch_one(pool)
    .await)?)
}

pub async fn list_rules(db: &Db, clinician: ClinicianId) -> Result<Vec<RuleRow>> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, RuleRow>(
        "SELECT id, clinician_id, weekday, start_time, end_time, slot_minutes, buffer_minutes,
                valid_from, valid_until, created_at
         FROM availability_rules WHERE clinician_id = $1 ORDER BY weekday, start_time",
    )
    .bind(clinician)
    .fetch_all(pool)
    .await)?)
}

pub async fn delete_rule(db: &Db, clinician: ClinicianId, rule: RuleId) -> Result<()> {
    let done = on_db!(db, pool => sqlx::query(
        "DELETE FROM availability_rules WHERE id = $1 AND clinician_id = $2",
    )
    .bind(rule)
    .bind(clinician)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    if done == 0 {
        return Err(SchedulingError::NotFound("availability rule"));
    }
    Ok(())
}

/// Upper bound on dated exceptions per clinician, a few years of leave and extra sessions.
pub const MAX_EXCEPTIONS_PER_CLINICIAN: i64 = 2000;

pub async fn create_exception(
    db: &Db,
    clinician: ClinicianId,
    exception: &Exception,
    note: &str,
) -> Result<ExceptionRow> {
    let count = on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM availability_exceptions WHERE clinician_id = $1",
    )
    .bind(clinician)
    .fetch_one(pool)
    .await)?;
    if count >= MAX_EXCEPTIONS_PER_CLINICIAN {
        return Err(SchedulingError::conflict(
            ErrorCode::TooManyExceptions,
            format!(
                "a clinician may have at most {MAX_EXCEPTIONS_PER_CLINICIAN} dated exceptions; delete old ones first"
            ),
        ));
    }
    let (kind, start, end, slot, buffer) = match exception {
        Exception::Leave { window, .. } => (
            "leave",
            window.map(|w| w.0),
            window.map(|w| w.1),
            None,
            None,
        ),
        Exception::Extra { session, .. } => (
            "extra",
            Some(session.start()),
            Some(session.end()),
            Some(session.slot_minutes() as i32),
            Some(session.buffer_minutes() as i32),
        ),
    };
    Ok(on_db!(db, pool => sqlx::query_as::<_, ExceptionRow>(
        "INSERT INTO availability_exceptions
           (clinician_id, on_date, kind, start_time, end_time, slot_minutes, buffer_minutes, note, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         RETURNING id, clinician_id, on_date, kind, start_time, end_time, slot_minutes, buffer_minutes,
                   note, created_at",
    )
    .bind(clinician)
    .bind(exception.date())
    .bind(kind)
    .bind(start)
    .bind(end)
    .bind(slot)
    .bind(buffer)
    .bind(note)
    .bind(time::now())
    .fetch_one(pool)
    .await)?)
}

pub async fn list_exceptions(
    db: &Db,
    clinician: ClinicianId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<ExceptionRow>> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, ExceptionRow>(
        "SELECT id, clinician_id, on_date, kind, start_time, end_time, slot_minutes, buffer_minutes,
                note, created_at
         FROM availability_exceptions
         WHERE clinician_id = $1 AND on_date >= $2 AND on_date <= $3
         ORDER BY on_date, start_time",
    )
    .bind(clinician)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await)?)
}

pub async fn delete_exception(db: &Db, clinician: ClinicianId, id: ExceptionId) -> Result<()> {
    let done = on_db!(db, pool => sqlx::query(
        "DELETE FROM availability_exceptions WHERE id = $1 AND clinician_id = $2",
    )
    .bind(id)
    .bind(clinician)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    if done == 0 {
        return Err(SchedulingError::NotFound("availability exception"));
    }
    Ok(())
}

/// The rules and exceptions of several clinicians over local dates `[from, to]`.
#[derive(Default)]
pub struct Availability {
    pub rules: HashMap<ClinicianId, Vec<WeeklyRule>>,
    pub exceptions: HashMap<ClinicianId, Vec<Exception>>,
}

impl Availability {
    pub fn rules_of(&self, c: ClinicianId) -> &[WeeklyRule] {
        self.rules.get(&c).map(Vec::as_slice).unwrap_or(&[])
    }
    pub fn exceptions_of(&self, c: ClinicianId) -> &[Exception] {
        self.exceptions.get(&c).map(Vec::as_slice).unwrap_or(&[])
    }
}

pub async fn load(
    db: &Db,
    clinicians: &[ClinicianId],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Availability> {
    let mut out = Availability::default();
    if clinicians.is_empty() {
        return Ok(out);
    }
    // Rules and exceptions in one round trip: on these machines a round trip costs more than
    // the lookups themselves.
    let rows: Vec<DayRow> = on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT 'rule' AS source, clinician_id, weekday, valid_from, valid_until,
                    CAST(NULL AS DATE) AS on_date, CAST(NULL AS TEXT) AS kind, start_time, end_time,
                    slot_minutes, buffer_minutes
             FROM availability_rules WHERE clinician_id IN (",
        );
        let mut ids = q.separated(", ");
        for c in clinicians {
            ids.push_bind(*c);
        }
        q.push(
            ") UNION ALL
             SELECT 'exception', clinician_id, CAST(NULL AS INTEGER), CAST(NULL AS DATE),
                    CAST(NULL AS DATE), on_date, kind, start_time, end_time, slot_minutes, buffer_minutes
             FROM availability_exceptions WHERE on_date >= ",
        );
        q.push_bind(from).push(" AND on_date <= ").push_bind(to);
        q.push(" AND clinician_id IN (");
        let mut ids = q.separated(", ");
        for c in clinicians {
            ids.push_bind(*c);
        }
        q.push(")");
        q.build_query_as::<DayRow>().fetch_all(pool).await
    })?;
    for r in rows {
        let clinician = r.clinician_id;
        match r.into_domain() {
            Some(Either::Rule(rule)) => out.rules.entry(clinician).or_default().push(rule),
            Some(Either::Exception(ex)) => out.exceptions.entry(clinician).or_default().push(ex),
            None => {}
        }
    }
    Ok(out)
}

/// One row of [`load_day`]: a weekly rule (`source = 'rule'`) or a dated exception.
#[derive(sqlx::FromRow)]
pub(crate) struct DayRow {
    pub source: String,
    pub clinician_id: ClinicianId,
    pub weekday: Option<i32>,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    pub on_date: Option<NaiveDate>,
    pub kind: Option<String>,
    pub start_time: Option<NaiveTime>,
    pub end_time: Option<NaiveTime>,
    pub slot_minutes: Option<i32>,
    pub buffer_minutes: Option<i32>,
}

pub(crate) enum Either {
    Rule(WeeklyRule),
    Exception(Exception),
}

impl DayRow {
    /// The domain value; rows were validated on the way in, so a bad row is skipped, not fatal.
    pub(crate) fn into_domain(self) -> Option<Either> {
        if self.source == "rule" {
            return Some(Either::Rule(WeeklyRule {
                weekday: IsoWeekday::new(i64::from(self.weekday?))?,
                session: Session::new(
                    self.start_time?,
                    self.end_time?,
                    u32::try_from(self.slot_minutes?).ok()?,
                    u32::try_from(self.buffer_minutes?).ok()?,
                )
                .ok()?,
                valid_from: self.valid_from,
                valid_until: self.valid_until,
            }));
        }
        let row = ExceptionRow {
            id: ExceptionId(0),
            clinician_id: self.clinician_id,
            on_date: self.on_date?,
            kind: self.kind?,
            start_time: self.start_time,
            end_time: self.end_time,
            slot_minutes: self.slot_minutes,
            buffer_minutes: self.buffer_minutes,
            note: String::new(),
            created_at: DateTime::<Utc>::MIN_UTC,
        };
        row.to_exception().map(Either::Exception)
    }
}

/// The rules and exceptions of one clinician that bear on one local date, in a single round
/// trip: booking checks a slot against them on every request.
pub async fn load_day(
    db: &Db,
    clinician: ClinicianId,
    date: NaiveDate,
) -> Result<(Vec<WeeklyRule>, Vec<Exception>)> {
    let weekday = i32::from(IsoWeekday::of(date).get());
    let rows: Vec<DayRow> = on_db!(db, pool => sqlx::query_as::<_, DayRow>(
        "SELECT 'rule' AS source, clinician_id, weekday, valid_from, valid_until,
                CAST(NULL AS DATE) AS on_date, CAST(NULL AS TEXT) AS kind, start_time, end_time,
                slot_minutes, buffer_minutes
         FROM availability_rules WHERE clinician_id = $1 AND weekday = $2
         UNION ALL
         SELECT 'exception', clinician_id, CAST(NULL AS INTEGER), CAST(NULL AS DATE), CAST(NULL AS DATE),
                on_date, kind, start_time, end_time, slot_minutes, buffer_minutes
         FROM availability_exceptions WHERE clinician_id = $1 AND on_date = $3",
    )
    .bind(clinician)
    .bind(weekday)
    .bind(date)
    .fetch_all(pool)
    .await)?;
    let mut rules = Vec::new();
    let mut exceptions = Vec::new();
    for r in rows {
        match r.into_domain() {
            Some(Either::Rule(rule)) => rules.push(rule),
            Some(Either::Exception(ex)) => exceptions.push(ex),
            None => {}
        }
    }
    Ok((rules, exceptions))
}
