//! The SQL of the audit trail: `audit_events` and the patients of list reads,
//! `audit_event_patients`. Each function runs on the caller's connection; chaining the events
//! (their sequence and hashes) is [`crate::audit`]'s.

use chrono::{DateTime, Utc};

use super::event::{AuditQuery, Event, Outcome, Stored};
use crate::domain::ids::PatientId;
use crate::on_conn;
use crate::storage::Conn;

/// Arbitrary, fixed key of the PostgreSQL advisory lock that serialises appends.
const CHAIN_LOCK: i64 = 0x7E1E_A0D1;
/// Bind-parameter limits (SQLite: 32766) bound the rows of one statement.
const PATIENT_ROWS_PER_INSERT: usize = 10_000;

/// An event with its place in the chain, ready to insert.
pub struct Link<'a> {
    pub seq: i64,
    /// When it happened: when it was chained, or for a staged event, when its write staged it.
    pub at: DateTime<Utc>,
    pub prev_hash: String,
    pub hash: String,
    pub event: &'a Event,
}

/// The columns of a [`Stored`] event.
macro_rules! stored_columns {
    () => {
        "seq, occurred_at, actor_account_id, actor, actor_role, action, record_type, record_id,
         patient_id, client_addr, outcome, prev_hash, hash"
    };
}

/// Makes the caller's transaction the only appender until it ends, so the chain stays linear.
///
/// The engines differ: PostgreSQL takes a transaction-scoped advisory lock, which also holds
/// across server nodes; SQLite has no such lock and needs none, since the write transaction
/// ([`crate::storage::Db::begin`], `BEGIN IMMEDIATE`) already holds the database's one write lock.
pub async fn lock_chain(conn: Conn<'_>) -> Result<(), sqlx::Error> {
    match conn {
        Conn::Postgres(c) => sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CHAIN_LOCK)
            .execute(&mut *c)
            .await
            .map(|_| ()),
        Conn::Sqlite(_) => Ok(()),
    }
}

/// The sequence number and hash of the newest event, if there is one.
pub async fn last_link(conn: Conn<'_>) -> Result<Option<(i64, String)>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *c)
        .await)
}

/// Inserts `links` (not empty) in one statement.
pub async fn insert_events(conn: Conn<'_>, links: &[Link<'_>]) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO audit_events (seq, occurred_at, actor_account_id, actor, actor_role, action,
               record_type, record_id, patient_id, client_addr, outcome, prev_hash, hash) ",
        );
        q.push_values(links, |mut v, l| {
            let e = l.event;
            v.push_bind(l.seq)
                .push_bind(l.at)
                .push_bind(e.actor_account_id)
                .push_bind(e.actor.as_str())
                .push_bind(e.actor_role.as_str())
                .push_bind(e.action.as_str())
                .push_bind(e.record_type.as_str())
                .push_bind(e.record_id.as_deref())
                .push_bind(e.patient_id)
                .push_bind(e.client_addr.as_deref())
                .push_bind(e.outcome.as_str())
                .push_bind(l.prev_hash.as_str())
                .push_bind(l.hash.as_str());
        });
        q.build().execute(&mut *c).await.map(|_| ())
    })
}

/// Records which patients each event of a list read touched: `(seq, patient)` pairs.
pub async fn insert_event_patients(
    conn: Conn<'_>,
    listed: &[(i64, PatientId)],
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => {
        for chunk in listed.chunks(PATIENT_ROWS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO audit_event_patients (seq, patient_id) ");
            q.push_values(chunk, |mut v, (seq, patient)| {
                v.push_bind(*seq).push_bind(*patient);
            });
            q.build().execute(&mut *c).await?;
        }
        Ok(())
    })
}

/// Up to `limit` events after `seq`, in order, without their patients.
pub async fn events_after(
    conn: Conn<'_>,
    seq: i64,
    limit: i64,
) -> Result<Vec<Stored>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        stored_columns!(),
        " FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
    );
    on_conn!(conn, c => sqlx::query_as(SQL).bind(seq).bind(limit).fetch_all(&mut *c).await)
}

/// Up to `limit` `(seq, hash)` pairs after `seq`, in order: what checkpoints are checked against.
pub async fn hashes_after(
    conn: Conn<'_>,
    seq: i64,
    limit: i64,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "SELECT seq, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(seq)
    .bind(limit)
    .fetch_all(&mut *c)
    .await)
}

