//! The SQL of bookings: consultations, the slot claims that keep them from overlapping, and their
//! life-cycle events.
//!
//! Every function runs on a connection its caller owns ([`Conn`]); the booking service decides
//! which of them share a transaction, and what is allowed: the statuses a change may start from
//! and the times it must respect arrive here as values. Nothing here begins or commits a
//! transaction.

use std::ops::Range;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Serialize;

use crate::audit;
use crate::auth::AccountId;
use crate::auth::policy::Visibility;
use crate::domain::consultation::{Consultation, FacilityKind, Kind, Status, Urgency};
use crate::domain::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};
use crate::on_conn;
use crate::storage::{Conn, Engine, UniqueKey};

/// The columns of a [`Consultation`]. A macro rather than a constant so that `concat!` can put
/// whole statements together at compile time (sqlx takes only `&'static str` query text).
macro_rules! consultation_columns {
    () => {
        "id, kind, status, clinician_id, patient_id, requesting_facility_id,
         referring_clinician_id, reason, urgency, start_at, end_at, hold_expires_at, cancel_reason,
         started_at, ended_at, created_at, updated_at, version, running_late_minutes"
    };
}

/// The one insert of a new consultation, returning it whole; bound by [`bind_new`]. Written once:
/// SQLite runs it alone, PostgreSQL as the first part of [`insert_booking`]'s single statement.
macro_rules! insert_consultation {
    () => {
        concat!(
            "INSERT INTO consultations (kind, status, clinician_id, patient_id,
               requesting_facility_id, referring_clinician_id, reason, urgency, start_at, end_at,
               hold_expires_at, created_at, updated_at, version, booked_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 1, $13)
             RETURNING ",
            consultation_columns!()
        )
    };
}

/// Binds a [`NewConsultation`] to the thirteen parameters of [`insert_consultation!`], in order.
macro_rules! bind_new {
    ($query:expr, $c:expr) => {
        $query
            .bind($c.kind)
            .bind($c.status)
            .bind($c.clinician_id)
            .bind($c.patient_id)
            .bind($c.requesting_facility_id)
            .bind($c.referring_clinician_id)
            .bind($c.reason)
            .bind($c.urgency)
            .bind($c.start_at)
            .bind($c.end_at)
            .bind($c.hold_expires_at)
            .bind($c.created_at)
            .bind($c.booked_by)
    };
}

/// One five-minute cell of a clinician's time belongs to one live consultation at most: the key
/// that makes the loser of two overlapping bookings fail.
pub const SLOT_CLAIM: UniqueKey = UniqueKey {
    table: "slot_claims",
    columns: &["clinician_id", "cell"],
};

/// What a booking checks before writing, read in one round trip: the facts about the people and
/// places named, repeated on each row of the clinician's weekly rules and of their exceptions
/// around the day (the local date is not known until the zone is, so the query reads every
/// weekday and the UTC date ± 1, which covers every zone).
#[derive(sqlx::FromRow)]
pub struct ContextRow {
    pub zone: Option<String>,
    pub active: Option<bool>,
    pub patients: i64,
    pub requesting_kind: Option<FacilityKind>,
    pub referring_facility: Option<FacilityId>,
    pub source: Option<String>,
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

/// The people and places a booking names, as [`booking_context`] looks them up.
pub struct Named {
    pub clinician: ClinicianId,
    pub patient: PatientId,
    pub requesting_facility: Option<FacilityId>,
    pub referring_clinician: Option<ClinicianId>,
    /// The UTC date of the start.
    pub day: NaiveDate,
}

pub async fn booking_context(conn: Conn<'_>, n: &Named) -> Result<Vec<ContextRow>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, ContextRow>(
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
    .bind(n.clinician)
    .bind(n.patient)
    .bind(n.requesting_facility)
    .bind(n.referring_clinician)
    .bind(n.day - chrono::Duration::days(1))
    .bind(n.day + chrono::Duration::days(1))
    .fetch_all(&mut *c)
    .await)
}

