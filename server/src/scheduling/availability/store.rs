//! The SQL of weekly rules and dated exceptions.
//!
//! Every function runs on the caller's [`Conn`] and begins no transaction; the limits on how
//! many a clinician may have, and turning rows into domain values, are the service's
//! ([`super`]).

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Serialize;

use crate::domain::availability::{Exception, ExceptionKind, IsoWeekday, WeeklyRule};
use crate::domain::consultation::Status;
use crate::domain::ids::{ClinicianId, ConsultationId, ExceptionId, PatientId, RuleId};
use crate::on_conn;
use crate::storage::Conn;

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
    pub kind: ExceptionKind,
    pub start_time: Option<NaiveTime>,
    pub end_time: Option<NaiveTime>,
    pub slot_minutes: Option<i32>,
    pub buffer_minutes: Option<i32>,
    pub note: String,
    pub created_at: DateTime<Utc>,
}

/// One row of the rules-and-exceptions union that [`day_rows`] and [`rows_between`] read: a
/// weekly rule (`source = 'rule'`) or a dated exception. `kind` is the exception's stored text;
/// the service parses it into an [`ExceptionKind`].
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

pub async fn count_rules(conn: Conn<'_>, clinician: ClinicianId) -> Result<i64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM availability_rules WHERE clinician_id = $1",
    )
    .bind(clinician)
    .fetch_one(&mut *c)
    .await)
}

pub async fn insert_rule(
    conn: Conn<'_>,
    clinician: ClinicianId,
    rule: &WeeklyRule,
    now: DateTime<Utc>,
) -> Result<RuleRow, sqlx::Error> {
    let s = rule.session;
    on_conn!(conn, c => sqlx::query_as::<_, RuleRow>(
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
    .bind(now)
    .fetch_one(&mut *c)
    .await)
}

/// Rows per multi-row INSERT of rules (9 parameters each): well under SQLite's bound-parameter
/// limit.
const INSERT_BATCH: usize = 400;

/// Inserts each `(clinician, rule)`, a few hundred rows per statement (a template for a hundred
/// clinicians is thousands of rules); the rows as inserted, in no promised order.
pub async fn insert_rules(
    mut conn: Conn<'_>,
    rules: &[(ClinicianId, &WeeklyRule)],
    now: DateTime<Utc>,
) -> Result<Vec<RuleRow>, sqlx::Error> {
    let mut out = Vec::with_capacity(rules.len());
    for chunk in rules.chunks(INSERT_BATCH) {
        let rows = on_conn!(conn.reborrow(), c => {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO availability_rules
                   (clinician_id, weekday, start_time, end_time, slot_minutes, buffer_minutes, valid_from, valid_until, created_at) ",
            );
            q.push_values(chunk, |mut v, (clinician, rule)| {
                let s = rule.session;
                v.push_bind(*clinician)
                    .push_bind(i32::from(rule.weekday.get()))
                    .push_bind(s.start())
                    .push_bind(s.end())
                    .push_bind(s.slot_minutes() as i32)
                    .push_bind(s.buffer_minutes() as i32)
                    .push_bind(rule.valid_from)
                    .push_bind(rule.valid_until)
                    .push_bind(now);
            });
            q.push(
                " RETURNING id, clinician_id, weekday, start_time, end_time, slot_minutes, buffer_minutes,
                           valid_from, valid_until, created_at",
            );
            q.build_query_as::<RuleRow>().fetch_all(&mut *c).await
        })?;
        out.extend(rows);
    }
    Ok(out)
}

