//! Patients' email over SMTP with `lettre`, with an iCalendar (`.ics`) invitation for a booked or
//! moved visit (and its cancellation), so the visit lands in the patient's calendar.
//!
//! The `Message-ID` is the message's idempotency key, so a receiving system that sees a retry
//! after a crash can tell it from a new email; the invitation's `UID` is the consultation's, and
//! its `SEQUENCE` the count of changes, so a moved visit updates the calendar entry instead of
//! adding a second one. The SMTP server's answer decides a retry: a transient (4xx) reply or a
//! lost connection is retried, a permanent (5xx) reply (an unknown mailbox) is not.

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, EventLike, EventStatus};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::channel::{Delivered, SendError};
use super::contacts::Email;
use super::render::{Notice, Words};
use crate::config::EmailSettings;

/// What is wrong with the email configuration: found at start.
#[derive(Debug, thiserror::Error)]
pub enum EmailConfigError {
    #[error("email.smtp_url is not an SMTP URL lettre understands")]
    Url,
    #[error("email.from must be an address, optionally with a name: Name <address>")]
    From,
}

/// The visit an invitation describes.
pub struct Invitation<'a> {
    pub consultation_id: i64,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    /// Changes so far (the consultation's version): later ones replace earlier ones.
    pub sequence: u32,
    pub link: Option<&'a str>,
    /// Shown as the calendar entry's title: no clinical content.
    pub summary: &'a str,
    /// The host the `UID` is qualified with.
    pub host: &'a str,
}

/// The `.ics` of `notice` about `v`: a `REQUEST` for a booking or a move, a `CANCEL` for a
/// cancellation, `None` for a reminder (the entry is already in the calendar).
pub fn invitation(notice: Notice, v: &Invitation<'_>) -> Option<String> {
    let (method, status) = match notice {
        Notice::Booked | Notice::Rescheduled => ("REQUEST", EventStatus::Confirmed),
        Notice::Cancelled => ("CANCEL", EventStatus::Cancelled),
        Notice::Reminder | Notice::JoinNow | Notice::RunningLate => return None,
    };
    let mut event = icalendar::Event::new();
    event
        .uid(&format!("consultation-{}@{}", v.consultation_id, v.host))
        .sequence(v.sequence)
        .summary(v.summary)
        .starts(v.start_at)
        .ends(v.end_at)
        .status(status);
    if let Some(link) = v.link {
        event.url(link).description(link);
    }
    let mut calendar = Calendar::new();
    calendar.append_property(("METHOD", method));
    calendar.push(event.done());
    Some(calendar.done().to_string())
}

/// The SMTP relay of one deployment.
pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl EmailSender {
    pub fn new(s: &EmailSettings) -> Result<EmailSender, EmailConfigError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(s.smtp_url.expose())
            .map_err(|_| EmailConfigError::Url)?
            .timeout(Some(super::http::SEND_TIMEOUT))
            .build();
        let from = s.from.parse().map_err(|_| EmailConfigError::From)?;
        Ok(EmailSender { transport, from })
    }

    /// The host part of the sender's address (qualifies invitation UIDs and message ids).
    pub fn host(&self) -> &str {
        self.from.email.domain()
    }

    /// Sends `words` to `to`, with `ics` attached when given, identified by `key`.
    pub async fn send(
        &self,
        key: &str,
        to: &Email,
        words: &Words,
        ics: Option<String>,
    ) -> Result<Delivered, SendError> {
        let text = SinglePart::plain(words.text.clone());
        let builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to.address().clone()))
            .subject(words.subject.clone())
            .message_id(Some(format!("<{key}@{}>", self.host())));
        let message = match ics {
            Some(ics) => {
                // A constant, valid content type.
                let calendar = ContentType::parse("text/calendar; charset=utf-8; method=REQUEST")
                    .map_err(|_| SendError::permanent("calendar content type"))?;
                builder.multipart(
                    MultiPart::mixed()
                        .singlepart(text)
                        .singlepart(Attachment::new("visit.ics".to_owned()).body(ics, calendar)),
                )
            }
            None => builder.singlepart(text),
        }
        .map_err(|_| SendError::permanent("email cannot be built"))?;
        match self.transport.send(message).await {
            Ok(r) => Ok(Delivered {
                status: u16::from(r.code()),
                via: super::EMAIL,
            }),
            Err(e) if e.is_permanent() => Err(SendError::permanent(match e.status() {
                Some(code) => format!("SMTP {code}"),
                None => "SMTP refused".to_owned(),
            })),
            Err(e) => Err(SendError::retry(match e.status() {
                Some(code) => format!("SMTP {code}"),
                None if e.is_timeout() => "timed out".to_owned(),
                None => "SMTP connection failed".to_owned(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_booking_invites_a_move_replaces_and_a_cancellation_cancels() {
        let start = DateTime::parse_from_rfc3339("2026-12-14T02:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("a valid instant");
        let v = Invitation {
            consultation_id: 42,
            start_at: start,
            end_at: start + chrono::Duration::minutes(30),
            sequence: 3,
            link: Some("https://th.example.vn/visit#tok"),
            summary: "Telehealth visit",
            host: "th.example.vn",
        };
        let booked = invitation(Notice::Booked, &v).expect("an invitation");
        assert!(booked.contains("METHOD:REQUEST"), "{booked}");
        assert!(booked.contains("UID:consultation-42@th.example.vn"));
        assert!(booked.contains("SEQUENCE:3"));
        assert!(booked.contains("DTSTART:20261214T020000Z"));
        assert!(booked.contains("URL:https://th.example.vn/visit#tok"));
        let cancelled = invitation(Notice::Cancelled, &v).expect("a cancellation");
        assert!(cancelled.contains("METHOD:CANCEL") && cancelled.contains("STATUS:CANCELLED"));
        assert_eq!(invitation(Notice::Reminder, &v), None);
    }
}
