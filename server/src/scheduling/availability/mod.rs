//! A clinician's weekly rules and dated exceptions: how many they may have, a weekly template
//! given to many clinicians at once, and loading them as domain values. Their SQL is in
//! [`store`].

pub mod store;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use super::directory::{self, Clinician};
use super::{Result, SchedulingError};
use crate::domain::availability::{
    Exception, ExceptionKind, IsoWeekday, Session, Slot, WeeklyRule, slots_on, times_overlap,
};
use crate::domain::code::ErrorCode;
use crate::domain::ids::{ClinicianId, ConsultationId, ExceptionId, FacilityId, RuleId};
use crate::domain::time::{self, Zone};
use crate::journal::{About, Journal};
use crate::storage::{Conn, Db};
use store::LiveConsultation;

pub(crate) use store::DayRow;
pub use store::{ExceptionRow, RuleRow};

/// Upper bound on rules per clinician: enough for any real week, small enough to stay cheap.
pub const MAX_RULES_PER_CLINICIAN: i64 = 50;

/// Adds a weekly rule; its audit event (and idempotent answer) commit with it.
pub async fn create_rule(
    db: &Db,
    clinician: ClinicianId,
    rule: &WeeklyRule,
    journal: &Journal,
) -> Result<RuleRow> {
    let mut tx = db.begin().await?;
    if store::count_rules(tx.conn(), clinician).await? >= MAX_RULES_PER_CLINICIAN {
        return Err(SchedulingError::conflict(
            ErrorCode::TooManyRules,
            format!(
                "a clinician may have at most {MAX_RULES_PER_CLINICIAN} weekly rules; delete one first"
            ),
        ));
    }
    refuse_overlap(tx.conn(), clinician, rule, None).await?;
    let row = store::insert_rule(tx.conn(), clinician, rule, time::now()).await?;
    journal
        .write(tx.conn(), About::record(row.id), &row)
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// Replaces a weekly rule, refused when the new one overlaps another or would leave booked
/// consultations outside every session; its audit event commits with it.
pub async fn update_rule(
    db: &Db,
    clinician: ClinicianId,
    rule: RuleId,
    new: &WeeklyRule,
    journal: &Journal,
) -> Result<RuleRow> {
    let zone = super::directory::get_clinician(db, clinician).await?.zone();
    let now = time::now();
    let ahead = bookable_from(now);
    let mut tx = db.begin().await?;
    refuse_overlap(tx.conn(), clinician, new, Some(rule)).await?;
    let before = off_slot(tx.conn(), clinician, zone, ahead, now).await?;
    let Some(row) = store::update_rule(tx.conn(), clinician, rule, new).await? else {
        return Err(SchedulingError::NotFound("availability rule"));
    };
    refuse_stranding(tx.conn(), clinician, zone, ahead, now, &before).await?;
    journal
        .write(tx.conn(), About::record(row.id), &row)
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// At most this many consultations of one clinician are checked against a change to their
/// availability (a full year's diary and more); at most [`MAX_NAMED`] are named in a refusal.
const MAX_CHECKED: i64 = 20_000;
pub const MAX_NAMED: usize = 200;

/// The held and booked consultations of `clinician` starting in `range` that no slot of their
/// local day offers, as the availability reads in this transaction.
async fn off_slot(
    mut conn: Conn<'_>,
    clinician: ClinicianId,
    zone: Zone,
    range: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<Vec<LiveConsultation>> {
    let live =
        store::live_consultations(conn.reborrow(), clinician, range, now, MAX_CHECKED).await?;
    let (Some(first), Some(last)) = (live.first(), live.last()) else {
        return Ok(Vec::new());
    };
    let (from, to) = (
        zone.local_date(first.start_at),
        zone.local_date(last.start_at),
    );
    let (mut rules, mut exceptions) = (Vec::new(), Vec::new());
    for r in store::rows_between(conn, &[clinician], from, to).await? {
        match r.into_domain() {
            Some(Either::Rule(rule)) => rules.push(rule),
            Some(Either::Exception(ex)) => exceptions.push(ex),
            None => {}
        }
    }
    let mut days: HashMap<NaiveDate, Vec<Slot>> = HashMap::new();
    Ok(live
        .into_iter()
        .filter(|c| {
            let date = zone.local_date(c.start_at);
            let slots = days
                .entry(date)
                .or_insert_with(|| slots_on(date, zone, &rules, &exceptions));
            !slots.iter().any(|s| s.start == c.start_at)
        })
        .collect())
}

/// Refuses a change (made in this transaction, not yet committed) that leaves consultations
/// outside every session that were not already (`before`).
async fn refuse_stranding(
    conn: Conn<'_>,
    clinician: ClinicianId,
    zone: Zone,
    range: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    before: &[LiveConsultation],
) -> Result<()> {
    let already: HashSet<ConsultationId> = before.iter().map(|c| c.id).collect();
    let stranded: Vec<_> = off_slot(conn, clinician, zone, range, now)
        .await?
        .into_iter()
        .filter(|c| !already.contains(&c.id))
        .collect();
    if stranded.is_empty() {
        Ok(())
    } else {
        Err(SchedulingError::Strands(stranded))
    }
}

/// Every start a booking made from `now` on can have: what a change to a weekly rule can affect.
fn bookable_from(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        now,
        now + Duration::days(super::booking::MAX_DAYS_AHEAD + 1),
    )
}

/// The span of consultations a change on local `date` can affect: the date, whatever the zone,
/// from now on.
fn around(date: NaiveDate, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let midnight = date.and_time(chrono::NaiveTime::MIN).and_utc();
    (
        (midnight - Duration::hours(14)).max(now),
        (midnight + Duration::hours(38)).max(now),
    )
}

/// Refuses `rule` when it overlaps another weekly rule of `clinician` (other than `except`, the
/// one it replaces), naming the other.
async fn refuse_overlap(
    conn: Conn<'_>,
    clinician: ClinicianId,
    rule: &WeeklyRule,
    except: Option<RuleId>,
) -> Result<()> {
    let existing = store::rules(conn, clinician).await?;
    match first_overlap(rule, &existing, except) {
        None => Ok(()),
        Some(other) => Err(SchedulingError::Overlaps {
            message: format!(
                "overlaps this clinician's {}; change or delete that one instead",
                describe_rule(other)
            ),
            clash: clash_with(other),
        }),
    }
}

/// The first of `existing` (other than `except`) that `rule` overlaps.
fn first_overlap<'a>(
    rule: &WeeklyRule,
    existing: &'a [RuleRow],
    except: Option<RuleId>,
) -> Option<&'a RuleRow> {
    existing.iter().filter(|o| Some(o.id) != except).find(
        |o| matches!(RuleRow::clone(o).into_domain(), Some(Either::Rule(e)) if rule.overlaps(&e)),
    )
}