/// A consultation about to be written, as the service settled it.
pub struct NewConsultation<'a> {
    pub kind: Kind,
    pub status: Status,
    pub clinician_id: ClinicianId,
    pub patient_id: PatientId,
    pub requesting_facility_id: Option<FacilityId>,
    pub referring_clinician_id: Option<ClinicianId>,
    pub reason: &'a str,
    pub urgency: Urgency,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub hold_expires_at: Option<DateTime<Utc>>,
    /// Also its first `updated_at`.
    pub created_at: DateTime<Utc>,
    /// The account that books (or holds) it.
    pub booked_by: AccountId,
}

async fn insert_consultation(
    conn: Conn<'_>,
    new: &NewConsultation<'_>,
) -> Result<Consultation, sqlx::Error> {
    on_conn!(conn, c => bind_new!(sqlx::query_as::<_, Consultation>(insert_consultation!()), new)
        .fetch_one(&mut *c)
        .await)
}

/// The PostgreSQL statement of a new booking: the consultation, its claims and its first event
/// in one statement, built around [`insert_consultation!`]; `$extra` adds more parts (the audit
/// event's) before the final `SELECT`.
macro_rules! booking_statement {
    ($extra:expr) => {
        concat!(
            "WITH c AS (",
            insert_consultation!(),
            "),
             claims AS (
               INSERT INTO slot_claims (clinician_id, cell, consultation_id)
               SELECT $3, g, c.id FROM c, generate_series($14::bigint, $15::bigint - 1) AS g),
             ev AS (
               INSERT INTO consultation_events (consultation_id, occurred_at, actor, action, detail)
               SELECT c.id, $12, $16, $2, '' FROM c)",
            $extra,
            " SELECT * FROM c"
        )
    };
}

/// A new consultation with its claims and its first event; with a [`SLOT_CLAIM`] violation, none
/// of them.
///
/// PostgreSQL writes all three in one statement, built around the same insert text: booking is
/// the hottest write of the platform, and the three statements one after the other in the same
/// transaction cost about 6% of its booking throughput (the `bench` of `telehealth-tests`,
/// `--engine postgres --bookings 3000`, interleaved runs on one 2-core machine, Dec 2026: median
/// 1612 against 1690 bookings/s, and 1166 against 1245 in a busier series). SQLite has no
/// data-modifying CTEs (and its round trips are function calls): it runs the three.
pub async fn insert_booking(
    mut conn: Conn<'_>,
    new: &NewConsultation<'_>,
    cells: Range<i64>,
    actor: &str,
) -> Result<Consultation, sqlx::Error> {
    if let Conn::Postgres(c) = &mut conn {
        return bind_new!(
            sqlx::query_as::<_, Consultation>(booking_statement!("")),
            new
        )
        .bind(cells.start)
        .bind(cells.end)
        .bind(actor)
        .fetch_one(&mut **c)
        .await;
    }
    let row = insert_consultation(conn.reborrow(), new).await?;
    insert_claims(conn.reborrow(), new.clinician_id, cells, row.id).await?;
    let event = NewEvent {
        consultation: row.id,
        at: new.created_at,
        actor,
        action: new.status.as_str(),
        detail: "",
    };
    insert_event(conn, &event).await?;
    Ok(row)
}

