//! Booking: holds, bookings, cancellation, rescheduling and the rest of a consultation's life.
//!
//! Double booking is prevented by the database, not by checking first: each live consultation
//! inserts one `slot_claims` row per five-minute cell of its time, and the primary key
//! `(clinician_id, cell)` lets only one of two overlapping consultations commit. The loser's insert
//! fails with a unique violation, which becomes a 409. Rescheduling releases the old claims and
//! inserts the new ones in one transaction, so at no moment are both or neither slot held.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde::Serialize;

use super::availability;
use super::directory::{self, Clinician};
use super::{Result, SchedulingError};
use crate::auth::Principal;
use crate::auth::policy::Visibility;
use crate::domain::availability::{Exception, Slot, WeeklyRule, slots_on};
use crate::domain::code::ErrorCode;
use crate::domain::consultation::{Consultation, FacilityKind, Kind, Status, Transition, Urgency};
use crate::domain::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};
use crate::domain::text::BoundedText;
use crate::domain::time::{self, Zone, on_grid};
use crate::on_db;
use crate::storage::{BeginWrite, Db, is_unique_violation};

/// How far ahead a booking may be made.
pub const MAX_DAYS_AHEAD: i64 = 366;

const CONSULTATION_COLUMNS: &str =
    "id, kind, status, clinician_id, patient_id, requesting_facility_id,
    referring_clinician_id, reason, urgency, start_at, end_at, hold_expires_at, cancel_reason,
    started_at, ended_at, created_at, updated_at, version";

/// A booking request, parsed and bounded by the API layer.
pub struct NewBooking {
    pub kind: Kind,
    pub clinician_id: ClinicianId,
    pub patient_id: PatientId,
    pub requesting_facility_id: Option<FacilityId>,
    pub referring_clinician_id: Option<ClinicianId>,
    pub reason: BoundedText,
    pub urgency: Urgency,
    pub start: DateTime<Utc>,
    /// Hold the slot for a short while instead of booking it outright.
    pub hold: bool,
}

/// What a booking must know about the clinician it books.
#[derive(Clone, Copy, Debug)]
pub struct Bookable {
    pub id: ClinicianId,
    pub zone: Zone,
    pub active: bool,
}

impl From<&Clinician> for Bookable {
    fn from(c: &Clinician) -> Self {
        Bookable {
            id: c.id,
            zone: c.zone(),
            active: c.active,
        }
    }
}

/// Checks that `start` is a future slot of `clinician` and returns it.
pub async fn resolve_slot(db: &Db, clinician: Bookable, start: DateTime<Utc>) -> Result<Slot> {
    check_time(start)?;
    let date = clinician.zone.local_date(start);
    let (rules, exceptions) = availability::load_day(db, clinician.id, date).await?;
    find_slot(clinician, start, &rules, &exceptions)
}

/// The checks on a start time that need nothing stored: grid, past, horizon. Done first, so that
/// no absurd instant reaches a query (PostgreSQL refuses dates chrono accepts).
fn check_time(start: DateTime<Utc>) -> Result<()> {
    if !on_grid(start) {
        return Err(SchedulingError::invalid(
            "start",
            "must be on a slot boundary (whole minutes on the 5-minute grid)",
        ));
    }
    let now = time::now();
    if start <= now {
        return Err(SchedulingError::invalid("start", "is in the past"));
    }
    if start > now + Duration::days(MAX_DAYS_AHEAD) {
        return Err(SchedulingError::invalid(
            "start",
            format!("is more than {MAX_DAYS_AHEAD} days ahead"),
        ));
    }
    Ok(())
}

/// Checks a start time, already through [`check_time`], against rules and exceptions read.
fn find_slot(
    clinician: Bookable,
    start: DateTime<Utc>,
    rules: &[WeeklyRule],
    exceptions: &[Exception],
) -> Result<Slot> {
    if !clinician.active {
        return Err(SchedulingError::invalid(
            "clinician_id",
            "this clinician is not taking bookings",
        ));
    }
    let date = clinician.zone.local_date(start);
    slots_on(date, clinician.zone, rules, exceptions)
        .into_iter()
        .find(|s| s.start == start)
        .ok_or_else(|| {
            SchedulingError::invalid(
                "start",
                "is not one of this clinician's slots; search /api/v1/slots for free ones",
            )
        })
}

