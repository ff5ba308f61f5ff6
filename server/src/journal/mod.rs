//! The write journal: what every write commits in its own transaction besides the change itself.
//!
//! Two promises rest on it. **No committed change without its audit event**: the event is staged
//! ([`audit::stage`]) in the write's transaction, so a crash or a lost database connection between
//! the change and its event cannot separate them. **Idempotent creation**: when the client sent an
//! `Idempotency-Key`, the answer the write gives is stored with it, in the same transaction, so a
//! retry after a crash, a timeout or a dropped connection gets that first answer again instead of
//! colliding with its own booking (the dispatcher replays it: [`crate::api`]'s `idempotency`).
//!
//! The API layer builds a [`Journal`] per write request; the service that owns the transaction
//! calls [`Journal::write`] once, inside it, before commit, with the record it wrote and the value
//! the handler answers with. Services see nothing of HTTP here: a status is a number.

pub mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;

use crate::audit;
use crate::domain::ids::PatientId;
use crate::storage::Conn;

/// How long a stored answer can be replayed; older keys may be reused (and are purged).
pub const KEY_LIFETIME_HOURS: i64 = 24;

/// The `Idempotency-Key` of one request, scoped to its caller, with the fingerprint of what the
/// request asked (method, path, query and body): the same key with another request is refused.
#[derive(Clone, Debug)]
pub struct Claim {
    /// Whose keys these are (`account:12`): one caller's keys never answer another's requests.
    pub scope: String,
    pub key: String,
    /// SHA-256 (hex) of the request.
    pub fingerprint: String,
}

/// A stored first answer.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct StoredAnswer {
    pub fingerprint: String,
    pub status: i32,
    /// The JSON body exactly as first answered.
    pub body: String,
}

/// The record a write changed, for its audit event.
#[derive(Clone, Debug, Default)]
pub struct About {
    record_id: Option<String>,
    patient: Option<PatientId>,
}

impl About {
    /// The record, by its id.
    pub fn record(id: impl ToString) -> About {
        About {
            record_id: Some(id.to_string()),
            patient: None,
        }
    }

    /// Nothing beyond what the request already named (its path's id, the patients noted).
    pub fn request() -> About {
        About::default()
    }

    /// The patient whose data the write touched.
    pub fn patient(mut self, patient: impl Into<Option<PatientId>>) -> About {
        self.patient = patient.into();
        self
    }
}

/// One write request's journal: its audit event as the request describes it, and its
/// idempotency claim if it has one.
#[derive(Clone, Debug)]
pub struct Journal {
    event: audit::Event,
    claim: Option<Claim>,
    /// The status the handler answers a success with (201, 200, 204).
    status: u16,
    /// Set once the write has staged its event: the dispatcher then flushes the chain instead of
    /// appending an event of its own.
    written: Arc<AtomicBool>,
    /// Where the write's notifications go (none configured: nothing is enqueued).
    outbox: Option<crate::outbox::SharedRoutes>,
}

impl Journal {
    /// A journal for a request whose success is answered with `status`. `written` is shared with
    /// whoever answers the request.
    pub fn new(
        event: audit::Event,
        claim: Option<Claim>,
        status: u16,
        written: Arc<AtomicBool>,
    ) -> Journal {
        Journal {
            event,
            claim,
            status,
            written,
            outbox: None,
        }
    }

    /// Enqueues the write's notifications to `routes` (see [`Journal::notify`]).
    pub fn with_outbox(mut self, routes: crate::outbox::SharedRoutes) -> Journal {
        self.outbox = Some(routes);
        self
    }

    /// True when some endpoint wants notifications of `kind`: a write that notifies then needs
    /// a transaction.
    pub fn notifies(&self, kind: crate::outbox::EventKind) -> bool {
        self.outbox.as_ref().is_some_and(|r| r.wants(kind))
    }