/// The booking statement's CTE staging the request's audit event (the columns of
/// `audit::store::stage`, with the record id the consultation's own), then `$extra`.
macro_rules! audited_statement {
    ($extra:literal) => {
        concat!(",
             audit AS (
               INSERT INTO audit_pending (occurred_at, actor_account_id, actor, actor_role, action,
                 record_type, record_id, patient_id, client_addr, outcome)
               SELECT $17, $18, $19, $20, $21, $22, c.id::text, $23, $24, $25 FROM c)", $extra)
    };
}

/// [`bind_new!`] and the binds of [`booking_statement!`] and [`audited_statement!`] (`$14` to
/// `$25`), in their order.
macro_rules! bind_audited {
    ($query:expr, $new:expr, $cells:expr, $actor:expr, ($event:expr, $at:expr)) => {
        bind_new!($query, $new)
            .bind($cells.start)
            .bind($cells.end)
            .bind($actor)
            .bind($at)
            .bind($event.actor_account_id)
            .bind($event.actor.as_str())
            .bind($event.actor_role.as_str())
            .bind($event.action.as_str())
            .bind($event.record_type.as_str())
            .bind($event.patient_id)
            .bind($event.client_addr.as_deref())
            .bind($event.outcome.as_str())
    };
}

/// [`insert_booking`] with the request's audit event staged too (`audit_pending`, naming the new
/// consultation), all or nothing: on PostgreSQL still one statement, so a booking without an
/// idempotency key needs no transaction and no round trip more than before; on SQLite four
/// statements, in the caller's transaction.
pub async fn insert_booking_audited(
    mut conn: Conn<'_>,
    new: &NewConsultation<'_>,
    cells: Range<i64>,
    actor: &str,
    (event, at): (&audit::Event, DateTime<Utc>),
) -> Result<Consultation, sqlx::Error> {
    let Conn::Postgres(c) = &mut conn else {
        let row = insert_booking(conn.reborrow(), new, cells, actor).await?;
        let mut event = event.clone();
        event.record_id = Some(row.id.to_string());
        audit::store::stage(conn, &event, at).await?;
        return Ok(row);
    };
    bind_audited!(
        sqlx::query_as::<_, Consultation>(booking_statement!(audited_statement!(""))),
        new,
        cells,
        actor,
        (event, at)
    )
    .fetch_one(&mut **c)
    .await
}

/// [`insert_booking_audited`] on PostgreSQL with the booking's messages to its patient in the
/// same statement (`rows`: the confirmation, the reminders, "join now"), written only when the
/// patient consented to a channel the deployment carries: a deployment that tells patients keeps
/// the booking a single statement, with no transaction and no read around it. The payload is the
/// one `outbox::patients` reads (`consultation_id`, `start_at`, `minutes_before`).
pub async fn insert_booking_audited_notifying(
    conn: &mut sqlx::PgConnection,
    new: &NewConsultation<'_>,
    cells: Range<i64>,
    actor: &str,
    (event, at): (&audit::Event, DateTime<Utc>),
    rows: &crate::outbox::patients::BookingRows,
) -> Result<Consultation, sqlx::Error> {
    let (sms, zalo, email) = rows.carries;
    bind_audited!(
        sqlx::query_as::<_, Consultation>(booking_statement!(audited_statement!(
            ",
             outbox AS (
               INSERT INTO outbox_messages (idempotency_key, event_kind, consultation_id, channel,
                 endpoint, payload, recipient_patient_id, actor_account_id, due_at, status,
                 attempts, created_at)
               SELECT m.key, m.kind, c.id, 'patient', pc.channel,
                      json_build_object('consultation_id', c.id, 'start_at', c.start_at,
                                        'minutes_before', m.mb)::text,
                      c.patient_id, $26, m.due, 'queued', 0, $27
               FROM c JOIN patient_contacts pc ON pc.patient_id = c.patient_id,
                    unnest($28::text[], $29::text[], $30::timestamptz[], $31::bigint[])
                      AS m(key, kind, due, mb)
               WHERE pc.consent AND ((pc.channel = 'sms' AND $32) OR (pc.channel = 'zalo' AND $33)
                                     OR (pc.channel = 'email' AND $34)))"
        ))),
        new,
        cells,
        actor,
        (event, at)
    )
    .bind(rows.actor)
    .bind(rows.now)
    .bind(&rows.keys)
    .bind(&rows.kinds)
    .bind(&rows.dues)
    .bind(&rows.minutes_before)
    .bind(sms)
    .bind(zalo)
    .bind(email)
    .fetch_one(conn)
    .await
}

/// Claims `cells` of the clinician's time for a consultation; fails with a [`SLOT_CLAIM`]
/// violation when any of them is claimed already. `cells` is never empty (a slot is at least
/// one cell long).
pub async fn insert_claims(
    conn: Conn<'_>,
    clinician: ClinicianId,
    cells: Range<i64>,
    consultation: ConsultationId,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => {
        let mut q =
            sqlx::QueryBuilder::new("INSERT INTO slot_claims (clinician_id, cell, consultation_id) ");
        q.push_values(cells, |mut v, cell| {
            v.push_bind(clinician).push_bind(cell).push_bind(consultation);
        });
        q.build().execute(&mut *c).await.map(|_| ())
    })
}

