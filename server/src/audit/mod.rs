//! The audit trail: who did what to which record, when, from where, and with what outcome.
//!
//! Append-only and tamper-evident: each event carries the SHA-256 of its own fields and of the
//! previous event, so changing or removing any event breaks every link after it, and
//! [`verify`] names the first broken one. The application has no path that updates or deletes
//! events, and the database refuses both with a trigger.
//!
//! Reads append through one writer task that commits events in batches (group commit): under
//! load many requests share one transaction, and each request still waits until its event is
//! durable before it answers. A write instead [`stage`]s its event in its own transaction (through
//! [`crate::journal`]), so no change commits without its event; the writer moves staged events
//! into the chain in its next batch, which the write asks for ([`AuditLog::flush`]) before it
//! answers. On PostgreSQL an advisory lock keeps the chain linear across server nodes. The SQL is
//! in [`store`].
//!
//! The chain shows that events agree with one another, not that none were cut off or that the
//! chain was not recomputed after a change: after each batch the writer hands the newest link to
//! [`checkpoint`], which signs it with a key kept outside the database and appends it to a log
//! outside it (and optionally ships it off the machine); `audit verify` checks the trail against
//! those checkpoints ([`checkpoint::verify_trail`]).

pub mod checkpoint;
mod event;
pub mod store;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::auth::AccountId;
use crate::domain::ids::PatientId;
use crate::storage::{Conn, Db};
use checkpoint::Checkpointer;
pub use event::{AuditQuery, Event, Outcome, Stored};
use store::Link;

/// The hash "before" the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Most events committed in one transaction.
const BATCH: usize = 256;
/// Events read per round trip while verifying.
const VERIFY_PAGE: i64 = 5000;
/// Most staged events chained in one batch.
const PENDING_BATCH: i64 = 1024;
/// How often the writer chains staged events when nothing asks it to.
const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The hash of an event: its fields, separated by a byte that cannot occur in them, and the
/// previous hash. The patients of a list read are covered too, as one more field that events
/// without them do not have (so events written before that field existed verify unchanged).
fn chain_hash(prev: &str, seq: i64, at: DateTime<Utc>, e: &StoredFields<'_>) -> String {
    let mut h = Sha256::new();
    let opt = |v: Option<String>| v.unwrap_or_default();
    for part in [
        prev.to_string(),
        seq.to_string(),
        at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        opt(e.actor_account_id.map(|a| a.to_string())),
        e.actor.to_string(),
        e.actor_role.to_string(),
        e.action.to_string(),
        e.record_type.to_string(),
        opt(e.record_id.map(str::to_string)),
        opt(e.patient_id.map(|p| p.to_string())),
        opt(e.client_addr.map(str::to_string)),
        e.outcome.to_string(),
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    if !e.patients.is_empty() {
        let list: Vec<String> = e.patients.iter().map(|p| p.to_string()).collect();
        h.update(format!("patients={}", list.join(",")).as_bytes());
        h.update([0x1f]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The hashed fields, borrowed from either a new or a stored event.
struct StoredFields<'a> {
    actor_account_id: Option<AccountId>,
    actor: &'a str,
    actor_role: &'a str,
    action: &'a str,
    record_type: &'a str,
    record_id: Option<&'a str>,
    patient_id: Option<PatientId>,
    /// Sorted ascending.
    patients: &'a [PatientId],
    client_addr: Option<&'a str>,
    outcome: &'a str,
}

impl<'a> From<&'a Event> for StoredFields<'a> {
    fn from(e: &'a Event) -> Self {
        StoredFields {
            actor_account_id: e.actor_account_id,
            actor: &e.actor,
            actor_role: &e.actor_role,
            action: &e.action,
            record_type: &e.record_type,
            record_id: e.record_id.as_deref(),
            patient_id: e.patient_id,
            patients: &e.patients,
            client_addr: e.client_addr.as_deref(),
            outcome: e.outcome.as_str(),
        }
    }
}

impl<'a> From<&'a Stored> for StoredFields<'a> {
    fn from(e: &'a Stored) -> Self {
        StoredFields {
            actor_account_id: e.actor_account_id,
            actor: &e.actor,
            actor_role: &e.actor_role,
            action: &e.action,
            record_type: &e.record_type,
            record_id: e.record_id.as_deref(),
            patient_id: e.patient_id,
            patients: &e.patients,
            client_addr: e.client_addr.as_deref(),
            outcome: &e.outcome,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the audit writer has stopped")]
    WriterGone,
    #[error("audit storage failed: {0}")]
    Storage(String),
}

/// What the writer is asked to do: append an event, or with none, chain the events staged so far
/// (see [`AuditLog::flush`]); either way, say when that is committed.
struct Request {
    event: Option<Event>,
    done: oneshot::Sender<Result<(), AuditError>>,
}

/// The handle requests use to append events.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Request>,
}

impl AuditLog {
    /// Starts the writer task for `db`; it hands each batch's newest link to `checkpoints`.
    pub fn start(db: Db, checkpoints: Checkpointer) -> (AuditLog, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Request>(4096);
        let task = tokio::spawn(writer(db, rx, checkpoints));
        (AuditLog { tx }, task)
    }

    /// Appends `event` and waits until it is committed.
    pub async fn record(&self, event: Event) -> Result<(), AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Request {
                event: Some(event),
                done,
            })
            .await
            .map_err(|_| AuditError::WriterGone)?;
        wait.await.map_err(|_| AuditError::WriterGone)?
    }

    /// Chains the events staged by writes that have committed ([`stage`]), and waits until that
    /// is committed. A write calls it before answering, so that its event is in the trail when the
    /// client hears back; the event is durable either way (it committed with the write), so a
    /// failure here loses nothing: the writer chains it on its next round.
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Request { event: None, done })
            .await
            .map_err(|_| AuditError::WriterGone)?;
        wait.await.map_err(|_| AuditError::WriterGone)?
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<Request>, checkpoints: Checkpointer) {
    // The trail as it stands at start is checkpointed at once: a trail from before checkpoints
    // existed is anchored from its first start with them, and events chained by other nodes or
    // by a writer that stopped before its checkpoint are covered too.
    match head(&db).await {
        Ok(Some((seq, hash))) => checkpoints.note(seq, hash),
        Ok(None) => {}
        Err(err) => tracing::warn!(error = %err, "audit head not read for a checkpoint"),
    }
    let mut batch: Vec<Request> = Vec::with_capacity(BATCH);
    // Staged events left by a crash, or by writes whose flush failed, are chained within this
    // long even when no request asks: the first tick is at once, on start.
    let mut tick = tokio::time::interval(DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            next = rx.recv() => match next {
                Some(first) => batch.push(first),
                None => break,
            },
            _ = tick.tick() => {}
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let events: Vec<&Event> = batch.iter().filter_map(|r| r.event.as_ref()).collect();
        let result = commit_batch(&db, &events).await;
        match &result {
            // The event fields may name a patient id but never health data; the error text is
            // the database's. Logged once per outage, not once a second.
            Err(err) if !failing => {
                tracing::error!(error = %err, events = events.len(), "audit append failed");
                failing = true;
            }
            Err(err) => tracing::debug!(error = %err, "audit append still failing"),
            Ok(_) if failing => {
                tracing::info!("audit appends work again");
                failing = false;
            }
            Ok(_) => {}
        }
        // Only after the commit: a checkpoint never names an event that could still roll back.
        if let Ok(Some((seq, hash))) = &result {
            checkpoints.note(*seq, hash.clone());
        }
        for Request { done, .. } in batch.drain(..) {
            let _ = done.send(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| AuditError::Storage(e.to_string())),
            );
        }
    }
}

