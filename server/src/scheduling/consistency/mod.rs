//! The consistency check behind `telehealth check`: do the slot claims agree with the
//! consultations' states, everywhere in the database?
//!
//! What must hold (see [`crate::scheduling::booking`] for how every write keeps it): a held,
//! booked or in-progress consultation claims exactly the five-minute cells of its time with its
//! own clinician; an expired, cancelled, completed or no-show one claims nothing; and no claim
//! names a consultation that does not exist. A live consultation short of cells can be booked
//! over (a double booking); a dead one holding cells blocks its slot for everybody, for ever.
//!
//! The scan reads consultations a page at a time by id and, beside each page, streams the claims
//! of the same id range in id order, so memory stays bounded by one page however large the
//! database is; claims naming ids between or after the consultations read are the orphans. Each
//! page is read in one snapshot (PostgreSQL `REPEATABLE READ`, a SQLite read transaction), so a
//! consultation moved while the check runs is never seen half moved; the check writes nothing.

pub mod store;

use std::fmt;

use crate::domain::consultation::Status;
use crate::domain::time;
use crate::storage::{Db, Tx};
use store::{Claim, Consultation};

/// Consultations read per page: a few hundred kilobytes with their claims.
pub const PAGE: i64 = 1000;

/// One disagreement between a consultation's state and its claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The consultation id the claims name (which may not exist: see [`Wrong::NoConsultation`]).
    pub consultation: i64,
    /// Its stored status; `None` when there is no such consultation.
    pub status: Option<Status>,
    pub wrong: Wrong,
}

/// What is wrong with a consultation's claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrong {
    /// A live consultation claims only `claimed` of the `expected` cells of its time.
    MissingCells { claimed: u64, expected: u64 },
    /// A live consultation claims cells that are not its own: another clinician's, or outside
    /// its time.
    ForeignCells { count: u64 },
    /// A consultation that is no longer live still claims cells.
    ClaimsWhileDead { count: u64 },
    /// Claims name a consultation that does not exist.
    NoConsultation { count: u64 },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.consultation;
        let status = self.status.map(Status::as_str).unwrap_or("missing");
        match self.wrong {
            Wrong::MissingCells { claimed, expected } => write!(
                f,
                "consultation {id} ({status}): claims {claimed} of the {expected} cells of its \
                 time, so its slot can be booked again"
            ),
            Wrong::ForeignCells { count } => write!(
                f,
                "consultation {id} ({status}): claims {count} cells that are not its own \
                 (another clinician's, or outside its time)"
            ),
            Wrong::ClaimsWhileDead { count } => write!(
                f,
                "consultation {id} ({status}): still claims {count} cells, which nobody else can \
                 book; a consultation that is {status} claims none"
            ),
            Wrong::NoConsultation { count } => write!(
                f,
                "consultation {id} (missing): {count} cells are claimed for a consultation that \
                 does not exist"
            ),
        }
    }
}

/// What a check went through and how much it found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub consultations: u64,
    pub claims: u64,
    pub findings: u64,
}

/// Scans the whole database, `page` consultations at a time, handing each finding to `found` as
/// it is made (nothing is collected, so the caller decides what to keep).
pub async fn check(
    db: &Db,
    page: i64,
    mut found: impl FnMut(&Finding),
) -> Result<Summary, sqlx::Error> {
    let page = page.max(1);
    let mut summary = Summary::default();
    let mut after = i64::MIN;
    loop {
        let mut tx = snapshot(db).await?;
        let consultations = store::consultations_after(tx.conn(), after, page).await?;
        let last_page = (consultations.len() as i64) < page;
        // The last page also takes every claim beyond the last consultation: orphans all.
        let up_to = match consultations.last() {
            Some(c) if !last_page => c.id.0,
            _ => i64::MAX,
        };
        let mut walk = Walk {
            page: &consultations,
            next: 0,
            current: Tally::default(),
            orphans: None,
            summary: &mut summary,
            found: &mut found,
        };
        store::each_claim(tx.conn(), after, up_to, |claim| walk.claim(claim)).await?;
        walk.finish();
        tx.commit().await?;
        if last_page {
            return Ok(summary);
        }
        after = up_to;
    }
}