/// The patients of list reads among the events `seqs` (not empty), as `(seq, patient)` pairs
/// in order.
pub async fn event_patients(
    conn: Conn<'_>,
    seqs: &[i64],
) -> Result<Vec<(i64, PatientId)>, sqlx::Error> {
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT seq, patient_id FROM audit_event_patients WHERE seq IN (",
        );
        let mut sep = q.separated(", ");
        for seq in seqs {
            sep.push_bind(*seq);
        }
        q.push(") ORDER BY seq, patient_id");
        q.build_query_as::<(i64, PatientId)>().fetch_all(&mut *c).await
    })
}

/// Events matching `q`, newest first, without their patients. A patient filter finds the events
/// that name the patient and the list reads that returned them.
pub async fn query_events(conn: Conn<'_>, q: &AuditQuery) -> Result<Vec<Stored>, sqlx::Error> {
    on_conn!(conn, c => {
        let mut b = sqlx::QueryBuilder::new(concat!(
            "SELECT ",
            stored_columns!(),
            " FROM audit_events WHERE 1 = 1"
        ));
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
        b.build_query_as::<Stored>().fetch_all(&mut *c).await
    })
}

/// Stages `event` in the caller's transaction (`audit_pending`), to be chained by the writer
/// ([`take_pending`]). Takes no lock: staging does not make concurrent writes wait for the chain.
/// A staged event names at most one patient (`patients` must be empty: writes touch one record).
pub async fn stage(conn: Conn<'_>, event: &Event, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "INSERT INTO audit_pending (occurred_at, actor_account_id, actor, actor_role, action,
           record_type, record_id, patient_id, client_addr, outcome)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(at)
    .bind(event.actor_account_id)
    .bind(event.actor.as_str())
    .bind(event.actor_role.as_str())
    .bind(event.action.as_str())
    .bind(event.record_type.as_str())
    .bind(event.record_id.as_deref())
    .bind(event.patient_id)
    .bind(event.client_addr.as_deref())
    .bind(event.outcome.as_str())
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// A staged event as [`take_pending`] reads it back: the event, and when it was staged.
#[derive(sqlx::FromRow)]
pub struct PendingRow {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_account_id: Option<crate::auth::AccountId>,
    pub actor: String,
    pub actor_role: String,
    pub action: String,
    pub record_type: String,
    pub record_id: Option<String>,
    pub patient_id: Option<PatientId>,
    pub client_addr: Option<String>,
    pub outcome: String,
}

/// Removes and returns up to `limit` of the oldest staged events, oldest first. Run under
/// [`lock_chain`] in the transaction that chains them, so each is chained exactly once: if that
/// transaction rolls back, they are staged again.
pub async fn take_pending(conn: Conn<'_>, limit: i64) -> Result<Vec<PendingRow>, sqlx::Error> {
    let mut rows: Vec<PendingRow> = on_conn!(conn, c => sqlx::query_as(
        "DELETE FROM audit_pending WHERE id IN
           (SELECT id FROM audit_pending ORDER BY id LIMIT $1)
         RETURNING id, occurred_at, actor_account_id, actor, actor_role, action, record_type,
                   record_id, patient_id, client_addr, outcome",
    )
    .bind(limit)
    .fetch_all(&mut *c)
    .await)?;
    // RETURNING promises no order.
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

impl PendingRow {
    pub fn into_event(self) -> (Event, DateTime<Utc>) {
        let event = Event {
            actor_account_id: self.actor_account_id,
            actor: self.actor,
            actor_role: self.actor_role,
            action: self.action,
            record_type: self.record_type,
            record_id: self.record_id,
            patient_id: self.patient_id,
            patients: Vec::new(),
            client_addr: self.client_addr,
            // Only `stage` writes this column, from an `Outcome`; nothing else can be there.
            outcome: Outcome::parse(&self.outcome).unwrap_or(Outcome::Failed),
        };
        (event, self.occurred_at)
    }
}

/// How many staged events wait to be chained.
pub async fn pending_count(conn: Conn<'_>) -> Result<i64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar("SELECT COUNT(*) FROM audit_pending")
        .fetch_one(&mut *c)
        .await)
}