/// Everything a booking checks before writing, read in one round trip: the facts about the
/// people and places named, repeated on each row of the clinician's weekly rules and of their
/// exceptions around the day (the local date is not known until the zone is, so the query reads
/// every weekday and the UTC date ± 1, which covers every zone).
#[derive(sqlx::FromRow)]
struct BookingContext {
    zone: Option<String>,
    active: Option<bool>,
    patients: i64,
    requesting_kind: Option<String>,
    referring_facility: Option<FacilityId>,
    source: Option<String>,
    weekday: Option<i32>,
    valid_from: Option<NaiveDate>,
    valid_until: Option<NaiveDate>,
    on_date: Option<NaiveDate>,
    kind: Option<String>,
    start_time: Option<NaiveTime>,
    end_time: Option<NaiveTime>,
    slot_minutes: Option<i32>,
    buffer_minutes: Option<i32>,
}

async fn booking_context(db: &Db, b: &NewBooking) -> Result<Vec<BookingContext>> {
    let day = b.start.date_naive();
    Ok(on_db!(db, pool => sqlx::query_as::<_, BookingContext>(
        "SELECT ctx.zone, ctx.active, ctx.patients, ctx.requesting_kind, ctx.referring_facility,
                d.source, d.weekday, d.valid_from, d.valid_until, d.on_date, d.kind, d.start_time,
                d.end_time, d.slot_minutes, d.buffer_minutes
         FROM (SELECT
                 (SELECT f.time_zone FROM clinicians c JOIN facilities f ON f.id = c.facility_id
                   WHERE c.id = $1) AS zone,
                 (SELECT c.active FROM clinicians c WHERE c.id = $1) AS active,
                 (SELECT COUNT(*) FROM patients p WHERE p.id = $2) AS patients,
                 (SELECT f.kind FROM facilities f WHERE f.id = $3) AS requesting_kind,
                 (SELECT c.facility_id FROM clinicians c WHERE c.id = $4) AS referring_facility) ctx
         LEFT JOIN (
           SELECT 'rule' AS source, weekday, valid_from, valid_until, CAST(NULL AS DATE) AS on_date,
                  CAST(NULL AS TEXT) AS kind, start_time, end_time, slot_minutes, buffer_minutes
           FROM availability_rules WHERE clinician_id = $1
           UNION ALL
           SELECT 'exception', CAST(NULL AS INTEGER), CAST(NULL AS DATE), CAST(NULL AS DATE), on_date,
                  kind, start_time, end_time, slot_minutes, buffer_minutes
           FROM availability_exceptions
           WHERE clinician_id = $1 AND on_date >= $5 AND on_date <= $6
         ) d ON 1 = 1",
    )
    .bind(b.clinician_id)
    .bind(b.patient_id)
    .bind(b.requesting_facility_id)
    .bind(b.referring_clinician_id)
    .bind(day - Duration::days(1))
    .bind(day + Duration::days(1))
    .fetch_all(pool)
    .await)?)
}

fn slot_taken() -> SchedulingError {
    SchedulingError::conflict(
        ErrorCode::SlotTaken,
        "this slot has just been taken by another booking; choose another slot",
    )
}

