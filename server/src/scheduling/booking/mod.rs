//! Booking: holds, bookings, cancellation, rescheduling and the rest of a consultation's life.
//!
//! Double booking is prevented by the database, not by checking first: each live consultation
//! inserts one `slot_claims` row per five-minute cell of its time, and the primary key
//! `(clinician_id, cell)` lets only one of two overlapping consultations commit. The loser's insert
//! fails with a unique violation, which becomes a 409. Rescheduling releases the old claims and
//! inserts the new ones in one transaction, so at no moment are both or neither slot held.
//!
//! # State and claims never disagree
//!
//! A held, booked or in-progress consultation claims exactly the cells of its time with its
//! clinician; an expired, cancelled, completed or no-show one claims none. (`telehealth check`,
//! [`crate::scheduling::consistency`], looks for any consultation where that is not so.) What
//! keeps it true under concurrency is one rule that every path below follows:
//!
//! **Claims change only in a transaction that first changed the consultation's row with a
//! predicate on its current status**, and only to match the status it wrote. The guarded
//! `UPDATE ... WHERE id = $1 AND status IN (...) RETURNING` takes the row's lock; on PostgreSQL
//! under READ COMMITTED a second writer of the same row waits for that lock and then re-evaluates
//! its own predicate against the committed row, so of two transitions racing on one
//! consultation the second sees the first's outcome and applies only if it still fits. The claims
//! are deleted or inserted by later statements of the same transaction, each with a fresh
//! snapshot, while the row lock keeps every other claim-changing transaction of that
//! consultation out. On SQLite the write transaction (`BEGIN IMMEDIATE`) runs alone, so no two
//! of them interleave at all.
//!
//! The paths, each checked against the rule:
//! - **book / hold** ([`book`]): a new row and its claims in one statement (PostgreSQL) or one
//!   transaction; nobody sees either before both commit.
//! - **confirm** (held → booked), **start** (booked → in progress): live to live; the claims stay
//!   and are not touched. The guard refuses a hold past its expiry, as the sweeper would take it.
//! - **cancel, complete, no-show**: the guarded update, then the claims of exactly that row
//!   are deleted, in its transaction.
//! - **reschedule** ([`reschedule`]): the guarded update of time and clinician first, then the
//!   old claims deleted and the new ones inserted.
//! - **the sweeper** ([`expire_holds`]) and **the release of expired holds on a conflict**: the
//!   guarded `UPDATE ... SET status = 'expired' WHERE status = 'held' AND hold_expires_at <= now
//!   RETURNING id` first, then the claims of exactly the returned ids. (It used to delete the
//!   claims of every lapsed hold first, by a subquery that took no lock on the consultation: a
//!   confirm committing between the two statements was left booked with no claims, and a
//!   reschedule committing there was left expired with its new claims; issue 12, findings 1
//!   and 2. `tests/tests/booking_races.rs` forces both interleavings.)
//!
//! This file is the service: what is checked, what is retried, and which statements of
//! [`store`] run together in one transaction. Each write is one `db.begin()` … `commit()` here,
//! and the request's [`Journal`] writes its audit event (and the answer to an idempotency key)
//! inside it, before the commit: no booking or transition commits without its event. The one
//! exception is a new booking on PostgreSQL without an idempotency key, a single atomic
//! statement that stages the event itself (see `insert_outright`).
//! Pause points ([`crate::pause`]) mark where the race tests park a transaction before its commit.

pub mod limits;
pub mod store;

use std::future::Future;
use std::ops::Range;

use chrono::{DateTime, Duration, SubsecRound, Utc};

use super::availability;
use super::directory::{self, Clinician};
use super::{Result, SchedulingError};
use crate::auth::Principal;
use crate::domain::availability::{Exception, Slot, WeeklyRule, slots_on};
use crate::domain::code::ErrorCode;
use crate::domain::consultation::{
    Consultation, Delay, FacilityKind, Kind, Status, Transition, Urgency,
};
use crate::domain::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};
use crate::domain::text::BoundedText;
use crate::domain::time::{self, Zone, on_grid};
use crate::journal::{About, Journal};
use crate::outbox::EventKind;
use crate::pause;
use crate::storage::{Conn, Db, Engine, OnViolation};
pub use limits::{BookingLimits, HoldCap, HoldCaps, RateRefusal};
pub use store::{ConsultationFilter, Event};
use store::{ContextRow, NewConsultation, NewEvent, SLOT_CLAIM, Stamp, StatusChange};