/// `weekly session 08:00–12:00 on weekday 1 (rule 3)`, as a refusal names a stored rule.
fn describe_rule(r: &RuleRow) -> String {
    format!(
        "weekly session {}–{} on weekday {} (rule {})",
        r.start_time.format("%H:%M"),
        r.end_time.format("%H:%M"),
        r.weekday,
        r.id.0,
    )
}

/// The `details.clash` of a `sessions_overlap` refusal about stored rule `r`.
fn clash_with(r: &RuleRow) -> serde_json::Value {
    serde_json::json!({
        "rule_id": r.id,
        "weekday": r.weekday,
        "start_time": r.start_time,
        "end_time": r.end_time,
        "valid_from": r.valid_from,
        "valid_until": r.valid_until,
    })
}

/// What applying a weekly template wrote.
#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    /// How many rules were inserted: one per rule of the template per clinician.
    pub created: usize,
    /// How many clinicians they went to.
    pub clinicians: usize,
    /// The inserted rules, by clinician (in the order asked), weekday and start.
    pub rules: Vec<RuleRow>,
}

/// Gives each of `clinicians`, all active clinicians of `facility`, every rule of `rules` (which
/// do not overlap one another: the API checked), in one transaction with an audit event per
/// rule: either every clinician gets them all, or nothing is written. Refused when a clinician
/// is not an active one of the facility, would pass [`MAX_RULES_PER_CLINICIAN`], or has a rule
/// one of them overlaps (named, with whose it is).
///
/// Unlike a change or deletion, adding sessions only adds slots: it can leave no booking
/// outside every session, so no stranding check is made.
///
/// The events commit with the rules; the trail chains staged events a batch at a time, so those
/// of a template of thousands of rules read in it a moment after the answer, not all with it.
pub async fn apply_template(
    db: &Db,
    facility: FacilityId,
    clinicians: &[ClinicianId],
    rules: &[WeeklyRule],
    journal: &Journal,
) -> Result<Applied> {
    let mut tx = db.begin().await?;
    let found: HashMap<ClinicianId, Clinician> =
        directory::store::clinicians_by_id(tx.conn(), clinicians)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
    for id in clinicians {
        match found.get(id) {
            Some(c) if c.facility_id == facility && c.active => {}
            Some(c) if c.facility_id == facility => {
                return Err(SchedulingError::invalid(
                    "clinician_ids",
                    format!(
                        "clinician {id} ({}) is no longer active; leave them out",
                        c.full_name
                    ),
                ));
            }
            _ => {
                return Err(SchedulingError::invalid(
                    "clinician_ids",
                    format!("clinician {id} is not a clinician of this facility"),
                ));
            }
        }
    }
    let mut existing: HashMap<ClinicianId, Vec<RuleRow>> = HashMap::new();
    for row in store::rules_of(tx.conn(), clinicians).await? {
        existing.entry(row.clinician_id).or_default().push(row);
    }
    let none = Vec::new();
    for id in clinicians {
        let theirs = existing.get(id).unwrap_or(&none);
        // Checked above: every id is in `found`.
        let name = found.get(id).map_or("", |c| c.full_name.as_str());
        let total = theirs.len() + rules.len();
        if total > MAX_RULES_PER_CLINICIAN as usize {
            return Err(SchedulingError::conflict(
                ErrorCode::TooManyRules,
                format!(
                    "{name} (clinician {id}) has {} weekly rules, and {} more would make {total}; \
                     a clinician may have at most {MAX_RULES_PER_CLINICIAN}: delete some first, or \
                     leave them out",
                    theirs.len(),
                    rules.len(),
                ),
            ));
        }
        for (i, rule) in rules.iter().enumerate() {
            if let Some(other) = first_overlap(rule, theirs, None) {
                let mut clash = clash_with(other);
                clash["clinician_id"] = serde_json::json!(id);
                return Err(SchedulingError::Overlaps {
                    message: format!(
                        "rules[{i}] overlaps the {} of {name} (clinician {id}); change or delete \
                         that one, or leave them out",
                        describe_rule(other)
                    ),
                    clash,
                });
            }
        }
    }
    let wanted: Vec<(ClinicianId, &WeeklyRule)> = clinicians
        .iter()
        .flat_map(|c| rules.iter().map(move |r| (*c, r)))
        .collect();
    let mut rows = store::insert_rules(tx.conn(), &wanted, time::now()).await?;
    // The order of a multi-row INSERT's RETURNING is not promised: sort into the order asked.
    let position: HashMap<ClinicianId, usize> = clinicians
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, i))
        .collect();
    rows.sort_by_key(|r| {
        (
            position.get(&r.clinician_id).copied(),
            r.weekday,
            r.start_time,
            r.id,
        )
    });
    let applied = Applied {
        created: rows.len(),
        clinicians: clinicians.len(),
        rules: rows,
    };
    let records: Vec<About> = applied.rules.iter().map(|r| About::record(r.id)).collect();
    journal.write_each(tx.conn(), records, &applied).await?;
    tx.commit().await?;
    Ok(applied)
}