/// A read transaction with one snapshot for all its statements, bounded in time like every
/// other (see [`crate::storage::Bounded`]).
async fn snapshot(db: &Db) -> Result<Tx, sqlx::Error> {
    Ok(match db {
        // Deferred: a read transaction, whose snapshot (WAL) holds from its first read to its end,
        // and which takes no write lock from the server.
        Db::Sqlite(pool) => {
            let guard = pool.guard();
            let wait = guard.limits().acquire + guard.limits().answer;
            Tx::Sqlite(guard.bound(guard.within(wait, pool.begin()).await?))
        }
        Db::Postgres(pool) => {
            let guard = pool.guard();
            let wait = guard.limits().acquire + guard.limits().answer;
            let begin = pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
            Tx::Postgres(guard.bound(guard.within(wait, begin).await?))
        }
    })
}

/// The claims counted so far for the consultation being walked.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    own: u64,
    foreign: u64,
}

/// One page of consultations, walked alongside the claims of its id range (both in id order).
struct Walk<'a, F: FnMut(&Finding)> {
    page: &'a [Consultation],
    /// The consultation whose claims come next, as an index into `page`.
    next: usize,
    current: Tally,
    /// Consecutive claims naming one consultation id that is not in the page: (id, count).
    orphans: Option<(i64, u64)>,
    summary: &'a mut Summary,
    found: &'a mut F,
}

impl<F: FnMut(&Finding)> Walk<'_, F> {
    fn claim(&mut self, claim: Claim) {
        self.summary.claims += 1;
        if let Some((id, _)) = self.orphans
            && id != claim.consultation_id
        {
            self.flush_orphans();
        }
        while self
            .page
            .get(self.next)
            .is_some_and(|c| c.id.0 < claim.consultation_id)
        {
            self.finish_consultation();
        }
        match self.page.get(self.next) {
            Some(c) if c.id.0 == claim.consultation_id => {
                let cells = time::cells(c.start_at, c.end_at);
                if claim.clinician_id == c.clinician_id && cells.contains(&claim.cell) {
                    self.current.own += 1;
                } else {
                    self.current.foreign += 1;
                }
            }
            _ => {
                let (_, count) = self.orphans.get_or_insert((claim.consultation_id, 0));
                *count += 1;
            }
        }
    }

    fn finish(mut self) {
        self.flush_orphans();
        while self.next < self.page.len() {
            self.finish_consultation();
        }
    }

    /// Judges `page[next]` by the claims counted for it, and moves on to the next one.
    fn finish_consultation(&mut self) {
        let Some(c) = self.page.get(self.next) else {
            return;
        };
        let tally = std::mem::take(&mut self.current);
        self.next += 1;
        self.summary.consultations += 1;
        let mut wrong = Vec::new();
        if c.status.is_live() {
            let cells = time::cells(c.start_at, c.end_at);
            let expected = u64::try_from(cells.end - cells.start).unwrap_or(0);
            if tally.own < expected {
                wrong.push(Wrong::MissingCells {
                    claimed: tally.own,
                    expected,
                });
            }
            if tally.foreign > 0 {
                wrong.push(Wrong::ForeignCells {
                    count: tally.foreign,
                });
            }
        } else if tally.own + tally.foreign > 0 {
            wrong.push(Wrong::ClaimsWhileDead {
                count: tally.own + tally.foreign,
            });
        }
        for wrong in wrong {
            self.report(Finding {
                consultation: c.id.0,
                status: Some(c.status),
                wrong,
            });
        }
    }

    fn flush_orphans(&mut self) {
        if let Some((id, count)) = self.orphans.take() {
            self.report(Finding {
                consultation: id,
                status: None,
                wrong: Wrong::NoConsultation { count },
            });
        }
    }

    fn report(&mut self, finding: Finding) {
        self.summary.findings += 1;
        (self.found)(&finding);
    }
}
