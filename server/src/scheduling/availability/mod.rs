//! A clinician's weekly rules and dated exceptions: how many they may have, and loading them as
//! domain values. Their SQL is in [`store`].

pub mod store;

use std::collections::HashMap;

use chrono::NaiveDate;

use super::{Result, SchedulingError};
use crate::domain::availability::{Exception, ExceptionKind, IsoWeekday, Session, WeeklyRule};
use crate::domain::code::ErrorCode;
use crate::domain::ids::{ClinicianId, ExceptionId, RuleId};
use crate::domain::time;
use crate::journal::{About, Journal};
use crate::storage::Db;

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
    let row = store::insert_rule(tx.conn(), clinician, rule, time::now()).await?;
    journal
        .write(tx.conn(), About::record(row.id), &row)
        .await?;
    tx.commit().await?;
    Ok(row)
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
    let mut tx = db.begin().await?;
    if store::delete_rule(tx.conn(), clinician, rule).await? == 0 {
        return Err(SchedulingError::NotFound("availability rule"));
    }
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
    let mut tx = db.begin().await?;
    if store::count_exceptions(tx.conn(), clinician).await? >= MAX_EXCEPTIONS_PER_CLINICIAN {
        return Err(SchedulingError::conflict(
            ErrorCode::TooManyExceptions,
            format!(
                "a clinician may have at most {MAX_EXCEPTIONS_PER_CLINICIAN} dated exceptions; delete old ones first"
            ),
        ));
    }
    let row = store::insert_exception(tx.conn(), clinician, exception, note, time::now()).await?;
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
    let mut tx = db.begin().await?;
    if store::delete_exception(tx.conn(), clinician, id).await? == 0 {
        return Err(SchedulingError::NotFound("availability exception"));
    }
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