/// Books (or holds) a slot. Exactly one of any number of concurrent requests for overlapping
/// time wins; the others get `slot_taken`.
pub async fn book(
    db: &Db,
    actor: &Principal,
    b: NewBooking,
    hold_ttl: Duration,
) -> Result<Consultation> {
    check_time(b.start)?;
    let rows = booking_context(db, &b).await?;
    let Some(ctx) = rows.first() else {
        return Err(SchedulingError::NotFound("clinician"));
    };
    let zone = ctx
        .zone
        .as_deref()
        .ok_or(SchedulingError::NotFound("clinician"))?;
    let clinician = Bookable {
        id: b.clinician_id,
        zone: Zone::parse(zone).unwrap_or_default(),
        active: ctx.active.unwrap_or(false),
    };
    if ctx.patients == 0 {
        return Err(SchedulingError::NotFound("patient"));
    }
    if b.requesting_facility_id.is_some() && ctx.requesting_kind.is_none() {
        return Err(SchedulingError::NotFound("facility"));
    }
    if b.referring_clinician_id.is_some() && ctx.referring_facility.is_none() {
        return Err(SchedulingError::NotFound("clinician"));
    }
    if b.kind == Kind::Teleconsultation {
        let facility_id = b.requesting_facility_id.ok_or_else(|| {
            SchedulingError::invalid(
                "requesting_facility_id",
                "a teleconsultation needs the requesting care centre",
            )
        })?;
        if ctx.requesting_kind.as_deref() != Some(FacilityKind::CareCentre.as_str()) {
            return Err(SchedulingError::invalid(
                "requesting_facility_id",
                "the requesting facility of a teleconsultation must be a care centre",
            ));
        }
        let referring_id = b.referring_clinician_id.ok_or_else(|| {
            SchedulingError::invalid(
                "referring_clinician_id",
                "a teleconsultation needs the rural clinician who sits with the patient",
            )
        })?;
        if ctx.referring_facility != Some(facility_id) {
            return Err(SchedulingError::invalid(
                "referring_clinician_id",
                "the referring clinician must work at the requesting care centre",
            ));
        }
        if referring_id == clinician.id {
            return Err(SchedulingError::invalid(
                "referring_clinician_id",
                "the referring clinician cannot also be the consulted specialist",
            ));
        }
    }
    let mut rules = Vec::new();
    let mut exceptions = Vec::new();
    for r in rows {
        let Some(source) = r.source else { continue };
        let day_row = availability::DayRow {
            source,
            clinician_id: b.clinician_id,
            weekday: r.weekday,
            valid_from: r.valid_from,
            valid_until: r.valid_until,
            on_date: r.on_date,
            kind: r.kind,
            start_time: r.start_time,
            end_time: r.end_time,
            slot_minutes: r.slot_minutes,
            buffer_minutes: r.buffer_minutes,
        };
        match day_row.into_domain() {
            Some(availability::Either::Rule(rule)) => rules.push(rule),
            Some(availability::Either::Exception(ex)) => exceptions.push(ex),
            None => {}
        }
    }
    let slot = find_slot(clinician, b.start, &rules, &exceptions)?;

    // Try the insert; only if it loses to an expired hold, release that hold and try once more.
    match insert_booking(db, actor, &b, slot, hold_ttl).await {
        Err(SchedulingError::Conflict {
            code: ErrorCode::SlotTaken,
            ..
        }) => {
            if release_expired_holds(db, b.clinician_id, slot).await? > 0 {
                insert_booking(db, actor, &b, slot, hold_ttl).await
            } else {
                Err(slot_taken())
            }
        }
        other => other,
    }
}