/// Every rule of `clinicians`, in one round trip.
pub async fn rules_of(
    conn: Conn<'_>,
    clinicians: &[ClinicianId],
) -> Result<Vec<RuleRow>, sqlx::Error> {
    // `IN ()` is not SQL.
    if clinicians.is_empty() {
        return Ok(Vec::new());
    }
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT id, clinician_id, weekday, start_time, end_time, slot_minutes, buffer_minutes,
                    valid_from, valid_until, created_at
             FROM availability_rules WHERE clinician_id IN (",
        );
        let mut ids = q.separated(", ");
        for id in clinicians {
            ids.push_bind(*id);
        }
        q.push(") ORDER BY clinician_id, weekday, start_time");
        q.build_query_as::<RuleRow>().fetch_all(&mut *c).await
    })
}

pub async fn rules(conn: Conn<'_>, clinician: ClinicianId) -> Result<Vec<RuleRow>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, RuleRow>(
        "SELECT id, clinician_id, weekday, start_time, end_time, slot_minutes, buffer_minutes,
                valid_from, valid_until, created_at
         FROM availability_rules WHERE clinician_id = $1 ORDER BY weekday, start_time",
    )
    .bind(clinician)
    .fetch_all(&mut *c)
    .await)
}

/// Deletes rule `rule` of `clinician`; how many rows went (0 or 1).
pub async fn delete_rule(
    conn: Conn<'_>,
    clinician: ClinicianId,
    rule: RuleId,
) -> Result<u64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "DELETE FROM availability_rules WHERE id = $1 AND clinician_id = $2",
    )
    .bind(rule)
    .bind(clinician)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
}

pub async fn count_exceptions(conn: Conn<'_>, clinician: ClinicianId) -> Result<i64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM availability_exceptions WHERE clinician_id = $1",
    )
    .bind(clinician)
    .fetch_one(&mut *c)
    .await)
}

pub async fn insert_exception(
    conn: Conn<'_>,
    clinician: ClinicianId,
    exception: &Exception,
    note: &str,
    now: DateTime<Utc>,
) -> Result<ExceptionRow, sqlx::Error> {
    // A leave stores its window, if any; an extra session its times, slot and buffer.
    let (start, end, slot, buffer) = match exception {
        Exception::Leave { window, .. } => (window.map(|w| w.0), window.map(|w| w.1), None, None),
        Exception::Extra { session, .. } => (
            Some(session.start()),
            Some(session.end()),
            Some(session.slot_minutes() as i32),
            Some(session.buffer_minutes() as i32),
        ),
    };
    on_conn!(conn, c => sqlx::query_as::<_, ExceptionRow>(
        "INSERT INTO availability_exceptions
           (clinician_id, on_date, kind, start_time, end_time, slot_minutes, buffer_minutes, note, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         RETURNING id, clinician_id, on_date, kind, start_time, end_time, slot_minutes, buffer_minutes,
                   note, created_at",
    )
    .bind(clinician)
    .bind(exception.date())
    .bind(exception.kind())
    .bind(start)
    .bind(end)
    .bind(slot)
    .bind(buffer)
    .bind(note)
    .bind(now)
    .fetch_one(&mut *c)
    .await)
}

/// The exceptions of `clinician` dated `[from, to]`.
pub async fn exceptions(
    conn: Conn<'_>,
    clinician: ClinicianId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<ExceptionRow>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, ExceptionRow>(
        "SELECT id, clinician_id, on_date, kind, start_time, end_time, slot_minutes, buffer_minutes,
                note, created_at
         FROM availability_exceptions
         WHERE clinician_id = $1 AND on_date >= $2 AND on_date <= $3
         ORDER BY on_date, start_time",
    )
    .bind(clinician)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *c)
    .await)
}

/// The date of exception `id` of `clinician`, if there is one.
pub async fn exception_date(
    conn: Conn<'_>,
    clinician: ClinicianId,
    id: ExceptionId,
) -> Result<Option<NaiveDate>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar::<_, NaiveDate>(
        "SELECT on_date FROM availability_exceptions WHERE id = $1 AND clinician_id = $2",
    )
    .bind(id)
    .bind(clinician)
    .fetch_optional(&mut *c)
    .await)
}

