//! The outbox: notifications written in the same transaction as the change that causes them,
//! and delivered afterwards by a dispatcher that several nodes can run at once.
//!
//! A service that changes a consultation calls [`enqueue`] on its transaction's connection
//! before it commits (the booking service does it through [`crate::journal::Journal::notify`]):
//! one `outbox_messages` row per configured endpoint that wants the event. So a change that rolls
//! back leaves no message, and a committed change always has its messages, even if the node dies
//! the moment after the commit. [`dispatcher`] claims due rows with a lease and hands each to its
//! [`Channel`] ([`webhook`] for hospital systems); a lease that runs out is claimed again, so a
//! crashed node's messages are delivered by another. Delivery is at least once: every message
//! carries its idempotency key to the receiver (`webhook-id`), which is how a receiver tells a
//! retry after a crash from a new message.
//!
//! # Why a small dispatcher of our own and not `apalis` 1.0
//!
//! `apalis` 1.0 has PostgreSQL and SQLite backends on sqlx 0.9, but its SQLite enqueue opens a
//! transaction of its own: a job pushed from inside the booking's `BEGIN IMMEDIATE` either waits
//! for the write lock the booking holds (SQLite has one writer) or, pushed after the commit, can
//! be lost by a crash between the two, and a booking rolled back after the push still sends its
//! message. The promise this module exists for is "the message commits with the change", on both
//! engines the platform runs on, so the enqueue must be a plain `INSERT` on the caller's
//! connection. What is left to write is small (one claiming `UPDATE ... RETURNING`, a backoff, a
//! loop), is tested on both engines here, and keeps one schema per engine under our migrations
//! instead of a library's.
//!
//! # What a message holds
//!
//! No clinical content: the event kind, the consultation's id, its times, status and the ids of
//! its clinicians and facility. Never the patient's name, the reason for the visit or a note.
//! A receiver that needs more asks the API, with its own credentials and under the audit trail.

pub mod channel;
pub mod clinicians;
pub mod contacts;
pub mod dispatcher;
pub mod email;
pub mod http;
pub mod patients;
pub mod render;
pub mod setup;
pub mod sms;
pub mod store;
pub mod transports;
pub mod webhook;
pub mod zalo;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::consultation::Consultation;
use crate::storage::Conn;

pub use channel::{Channel, Delivered, SendError};
pub use dispatcher::{Clock, DispatchSettings, Dispatcher, ManualClock, SystemClock};
pub use store::Message;
pub use webhook::{WebhookChannel, WebhookEndpoint};

/// What happened, as receivers see it (the `type` of a webhook's body).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum EventKind {
    /// A consultation was booked outright, or its hold confirmed.
    #[serde(rename = "consultation.booked")]
    ConsultationBooked,
    #[serde(rename = "consultation.rescheduled")]
    ConsultationRescheduled,
    #[serde(rename = "consultation.cancelled")]
    ConsultationCancelled,
    /// The consultation's note was signed (the payload names the consultation, never the note's
    /// content).
    #[serde(rename = "note.signed")]
    NoteSigned,
    /// Its clinician announced a delay (or that they are on time again).
    #[serde(rename = "consultation.running_late")]
    RunningLate,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::ConsultationBooked,
        EventKind::ConsultationRescheduled,
        EventKind::ConsultationCancelled,
        EventKind::NoteSigned,
        EventKind::RunningLate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ConsultationBooked => "consultation.booked",
            EventKind::ConsultationRescheduled => "consultation.rescheduled",
            EventKind::ConsultationCancelled => "consultation.cancelled",
            EventKind::NoteSigned => "note.signed",
            EventKind::RunningLate => "consultation.running_late",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The channel of a message, as stored: a hospital system's webhook...
pub const WEBHOOK: &str = "webhook";
/// ...or a patient, by the channel they chose ([`patients`]); `sent_via` then says which of
/// these delivered it.
pub const PATIENT: &str = "patient";
/// ...or a clinician ([`clinicians`]).
pub const CLINICIAN: &str = "clinician";
pub const SMS: &str = "sms";
pub const ZALO: &str = "zalo";
pub const EMAIL: &str = "email";

/// Where messages of each kind go: the deployment's configured endpoints and their filters.
/// Empty (the default) writes nothing, so a deployment without notifications pays nothing.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    webhooks: Vec<WebhookEndpoint>,
    pub(crate) patients: Option<patients::PatientRoutes>,
}

