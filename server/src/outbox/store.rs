//! The SQL of the outbox: insert in the caller's transaction, claim with a lease, settle.
//!
//! Every settling statement is guarded by `status = 'sending' AND lease_owner = $owner`: a
//! dispatcher whose lease ran out and was taken by another changes nothing when it finally
//! reports (the other one's outcome stands; the receiver may have seen the message twice, with
//! one idempotency key).

use chrono::{DateTime, Utc};

use crate::on_conn;
use crate::storage::Conn;

/// A message as written by [`super::enqueue`].
pub struct NewMessage<'a> {
    pub idempotency_key: String,
    pub kind: &'a str,
    pub consultation_id: Option<i64>,
    pub channel: &'a str,
    pub endpoint: &'a str,
    pub payload: &'a str,
    /// The patient a message to a person is for...
    pub recipient_patient_id: Option<i64>,
    /// ...or the clinician.
    pub recipient_clinician_id: Option<i64>,
    /// The account whose change caused it.
    pub actor_account_id: Option<i64>,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert(conn: Conn<'_>, m: &NewMessage<'_>) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "INSERT INTO outbox_messages
             (idempotency_key, event_kind, consultation_id, channel, endpoint, payload,
              recipient_patient_id, recipient_clinician_id, actor_account_id, due_at, status,
              attempts, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', 0, $11)",
    )
    .bind(m.idempotency_key.as_str())
    .bind(m.kind)
    .bind(m.consultation_id)
    .bind(m.channel)
    .bind(m.endpoint)
    .bind(m.payload)
    .bind(m.recipient_patient_id)
    .bind(m.recipient_clinician_id)
    .bind(m.actor_account_id)
    .bind(m.due_at)
    .bind(m.created_at)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// A claimed message, with what its channel needs to send it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Message {
    pub id: i64,
    pub idempotency_key: String,
    pub event_kind: String,
    pub consultation_id: Option<i64>,
    pub channel: String,
    pub endpoint: String,
    pub payload: String,
    pub recipient_patient_id: Option<i64>,
    pub actor_account_id: Option<i64>,
    pub recipient_clinician_id: Option<i64>,
    /// Counting this one.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// On PostgreSQL the candidates are locked with `SKIP LOCKED`, so two nodes claiming at once take
/// different rows without waiting for each other; the outer UPDATE re-checks nothing more, since
/// the locked rows are exactly those still claimable under READ COMMITTED.
const CLAIM_POSTGRES: &str = "UPDATE outbox_messages
    SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1
    WHERE id IN (
        SELECT id FROM outbox_messages
        WHERE (status = 'queued' AND due_at <= $3) OR (status = 'sending' AND lease_until <= $3)
        ORDER BY due_at
        LIMIT $4
        FOR UPDATE SKIP LOCKED)
    RETURNING id, idempotency_key, event_kind, consultation_id, channel, endpoint, payload,
              recipient_patient_id, actor_account_id, recipient_clinician_id, attempts, created_at";

/// On SQLite one writer at a time runs this whole statement, so no two claimers see the same
/// row as claimable.
const CLAIM_SQLITE: &str = "UPDATE outbox_messages
    SET status = 'sending', lease_owner = $1, lease_until = $2, attempts = attempts + 1
    WHERE id IN (
        SELECT id FROM outbox_messages
        WHERE (status = 'queued' AND due_at <= $3) OR (status = 'sending' AND lease_until <= $3)
        ORDER BY due_at
        LIMIT $4)
    RETURNING id, idempotency_key, event_kind, consultation_id, channel, endpoint, payload,
              recipient_patient_id, actor_account_id, recipient_clinician_id, attempts, created_at";

/// Claims up to `limit` messages due at `now` (and those whose lease ran out by then) for
/// `owner` until `lease_until`, counting an attempt for each.
pub async fn claim(
    conn: Conn<'_>,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Message>, sqlx::Error> {
    match conn {
        Conn::Sqlite(c) => {
            sqlx::query_as(CLAIM_SQLITE)
                .bind(owner)
                .bind(lease_until)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *c)
                .await
        }
        Conn::Postgres(c) => {
            sqlx::query_as(CLAIM_POSTGRES)
                .bind(owner)
                .bind(lease_until)
                .bind(now)
                .bind(limit)
                .fetch_all(&mut *c)
                .await
        }
    }
}