/// Frees every cell a consultation claims.
pub async fn delete_claims(
    conn: Conn<'_>,
    consultation: ConsultationId,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query("DELETE FROM slot_claims WHERE consultation_id = $1")
        .bind(consultation)
        .execute(&mut *c)
        .await
        .map(|_| ()))
}

/// One life-cycle event, as the service names it (`held`, `confirm`, `reschedule`, …).
pub struct NewEvent<'a> {
    pub consultation: ConsultationId,
    pub at: DateTime<Utc>,
    pub actor: &'a str,
    pub action: &'a str,
    pub detail: &'a str,
}

pub async fn insert_event(conn: Conn<'_>, e: &NewEvent<'_>) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "INSERT INTO consultation_events (consultation_id, occurred_at, actor, action, detail)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(e.consultation)
    .bind(e.at)
    .bind(e.actor)
    .bind(e.action)
    .bind(e.detail)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// Marks expired the clinician's holds past `now` that overlap `[start, end)`, returning them.
pub async fn expire_overlapping_holds(
    conn: Conn<'_>,
    clinician: ClinicianId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<ConsultationId>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar::<_, ConsultationId>(
        "UPDATE consultations SET status = $5, updated_at = $1, version = version + 1
         WHERE clinician_id = $2 AND status = $6 AND hold_expires_at <= $1
           AND start_at < $3 AND end_at > $4
         RETURNING id",
    )
    .bind(now)
    .bind(clinician)
    .bind(end)
    .bind(start)
    .bind(Status::Expired)
    .bind(Status::Held)
    .fetch_all(&mut *c)
    .await)
}

/// Marks expired up to `limit` holds past `now`, returning them; their claims are the caller's
/// to delete, in the same transaction, after this (see [`crate::scheduling::booking`] on why the
/// order matters).
///
/// The engines differ. On PostgreSQL the holds are picked `FOR UPDATE SKIP LOCKED`: a hold whose
/// row another transaction holds locked (a confirm, a cancel or a reschedule in flight) is left
/// to the next sweep, when its outcome is committed and the predicate sees it; the sweeper never
/// waits on a request, and two nodes sweeping at once never wait on each other. SQLite has no row
/// locks and needs none: its write transaction (`BEGIN IMMEDIATE`) runs alone.
pub async fn expire_lapsed_holds(
    conn: Conn<'_>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<ConsultationId>, sqlx::Error> {
    macro_rules! expire {
        ($lock:literal) => {
            concat!(
                "UPDATE consultations SET status = $2, updated_at = $1, version = version + 1
                 WHERE id IN (SELECT id FROM consultations
                              WHERE status = $3 AND hold_expires_at <= $1
                              ORDER BY id LIMIT $4",
                $lock,
                ")
                   AND status = $3 AND hold_expires_at <= $1
                 RETURNING id"
            )
        };
    }
    let sql = match conn.engine() {
        Engine::Postgres => expire!(" FOR UPDATE SKIP LOCKED"),
        Engine::Sqlite => expire!(""),
    };
    on_conn!(conn, c => sqlx::query_scalar::<_, ConsultationId>(sql)
        .bind(now)
        .bind(Status::Expired)
        .bind(Status::Held)
        .bind(limit)
        .fetch_all(&mut *c)
        .await)
}

/// Frees every cell that `consultations` claim.
pub async fn delete_claims_of(
    conn: Conn<'_>,
    consultations: &[ConsultationId],
) -> Result<(), sqlx::Error> {
    if consultations.is_empty() {
        return Ok(());
    }
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new("DELETE FROM slot_claims WHERE consultation_id IN (");
        let mut ids = q.separated(", ");
        for id in consultations {
            ids.push_bind(*id);
        }
        q.push(")");
        q.build().execute(&mut *c).await.map(|_| ())
    })
}

/// Namespaces (first key) of the PostgreSQL advisory locks on a booker's and a patient's holds,
/// so they meet no other lock.
const LOCK_HOLDS_BY: i32 = 0x486F_6C01;
const LOCK_HOLDS_OF: i32 = 0x486F_6C02;