/// The newest link of the chain.
async fn head(db: &Db) -> Result<Option<(i64, String)>, sqlx::Error> {
    let mut c = db.acquire().await?;
    store::last_link(c.conn()).await
}

/// Appends a batch, and the events staged so far, in a transaction of its own, and returns the
/// newest link it made. With nothing to append and nothing staged, no write transaction is
/// opened (the writer ticks every second).
async fn commit_batch(db: &Db, events: &[&Event]) -> Result<Option<(i64, String)>, sqlx::Error> {
    if events.is_empty() {
        let mut c = db.acquire().await?;
        if store::pending_count(c.conn()).await? == 0 {
            return Ok(None);
        }
    }
    let mut tx = db.begin().await?;
    let mut conn = tx.conn();
    store::lock_chain(conn.reborrow()).await?;
    let staged: Vec<(Event, DateTime<Utc>)> = store::take_pending(conn.reborrow(), PENDING_BATCH)
        .await?
        .into_iter()
        .map(store::PendingRow::into_event)
        .collect();
    let now = Utc::now().trunc_subsecs(3);
    let stamped: Vec<(&Event, DateTime<Utc>)> = staged
        .iter()
        .map(|(e, at)| (e, *at))
        .chain(events.iter().map(|e| (*e, now)))
        .collect();
    let head = link(conn, &stamped).await?;
    tx.commit().await?;
    Ok(head)
}