pub async fn list_rules(db: &Db, clinician: ClinicianId) -> Result<Vec<RuleRow>> {
    let mut c = db.acquire().await?;
    Ok(store::rules(c.conn(), clinician).await?)
}

/// Deletes a weekly rule; its audit event (and idempotent answer, which has no body) commit
/// with the deletion.
pub async fn delete_rule(
    db: &Db,
    clinician: ClinicianId,
    rule: RuleId,
    journal: &Journal,
) -> Result<()> {
    let zone = super::directory::get_clinician(db, clinician).await?.zone();
    let now = time::now();
    let ahead = bookable_from(now);
    let mut tx = db.begin().await?;
    let before = off_slot(tx.conn(), clinician, zone, ahead, now).await?;
    if store::delete_rule(tx.conn(), clinician, rule).await? == 0 {
        return Err(SchedulingError::NotFound("availability rule"));
    }
    refuse_stranding(tx.conn(), clinician, zone, ahead, now, &before).await?;
    journal.write(tx.conn(), About::record(rule), &()).await?;
    tx.commit().await?;
    Ok(())
}

/// Upper bound on dated exceptions per clinician, a few years of leave and extra sessions.
pub const MAX_EXCEPTIONS_PER_CLINICIAN: i64 = 2000;

pub async fn create_exception(
    db: &Db,
    clinician: ClinicianId,
    exception: &Exception,
    note: &str,
    journal: Option<&Journal>,
) -> Result<ExceptionRow> {
    let zone = super::directory::get_clinician(db, clinician).await?.zone();
    let mut tx = db.begin().await?;
    if store::count_exceptions(tx.conn(), clinician).await? >= MAX_EXCEPTIONS_PER_CLINICIAN {
        return Err(SchedulingError::conflict(
            ErrorCode::TooManyExceptions,
            format!(
                "a clinician may have at most {MAX_EXCEPTIONS_PER_CLINICIAN} dated exceptions; delete old ones first"
            ),
        ));
    }
    let now = time::now();
    let span = around(exception.date(), now);
    let mut before = Vec::new();
    match exception {
        Exception::Extra { date, session } => {
            refuse_extra_overlap(tx.conn(), clinician, *date, session).await?;
        }
        Exception::Leave { .. } => {
            before = off_slot(tx.conn(), clinician, zone, span, now).await?;
        }
    }
    let row = store::insert_exception(tx.conn(), clinician, exception, note, now).await?;
    if matches!(exception, Exception::Leave { .. }) {
        refuse_stranding(tx.conn(), clinician, zone, span, now, &before).await?;
    }
    // None: the demo's seed, which is no request.
    if let Some(journal) = journal {
        journal
            .write(tx.conn(), About::record(row.id), &row)
            .await?;
    }
    tx.commit().await?;
    Ok(row)
}

