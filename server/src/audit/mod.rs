//! The audit trail: who did what to which record, when, from where, and with what outcome.
//!
//! Append-only and tamper-evident: each event carries the SHA-256 of its own fields and of the
//! previous event, so changing or removing any event breaks every link after it, and
//! [`verify`] names the first broken one. The application has no path that updates or deletes
//! events, and the database refuses both with a trigger.
//!
//! Appends go through one writer task that commits events in batches (group commit): under load
//! many requests share one transaction, and each request still waits until its event is durable
//! before it answers. On PostgreSQL an advisory lock keeps the chain linear across server nodes.

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::auth::AccountId;
use crate::domain::ids::PatientId;
use crate::on_db;
use crate::storage::{BeginWrite, Db};

/// The hash "before" the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Most events committed in one transaction.
const BATCH: usize = 256;
/// Arbitrary, fixed key of the PostgreSQL advisory lock that serialises appends.
const CHAIN_LOCK: i64 = 0x7E1E_A0D1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action was allowed and done.
    Allowed,
    /// Refused for lack of permission (or not visible to the caller).
    Denied,
    /// Attempted but failed (bad input, conflict, wrong password).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// One thing that happened, before it is chained.
#[derive(Clone, Debug)]
pub struct Event {
    pub actor_account_id: Option<AccountId>,
    /// The user name, or `anonymous`.
    pub actor: String,
    pub actor_role: String,
    /// What was done, e.g. `GET /api/v1/consultations/{id}` or `login`.
    pub action: String,
    /// The kind of record, e.g. `consultation`, `patient`, `session`.
    pub record_type: String,
    pub record_id: Option<String>,
    /// The patient whose data this touched, when there is one.
    pub patient_id: Option<PatientId>,
    /// The patients it touched when there were several (a list): `patient_id` is then `None`.
    pub patients: Vec<PatientId>,
    pub client_addr: Option<String>,
    pub outcome: Outcome,
}

/// A stored event.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Stored {
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_account_id: Option<AccountId>,
    pub actor: String,
    pub actor_role: String,
    pub action: String,
    pub record_type: String,
    pub record_id: Option<String>,
    pub patient_id: Option<PatientId>,
    /// The patients of a list read, from `audit_event_patients`.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patients: Vec<PatientId>,
    pub client_addr: Option<String>,
    pub outcome: String,
    pub prev_hash: String,
    pub hash: String,
}

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
        let result = append(&db, &events).await;
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

