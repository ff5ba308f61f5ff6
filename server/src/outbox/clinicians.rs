//! Messages to clinicians: a patient waiting in the room of a visit they take, and a move, a
//! cancellation or a signed note of a visit they referred.
//!
//! A clinician records their own channel, language, mobile number and work email
//! (`clinician_contacts`, `PUT /api/v1/me/contact-preferences`); without a row nothing is sent.
//! Like a patient's, a clinician's message is rendered when sent, and says only when the visit is
//! and where to open it in the web client (which asks them to sign in): never the patient's name
//! or anything clinical, since an SMS sits on a phone's lock screen. A change a clinician made
//! themselves (they cancelled the visit they referred) is not sent back to them. "Patient waiting"
//! goes at most once per visit in [`WAITING_QUIET_MINUTES`], however often the patient's phone
//! reconnects.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::channel::{Channel, Delivered, SendError};
use super::contacts::{Email, Language, PatientChannel};
use super::patients::PatientRoutes;
use super::render;
use super::sms::Phone;
use super::store::{self, Message};
use super::transports::{Outgoing, Transports};
use super::{CLINICIAN, EventKind};
use crate::audit::{self, Outcome};
use crate::auth::AccountId;
use crate::domain::consultation::{Consultation, Status};
use crate::domain::ids::{ClinicianId, ConsultationId};
use crate::domain::time::Zone;
use crate::on_conn;
use crate::storage::{Conn, Db};

/// The kinds of message a clinician is sent (and Zalo templates may be configured for).
pub const KINDS: [&str; 4] = [
    PATIENT_WAITING,
    "consultation.rescheduled",
    "consultation.cancelled",
    "note.signed",
];
pub const PATIENT_WAITING: &str = "patient.waiting";
/// Least time between two "patient waiting" messages of one visit.
pub const WAITING_QUIET_MINUTES: i64 = 10;

/// A clinician's own answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contacts {
    pub channel: PatientChannel,
    pub language: Language,
    pub phone: Option<Phone>,
    pub email: Option<Email>,
}

#[derive(sqlx::FromRow)]
struct Row {
    channel: String,
    language: String,
    phone: Option<String>,
    email: Option<String>,
    updated_at: DateTime<Utc>,
}

/// [`Contacts`] and when they were recorded.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub contacts: Contacts,
    pub updated_at: DateTime<Utc>,
}

/// Clinician `id`'s answer, if they gave one. A row that does not parse reads as `none`.
pub async fn get(conn: Conn<'_>, id: ClinicianId) -> Result<Option<Recorded>, sqlx::Error> {
    let row: Option<Row> = on_conn!(conn, c => sqlx::query_as(
        "SELECT channel, language, phone, email, updated_at FROM clinician_contacts
         WHERE clinician_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(row.map(|r| Recorded {
        contacts: Contacts {
            channel: PatientChannel::parse(&r.channel).unwrap_or(PatientChannel::None),
            language: Language::parse(&r.language).unwrap_or(Language::Vi),
            phone: r.phone.as_deref().and_then(Phone::parse),
            email: r.email.as_deref().and_then(Email::parse),
        },
        updated_at: r.updated_at,
    }))
}

/// Records clinician `id`'s answer.
pub async fn put(
    conn: Conn<'_>,
    id: ClinicianId,
    c: &Contacts,
    by: AccountId,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, k => sqlx::query(
        "INSERT INTO clinician_contacts (clinician_id, channel, language, phone, email, updated_at, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (clinician_id) DO UPDATE SET
             channel = excluded.channel, language = excluded.language, phone = excluded.phone,
             email = excluded.email, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(id)
    .bind(c.channel.as_str())
    .bind(c.language.as_str())
    .bind(c.phone.as_ref().map(Phone::as_str))
    .bind(c.email.as_ref().map(Email::as_str))
    .bind(at)
    .bind(by)
    .execute(&mut *k)
    .await
    .map(|_| ()))
}

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    consultation_id: i64,
    start_at: DateTime<Utc>,
}

/// Writes one message of `kind` about `c` to clinician `to`, when their answer asks for it and
/// the deployment carries their channel.
async fn enqueue_to(
    mut conn: Conn<'_>,
    routes: &PatientRoutes,
    kind: &str,
    c: &Consultation,
    to: ClinicianId,
    now: DateTime<Utc>,
) -> Result<usize, sqlx::Error> {
    let Some(recorded) = get(conn.reborrow(), to).await? else {
        return Ok(0);
    };
    let channel = recorded.contacts.channel;
    if channel == PatientChannel::None || !routes.carries(channel) {
        return Ok(0);
    }
    let payload = serde_json::to_string(&Payload {
        consultation_id: c.id.0,
        start_at: c.start_at,
    })
    // A number and a timestamp always serialise.
    .unwrap_or_else(|_| "{}".to_owned());
    let new = store::NewMessage {
        idempotency_key: super::new_key(),
        kind,
        consultation_id: Some(c.id.0),
        channel: CLINICIAN,
        endpoint: channel.as_str(),
        payload: &payload,
        recipient_patient_id: None,
        recipient_clinician_id: Some(to.0),
        actor_account_id: None,
        due_at: now,
        created_at: now,
    };
    store::insert(conn, &new).await?;
    Ok(1)
}

/// The clinician account `actor` is, if any.
async fn clinician_of(conn: Conn<'_>, actor: i64) -> Result<Option<ClinicianId>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar(
        "SELECT clinician_id FROM accounts WHERE id = $1",
    )
    .bind(actor)
    .fetch_optional(&mut *c)
    .await)
    .map(Option::flatten)
}

