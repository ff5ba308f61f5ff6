//! Messages to patients: written with the booking change, rendered and sent when due.
//!
//! # What is enqueued, in the change's transaction
//! A booking (or a confirmed hold) enqueues its confirmation, a reminder for each configured
//! `reminder_minutes_before` still ahead (those 15 minutes or less before are left to "join
//! now"), and "join now" at the room's opening ([`crate::calls::join_window`]) when that is still
//! ahead. A move cancels the queued reminders and enqueues the move's notice and new reminders;
//! a cancellation cancels them and enqueues its notice. Nothing is enqueued for a patient whose
//! consent and channel are not recorded ([`super::contacts`]), or whose channel the deployment
//! does not carry: the rows are written by one `INSERT ... SELECT` from `patient_contacts`, so
//! the change's transaction reads nothing for them.
//!
//! # Quiet hours
//! A message that falls due in the patient's quiet hours waits for them to end, unless the visit
//! starts before they end: then it goes when due, since the visit itself is in the patient's
//! quiet hours. "Join now" and "running late" always go when due. The sender decides when it
//! claims the message (the quiet hours as they are then), and puts it off without counting an
//! attempt.
//!
//! # When it is sent
//! The message is rendered from the records as they are then: the visit's time in the patient's
//! zone (their care centre's; else the hospital's), their language, their channel, a fresh visit
//! link issued in the name of the account whose change caused the message. A reminder whose visit
//! no longer stands at the time it was for, or a message to a patient who has since withdrawn
//! consent, is `cancelled` instead. Reading the patient's contact details and issuing the link
//! are recorded in the audit trail (actor `notifier`) in the transaction that issues the link.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::EventKind;
use super::channel::{Channel, Delivered, SendError};
use super::contacts::{self, Contacts, PatientChannel};
use super::email::Invitation;
use super::render::{self, Notice};
use super::sms::Phone;
use super::store::{self, Message};
use super::transports::{Outgoing, Transports};
use crate::audit::{self, Outcome};
use crate::domain::consultation::{Consultation, Status};
use crate::domain::ids::{ConsultationId, PatientId};
use crate::domain::time::Zone;
use crate::on_conn;
use crate::storage::{Conn, Db};

/// The patients' channels a deployment carries, and its reminders.
#[derive(Clone, Debug)]
pub struct PatientRoutes {
    /// Before the visit, largest first.
    reminders: Vec<Duration>,
    sms: bool,
    zalo: bool,
    email: bool,
}

impl PatientRoutes {
    /// `None` when no patient channel is configured: nothing is enqueued for patients.
    pub fn new(
        minutes_before: &[u32],
        sms: bool,
        zalo: bool,
        email: bool,
    ) -> Option<PatientRoutes> {
        if !(sms || zalo || email) {
            return None;
        }
        let mut minutes: Vec<u32> = minutes_before
            .iter()
            .copied()
            .filter(|m| i64::from(*m) > crate::calls::OPENS_BEFORE_MINUTES)
            .collect();
        minutes.sort_unstable_by(|a, b| b.cmp(a));
        minutes.dedup();
        Some(PatientRoutes {
            reminders: minutes
                .into_iter()
                .map(|m| Duration::minutes(i64::from(m)))
                .collect(),
            sms,
            zalo,
            email,
        })
    }

    /// Can the deployment reach a person who chose `channel`? Zalo needs Zalo or SMS (its
    /// fallback).
    pub(crate) fn carries(&self, channel: PatientChannel) -> bool {
        match channel {
            PatientChannel::Zalo => self.zalo || self.sms,
            PatientChannel::Sms => self.sms,
            PatientChannel::Email => self.email,
            PatientChannel::None => false,
        }
    }
}

/// What a stored patient message holds: which visit, and when it was (a reminder for 09:00 is
/// void once the visit moved to 10:00).
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    consultation_id: i64,
    start_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    minutes_before: Option<i64>,
    /// The delay a running-late notice announces (void once another is announced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    late_minutes: Option<i32>,
}

/// The zone a patient reads times in: their care centre's, else the consulted hospital's.
pub(crate) async fn patient_zone(conn: Conn<'_>, c: &Consultation) -> Result<Zone, sqlx::Error> {
    let name: Option<String> = on_conn!(conn, k => sqlx::query_scalar(
        "SELECT COALESCE(
             (SELECT f.time_zone FROM patients p JOIN facilities f ON f.id = p.home_facility_id
              WHERE p.id = $1),
             (SELECT f.time_zone FROM clinicians d JOIN facilities f ON f.id = d.facility_id
              WHERE d.id = $2))",
    )
    .bind(c.patient_id)
    .bind(c.clinician_id)
    .fetch_one(&mut *k)
    .await)?;
    // Facilities' zones are checked when they are written; UTC is what a missing one reads as.
    Ok(name.and_then(|n| Zone::parse(&n).ok()).unwrap_or(Zone::UTC))
}