async fn insert_booking(
    db: &Db,
    actor: &Principal,
    b: &NewBooking,
    slot: Slot,
    hold_ttl: Duration,
) -> Result<Consultation> {
    let now = time::now();
    let (status, expires) = if b.hold {
        (Status::Held, Some(now + hold_ttl))
    } else {
        (Status::Booked, None)
    };
    let cells = time::cells(slot.start, slot.end);
    let result = match db {
        // One statement, one round trip: the consultation, its claims and its first event are
        // written together or not at all (a claim's unique violation aborts the statement).
        // This is the hottest write of the platform, so PostgreSQL gets its own path.
        Db::Postgres(pool) => {
            sqlx::query_as::<_, Consultation>(
                "WITH c AS (
                   INSERT INTO consultations (kind, status, clinician_id, patient_id, requesting_facility_id,
                     referring_clinician_id, reason, urgency, start_at, end_at, hold_expires_at,
                     created_at, updated_at, version)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 1)
                   RETURNING id, kind, status, clinician_id, patient_id, requesting_facility_id,
                     referring_clinician_id, reason, urgency, start_at, end_at, hold_expires_at, cancel_reason,
                     started_at, ended_at, created_at, updated_at, version),
                 claims AS (
                   INSERT INTO slot_claims (clinician_id, cell, consultation_id)
                   SELECT $3, g, c.id FROM c, generate_series($13::bigint, $14::bigint - 1) AS g),
                 ev AS (
                   INSERT INTO consultation_events (consultation_id, occurred_at, actor, action, detail)
                   SELECT c.id, $12, $15, $2, '' FROM c)
                 SELECT * FROM c",
            )
            .bind(b.kind.as_str())
            .bind(status.as_str())
            .bind(b.clinician_id)
            .bind(b.patient_id)
            .bind(b.requesting_facility_id)
            .bind(b.referring_clinician_id)
            .bind(b.reason.as_str())
            .bind(b.urgency.as_str())
            .bind(slot.start)
            .bind(slot.end)
            .bind(expires)
            .bind(now)
            .bind(cells.start)
            .bind(cells.end)
            .bind(&actor.username)
            .fetch_one(pool)
            .await
        }
        Db::Sqlite(pool) => {
            async {
            let mut tx = pool.begin_write().await?;
            let row = sqlx::query_as::<_, Consultation>(
                "INSERT INTO consultations (kind, status, clinician_id, patient_id, requesting_facility_id,
                   referring_clinician_id, reason, urgency, start_at, end_at, hold_expires_at,
                   created_at, updated_at, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 1)
                 RETURNING id, kind, status, clinician_id, patient_id, requesting_facility_id,
                   referring_clinician_id, reason, urgency, start_at, end_at, hold_expires_at, cancel_reason,
                   started_at, ended_at, created_at, updated_at, version",
            )
            .bind(b.kind.as_str())
            .bind(status.as_str())
            .bind(b.clinician_id)
            .bind(b.patient_id)
            .bind(b.requesting_facility_id)
            .bind(b.referring_clinician_id)
            .bind(b.reason.as_str())
            .bind(b.urgency.as_str())
            .bind(slot.start)
            .bind(slot.end)
            .bind(expires)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let mut claims = sqlx::QueryBuilder::new(
                "INSERT INTO slot_claims (clinician_id, cell, consultation_id) ",
            );
            claims.push_values(cells.clone(), |mut v, cell| {
                v.push_bind(b.clinician_id).push_bind(cell).push_bind(row.id);
            });
            claims.build().execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO consultation_events (consultation_id, occurred_at, actor, action, detail)
                 VALUES ($1, $2, $3, $4, '')",
            )
            .bind(row.id)
            .bind(now)
            .bind(&actor.username)
            .bind(status.as_str())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
            }
            .await
        }
    };
    match result {
        Ok(row) => {
            metrics::counter!("bookings_total", "outcome" => status.as_str()).increment(1);
            Ok(row)
        }
        Err(e) if is_unique_violation(&e) => {
            metrics::counter!("bookings_total", "outcome" => "conflict").increment(1);
            Err(slot_taken())
        }
        Err(e) => Err(e.into()),
    }
}