/// Enqueues, in the change's transaction, what the referring clinician of `c` is to hear of
/// `kind` (a move, a cancellation, a signed note), unless they made the change themselves.
pub async fn enqueue(
    mut conn: Conn<'_>,
    routes: &PatientRoutes,
    kind: EventKind,
    c: &Consultation,
    actor: Option<i64>,
    now: DateTime<Utc>,
) -> Result<usize, sqlx::Error> {
    if matches!(kind, EventKind::ConsultationBooked | EventKind::RunningLate) {
        return Ok(0);
    }
    let Some(referrer) = c.referring_clinician_id else {
        return Ok(0);
    };
    if let Some(actor) = actor
        && clinician_of(conn.reborrow(), actor).await? == Some(referrer)
    {
        return Ok(0);
    }
    enqueue_to(conn, routes, kind.as_str(), c, referrer, now).await
}

/// A patient entered the waiting room of `consultation`: tells its consulted clinician, unless
/// they were told in the last [`WAITING_QUIET_MINUTES`].
pub async fn patient_waiting(
    db: &Db,
    routes: &PatientRoutes,
    consultation: ConsultationId,
    now: DateTime<Utc>,
) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin().await?;
    let Some(c) = crate::scheduling::booking::store::get(tx.conn(), consultation).await? else {
        return Ok(0);
    };
    if !matches!(c.status, Status::Booked | Status::InProgress) {
        return Ok(0);
    }
    let since = now - Duration::minutes(WAITING_QUIET_MINUTES);
    let recent: i64 = on_conn!(tx.conn(), k => sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox_messages
         WHERE consultation_id = $1 AND event_kind = $2 AND created_at > $3",
    )
    .bind(consultation)
    .bind(PATIENT_WAITING)
    .bind(since)
    .fetch_one(&mut *k)
    .await)?;
    if recent > 0 {
        return Ok(0);
    }
    let n = enqueue_to(tx.conn(), routes, PATIENT_WAITING, &c, c.clinician_id, now).await?;
    tx.commit().await?;
    Ok(n)
}

/// The words of a clinician's message of `kind`, for a visit at `when`, opened at `url`.
fn words(kind: &str, lang: Language, when: &str, url: &str) -> Option<render::Words> {
    let (subject, text) = match (kind, lang) {
        (PATIENT_WAITING, Language::Vi) => (
            "Người bệnh đang chờ".to_owned(),
            format!("Người bệnh đang chờ trong phòng khám từ xa lúc {when}. Vào phòng: {url}"),
        ),
        (PATIENT_WAITING, Language::En) => (
            "A patient is waiting".to_owned(),
            format!(
                "A patient is waiting in the room of your telehealth visit at {when}. Open: {url}"
            ),
        ),
        ("consultation.rescheduled", Language::Vi) => (
            "Buổi hội chẩn đã đổi giờ".to_owned(),
            format!("Buổi hội chẩn từ xa bạn đã đặt đã đổi sang {when}. Xem: {url}"),
        ),
        ("consultation.rescheduled", Language::En) => (
            "A visit you referred has moved".to_owned(),
            format!("A telehealth visit you referred has moved to {when}. See: {url}"),
        ),
        ("consultation.cancelled", Language::Vi) => (
            "Buổi hội chẩn đã hủy".to_owned(),
            format!("Buổi hội chẩn từ xa lúc {when} bạn đã đặt đã bị hủy. Xem: {url}"),
        ),
        ("consultation.cancelled", Language::En) => (
            "A visit you referred was cancelled".to_owned(),
            format!("A telehealth visit you referred, at {when}, was cancelled. See: {url}"),
        ),
        ("note.signed", Language::Vi) => (
            "Ghi chép đã được ký".to_owned(),
            format!("Ghi chép buổi hội chẩn từ xa lúc {when} đã được ký. Xem lời khuyên: {url}"),
        ),
        ("note.signed", Language::En) => (
            "The note is signed".to_owned(),
            format!(
                "The note of the telehealth visit at {when} you referred is signed. Read the advice: {url}"
            ),
        ),
        _ => return None,
    };
    Some(render::Words { subject, text })
}