/// Chains and inserts `events` in one transaction.
async fn append(db: &Db, events: &[&Event]) -> Result<(), sqlx::Error> {
    // Millisecond precision survives both engines unchanged, so hashes verify after a round trip.
    let now = Utc::now().trunc_subsecs(3);
    let is_postgres = matches!(db, Db::Postgres(_));
    on_db!(db, pool => {
        async {
            let mut tx = pool.begin_write().await?;
            if is_postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(CHAIN_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let last: Option<(i64, String)> = sqlx::query_as(
                "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
            )
            .fetch_optional(&mut *tx)
            .await?;
            let (mut seq, mut prev) = last.unwrap_or((0, GENESIS.to_string()));
            let mut rows = Vec::with_capacity(events.len());
            for e in events {
                seq += 1;
                let hash = chain_hash(&prev, seq, now, &StoredFields::from(*e));
                rows.push((seq, prev.clone(), hash.clone(), *e));
                prev = hash;
            }
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO audit_events (seq, occurred_at, actor_account_id, actor, actor_role, action,
                   record_type, record_id, patient_id, client_addr, outcome, prev_hash, hash) ",
            );
            q.push_values(&rows, |mut v, (seq, prev, hash, e)| {
                v.push_bind(*seq)
                    .push_bind(now)
                    .push_bind(e.actor_account_id)
                    .push_bind(e.actor.as_str())
                    .push_bind(e.actor_role.as_str())
                    .push_bind(e.action.as_str())
                    .push_bind(e.record_type.as_str())
                    .push_bind(e.record_id.as_deref())
                    .push_bind(e.patient_id)
                    .push_bind(e.client_addr.as_deref())
                    .push_bind(e.outcome.as_str())
                    .push_bind(prev.as_str())
                    .push_bind(hash.as_str());
            });
            q.build().execute(&mut *tx).await?;
            let listed: Vec<(i64, PatientId)> = rows
                .iter()
                .flat_map(|(seq, _, _, e)| e.patients.iter().map(move |p| (*seq, *p)))
                .collect();
            // Bind-parameter limits (SQLite: 32766) bound one statement's rows.
            for chunk in listed.chunks(10_000) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO audit_event_patients (seq, patient_id) ",
                );
                q.push_values(chunk, |mut v, (seq, patient)| {
                    v.push_bind(*seq).push_bind(*patient);
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await
    })
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
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1i64;
    let mut count = 0u64;
    let mut after = 0i64;
    loop {
        let page: Vec<Stored> = on_db!(db, pool => sqlx::query_as(
            "SELECT seq, occurred_at, actor_account_id, actor, actor_role, action, record_type, record_id,
                    patient_id, client_addr, outcome, prev_hash, hash
             FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 5000",
        )
        .bind(after)
        .fetch_all(pool)
        .await)?;
        if page.is_empty() {
            break;
        }
        let mut page = page;
        attach_patients(db, &mut page).await?;
        for e in &page {
            count += 1;
            let broken = if e.seq != expected_seq {
                Some(format!(
                    "expected event {expected_seq} here: events are missing"
                ))
            } else if e.prev_hash != prev {
                Some("its previous-hash does not match the event before it".to_string())
            } else if chain_hash(&prev, e.seq, e.occurred_at, &StoredFields::from(e)) != e.hash {
                Some("its contents do not match its hash: it was altered".to_string())
            } else {
                None
            };
            if let Some(why) = broken {
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

#[derive(Default)]
pub struct AuditQuery {
    pub patient_id: Option<PatientId>,
    pub actor: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: i64,
    pub offset: i64,
}

/// Fills in the patients of list reads among `events` (at most a page: 5,000).
async fn attach_patients(db: &Db, events: &mut [Stored]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let rows: Vec<(i64, PatientId)> = on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT seq, patient_id FROM audit_event_patients WHERE seq IN (",
        );
        let mut sep = q.separated(", ");
        for e in events.iter() {
            sep.push_bind(e.seq);
        }
        q.push(") ORDER BY seq, patient_id");
        q.build_query_as::<(i64, PatientId)>().fetch_all(pool).await
    })?;
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
    let mut events = query_events(db, q).await?;
    attach_patients(db, &mut events).await?;
    Ok(events)
}

async fn query_events(db: &Db, q: &AuditQuery) -> Result<Vec<Stored>, sqlx::Error> {
    on_db!(db, pool => {
        let mut b = sqlx::QueryBuilder::new(
            "SELECT seq, occurred_at, actor_account_id, actor, actor_role, action, record_type, record_id,
                    patient_id, client_addr, outcome, prev_hash, hash
             FROM audit_events WHERE 1 = 1",
        );
        if let Some(p) = q.patient_id {
            b.push(" AND (patient_id = ").push_bind(p);
            b.push(" OR seq IN (SELECT ap.seq FROM audit_event_patients ap WHERE ap.patient_id = ")
                .push_bind(p)
                .push("))");
        }
        if let Some(a) = &q.actor {
            b.push(" AND actor = ").push_bind(a.clone());
        }
        if let Some(f) = q.from {
            b.push(" AND occurred_at >= ").push_bind(f);
        }
        if let Some(t) = q.to {
            b.push(" AND occurred_at < ").push_bind(t);
        }
        b.push(" ORDER BY seq DESC LIMIT ").push_bind(q.limit);
        b.push(" OFFSET ").push_bind(q.offset);
        b.build_query_as::<Stored>().fetch_all(pool).await
    })
}