/// How far ahead a booking may be made.
pub const MAX_DAYS_AHEAD: i64 = 366;

/// How early a consultation may be started.
const STARTS_EARLY_MINUTES: i64 = 30;

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

fn slot_taken() -> SchedulingError {
    SchedulingError::conflict(
        ErrorCode::SlotTaken,
        "this slot has just been taken by another booking; choose another slot",
    )
}

/// Books (or holds) a slot. Exactly one of any number of concurrent requests for overlapping
/// time wins; the others get `slot_taken`. A hold must also fit the hold caps.
pub async fn book(
    db: &Db,
    actor: &Principal,
    b: NewBooking,
    hold_ttl: Duration,
    caps: HoldCaps,
    journal: &Journal,
) -> Result<Consultation> {
    check_time(b.start)?;
    let rows = {
        let mut c = db.acquire().await?;
        let named = store::Named {
            clinician: b.clinician_id,
            patient: b.patient_id,
            requesting_facility: b.requesting_facility_id,
            referring_clinician: b.referring_clinician_id,
            day: b.start.date_naive(),
        };
        store::booking_context(c.conn(), &named).await?
    };
    let clinician = check_people(&b, &rows)?;
    let (rules, exceptions) = availability_of(b.clinician_id, rows);
    let slot = find_slot(clinician, b.start, &rules, &exceptions)?;
    let b = &b;
    retry_after_expired_hold(db, b.clinician_id, slot, move || {
        insert_booking(db, actor, b, slot, (hold_ttl, caps), journal)
    })
    .await
}

/// Checks that the people and places a booking names exist and fit its kind; returns the
/// clinician as a booking needs them.
fn check_people(b: &NewBooking, rows: &[ContextRow]) -> Result<Bookable> {
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
        check_teleconsultation(b, ctx)?;
    }
    Ok(clinician)
}