/// Sends clinicians' messages by the channel each chose.
pub struct ClinicianSender {
    db: Db,
    public_url: String,
    transports: Arc<Transports>,
}

impl ClinicianSender {
    pub fn new(db: Db, public_url: &str, transports: Arc<Transports>) -> ClinicianSender {
        ClinicianSender {
            db,
            public_url: public_url.trim_end_matches('/').to_owned(),
            transports,
        }
    }

    async fn deliver(&self, m: &Message, _now: DateTime<Utc>) -> Result<Delivered, SendError> {
        let (Ok(p), Some(to)) = (
            serde_json::from_str::<Payload>(&m.payload),
            m.recipient_clinician_id.map(ClinicianId),
        ) else {
            return Err(SendError::permanent("not a clinician message"));
        };
        let id = ConsultationId(p.consultation_id);
        let read = async {
            let mut tx = self.db.begin().await?;
            let c = crate::scheduling::booking::store::get(tx.conn(), id).await?;
            let contacts = get(tx.conn(), to).await?;
            let zone: Option<String> = on_conn!(tx.conn(), k => sqlx::query_scalar(
                "SELECT f.time_zone FROM clinicians d JOIN facilities f ON f.id = d.facility_id
                 WHERE d.id = $1",
            )
            .bind(to)
            .fetch_optional(&mut *k)
            .await)?;
            if let Some(c) = &c {
                let event = audit::Event {
                    actor_account_id: None,
                    actor: "notifier".to_owned(),
                    actor_role: "system".to_owned(),
                    action: format!("notify {} to clinician {}", m.event_kind, to),
                    record_type: "consultation".to_owned(),
                    record_id: Some(id.to_string()),
                    patient_id: Some(c.patient_id),
                    patients: Vec::new(),
                    client_addr: None,
                    outcome: Outcome::Allowed,
                };
                audit::stage(tx.conn(), &event).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>((c, contacts, zone))
        };
        let (c, contacts, zone) = read
            .await
            .map_err(|_| SendError::retry("database unavailable"))?;
        let Some(c) = c else {
            return Err(SendError::obsolete("the consultation is gone"));
        };
        let stands = match m.event_kind.as_str() {
            PATIENT_WAITING => matches!(c.status, Status::Booked | Status::InProgress),
            "consultation.cancelled" => c.status == Status::Cancelled,
            "consultation.rescheduled" => c.start_at == p.start_at,
            _ => true,
        };
        if !stands {
            return Err(SendError::obsolete("the visit changed since"));
        }
        let Some(contacts) = contacts.map(|r| r.contacts) else {
            return Err(SendError::obsolete("the clinician wants nothing sent"));
        };
        let zone = zone.and_then(|z| Zone::parse(&z).ok()).unwrap_or(Zone::UTC);
        let when = render::local_time(c.start_at, zone, contacts.language);
        let path = if m.event_kind == PATIENT_WAITING {
            format!("/call/{}", c.id)
        } else {
            format!("/consultations/{}", c.id)
        };
        let url = format!("{}{path}", self.public_url);
        let words = words(&m.event_kind, contacts.language, &when, &url)
            .ok_or_else(|| SendError::permanent("not a clinician message"))?;
        let outgoing = Outgoing {
            key: &m.idempotency_key,
            id: m.id,
            kind: &m.event_kind,
            words: &words,
            when: &when,
            link: Some(&url),
            phone: contacts.phone.as_ref(),
            email: contacts.email.as_ref(),
            ics: None,
        };
        self.transports.send(contacts.channel, outgoing).await
    }
}

impl Channel for ClinicianSender {
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

    #[test]
    fn every_kind_has_words_in_both_languages_and_none_names_the_patient() {
        for kind in KINDS {
            for lang in [Language::Vi, Language::En] {
                let w = words(kind, lang, "09:00", "https://th/x").expect("words");
                assert!(w.text.contains("09:00") && w.text.contains("https://th/x"));
            }
        }
        assert!(words("consultation.booked", Language::Vi, "", "").is_none());
    }
}
