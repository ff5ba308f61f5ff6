//! The audit trail: who did what to which record, when, from where, and with what outcome.
//!
//! Append-only and tamper-evident: each event carries the SHA-256 of its own fields and of the
//! previous event, so changing or removing any event breaks every link after it, and
//! [`verify`] names the first broken one. The application has no path that updates or deletes
//! events, and the database refuses both with a trigger.
//!
//! Requests append through one writer task that commits events in batches (group commit): under
//! load many requests share one transaction, and each request still waits until its event is
//! durable before it answers. [`append`] itself runs in whatever transaction its caller owns, so
//! a write and the event describing it can also commit together. On PostgreSQL an advisory lock
//! keeps the chain linear across server nodes. The SQL is in [`store`].

mod event;
pub mod store;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::auth::AccountId;
use crate::domain::ids::PatientId;
use crate::storage::{Conn, Db};
pub use event::{AuditQuery, Event, Outcome, Stored};
use store::Link;

/// The hash "before" the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Most events committed in one transaction.
const BATCH: usize = 256;
/// Events read per round trip while verifying.
const VERIFY_PAGE: i64 = 5000;

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

type Request = (Event, oneshot::Sender<Result<(), AuditError>>);

/// The handle requests use to append events.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Request>,
}

impl AuditLog {
    /// Starts the writer task for `db`.
    pub fn start(db: Db) -> (AuditLog, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Request>(4096);
        let task = tokio::spawn(writer(db, rx));
        (AuditLog { tx }, task)
    }

    /// Appends `event` and waits until it is committed.
    pub async fn record(&self, event: Event) -> Result<(), AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send((event, done))
            .await
            .map_err(|_| AuditError::WriterGone)?;
        wait.await.map_err(|_| AuditError::WriterGone)?
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<Request>) {
    let mut batch: Vec<Request> = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let events: Vec<&Event> = batch.iter().map(|(e, _)| e).collect();
        let result = commit_batch(&db, &events).await;
        if let Err(err) = &result {
            // The event fields may name a patient id but never health data; the error text is
            // the database's.
            tracing::error!(error = %err, events = events.len(), "audit append failed");
        }
        for (_, done) in batch.drain(..) {
            let _ = done.send(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| AuditError::Storage(e.to_string())),
            );
        }
    }
}

/// Appends a batch in a transaction of its own.
async fn commit_batch(db: &Db, events: &[&Event]) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    append(tx.conn(), events).await?;
    tx.commit().await
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
    // Read under the lock, so the times of the chain never go backwards.
    let now = Utc::now().trunc_subsecs(3);
    let (mut seq, mut prev) = store::last_link(conn.reborrow())
        .await?
        .unwrap_or((0, GENESIS.to_string()));
    let mut links = Vec::with_capacity(events.len());
    for e in events {
        seq += 1;
        let hash = chain_hash(&prev, seq, now, &StoredFields::from(*e));
        links.push(Link {
            seq,
            prev_hash: std::mem::replace(&mut prev, hash.clone()),
            hash,
            event: e,
        });
    }
    store::insert_events(conn.reborrow(), &links, now).await?;
    let listed: Vec<(i64, PatientId)> = links
        .iter()
        .flat_map(|l| l.event.patients.iter().map(move |p| (l.seq, *p)))
        .collect();
    store::insert_event_patients(conn, &listed).await
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