    /// The rows a booking of `start`..`end` writes for its patient in its own statement, when
    /// those are all its messages (see [`crate::outbox::Routes::booking_rows_alone`]).
    pub fn booking_rows_alone(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<crate::outbox::patients::BookingRows> {
        let actor = self.event.actor_account_id.map(|a| a.0);
        self.outbox
            .as_ref()?
            .booking_rows_alone(start, end, actor, now)
    }

    /// Writes, on the connection of the write's transaction (before it commits), the messages of
    /// `kind` about consultation `c` that the deployment's endpoints want: they commit with the
    /// change or not at all.
    pub async fn notify(
        &self,
        conn: Conn<'_>,
        kind: crate::outbox::EventKind,
        c: &crate::domain::consultation::Consultation,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        if let Some(routes) = &self.outbox {
            let actor = self.event.actor_account_id.map(|a| a.0);
            crate::outbox::enqueue(conn, routes, kind, c, actor, now).await?;
        }
        Ok(())
    }

    /// The audit event of this write, about `about`.
    pub fn event(&self, about: &About) -> audit::Event {
        let mut event = self.event.clone();
        if let Some(id) = &about.record_id {
            event.record_id = Some(id.clone());
        }
        if let Some(patient) = about.patient {
            event.patient_id = Some(patient);
            event.patients.clear();
        }
        event
    }

    /// The idempotency claim, when the client sent a key.
    pub fn claim(&self) -> Option<&Claim> {
        self.claim.as_ref()
    }

    /// Writes, on the connection of the write's transaction (before it commits), the write's audit
    /// event and, when the client sent an idempotency key, `answer` (what the handler will send as
    /// the body) as the key's first answer. A second request with the same key that gets here
    /// first makes this fail with a unique violation of [`store::IDEMPOTENCY_KEY`]; the
    /// dispatcher then replays the winner's answer.
    pub async fn write<T: Serialize>(
        &self,
        conn: Conn<'_>,
        about: About,
        answer: &T,
    ) -> Result<(), sqlx::Error> {
        self.write_each(conn, [about], answer).await
    }

    /// [`Journal::write`] for one request that wrote several records (a weekly template for many
    /// clinicians): an event about each of `records`, so the trail finds every one by its id,
    /// and `answer` stored once for the key.
    pub async fn write_each<T: Serialize>(
        &self,
        mut conn: Conn<'_>,
        records: impl IntoIterator<Item = About>,
        answer: &T,
    ) -> Result<(), sqlx::Error> {
        let mut staged = 0usize;
        for about in records {
            audit::stage(conn.reborrow(), &self.event(&about)).await?;
            staged += 1;
        }
        // A write is never without its event, even one that names no record.
        if staged == 0 {
            audit::stage(conn.reborrow(), &self.event(&About::request())).await?;
        }
        if let Some(claim) = &self.claim {
            let body =
                serde_json::to_string(answer).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            store::insert_answer(conn, claim, self.status, &body, now()).await?;
        }
        self.mark_written();
        Ok(())
    }

    /// Writes only the audit event, on the connection of the write's transaction, and never an
    /// answer, even when the client sent a key: for writes whose answer is a credential (a
    /// session, a visit link), which is not kept at rest. A retry of such a write runs again.
    pub async fn stage(&self, conn: Conn<'_>, about: About) -> Result<(), sqlx::Error> {
        audit::stage(conn, &self.event(&about)).await?;
        self.mark_written();
        Ok(())
    }

    /// Says the event was staged by other means (a statement that staged it itself, such as the
    /// booking's single PostgreSQL statement).
    pub fn mark_written(&self) {
        self.written.store(true, Ordering::Release);
    }

    /// Whether the write staged its event (see [`Journal::new`]).
    pub fn is_written(flag: &AtomicBool) -> bool {
        flag.load(Ordering::Acquire)
    }
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// The first answer stored for `claim`'s scope and key, if one is still replayable.
pub async fn stored_answer(
    conn: Conn<'_>,
    claim: &Claim,
) -> Result<Option<StoredAnswer>, sqlx::Error> {
    store::answer(
        conn,
        claim,
        now() - chrono::Duration::hours(KEY_LIFETIME_HOURS),
    )
    .await
}

/// Deletes answers too old to replay; returns how many. Run periodically by the server.
pub async fn purge_old_answers(conn: Conn<'_>) -> Result<u64, sqlx::Error> {
    store::purge(conn, now() - chrono::Duration::hours(KEY_LIFETIME_HOURS)).await
}