/// Marks a message sent; false when `owner` no longer holds its lease.
pub async fn mark_sent(
    conn: Conn<'_>,
    id: i64,
    owner: &str,
    at: DateTime<Utc>,
    via: &str,
) -> Result<bool, sqlx::Error> {
    let done = on_conn!(conn, c => sqlx::query(
        "UPDATE outbox_messages
         SET status = 'sent', sent_at = $3, sent_via = $4, lease_owner = NULL,
             lease_until = NULL, last_error = NULL
         WHERE id = $1 AND status = 'sending' AND lease_owner = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(at)
    .bind(via)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Puts a message back in the queue, due again at `due_at`, with the failure that sent it back.
pub async fn mark_retry(
    conn: Conn<'_>,
    id: i64,
    owner: &str,
    due_at: DateTime<Utc>,
    error: &str,
) -> Result<bool, sqlx::Error> {
    let done = on_conn!(conn, c => sqlx::query(
        "UPDATE outbox_messages
         SET status = 'queued', due_at = $3, last_error = $4, lease_owner = NULL,
             lease_until = NULL
         WHERE id = $1 AND status = 'sending' AND lease_owner = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(due_at)
    .bind(error)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Gives up on a message: it stays, `dead`, for an administrator to see.
pub async fn mark_dead(
    conn: Conn<'_>,
    id: i64,
    owner: &str,
    error: &str,
) -> Result<bool, sqlx::Error> {
    let done = on_conn!(conn, c => sqlx::query(
        "UPDATE outbox_messages
         SET status = 'dead', last_error = $3, lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND status = 'sending' AND lease_owner = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(error)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Puts a message off until `due_at` without counting the attempt (a patient's quiet hours).
pub async fn mark_deferred(
    conn: Conn<'_>,
    id: i64,
    owner: &str,
    due_at: DateTime<Utc>,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = on_conn!(conn, c => sqlx::query(
        "UPDATE outbox_messages
         SET status = 'queued', due_at = $3, attempts = attempts - 1, last_error = $4,
             lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND status = 'sending' AND lease_owner = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(due_at)
    .bind(reason)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// One message to a patient, as [`insert_for_consenting_patient`] writes it.
pub struct PatientRow {
    pub idempotency_key: String,
    pub kind: &'static str,
    pub payload: String,
    pub due_at: DateTime<Utc>,
}

/// Writes `rows` about consultation `consultation` for `patient` in one statement, and only if
/// the patient consented to a channel the deployment carries (`sms`, `zalo`, `email`): the
/// booking's transaction reads nothing for it. Returns how many were written.
#[allow(clippy::too_many_arguments)]
pub async fn insert_for_consenting_patient(
    conn: Conn<'_>,
    consultation: i64,
    patient: i64,
    actor: Option<i64>,
    rows: &[PatientRow],
    (sms, zalo, email): (bool, bool, bool),
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO outbox_messages
                 (idempotency_key, event_kind, consultation_id, channel, endpoint, payload,
                  recipient_patient_id, actor_account_id, due_at, status, attempts, created_at)
             SELECT m.column1, m.column2, ",
        );
        q.push_bind(consultation)
            .push(", ")
            .push_bind(super::PATIENT)
            .push(", pc.channel, m.column3, ")
            .push_bind(patient)
            .push(", ")
            .push_bind(actor)
            .push(", m.column4, 'queued', 0, ")
            .push_bind(now)
            .push(" FROM patient_contacts pc, (VALUES ");
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push("(")
                .push_bind(r.idempotency_key.as_str())
                .push(", ")
                .push_bind(r.kind)
                .push(", ")
                .push_bind(r.payload.as_str())
                .push(", ")
                .push_bind(r.due_at)
                .push(")");
        }
        q.push(") AS m WHERE pc.patient_id = ")
            .push_bind(patient)
            .push(" AND pc.consent AND ((pc.channel = 'sms' AND ")
            .push_bind(sms)
            .push(") OR (pc.channel = 'zalo' AND ")
            .push_bind(zalo || sms)
            .push(") OR (pc.channel = 'email' AND ")
            .push_bind(email)
            .push("))");
        q.build().execute(&mut *c).await.map(|r| r.rows_affected())
    })
}

/// Drops a message that no longer applies (`reason` says why).
pub async fn mark_cancelled(
    conn: Conn<'_>,
    id: i64,
    owner: &str,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = on_conn!(conn, c => sqlx::query(
        "UPDATE outbox_messages
         SET status = 'cancelled', last_error = $3, lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND status = 'sending' AND lease_owner = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(reason)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Cancels, in the caller's transaction, the patient's queued reminders (and "join now") of
/// consultation `id`, when it is cancelled or moved. Returns how many.
pub async fn cancel_reminders(conn: Conn<'_>, id: i64, reason: &str) -> Result<u64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "UPDATE outbox_messages SET status = 'cancelled', last_error = $2
         WHERE consultation_id = $1 AND status = 'queued' AND recipient_patient_id IS NOT NULL
           AND event_kind IN ('consultation.reminder', 'consultation.join_now')",
    )
    .bind(id)
    .bind(reason)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
}

/// A message as an administrator (and a test) sees it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MessageView {
    pub id: i64,
    pub idempotency_key: String,
    pub event_kind: String,
    pub consultation_id: Option<i64>,
    pub channel: String,
    pub endpoint: String,
    pub payload: String,
    pub recipient_patient_id: Option<i64>,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub due_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub sent_via: Option<String>,
}

/// The messages about consultation `id` (or every message, with `None`), oldest first.
pub async fn list(conn: Conn<'_>, id: Option<i64>) -> Result<Vec<MessageView>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "SELECT id, idempotency_key, event_kind, consultation_id, channel, endpoint, payload,
                recipient_patient_id, status, attempts, last_error, due_at, sent_at, sent_via
         FROM outbox_messages
         WHERE $1 IS NULL OR consultation_id = $1
         ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut *c)
    .await)
}

/// Message `id`.
pub async fn get(conn: Conn<'_>, id: i64) -> Result<Option<MessageView>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "SELECT id, idempotency_key, event_kind, consultation_id, channel, endpoint, payload,
                recipient_patient_id, status, attempts, last_error, due_at, sent_at, sent_via
         FROM outbox_messages WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)
}

/// The dead messages, newest first, at most `limit`.
pub async fn dead(conn: Conn<'_>, limit: i64) -> Result<Vec<MessageView>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "SELECT id, idempotency_key, event_kind, consultation_id, channel, endpoint, payload,
                recipient_patient_id, status, attempts, last_error, due_at, sent_at, sent_via
         FROM outbox_messages WHERE status = 'dead'
         ORDER BY id DESC
         LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *c)
    .await)
}

/// What a resend did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resent {
    /// A dead message is queued again, with its own idempotency key (the receiver may have seen
    /// an attempt) and its attempts counted afresh.
    Requeued,
    /// A message sent or cancelled is copied as a new message (a new key: it is a second one).
    Copied(i64),
    /// Still queued or being sent: nothing done.
    Pending,
    Missing,
}

/// Resends message `id`, due at `now`, in the caller's transaction.
pub async fn resend(
    mut conn: Conn<'_>,
    id: i64,
    now: DateTime<Utc>,
    new_key: String,
) -> Result<Resent, sqlx::Error> {
    let requeued = on_conn!(conn.reborrow(), c => sqlx::query(
        "UPDATE outbox_messages
         SET status = 'queued', attempts = 0, due_at = $2, last_error = NULL
         WHERE id = $1 AND status = 'dead'",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if requeued == 1 {
        return Ok(Resent::Requeued);
    }
    let copied: Option<i64> = on_conn!(conn.reborrow(), c => sqlx::query_scalar(
        "INSERT INTO outbox_messages
             (idempotency_key, event_kind, consultation_id, channel, endpoint, payload,
              recipient_patient_id, recipient_clinician_id, actor_account_id, due_at, status,
              attempts, created_at)
         SELECT $3, event_kind, consultation_id, channel, endpoint, payload,
                recipient_patient_id, recipient_clinician_id, actor_account_id, $2, 'queued', 0, $2
         FROM outbox_messages WHERE id = $1 AND status IN ('sent', 'cancelled')
         RETURNING id",
    )
    .bind(id)
    .bind(now)
    .bind(new_key)
    .fetch_optional(&mut *c)
    .await)?;
    if let Some(new) = copied {
        return Ok(Resent::Copied(new));
    }
    Ok(match get(conn, id).await? {
        Some(_) => Resent::Pending,
        None => Resent::Missing,
    })
}