/// A teleconsultation joins a rural clinician at a care centre, with the patient, to a
/// specialist elsewhere.
fn check_teleconsultation(b: &NewBooking, ctx: &ContextRow) -> Result<()> {
    let facility_id = b.requesting_facility_id.ok_or_else(|| {
        SchedulingError::invalid(
            "requesting_facility_id",
            "a teleconsultation needs the requesting care centre",
        )
    })?;
    if ctx.requesting_kind != Some(FacilityKind::CareCentre) {
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
    if referring_id == b.clinician_id {
        return Err(SchedulingError::invalid(
            "referring_clinician_id",
            "the referring clinician cannot also be the consulted specialist",
        ));
    }
    Ok(())
}

/// The weekly rules and exceptions on the rows of [`store::booking_context`].
fn availability_of(
    clinician: ClinicianId,
    rows: Vec<ContextRow>,
) -> (Vec<WeeklyRule>, Vec<Exception>) {
    let mut rules = Vec::new();
    let mut exceptions = Vec::new();
    for r in rows {
        let Some(source) = r.source else { continue };
        let day_row = availability::DayRow {
            source,
            clinician_id: clinician,
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
    (rules, exceptions)
}

/// Runs `attempt`; only if it loses the slot, and an expired hold was what held it, releases that
/// hold and tries once more.
async fn retry_after_expired_hold<F, Fut>(
    db: &Db,
    clinician: ClinicianId,
    slot: Slot,
    attempt: F,
) -> Result<Consultation>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Consultation>>,
{
    match attempt().await {
        Err(SchedulingError::Conflict {
            code: ErrorCode::SlotTaken,
            ..
        }) => {
            if release_expired_holds(db, clinician, slot).await? > 0 {
                attempt().await
            } else {
                Err(slot_taken())
            }
        }
        other => other,
    }
}

/// Writes the consultation, its claims, its first event and the request's journal (audit event,
/// idempotent answer) in one transaction: all of them or, when a claim is taken, none
/// (`slot_taken`).
async fn insert_booking(
    db: &Db,
    actor: &Principal,
    b: &NewBooking,
    slot: Slot,
    (hold_ttl, caps): (Duration, HoldCaps),
    journal: &Journal,
) -> Result<Consultation> {
    let now = time::now();
    let (status, hold_expires_at) = if b.hold {
        (Status::Held, Some(now + hold_ttl))
    } else {
        (Status::Booked, None)
    };
    let new = NewConsultation {
        kind: b.kind,
        status,
        clinician_id: b.clinician_id,
        patient_id: b.patient_id,
        requesting_facility_id: b.requesting_facility_id,
        referring_clinician_id: b.referring_clinician_id,
        reason: b.reason.as_str(),
        urgency: b.urgency,
        start_at: slot.start,
        end_at: slot.end,
        hold_expires_at,
        created_at: now,
        booked_by: actor.account_id,
    };
    let cells = time::cells(slot.start, slot.end);
    let written = if b.hold {
        insert_hold(db, actor, &new, cells, caps, journal).await
    } else {
        insert_outright(db, actor, &new, cells, journal).await
    };
    let outcome = match &written {
        Ok(_) => status.as_str(),
        Err(SchedulingError::Conflict {
            code: ErrorCode::SlotTaken,
            ..
        }) => "conflict",
        Err(SchedulingError::TooManyHolds { .. }) => "hold_cap",
        Err(_) => return written,
    };
    metrics::counter!("bookings_total", "outcome" => outcome).increment(1);
    written
}

/// A booking (not a hold): no cap to check, so the platform's hottest write stays as small as it
/// can be.
async fn insert_outright(
    db: &Db,
    actor: &Principal,
    new: &NewConsultation<'_>,
    cells: Range<i64>,
    journal: &Journal,
) -> Result<Consultation> {
    async {
        // On PostgreSQL, without an idempotency key, the insert is one statement (consultation,
        // claims, event and the request's audit event in one CTE), atomic by itself: a
        // transaction around it would add only BEGIN and COMMIT round trips to the platform's
        // hottest write, measured at 0.91 of the booking throughput. With a key the stored
        // answer must commit with it, and SQLite runs several statements: both take a
        // transaction.
        // A deployment whose webhook endpoints want bookings needs the transaction too (their
        // messages commit with the booking); messages to the patient alone join the statement.
        let patient_rows = journal.booking_rows_alone(new.start_at, new.end_at, new.created_at);
        if db.engine() == Engine::Postgres
            && journal.claim().is_none()
            && (!journal.notifies(EventKind::ConsultationBooked) || patient_rows.is_some())
        {
            let mut c = db.acquire().await?;
            let event = journal.event(&About::request().patient(new.patient_id));
            let staged = (&event, Utc::now().trunc_subsecs(3));
            let row = match (&patient_rows, c.conn()) {
                (Some(rows), Conn::Postgres(pg)) => {
                    store::insert_booking_audited_notifying(
                        pg,
                        new,
                        cells,
                        &actor.username,
                        staged,
                        rows,
                    )
                    .await?
                }
                (_, conn) => {
                    store::insert_booking_audited(conn, new, cells, &actor.username, staged).await?
                }
            };
            journal.mark_written();
            return Ok(row);
        }
        let mut tx = db.begin().await?;
        let row = store::insert_booking(tx.conn(), new, cells, &actor.username).await?;
        journal
            .notify(
                tx.conn(),
                EventKind::ConsultationBooked,
                &row,
                new.created_at,
            )
            .await?;
        journal
            .write(
                tx.conn(),
                About::record(row.id).patient(row.patient_id),
                &row,
            )
            .await?;
        pause::point(db, "booking.book.before_commit").await;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(row)
    }
    .await
    .on_violation(&SLOT_CLAIM, slot_taken)
}

/// A hold: counted against the caps and inserted in one transaction that excludes every other
/// new hold by the same booker or for the same patient ([`store::lock_holds`]), so that two
/// holds at one below a cap cannot both pass.
async fn insert_hold(
    db: &Db,
    actor: &Principal,
    new: &NewConsultation<'_>,
    cells: Range<i64>,
    caps: HoldCaps,
    journal: &Journal,
) -> Result<Consultation> {
    let mut tx = db.begin().await?;
    store::lock_holds(tx.conn(), new.booked_by, new.patient_id).await?;
    let standing =
        store::holds_standing(tx.conn(), new.booked_by, new.patient_id, new.created_at).await?;
    if let Some((cap, max)) = over_cap(standing, caps) {
        // Nothing was written: dropping the transaction rolls it back.
        return Err(SchedulingError::TooManyHolds { cap, max });
    }
    pause::point(db, "booking.hold.counted").await;
    let row = store::insert_booking(tx.conn(), new, cells, &actor.username)
        .await
        .on_violation(&SLOT_CLAIM, slot_taken)?;
    journal
        .write(
            tx.conn(),
            About::record(row.id).patient(row.patient_id),
            &row,
        )
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// The cap one more hold would go over, with its size; `None` when there is room under both.
fn over_cap(standing: store::HoldsStanding, caps: HoldCaps) -> Option<(HoldCap, u32)> {
    let full = |held: i64, max: u32| max > 0 && held >= i64::from(max);
    if full(standing.by_account, caps.per_account) {
        Some((HoldCap::Account, caps.per_account))
    } else if full(standing.of_patient, caps.per_patient) {
        Some((HoldCap::Patient, caps.per_patient))
    } else {
        None
    }
}

/// Releases holds past their expiry that overlap `slot`; returns how many were released.
///
/// The guarded update first, then the claims of exactly the holds it expired (the rule in the
/// module documentation): a hold confirmed or moved meanwhile fails the predicate once its
/// transaction commits and keeps its claims.
async fn release_expired_holds(db: &Db, clinician: ClinicianId, slot: Slot) -> Result<u64> {
    let now = time::now();
    let mut tx = db.begin().await?;
    let expired =
        store::expire_overlapping_holds(tx.conn(), clinician, slot.start, slot.end, now).await?;
    store::delete_claims_of(tx.conn(), &expired).await?;
    tx.commit().await?;
    Ok(expired.len() as u64)
}

/// How many lapsed holds one sweep transaction expires at most: it keeps each transaction short
/// and its id list within every engine's bind limit.
const SWEEP_BATCH: i64 = 500;

/// Expires every hold past its time and frees its slot; run periodically by the server.
pub async fn expire_holds(db: &Db) -> Result<u64> {
    expire_holds_at(db, time::now()).await
}

/// [`expire_holds`] as of `now`: the holds whose expiry is at or before it lapse.
///
/// Each batch marks the lapsed holds expired first, guarded by `status = 'held'`, and only then
/// deletes the claims of exactly the holds it marked, in the same transaction. A hold that a
/// confirm, cancel or reschedule has locked is skipped on PostgreSQL and taken by a later sweep
/// if it is still a lapsed hold then (see [`store::expire_lapsed_holds`]).
pub async fn expire_holds_at(db: &Db, now: DateTime<Utc>) -> Result<u64> {
    let mut total = 0;
    loop {
        let mut tx = db.begin().await?;
        let expired = store::expire_lapsed_holds(tx.conn(), now, SWEEP_BATCH).await?;
        store::delete_claims_of(tx.conn(), &expired).await?;
        pause::point(db, "booking.sweep.before_commit").await;
        tx.commit().await?;
        total += expired.len() as u64;
        if (expired.len() as i64) < SWEEP_BATCH {
            return Ok(total);
        }
    }
}

pub async fn get(db: &Db, id: ConsultationId) -> Result<Consultation> {
    let mut c = db.acquire().await?;
    let row = store::get(c.conn(), id).await?;
    row.map(|c| c.settle(time::now()))
        .ok_or(SchedulingError::NotFound("consultation"))
}

pub async fn list(db: &Db, f: &ConsultationFilter) -> Result<Vec<Consultation>> {
    let mut c = db.acquire().await?;
    let rows = store::list(c.conn(), f).await?;
    let now = time::now();
    Ok(rows.into_iter().map(|c| c.settle(now)).collect())
}

/// Explains why a guarded change touched nothing: missing, expired, too early, or the wrong
/// status.
async fn refuse(db: &Db, id: ConsultationId, transition: Transition) -> SchedulingError {
    let c = match get(db, id).await {
        Err(e) => return e,
        Ok(c) => c,
    };
    match (c.status, transition) {
        (Status::Expired, _) => SchedulingError::conflict(
            ErrorCode::HoldExpired,
            "the hold on this slot has expired; book the slot again",
        ),
        // The status was right but the moment was not.
        (Status::Booked, Transition::Start) => SchedulingError::conflict(
            ErrorCode::TooEarly,
            "a consultation can start at most 30 minutes before its time",
        ),
        (Status::Booked, Transition::Complete) => SchedulingError::conflict(
            ErrorCode::TooEarly,
            "a consultation can be completed at most 30 minutes before its time",
        ),
        (Status::Booked, Transition::NoShow) => SchedulingError::conflict(
            ErrorCode::TooEarly,
            "a no-show can be recorded only once the consultation's time has come",
        ),
        (status, _) => SchedulingError::conflict(
            ErrorCode::InvalidTransition,
            format!(
                "cannot {} a consultation that is {status}",
                transition.as_str().replace('_', "-"),
            ),
        ),
    }
}

/// The statuses `transition` is allowed from.
fn allowed_from(transition: Transition) -> Vec<Status> {
    Status::ALL
        .iter()
        .copied()
        .filter(|s| s.after(transition).is_some())
        .collect()
}

/// The guarded update `transition` makes at `now`: what it changes to, and from what and when it
/// may.
fn status_change<'a>(
    id: ConsultationId,
    transition: Transition,
    from: &'a [Status],
    detail: &'a str,
    now: DateTime<Utc>,
) -> Result<StatusChange<'a>> {
    let to = from
        .iter()
        .find_map(|s| s.after(transition))
        .ok_or(SchedulingError::NotFound("transition"))?;
    let (stamp, starts_by) = match transition {
        Transition::Confirm => (Stamp::ClearHold, None),
        Transition::Start => (
            Stamp::Started,
            Some(now + Duration::minutes(STARTS_EARLY_MINUTES)),
        ),
        // From booked (no call), no earlier than a start could be.
        Transition::Complete => (
            Stamp::Ended,
            Some(now + Duration::minutes(STARTS_EARLY_MINUTES)),
        ),
        Transition::Cancel => (Stamp::CancelReason(detail), None),
        Transition::NoShow => (Stamp::None, Some(now)),
        Transition::Reschedule => (Stamp::None, None),
    };
    Ok(StatusChange {
        id,
        to,
        from,
        stamp,
        // Its call can no longer be joined: every join token issued so far is revoked.
        revoke_tokens: matches!(
            transition,
            Transition::Cancel | Transition::Complete | Transition::NoShow
        ),
        starts_by,
        now,
    })
}

/// The pause point just before a transition's commit, for the race tests.
fn before_commit(transition: Transition) -> &'static str {
    match transition {
        Transition::Confirm => "booking.confirm.before_commit",
        Transition::Start => "booking.start.before_commit",
        Transition::Complete => "booking.complete.before_commit",
        Transition::Cancel => "booking.cancel.before_commit",
        Transition::NoShow => "booking.no_show.before_commit",
        Transition::Reschedule => "booking.reschedule.before_commit",
    }
}

/// Applies a status change guarded by the statuses (and times) it is allowed from, with its event
/// and, when the consultation stops being live, the release of its slot.
///
/// The guarded update comes first and takes the row's lock (see the module documentation); the
/// claims are deleted only for the row it returned, so a consultation that another transaction
/// moved to another status meanwhile is left alone, claims and all.
async fn transition(
    db: &Db,
    actor: &Principal,
    id: ConsultationId,
    transition: Transition,
    detail: &str,
    journal: &Journal,
) -> Result<Consultation> {
    let now = time::now();
    let from = allowed_from(transition);
    let change = status_change(id, transition, &from, detail, now)?;
    let mut tx = db.begin().await?;
    let updated = store::change_status(tx.conn(), &change).await?;
    if let Some(row) = &updated {
        // Confirm and start go from live to live: the claims stay as they are.
        if !change.to.is_live() {
            store::delete_claims(tx.conn(), row.id).await?;
        }
        record_change(
            tx.conn(),
            row,
            actor,
            (transition.as_str(), detail),
            now,
            journal,
        )
        .await?;
        pause::point(db, before_commit(transition)).await;
    }
    tx.commit().await?;
    match updated {
        Some(row) => Ok(row),
        None => Err(refuse(db, id, transition).await),
    }
}

pub async fn confirm(
    db: &Db,
    actor: &Principal,
    id: ConsultationId,
    journal: &Journal,
) -> Result<Consultation> {
    transition(db, actor, id, Transition::Confirm, "", journal).await
}

pub async fn cancel(
    db: &Db,
    actor: &Principal,
    id: ConsultationId,
    reason: &BoundedText,
    journal: &Journal,
) -> Result<Consultation> {
    transition(db, actor, id, Transition::Cancel, reason.as_str(), journal).await
}

pub async fn start(
    db: &Db,
    actor: &Principal,
    id: ConsultationId,
    journal: &Journal,
) -> Result<Consultation> {
    transition(db, actor, id, Transition::Start, "", journal).await
}

pub async fn complete(
    db: &Db,
    actor: &Principal,
    id: ConsultationId,
    journal: &Journal,
) -> Result<Consultation> {
    transition(db, actor, id, Transition::Complete, "", journal).await
}

pub async fn no_show(
    db: &Db,
    actor: &Principal,
    id: ConsultationId,
    journal: &Journal,
) -> Result<Consultation> {
    transition(db, actor, id, Transition::NoShow, "", journal).await
}

/// Announces (or, with no minutes, withdraws) that booked consultation `id` runs late; its
/// event and audit record commit with it.
pub async fn running_late(
    db: &Db,
    actor: &Principal,
    id: ConsultationId,
    delay: Delay,
    journal: &Journal,
) -> Result<Consultation> {
    let now = time::now();
    let detail = match delay.minutes() {
        Some(m) => format!("{m} min"),
        None => "on time".to_owned(),
    };
    let mut tx = db.begin().await?;
    let Some(row) = store::set_running_late(tx.conn(), id, delay.minutes(), now).await? else {
        drop(tx);
        let c = get(db, id).await?;
        return Err(SchedulingError::conflict(
            ErrorCode::InvalidTransition,
            format!(
                "only a booked consultation can run late; this one is {}",
                c.status
            ),
        ));
    };
    record_change(
        tx.conn(),
        &row,
        actor,
        ("running_late", &detail),
        now,
        journal,
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// A change to consultation `row` made in this transaction: its life-cycle event (`action`,
/// `detail`), the notifications it causes (the outbox) and the request's audit event and answer,
/// which commit with it.
async fn record_change(
    mut conn: Conn<'_>,
    row: &Consultation,
    actor: &Principal,
    (action, detail): (&str, &str),
    now: DateTime<Utc>,
    journal: &Journal,
) -> Result<()> {
    let event = NewEvent {
        consultation: row.id,
        at: now,
        actor: &actor.username,
        action,
        detail,
    };
    store::insert_event(conn.reborrow(), &event).await?;
    if let Some(kind) = notice_of(action) {
        journal.notify(conn.reborrow(), kind, row, now).await?;
    }
    journal
        .write(conn, About::record(row.id).patient(row.patient_id), row)
        .await?;
    Ok(())
}

/// The notification a recorded change causes, if any: a confirmed hold is a booking. (Starting,
/// completing and a no-show notify nobody.)
fn notice_of(action: &str) -> Option<EventKind> {
    if action == "running_late" {
        Some(EventKind::RunningLate)
    } else if action == Transition::Confirm.as_str() {
        Some(EventKind::ConsultationBooked)
    } else if action == Transition::Cancel.as_str() {
        Some(EventKind::ConsultationCancelled)
    } else if action == Transition::Reschedule.as_str() {
        Some(EventKind::ConsultationRescheduled)
    } else {
        None
    }
}

/// Moves a held or booked consultation to `start` (with `clinician`, or its own) atomically.
pub async fn reschedule(
    db: &Db,
    actor: &Principal,
    id: ConsultationId,
    clinician_id: Option<ClinicianId>,
    start: DateTime<Utc>,
    reason: &BoundedText,
    journal: &Journal,
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
    retry_after_expired_hold(db, clinician_id, slot, move || {
        move_booking(db, actor, (id, clinician_id), slot, reason, journal)
    })
    .await
}

/// Moves the consultation and its claims, with its event, in one transaction: the guarded update
/// of its time first (its row lock keeps the sweeper and every other transition of it out until
/// the commit), then the old claims out and the new ones in.
async fn move_booking(
    db: &Db,
    actor: &Principal,
    (id, clinician_id): (ConsultationId, ClinicianId),
    slot: Slot,
    reason: &BoundedText,
    journal: &Journal,
) -> Result<Consultation> {
    let now = time::now();
    let from = allowed_from(Transition::Reschedule);
    let moved = async {
        let mut tx = db.begin().await?;
        let span = (slot.start, slot.end);
        let moved = store::move_consultation(tx.conn(), id, clinician_id, span, &from, now).await?;
        if let Some(row) = &moved {
            store::delete_claims(tx.conn(), id).await?;
            let cells = time::cells(slot.start, slot.end);
            store::insert_claims(tx.conn(), clinician_id, cells, id).await?;
            let event = NewEvent {
                consultation: id,
                at: now,
                actor: &actor.username,
                action: Transition::Reschedule.as_str(),
                detail: reason.as_str(),
            };
            store::insert_event(tx.conn(), &event).await?;
            journal
                .notify(tx.conn(), EventKind::ConsultationRescheduled, row, now)
                .await?;
            journal
                .write(tx.conn(), About::record(id).patient(row.patient_id), row)
                .await?;
            pause::point(db, "booking.reschedule.before_commit").await;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(moved)
    }
    .await
    .on_violation(&SLOT_CLAIM, slot_taken)?;
    match moved {
        Some(row) => Ok(row),
        None => Err(refuse(db, id, Transition::Reschedule).await),
    }
}

/// The consultation's recorded life-cycle events, oldest first.
pub async fn events(db: &Db, id: ConsultationId) -> Result<Vec<Event>> {
    let mut c = db.acquire().await?;
    Ok(store::events(c.conn(), id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-08T01:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("a valid instant")
    }

    #[test]
    fn each_transition_is_guarded_by_the_statuses_it_leaves() {
        assert_eq!(allowed_from(Transition::Confirm), [Status::Held]);
        assert_eq!(
            allowed_from(Transition::Cancel),
            [Status::Held, Status::Booked]
        );
        assert_eq!(
            allowed_from(Transition::Complete),
            [Status::Booked, Status::InProgress]
        );
        for t in [
            Transition::Confirm,
            Transition::Start,
            Transition::Complete,
            Transition::Cancel,
            Transition::NoShow,
        ] {
            let from = allowed_from(t);
            let change = status_change(ConsultationId(1), t, &from, "", at()).expect("a change");
            assert_eq!(Some(change.to), from[0].after(t), "{t:?}");
        }
    }

    #[test]
    fn a_change_writes_what_its_transition_means() {
        let now = at();
        let id = ConsultationId(1);
        let from = allowed_from(Transition::Start);
        let start = status_change(id, Transition::Start, &from, "", now).expect("start");
        assert!(matches!(start.stamp, Stamp::Started));
        assert_eq!(start.starts_by, Some(now + Duration::minutes(30)));
        assert!(!start.revoke_tokens);
        let from = allowed_from(Transition::NoShow);
        let no_show = status_change(id, Transition::NoShow, &from, "", now).expect("no-show");
        assert_eq!(no_show.starts_by, Some(now));
        assert!(no_show.revoke_tokens);
        let from = allowed_from(Transition::Cancel);
        let cancel = status_change(id, Transition::Cancel, &from, "ốm", now).expect("cancel");
        assert!(matches!(cancel.stamp, Stamp::CancelReason("ốm")));
        assert!(cancel.revoke_tokens && cancel.starts_by.is_none());
        let from = allowed_from(Transition::Confirm);
        let confirm = status_change(id, Transition::Confirm, &from, "", now).expect("confirm");
        assert!(matches!(confirm.stamp, Stamp::ClearHold));
        assert!(!confirm.revoke_tokens && confirm.starts_by.is_none());
    }
}