/// Keeps every other new hold by `account` or for `patient` out until the caller's transaction
/// ends, so that counting the holds standing and adding one are a single step: two holds at
/// one below the cap cannot both see room for themselves.
///
/// The engines differ: PostgreSQL takes transaction-scoped advisory locks, the booker's first and
/// then the patient's (every hold takes them in that order, so no two wait for each other in a
/// cycle), and holds by other bookers for other patients go on in parallel; SQLite has no such
/// locks and needs none, since the write transaction (`BEGIN IMMEDIATE`) already holds the
/// database's one write lock from before the count.
pub async fn lock_holds(
    conn: Conn<'_>,
    account: AccountId,
    patient: PatientId,
) -> Result<(), sqlx::Error> {
    match conn {
        Conn::Postgres(c) => {
            for (space, key) in [(LOCK_HOLDS_BY, account.0), (LOCK_HOLDS_OF, patient.0)] {
                // The two-key form takes two int4: the id is folded into one (a collision only
                // makes two bookers share a lock, never lets a hold past its cap).
                sqlx::query("SELECT pg_advisory_xact_lock($1, hashint8($2))")
                    .bind(space)
                    .bind(key)
                    .execute(&mut *c)
                    .await?;
            }
            Ok(())
        }
        Conn::Sqlite(_) => Ok(()),
    }
}

/// How many live holds (held, not past their expiry at `now`) `account` made and `patient` has.
#[derive(Clone, Copy, Debug, sqlx::FromRow)]
pub struct HoldsStanding {
    pub by_account: i64,
    pub of_patient: i64,
}

pub async fn holds_standing(
    conn: Conn<'_>,
    account: AccountId,
    patient: PatientId,
    now: DateTime<Utc>,
) -> Result<HoldsStanding, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, HoldsStanding>(
        "SELECT
           (SELECT COUNT(*) FROM consultations
             WHERE booked_by = $1 AND status = $3 AND hold_expires_at > $4) AS by_account,
           (SELECT COUNT(*) FROM consultations
             WHERE patient_id = $2 AND status = $3 AND hold_expires_at > $4) AS of_patient",
    )
    .bind(account)
    .bind(patient)
    .bind(Status::Held)
    .bind(now)
    .fetch_one(&mut *c)
    .await)
}

/// The consultation as stored (a hold past its expiry still reads `held`).
pub async fn get(conn: Conn<'_>, id: ConsultationId) -> Result<Option<Consultation>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, Consultation>(concat!(
        "SELECT ",
        consultation_columns!(),
        " FROM consultations WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *c)
    .await)
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

/// Consultations matching `f`, by start (as stored, like [`get`]).
pub async fn list(
    conn: Conn<'_>,
    f: &ConsultationFilter,
) -> Result<Vec<Consultation>, sqlx::Error> {
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(concat!(
            "SELECT ",
            consultation_columns!(),
            " FROM consultations c WHERE 1 = 1"
        ));
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
            q.push(" AND status = ").push_bind(v);
        }
        if let Some(v) = f.from {
            q.push(" AND start_at >= ").push_bind(v);
        }
        if let Some(v) = f.to {
            q.push(" AND start_at < ").push_bind(v);
        }
        q.push(" ORDER BY start_at, id LIMIT ").push_bind(f.limit);
        q.push(" OFFSET ").push_bind(f.offset);
        q.build_query_as::<Consultation>().fetch_all(&mut *c).await
    })
}

/// The one column besides status, `updated_at` and `version` that a status change writes.
#[derive(Clone, Copy, Debug)]
pub enum Stamp<'a> {
    None,
    /// A confirmed hold no longer expires.
    ClearHold,
    /// `started_at` = now.
    Started,
    /// `ended_at` = now.
    Ended,
    CancelReason(&'a str),
}

/// A status change as the service decided it: from which statuses, to which, and when.
pub struct StatusChange<'a> {
    pub id: ConsultationId,
    pub to: Status,
    /// The statuses it is allowed from.
    pub from: &'a [Status],
    pub stamp: Stamp<'a>,
    /// Revoke every join token issued so far (the call can no longer be joined).
    pub revoke_tokens: bool,
    /// Only when the consultation starts at or before this instant.
    pub starts_by: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// Applies `change` if the consultation is in one of its `from` statuses, and is not a hold past