pub async fn list_exceptions(
    db: &Db,
    clinician: ClinicianId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<ExceptionRow>> {
    let mut c = db.acquire().await?;
    Ok(store::exceptions(c.conn(), clinician, from, to).await?)
}

/// Deletes a dated exception, with its audit event (see [`delete_rule`]).
pub async fn delete_exception(
    db: &Db,
    clinician: ClinicianId,
    id: ExceptionId,
    journal: &Journal,
) -> Result<()> {
    let zone = super::directory::get_clinician(db, clinician).await?.zone();
    let now = time::now();
    let mut tx = db.begin().await?;
    let Some(date) = store::exception_date(tx.conn(), clinician, id).await? else {
        return Err(SchedulingError::NotFound("availability exception"));
    };
    // Deleting an extra session can strand what was booked in it (deleting leave cannot).
    let span = around(date, now);
    let before = off_slot(tx.conn(), clinician, zone, span, now).await?;
    if store::delete_exception(tx.conn(), clinician, id).await? == 0 {
        return Err(SchedulingError::NotFound("availability exception"));
    }
    refuse_stranding(tx.conn(), clinician, zone, span, now, &before).await?;
    journal.write(tx.conn(), About::record(id), &()).await?;
    tx.commit().await?;
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
    let mut c = db.acquire().await?;
    for r in store::rows_between(c.conn(), clinicians, from, to).await? {
        let clinician = r.clinician_id;
        match r.into_domain() {
            Some(Either::Rule(rule)) => out.rules.entry(clinician).or_default().push(rule),
            Some(Either::Exception(ex)) => out.exceptions.entry(clinician).or_default().push(ex),
            None => {}
        }
    }
    Ok(out)
}

/// The rules and exceptions of one clinician that bear on one local date, in a single round
/// trip: booking checks a slot against them on every request.
pub async fn load_day(
    db: &Db,
    clinician: ClinicianId,
    date: NaiveDate,
) -> Result<(Vec<WeeklyRule>, Vec<Exception>)> {
    let mut c = db.acquire().await?;
    let mut rules = Vec::new();
    let mut exceptions = Vec::new();
    for r in store::day_rows(c.conn(), clinician, date).await? {
        match r.into_domain() {
            Some(Either::Rule(rule)) => rules.push(rule),
            Some(Either::Exception(ex)) => exceptions.push(ex),
            None => {}
        }
    }
    Ok((rules, exceptions))
}

pub(crate) enum Either {
    Rule(WeeklyRule),
    Exception(Exception),
}

impl DayRow {
    /// The domain value; rows were validated on the way in, so a bad row is skipped, not fatal.
    pub(crate) fn into_domain(self) -> Option<Either> {
        let session = |buffer: Option<i32>| {
            Session::new(
                self.start_time?,
                self.end_time?,
                u32::try_from(self.slot_minutes?).ok()?,
                u32::try_from(buffer?).ok()?,
            )
            .ok()
        };
        if self.source == "rule" {
            return Some(Either::Rule(WeeklyRule {
                weekday: IsoWeekday::new(i64::from(self.weekday?))?,
                session: session(self.buffer_minutes)?,
                valid_from: self.valid_from,
                valid_until: self.valid_until,
            }));
        }
        let date = self.on_date?;
        Some(Either::Exception(
            match ExceptionKind::parse(self.kind.as_deref()?)? {
                ExceptionKind::Leave => Exception::Leave {
                    date,
                    window: self.start_time.zip(self.end_time),
                },
                // An extra session stored without a buffer has none.
                ExceptionKind::Extra => Exception::Extra {
                    date,
                    session: session(Some(self.buffer_minutes.unwrap_or(0)))?,
                },
            },
        ))
    }
}

/// Refuses an extra session on `date` that overlaps another extra session of that date. (It may
/// lie over a weekly session: an on-call session with shorter slots during clinic hours is a
/// real thing, and the slots of both merge, the earliest kept.)
async fn refuse_extra_overlap(
    conn: Conn<'_>,
    clinician: ClinicianId,
    date: NaiveDate,
    session: &Session,
) -> Result<()> {
    for other in store::exceptions(conn, clinician, date, date).await? {
        let (ExceptionKind::Extra, Some(start), Some(end)) =
            (other.kind, other.start_time, other.end_time)
        else {
            continue;
        };
        if times_overlap((session.start(), session.end()), (start, end)) {
            return Err(SchedulingError::Overlaps {
                message: format!(
                    "overlaps this clinician's extra session {}–{} on {date} (exception {}); \
                     change or delete that one instead",
                    start.format("%H:%M"),
                    end.format("%H:%M"),
                    other.id.0,
                ),
                clash: serde_json::json!({
                    "exception_id": other.id,
                    "date": date,
                    "start_time": start,
                    "end_time": end,
                }),
            });
        }
    }
    Ok(())
}

impl RuleRow {
    /// The rule as a domain value (stored rules were validated on the way in).
    fn into_domain(self) -> Option<Either> {
        DayRow {
            source: "rule".into(),
            clinician_id: self.clinician_id,
            weekday: Some(self.weekday),
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            on_date: None,
            kind: None,
            start_time: Some(self.start_time),
            end_time: Some(self.end_time),
            slot_minutes: Some(self.slot_minutes),
            buffer_minutes: Some(self.buffer_minutes),
        }
        .into_domain()
    }
}