/// Stages `event` in the caller's write transaction: it commits with the write or not at all,
/// and the writer moves it into the chain moments later (in the order staged). Unlike
/// [`append`], staging takes no lock, so concurrent writes do not wait for one another. The
/// event names at most one patient (`patients` is not stored).
pub async fn stage(conn: Conn<'_>, event: &Event) -> Result<(), sqlx::Error> {
    store::stage(conn, event, Utc::now().trunc_subsecs(3)).await
}

/// Chains `events` after the newest stored one and inserts them, in the caller's transaction
/// (which must be a write transaction: [`Db::begin`]). Until that transaction ends no other
/// append can run, so commit it soon.
pub async fn append(mut conn: Conn<'_>, events: &[&Event]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    store::lock_chain(conn.reborrow()).await?;
    // Millisecond precision survives both engines unchanged, so hashes verify after a round trip.
    // Read under the lock, so the times of appended events never go backwards.
    let now = Utc::now().trunc_subsecs(3);
    let stamped: Vec<(&Event, DateTime<Utc>)> = events.iter().map(|e| (*e, now)).collect();
    link(conn, &stamped).await.map(|_| ())
}

/// Chains `stamped` (each event with its time) after the newest stored event and inserts them,
/// returning the newest link; the caller holds the chain lock.
async fn link(
    mut conn: Conn<'_>,
    stamped: &[(&Event, DateTime<Utc>)],
) -> Result<Option<(i64, String)>, sqlx::Error> {
    if stamped.is_empty() {
        return Ok(None);
    }
    let (mut seq, mut prev) = store::last_link(conn.reborrow())
        .await?
        .unwrap_or((0, GENESIS.to_string()));
    let mut links = Vec::with_capacity(stamped.len());
    for (e, at) in stamped {
        seq += 1;
        let hash = chain_hash(&prev, seq, *at, &StoredFields::from(*e));
        links.push(Link {
            seq,
            at: *at,
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
            event: e,
        });
    }
    store::insert_events(conn.reborrow(), &links).await?;
    let listed: Vec<(i64, PatientId)> = links
        .iter()
        .flat_map(|l| l.event.patients.iter().map(move |p| (l.seq, *p)))
        .collect();
    store::insert_event_patients(conn, &listed).await?;
    Ok(Some((seq, prev)))
}

/// The result of checking the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub events: u64,
    /// The first event whose link does not hold, and why.
    pub first_broken: Option<(i64, String)>,
}

/// Walks the whole chain in order and checks every link.
pub async fn verify(db: &Db) -> Result<Verification, sqlx::Error> {
    let mut c = db.acquire().await?;
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1i64;
    let mut count = 0u64;
    let mut after = 0i64;
    loop {
        let mut page = store::events_after(c.conn(), after, VERIFY_PAGE).await?;
        if page.is_empty() {
            break;
        }
        attach_patients(c.conn(), &mut page).await?;
        for e in &page {
            count += 1;
            if let Some(why) = broken_link(e, expected_seq, &prev) {
                return Ok(Verification {
                    events: count,
                    first_broken: Some((e.seq, why)),
                });
            }
            prev = e.hash.clone();
            expected_seq += 1;
            after = e.seq;
        }
    }
    Ok(Verification {
        events: count,
        first_broken: None,
    })
}

/// Why `e` does not follow the event before it (hash `prev`) at `expected_seq`, if it does not.
fn broken_link(e: &Stored, expected_seq: i64, prev: &str) -> Option<String> {
    if e.seq != expected_seq {
        Some(format!(
            "expected event {expected_seq} here: events are missing"
        ))
    } else if e.prev_hash != prev {
        Some("its previous-hash does not match the event before it".to_string())
    } else if chain_hash(prev, e.seq, e.occurred_at, &StoredFields::from(e)) != e.hash {
        Some("its contents do not match its hash: it was altered".to_string())
    } else {
        None
    }
}

/// Fills in the patients of list reads among `events` (at most a page: 5,000).
async fn attach_patients(conn: Conn<'_>, events: &mut [Stored]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let rows = store::event_patients(conn, &seqs).await?;
    for e in events.iter_mut() {
        e.patients.clear();
    }
    for (seq, patient) in rows {
        if let Some(e) = events.iter_mut().find(|e| e.seq == seq) {
            e.patients.push(patient);
        }
    }
    Ok(())
}

/// Events matching `q`, newest first. A patient filter finds the events that name the patient
/// and the list reads that returned them.
pub async fn query(db: &Db, q: &AuditQuery) -> Result<Vec<Stored>, sqlx::Error> {
    let mut c = db.acquire().await?;
    let mut events = store::query_events(c.conn(), q).await?;
    attach_patients(c.conn(), &mut events).await?;
    Ok(events)
}