/// its expiry; returns the changed consultation, or `None` when nothing matched.
pub async fn change_status(
    conn: Conn<'_>,
    change: &StatusChange<'_>,
) -> Result<Option<Consultation>, sqlx::Error> {
    let now = change.now;
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new("UPDATE consultations SET status = ");
        q.push_bind(change.to);
        q.push(", updated_at = ").push_bind(now);
        q.push(", version = version + 1");
        match change.stamp {
            Stamp::None => {}
            Stamp::ClearHold => {
                q.push(", hold_expires_at = NULL");
            }
            Stamp::Started => {
                q.push(", started_at = ").push_bind(now);
            }
            Stamp::Ended => {
                q.push(", ended_at = ").push_bind(now);
            }
            Stamp::CancelReason(reason) => {
                q.push(", cancel_reason = ").push_bind(reason);
            }
        }
        if change.revoke_tokens {
            q.push(", access_version = access_version + 1");
        }
        q.push(" WHERE id = ").push_bind(change.id);
        push_live_in(&mut q, change.from, now);
        if let Some(by) = change.starts_by {
            q.push(" AND start_at <= ").push_bind(by);
        }
        q.push(concat!(" RETURNING ", consultation_columns!()));
        q.build_query_as::<Consultation>().fetch_optional(&mut *c).await
    })
}

/// Moves a consultation to another time (and perhaps clinician) if it is in one of the `from`
/// statuses and not a hold past its expiry; its claims are the caller's to move.
pub async fn move_consultation(
    conn: Conn<'_>,
    id: ConsultationId,
    clinician: ClinicianId,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    from: &[Status],
    now: DateTime<Utc>,
) -> Result<Option<Consultation>, sqlx::Error> {
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new("UPDATE consultations SET clinician_id = ");
        q.push_bind(clinician);
        // Another clinician: every join token issued so far is revoked (the old clinician's for
        // good; the others ask for a new one). A move in time only keeps them: joining checks
        // the consultation's current window anyway.
        q.push(", access_version = access_version + CASE WHEN clinician_id = ");
        q.push_bind(clinician).push(" THEN 0 ELSE 1 END");
        q.push(", start_at = ").push_bind(start);
        q.push(", end_at = ").push_bind(end);
        // A delay announced for the old time says nothing about the new one.
        q.push(", running_late_minutes = NULL");
        q.push(", updated_at = ").push_bind(now);
        q.push(", version = version + 1 WHERE id = ").push_bind(id);
        push_live_in(&mut q, from, now);
        q.push(concat!(" RETURNING ", consultation_columns!()));
        q.build_query_as::<Consultation>().fetch_optional(&mut *c).await
    })
}

/// Sets the delay of booked consultation `id` (`None`: on time again); `None` when it is not
/// booked.
pub async fn set_running_late(
    conn: Conn<'_>,
    id: ConsultationId,
    minutes: Option<i32>,
    now: DateTime<Utc>,
) -> Result<Option<Consultation>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, Consultation>(concat!(
        "UPDATE consultations SET running_late_minutes = $2, updated_at = $3,
                version = version + 1
         WHERE id = $1 AND status = $4 RETURNING ",
        consultation_columns!()
    ))
    .bind(id)
    .bind(minutes)
    .bind(now)
    .bind(Status::Booked)
    .fetch_optional(&mut *c)
    .await)
}

/// ` AND status IN (from…)`, and not a hold past its expiry at `now` (which reads as expired
/// before the sweeper has marked it so).
fn push_live_in<DB>(q: &mut sqlx::QueryBuilder<DB>, from: &[Status], now: DateTime<Utc>)
where
    DB: sqlx::Database,
    for<'t> Status: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> DateTime<Utc>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    q.push(" AND status IN (");
    let mut list = q.separated(", ");
    for s in from {
        list.push_bind(*s);
    }
    q.push(") AND NOT (status = ").push_bind(Status::Held);
    q.push(" AND hold_expires_at <= ").push_bind(now).push(")");
}

/// One of a consultation's recorded life-cycle events.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Event {
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// A consultation's events, oldest first.
pub async fn events(conn: Conn<'_>, id: ConsultationId) -> Result<Vec<Event>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, Event>(
        "SELECT occurred_at, actor, action, detail FROM consultation_events
         WHERE consultation_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut *c)
    .await)
}