/// Releases holds past their expiry that overlap `slot`; returns how many were released.
async fn release_expired_holds(db: &Db, clinician: ClinicianId, slot: Slot) -> Result<u64> {
    let now = time::now();
    let released = on_db!(db, pool => {
        async {
            let mut tx = pool.begin_write().await?;
            let expired: Vec<ConsultationId> = sqlx::query_scalar(
                "UPDATE consultations SET status = 'expired', updated_at = $1, version = version + 1
                 WHERE clinician_id = $2 AND status = 'held' AND hold_expires_at <= $1
                   AND start_at < $3 AND end_at > $4
                 RETURNING id",
            )
            .bind(now)
            .bind(clinician)
            .bind(slot.end)
            .bind(slot.start)
            .fetch_all(&mut *tx)
            .await?;
            for id in &expired {
                sqlx::query("DELETE FROM slot_claims WHERE consultation_id = $1")
                    .bind(*id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(expired.len() as u64)
        }
        .await
    })?;
    Ok(released)
}

/// Expires every hold past its time and frees its slot; run periodically by the server.
pub async fn expire_holds(db: &Db) -> Result<u64> {
    let now = time::now();
    let n = on_db!(db, pool => {
        async {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "DELETE FROM slot_claims WHERE consultation_id IN
                   (SELECT id FROM consultations WHERE status = 'held' AND hold_expires_at <= $1)",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let done = sqlx::query(
                "UPDATE consultations SET status = 'expired', updated_at = $1, version = version + 1
                 WHERE status = 'held' AND hold_expires_at <= $1",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(done.rows_affected())
        }
        .await
    })?;
    Ok(n)
}

pub async fn get(db: &Db, id: ConsultationId) -> Result<Consultation> {
    let row = on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new("SELECT ");
        q.push(CONSULTATION_COLUMNS).push(" FROM consultations WHERE id = ").push_bind(id);
        q.build_query_as::<Consultation>().fetch_optional(pool).await
    })?;
    row.map(|c| c.settle(time::now()))
        .ok_or(SchedulingError::NotFound("consultation"))
}

#[derive(Default)]
pub struct ConsultationFilter {
    pub clinician_id: Option<ClinicianId>,
    pub patient_id: Option<PatientId>,
    pub requesting_facility_id: Option<FacilityId>,
    pub status: Option<Status>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: i64,
    pub offset: i64,
    /// Only what this caller may see.
    pub visible: Visibility,
}

pub async fn list(db: &Db, f: &ConsultationFilter) -> Result<Vec<Consultation>> {
    let rows = on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new("SELECT ");
        q.push(CONSULTATION_COLUMNS).push(" FROM consultations c WHERE 1 = 1");
        f.visible.push_sql(&mut q);
        if let Some(v) = f.clinician_id {
            q.push(" AND clinician_id = ").push_bind(v);
        }
        if let Some(v) = f.patient_id {
            q.push(" AND patient_id = ").push_bind(v);
        }
        if let Some(v) = f.requesting_facility_id {
            q.push(" AND requesting_facility_id = ").push_bind(v);
        }
        if let Some(v) = f.status {
            q.push(" AND status = ").push_bind(v.as_str());
        }
        if let Some(v) = f.from {
            q.push(" AND start_at >= ").push_bind(v);
        }
        if let Some(v) = f.to {
            q.push(" AND start_at < ").push_bind(v);
        }
        q.push(" ORDER BY start_at, id LIMIT ").push_bind(f.limit);
        q.push(" OFFSET ").push_bind(f.offset);
        q.build_query_as::<Consultation>().fetch_all(pool).await
    })?;
    let now = time::now();
    Ok(rows.into_iter().map(|c| c.settle(now)).collect())
}

/// Explains why a conditional update touched nothing: missing, or the wrong status.
async fn refuse(db: &Db, id: ConsultationId, transition: Transition) -> SchedulingError {
    match get(db, id).await {
        Err(e) => e,
        Ok(c) if c.status == Status::Expired => SchedulingError::conflict(
            ErrorCode::HoldExpired,
            "the hold on this slot has expired; book the slot again",
        ),
        Ok(c) => SchedulingError::conflict(
            ErrorCode::InvalidTransition,
            format!(
                "cannot {} a consultation that is {}",
                transition.as_str().replace('_', "-"),
                c.status
            ),
        ),
    }
}