/// Deletes exception `id` of `clinician`; how many rows went (0 or 1).
pub async fn delete_exception(
    conn: Conn<'_>,
    clinician: ClinicianId,
    id: ExceptionId,
) -> Result<u64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "DELETE FROM availability_exceptions WHERE id = $1 AND clinician_id = $2",
    )
    .bind(id)
    .bind(clinician)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
}

/// All rules of `clinicians` and their exceptions dated `[from, to]`, in one round trip: on
/// these machines a round trip costs more than the lookups themselves.
pub(crate) async fn rows_between(
    conn: Conn<'_>,
    clinicians: &[ClinicianId],
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DayRow>, sqlx::Error> {
    // `IN ()` is not SQL.
    if clinicians.is_empty() {
        return Ok(Vec::new());
    }
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT 'rule' AS source, clinician_id, weekday, valid_from, valid_until,
                    CAST(NULL AS DATE) AS on_date, CAST(NULL AS TEXT) AS kind, start_time, end_time,
                    slot_minutes, buffer_minutes
             FROM availability_rules WHERE clinician_id IN (",
        );
        let mut ids = q.separated(", ");
        for id in clinicians {
            ids.push_bind(*id);
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
        for id in clinicians {
            ids.push_bind(*id);
        }
        q.push(")");
        q.build_query_as::<DayRow>().fetch_all(&mut *c).await
    })
}

/// The rules of `clinician` for the weekday of `date` and the exceptions dated `date`, in one
/// round trip: booking checks a slot against them on every request.
pub(crate) async fn day_rows(
    conn: Conn<'_>,
    clinician: ClinicianId,
    date: NaiveDate,
) -> Result<Vec<DayRow>, sqlx::Error> {
    let weekday = i32::from(IsoWeekday::of(date).get());
    on_conn!(conn, c => sqlx::query_as::<_, DayRow>(
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
    .fetch_all(&mut *c)
    .await)
}

/// A consultation still ahead, as the availability checks see it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct LiveConsultation {
    pub id: ConsultationId,
    pub patient_id: PatientId,
    pub status: Status,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
}

/// The held (not lapsed) and booked consultations of `clinician` starting in `[from, to)`, at
/// most `limit`, by start.
pub async fn live_consultations(
    conn: Conn<'_>,
    clinician: ClinicianId,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<LiveConsultation>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, LiveConsultation>(
        "SELECT id, patient_id, status, start_at, end_at FROM consultations
         WHERE clinician_id = $1 AND start_at >= $2 AND start_at < $3
           AND (status = $4 OR (status = $5 AND hold_expires_at > $6))
         ORDER BY start_at LIMIT $7",
    )
    .bind(clinician)
    .bind(from)
    .bind(to)
    .bind(Status::Booked)
    .bind(Status::Held)
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *c)
    .await)
}

/// Replaces rule `rule` of `clinician` with `new`; `None` when there is no such rule.
pub async fn update_rule(
    conn: Conn<'_>,
    clinician: ClinicianId,
    rule: RuleId,
    new: &WeeklyRule,
) -> Result<Option<RuleRow>, sqlx::Error> {
    let s = new.session;
    on_conn!(conn, c => sqlx::query_as::<_, RuleRow>(
        "UPDATE availability_rules SET weekday = $3, start_time = $4, end_time = $5,
                slot_minutes = $6, buffer_minutes = $7, valid_from = $8, valid_until = $9
         WHERE id = $1 AND clinician_id = $2
         RETURNING id, clinician_id, weekday, start_time, end_time, slot_minutes, buffer_minutes,
                   valid_from, valid_until, created_at",
    )
    .bind(rule)
    .bind(clinician)
    .bind(i32::from(new.weekday.get()))
    .bind(s.start())
    .bind(s.end())
    .bind(s.slot_minutes() as i32)
    .bind(s.buffer_minutes() as i32)
    .bind(new.valid_from)
    .bind(new.valid_until)
    .fetch_optional(&mut *c)
    .await)
}