impl Routes {
    pub fn new(
        webhooks: Vec<WebhookEndpoint>,
        patients: Option<patients::PatientRoutes>,
    ) -> Routes {
        Routes { webhooks, patients }
    }

    /// The (channel, endpoint) pairs that want `kind`.
    pub fn for_kind(&self, kind: EventKind) -> impl Iterator<Item = (&'static str, &str)> {
        self.webhooks
            .iter()
            .filter(move |e| e.wants(kind))
            .map(|e| (WEBHOOK, e.name()))
    }

    /// True when some endpoint wants `kind`, or patients may be told of it.
    pub fn wants(&self, kind: EventKind) -> bool {
        // With people's channels on, every kind may tell someone: the patient of a booking, a
        // move or a cancellation, the referring clinician of a move, a cancellation or a note.
        self.for_kind(kind).next().is_some() || self.patients.is_some()
    }

    /// The rows a booking writes for its patient in the booking's own statement, when patients
    /// are told and no webhook endpoint wants bookings (their rows need the transaction path).
    pub fn booking_rows_alone(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        actor: Option<i64>,
        now: DateTime<Utc>,
    ) -> Option<patients::BookingRows> {
        if self
            .for_kind(EventKind::ConsultationBooked)
            .next()
            .is_some()
        {
            return None;
        }
        let p = self.patients.as_ref()?;
        Some(patients::BookingRows::new(p, start, end, actor, now))
    }

    pub fn webhooks(&self) -> &[WebhookEndpoint] {
        &self.webhooks
    }
}

/// The body of a consultation event: ids and times only (see the module documentation).
#[derive(Debug, Serialize)]
struct ConsultationData<'a> {
    consultation_id: i64,
    status: &'a str,
    kind: &'a str,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    /// The delay its clinician announced, in minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    running_late_minutes: Option<i32>,
    clinician_id: i64,
    requesting_facility_id: Option<i64>,
    referring_clinician_id: Option<i64>,
}

/// The stored payload of `kind` about `c`.
pub fn consultation_payload(c: &Consultation) -> String {
    let data = ConsultationData {
        consultation_id: c.id.0,
        status: c.status.as_str(),
        kind: c.kind.as_str(),
        start_at: c.start_at,
        end_at: c.end_at,
        running_late_minutes: c.running_late_minutes,
        clinician_id: c.clinician_id.0,
        requesting_facility_id: c.requesting_facility_id.map(|f| f.0),
        referring_clinician_id: c.referring_clinician_id.map(|r| r.0),
    };
    // A struct of numbers, strings and timestamps always serialises.
    serde_json::to_string(&data).unwrap_or_else(|_| "{}".to_owned())
}

/// Writes, on the connection of the change's transaction, one message of `kind` about `c` per
/// endpoint that wants it, due at `now`, and what the patient is to be told of it (see
/// [`patients`]), caused by account `actor`. Returns how many.
pub async fn enqueue(
    mut conn: Conn<'_>,
    routes: &Routes,
    kind: EventKind,
    c: &Consultation,
    actor: Option<i64>,
    now: DateTime<Utc>,
) -> Result<usize, sqlx::Error> {
    let mut written = 0;
    let mut payload = None;
    for (channel, endpoint) in routes.for_kind(kind) {
        let payload = payload.get_or_insert_with(|| consultation_payload(c));
        let new = store::NewMessage {
            idempotency_key: new_key(),
            kind: kind.as_str(),
            consultation_id: Some(c.id.0),
            channel,
            endpoint,
            payload,
            recipient_patient_id: None,
            recipient_clinician_id: None,
            actor_account_id: None,
            due_at: now,
            created_at: now,
        };
        store::insert(conn.reborrow(), &new).await?;
        written += 1;
    }
    if let Some(p) = &routes.patients {
        written += patients::enqueue(conn.reborrow(), p, kind, c, actor, now).await?;
        written += clinicians::enqueue(conn, p, kind, c, actor, now).await?;
    }
    Ok(written)
}

/// A fresh idempotency key: `msg_` and a random UUID, unique across nodes without coordination.
pub(crate) fn new_key() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// The routes shared by every request of one server.
pub type SharedRoutes = Arc<Routes>;