/// Applies a status change guarded by the statuses it is allowed from. `extra` sets one more
/// timestamp column (`started_at` or `ended_at`) to now.
async fn transition(
    db: &Db,
    actor: &Principal,
    id: ConsultationId,
    transition: Transition,
    detail: &str,
) -> Result<Consultation> {
    let now = time::now();
    let allowed: Vec<&'static str> = Status::ALL
        .iter()
        .filter(|s| s.after(transition).is_some())
        .map(|s| s.as_str())
        .collect();
    let target = Status::ALL
        .iter()
        .find_map(|s| s.after(transition))
        .ok_or(SchedulingError::NotFound("transition"))?;
    let frees_slot = !target.is_live();
    let updated = on_db!(db, pool => {
        async {
            let mut tx = pool.begin_write().await?;
            let mut q = sqlx::QueryBuilder::new("UPDATE consultations SET status = ");
            q.push_bind(target.as_str());
            q.push(", updated_at = ").push_bind(now);
            q.push(", version = version + 1");
            match transition {
                Transition::Confirm => {
                    q.push(", hold_expires_at = NULL");
                }
                Transition::Start => {
                    q.push(", started_at = ").push_bind(now);
                }
                Transition::Complete => {
                    q.push(", ended_at = ").push_bind(now);
                }
                Transition::Cancel => {
                    q.push(", cancel_reason = ").push_bind(detail.to_string());
                }
                Transition::NoShow | Transition::Reschedule => {}
            }
            // Its call can no longer be joined: every join token issued so far is revoked.
            if matches!(
                transition,
                Transition::Cancel | Transition::Complete | Transition::NoShow
            ) {
                q.push(", access_version = access_version + 1");
            }
            q.push(" WHERE id = ").push_bind(id);
            q.push(" AND status IN (");
            let mut from = q.separated(", ");
            for s in &allowed {
                from.push_bind(*s);
            }
            q.push(")");
            // An expired hold can no longer be confirmed.
            q.push(" AND NOT (status = 'held' AND hold_expires_at <= ").push_bind(now).push(")");
            match transition {
                Transition::Start => {
                    q.push(" AND start_at <= ").push_bind(now + Duration::minutes(30));
                }
                Transition::NoShow => {
                    q.push(" AND start_at <= ").push_bind(now);
                }
                _ => {}
            }
            q.push(" RETURNING ").push(CONSULTATION_COLUMNS);
            let row = q.build_query_as::<Consultation>().fetch_optional(&mut *tx).await?;
            if let Some(row) = &row {
                if frees_slot {
                    sqlx::query("DELETE FROM slot_claims WHERE consultation_id = $1")
                        .bind(row.id)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(
                    "INSERT INTO consultation_events (consultation_id, occurred_at, actor, action, detail)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(row.id)
                .bind(now)
                .bind(&actor.username)
                .bind(transition.as_str())
                .bind(detail)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }
        .await
    })?;
    match updated {
        Some(row) => Ok(row),
        None => {
            let refusal = refuse(db, id, transition).await;
            // Name the time rule when the status was right but the moment was not.
            if let SchedulingError::Conflict {
                code: ErrorCode::InvalidTransition,
                ..
            } = &refusal
                && let Ok(c) = get(db, id).await
                && c.status == Status::Booked
            {
                return Err(match transition {
                    Transition::Start => SchedulingError::conflict(
                        ErrorCode::TooEarly,
                        "a consultation can start at most 30 minutes before its time",
                    ),
                    Transition::NoShow => SchedulingError::conflict(
                        ErrorCode::TooEarly,
                        "a no-show can be recorded only once the consultation's time has come",
                    ),
                    _ => refusal,
                });
            }
            Err(refusal)
        }
    }
}

pub async fn confirm(db: &Db, actor: &Principal, id: ConsultationId) -> Result<Consultation> {
    transition(db, actor, id, Transition::Confirm, "").await
}

pub async fn cancel(
    db: &Db,
    actor: &Principal,
    id: ConsultationId,
    reason: &BoundedText,
) -> Result<Consultation> {
    transition(db, actor, id, Transition::Cancel, reason.as_str()).await
}

pub async fn start(db: &Db, actor: &Principal, id: ConsultationId) -> Result<Consultation> {
    transition(db, actor, id, Transition::Start, "").await
}

pub async fn complete(db: &Db, actor: &Principal, id: ConsultationId) -> Result<Consultation> {
    transition(db, actor, id, Transition::Complete, "").await
}

pub async fn no_show(db: &Db, actor: &Principal, id: ConsultationId) -> Result<Consultation> {
    transition(db, actor, id, Transition::NoShow, "").await
}

/// Moves a held or booked consultation to `start` (with `clinician`, or its own) atomically.
pub async fn reschedule(
    db: &Db,
    actor: &Principal,
    id: ConsultationId,
    clinician_id: Option<ClinicianId>,
    start: DateTime<Utc>,
    reason: &BoundedText,
) -> Result<Consultation> {
    let current = get(db, id).await?;
    if current.status.after(Transition::Reschedule).is_none() {
        return Err(refuse(db, id, Transition::Reschedule).await);
    }
    let clinician_id = clinician_id.unwrap_or(current.clinician_id);
    let clinician = directory::get_clinician(db, clinician_id).await?;
    if current.referring_clinician_id == Some(clinician_id) {
        return Err(SchedulingError::invalid(
            "clinician_id",
            "the referring clinician cannot also be the consulted specialist",
        ));
    }
    let slot = resolve_slot(db, Bookable::from(&clinician), start).await?;
    match move_booking(db, actor, id, clinician_id, slot, reason).await {
        Err(SchedulingError::Conflict {
            code: ErrorCode::SlotTaken,
            ..
        }) => {
            if release_expired_holds(db, clinician_id, slot).await? > 0 {
                move_booking(db, actor, id, clinician_id, slot, reason).await
            } else {
                Err(slot_taken())
            }
        }
        other => other,
    }
}

async fn move_booking(
    db: &Db,
    actor: &Principal,
    id: ConsultationId,
    clinician_id: ClinicianId,
    slot: Slot,
    reason: &BoundedText,
) -> Result<Consultation> {
    let now = time::now();
    let cells = time::cells(slot.start, slot.end);
    let result = on_db!(db, pool => {
        async {
            let mut tx = pool.begin_write().await?;
            let mut q = sqlx::QueryBuilder::new("UPDATE consultations SET clinician_id = ");
            q.push_bind(clinician_id);
            // Another clinician: every join token issued so far is revoked (the old clinician's
            // for good; the others ask for a new one). A move in time only keeps them: joining
            // checks the consultation's current window anyway.
            q.push(", access_version = access_version + CASE WHEN clinician_id = ");
            q.push_bind(clinician_id).push(" THEN 0 ELSE 1 END");
            q.push(", start_at = ").push_bind(slot.start);
            q.push(", end_at = ").push_bind(slot.end);
            q.push(", updated_at = ").push_bind(now);
            q.push(", version = version + 1 WHERE id = ").push_bind(id);
            q.push(" AND status IN ('held', 'booked') AND NOT (status = 'held' AND hold_expires_at <= ");
            q.push_bind(now).push(") RETURNING ").push(CONSULTATION_COLUMNS);
            let Some(row) = q.build_query_as::<Consultation>().fetch_optional(&mut *tx).await? else {
                return Ok(None);
            };
            sqlx::query("DELETE FROM slot_claims WHERE consultation_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let mut claims = sqlx::QueryBuilder::new(
                "INSERT INTO slot_claims (clinician_id, cell, consultation_id) ",
            );
            claims.push_values(cells.clone(), |mut v, cell| {
                v.push_bind(clinician_id).push_bind(cell).push_bind(id);
            });
            claims.build().execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO consultation_events (consultation_id, occurred_at, actor, action, detail)
                 VALUES ($1, $2, $3, 'reschedule', $4)",
            )
            .bind(id)
            .bind(now)
            .bind(&actor.username)
            .bind(reason.as_str())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Some(row))
        }
        .await
    });
    match result {
        Ok(Some(row)) => Ok(row),
        Ok(None) => Err(refuse(db, id, Transition::Reschedule).await),
        Err(e) if is_unique_violation(&e) => Err(slot_taken()),
        Err(e) => Err(e.into()),
    }
}

/// The consultation's recorded life-cycle events, oldest first.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Event {
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

pub async fn events(db: &Db, id: ConsultationId) -> Result<Vec<Event>> {
    Ok(on_db!(db, pool => sqlx::query_as::<_, Event>(
        "SELECT occurred_at, actor, action, detail FROM consultation_events
         WHERE consultation_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await)?)
}