/// When a message due at `due` goes, given the patient's quiet hours (module documentation).
fn after_quiet_hours(
    due: DateTime<Utc>,
    notice: Notice,
    contacts: &Contacts,
    zone: Zone,
    visit_start: DateTime<Utc>,
) -> DateTime<Utc> {
    // Both are about a visit happening now.
    if matches!(notice, Notice::JoinNow | Notice::RunningLate) {
        return due;
    }
    match contacts.quiet.and_then(|q| q.end_after(due, zone)) {
        Some(end) if end < visit_start => end,
        _ => due,
    }
}

/// What a patient is told of `notice` about a visit from `start` to `end`, and when: the notice
/// itself now, and after a booking or a move the reminders still ahead and "join now".
fn due_rows(
    routes: &PatientRoutes,
    notice: Notice,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<(Notice, DateTime<Utc>, Option<i64>)> {
    let mut due = vec![(notice, now, None)];
    if matches!(notice, Notice::Booked | Notice::Rescheduled) {
        for before in &routes.reminders {
            let at = start - *before;
            if at > now {
                due.push((Notice::Reminder, at, Some(before.num_minutes())));
            }
        }
        let (opens, _) = crate::calls::join_window(start, end);
        if opens > now {
            due.push((Notice::JoinNow, opens, None));
        }
    }
    due
}

/// A booking's messages to its patient as the PostgreSQL booking statement writes them, in the
/// same statement (`booking::store::insert_booking_audited_notifying`), when the patient
/// consented to a channel the deployment carries.
pub struct BookingRows {
    pub keys: Vec<String>,
    pub kinds: Vec<&'static str>,
    pub dues: Vec<DateTime<Utc>>,
    pub minutes_before: Vec<Option<i64>>,
    pub actor: Option<i64>,
    pub now: DateTime<Utc>,
    /// SMS, Zalo (or its SMS fallback), email.
    pub carries: (bool, bool, bool),
}

impl BookingRows {
    pub fn new(
        routes: &PatientRoutes,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        actor: Option<i64>,
        now: DateTime<Utc>,
    ) -> BookingRows {
        let due = due_rows(routes, Notice::Booked, start, end, now);
        BookingRows {
            keys: due.iter().map(|_| super::new_key()).collect(),
            kinds: due.iter().map(|(n, _, _)| n.as_str()).collect(),
            dues: due
                .iter()
                .map(|(_, at, _)| crate::domain::time::truncate_seconds(*at))
                .collect(),
            minutes_before: due.iter().map(|(_, _, m)| *m).collect(),
            actor,
            now,
            carries: (routes.sms, routes.zalo || routes.sms, routes.email),
        }
    }
}

/// Enqueues, on the change's connection, what patient `c.patient_id` is to be told of `kind`.
pub async fn enqueue(
    mut conn: Conn<'_>,
    routes: &PatientRoutes,
    kind: EventKind,
    c: &Consultation,
    actor: Option<i64>,
    now: DateTime<Utc>,
) -> Result<usize, sqlx::Error> {
    let notice = match kind {
        EventKind::ConsultationBooked => Notice::Booked,
        EventKind::ConsultationRescheduled => Notice::Rescheduled,
        EventKind::ConsultationCancelled => Notice::Cancelled,
        // A delay, not "on time again": the patient was told of the delay only.
        EventKind::RunningLate if c.running_late_minutes.is_some() => Notice::RunningLate,
        EventKind::RunningLate | EventKind::NoteSigned => return Ok(0),
    };
    if matches!(notice, Notice::Rescheduled | Notice::Cancelled) {
        store::cancel_reminders(conn.reborrow(), c.id.0, "the visit was moved or cancelled")
            .await?;
    }
    let due = due_rows(routes, notice, c.start_at, c.end_at, now);
    let rows: Vec<store::PatientRow> = due
        .iter()
        .map(|(notice, at, minutes_before)| store::PatientRow {
            idempotency_key: super::new_key(),
            kind: notice.as_str(),
            payload: serde_json::to_string(&Payload {
                consultation_id: c.id.0,
                start_at: c.start_at,
                minutes_before: *minutes_before,
                late_minutes: c
                    .running_late_minutes
                    .filter(|_| *notice == Notice::RunningLate),
            })
            // Numbers and a timestamp always serialise.
            .unwrap_or_else(|_| "{}".to_owned()),
            due_at: crate::domain::time::truncate_seconds(*at),
        })
        .collect();
    // One statement, written only when the patient consented to a channel this deployment
    // carries: the change's transaction reads nothing for it.
    let written = store::insert_for_consenting_patient(
        conn,
        c.id.0,
        c.patient_id.0,
        actor,
        &rows,
        (routes.sms, routes.zalo, routes.email),
        now,
    )
    .await?;
    Ok(usize::try_from(written).unwrap_or(usize::MAX))
}

/// Why a prepared message is not sent.
enum Void {
    Obsolete(&'static str),
    Permanent(&'static str),
    /// In the patient's quiet hours: until then.
    Later(DateTime<Utc>),
}

/// Everything a send needs, read (and the link issued) in one transaction.
struct Prepared {
    notice: Notice,
    /// The delay of a running-late notice.
    late: i32,
    contacts: Contacts,
    phone: Option<Phone>,
    when: String,
    link: Option<String>,
    consultation: Consultation,
}

/// Sends patients' messages by the channel each chose.
pub struct PatientSender {
    db: Db,
    visit_secret: Arc<Vec<u8>>,
    /// The address patients open, without a trailing slash.
    public_url: String,
    transports: Arc<Transports>,
}

impl PatientSender {
    pub fn new(
        db: Db,
        visit_secret: Arc<Vec<u8>>,
        public_url: &str,
        transports: Arc<Transports>,
    ) -> PatientSender {
        PatientSender {
            db,
            visit_secret,
            public_url: public_url.trim_end_matches('/').to_owned(),
            transports,
        }
    }

    async fn prepare(
        &self,
        m: &Message,
        now: DateTime<Utc>,
    ) -> Result<Result<Prepared, Void>, sqlx::Error> {
        let (Some(notice), Ok(p), Some(patient)) = (
            Notice::parse(&m.event_kind),
            serde_json::from_str::<Payload>(&m.payload),
            m.recipient_patient_id.map(PatientId),
        ) else {
            return Ok(Err(Void::Permanent("not a patient message")));
        };
        let mut tx = self.db.begin().await?;
        let id = ConsultationId(p.consultation_id);
        let Some(c) = crate::scheduling::booking::store::get(tx.conn(), id).await? else {
            return Ok(Err(Void::Obsolete("the consultation is gone")));
        };
        let stands = match notice {
            Notice::Cancelled => c.status == Status::Cancelled,
            Notice::Booked | Notice::Rescheduled => {
                c.status == Status::Booked && c.start_at == p.start_at
            }
            Notice::Reminder | Notice::JoinNow => {
                matches!(c.status, Status::Booked | Status::InProgress) && c.start_at == p.start_at
            }
            Notice::RunningLate => {
                c.status == Status::Booked
                    && c.start_at == p.start_at
                    && c.running_late_minutes == p.late_minutes
            }
        };
        if !stands || c.patient_id != patient {
            return Ok(Err(Void::Obsolete("the visit changed since")));
        }
        let Some(recorded) = contacts::get(tx.conn(), patient).await? else {
            return Ok(Err(Void::Obsolete("no consent recorded")));
        };
        if recorded.contacts.reachable_by().is_none() {
            return Ok(Err(Void::Obsolete("the patient withdrew consent")));
        }
        let zone = patient_zone(tx.conn(), &c).await?;
        let held = after_quiet_hours(now, notice, &recorded.contacts, zone, c.start_at);
        if held > now {
            return Ok(Err(Void::Later(held)));
        }
        let phone: Option<String> = on_conn!(tx.conn(), k => sqlx::query_scalar(
            "SELECT phone FROM patients WHERE id = $1",
        )
        .bind(patient)
        .fetch_one(&mut *k)
        .await)?;
        let link = match (notice, m.actor_account_id) {
            (Notice::Cancelled, _) | (_, None) => None,
            (_, Some(actor)) => {
                let expires_at = c.end_at + Duration::hours(1);
                let link_id = crate::auth::accounts::store::insert_visit_link(
                    tx.conn(),
                    id,
                    patient,
                    crate::auth::AccountId(actor),
                    now,
                    expires_at,
                )
                .await?;
                let claims = crate::auth::tokens::VisitClaims {
                    link_id,
                    consultation_id: id,
                    patient_id: patient,
                    expires_at,
                };
                match crate::auth::tokens::sign_visit_link(&self.visit_secret, &claims) {
                    Ok(token) => Some(format!("{}/visit#{token}", self.public_url)),
                    Err(_) => return Ok(Err(Void::Permanent("visit link cannot be signed"))),
                }
            }
        };
        let event = audit::Event {
            actor_account_id: None,
            actor: "notifier".to_owned(),
            actor_role: "system".to_owned(),
            action: format!(
                "notify {} by {}",
                notice.as_str(),
                recorded.contacts.channel.as_str()
            ),
            record_type: "consultation".to_owned(),
            record_id: Some(id.to_string()),
            patient_id: Some(patient),
            patients: Vec::new(),
            client_addr: None,
            outcome: Outcome::Allowed,
        };
        audit::stage(tx.conn(), &event).await?;
        tx.commit().await?;
        let lang = recorded.contacts.language;
        Ok(Ok(Prepared {
            notice,
            late: p.late_minutes.unwrap_or(0),
            when: render::local_time(c.start_at, zone, lang),
            phone: phone.as_deref().and_then(Phone::parse),
            contacts: recorded.contacts,
            link,
            consultation: c,
        }))
    }

    async fn deliver(&self, m: &Message, now: DateTime<Utc>) -> Result<Delivered, SendError> {
        let p = match self
            .prepare(m, now)
            .await
            .map_err(|_| SendError::retry("database unavailable"))?
        {
            Ok(p) => p,
            Err(Void::Obsolete(why)) => return Err(SendError::obsolete(why)),
            Err(Void::Permanent(why)) => return Err(SendError::permanent(why)),
            Err(Void::Later(at)) => return Err(SendError::later(at, "quiet hours")),
        };
        let words = render::words(
            p.notice,
            p.contacts.language,
            &p.when,
            p.link.as_deref(),
            p.late,
        );
        let c = &p.consultation;
        let ics = match (p.contacts.channel, self.transports.email_host()) {
            (PatientChannel::Email, Some(host)) => super::email::invitation(
                p.notice,
                &Invitation {
                    consultation_id: c.id.0,
                    start_at: c.start_at,
                    end_at: c.end_at,
                    sequence: u32::try_from(c.version).unwrap_or(0),
                    link: p.link.as_deref(),
                    summary: &words.subject,
                    host,
                },
            ),
            _ => None,
        };
        let outgoing = Outgoing {
            key: &m.idempotency_key,
            id: m.id,
            kind: p.notice.as_str(),
            words: &words,
            when: &p.when,
            link: p.link.as_deref(),
            phone: p.phone.as_ref(),
            email: p.contacts.email.as_ref(),
            ics,
        };
        self.transports.send(p.contacts.channel, outgoing).await
    }
}

impl Channel for PatientSender {
    fn send<'a>(
        &'a self,
        message: &'a Message,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Delivered, SendError>> {
        Box::pin(self.deliver(message, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::contacts::{Language, QuietHours};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .expect("a valid instant")
    }

    #[test]
    fn quiet_hours_hold_a_message_unless_the_visit_comes_first() {
        let zone = Zone::parse("Asia/Ho_Chi_Minh").expect("a zone");
        let contacts = Contacts {
            consent: true,
            channel: PatientChannel::Sms,
            language: Language::Vi,
            email: None,
            quiet: QuietHours::parse("21:00", "07:00"),
        };
        // Booked at 23:00 local for 09:00 the next morning: the confirmation waits until 07:00.
        let booked_at = at("2026-12-14T16:00:00Z");
        let visit = at("2026-12-15T02:00:00Z");
        assert_eq!(
            after_quiet_hours(booked_at, Notice::Booked, &contacts, zone, visit),
            at("2026-12-15T00:00:00Z")
        );
        // A visit at 06:30 local, in the quiet hours: its 1-hour reminder goes when due.
        let early = at("2026-12-14T23:30:00Z");
        let reminder = early - Duration::hours(1);
        assert_eq!(
            after_quiet_hours(reminder, Notice::Reminder, &contacts, zone, early),
            reminder
        );
        // "Join now" is never held.
        assert_eq!(
            after_quiet_hours(booked_at, Notice::JoinNow, &contacts, zone, visit),
            booked_at
        );
    }

    #[test]
    fn reminders_inside_the_join_window_are_left_to_join_now() {
        let r = PatientRoutes::new(&[60, 1440, 10, 60], true, false, false).expect("routes");
        assert_eq!(
            r.reminders,
            [Duration::minutes(1440), Duration::minutes(60)]
        );
        assert!(PatientRoutes::new(&[60], false, false, false).is_none());
        assert!(r.carries(PatientChannel::Zalo) && !r.carries(PatientChannel::Email));
    }
}
