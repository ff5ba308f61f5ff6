//! The deployment's ways of reaching a person (SMS, Zalo, email), shared by the patients' and
//! the clinicians' senders, and the one place the choice between them is made.

use super::channel::{Delivered, SendError};
use super::contacts::{Email, PatientChannel};
use super::email::EmailSender;
use super::render::{self, Words};
use super::sms::{Phone, SmsGateway};
use super::zalo::{ZaloError, ZaloGateway};

/// The configured transports; any may be missing.
pub struct Transports {
    pub sms: Option<SmsGateway>,
    pub zalo: Option<ZaloGateway>,
    pub email: Option<EmailSender>,
}

/// One message to one person, rendered.
pub struct Outgoing<'a> {
    /// The idempotency key every provider is given.
    pub key: &'a str,
    /// The outbox id, for the log line of a Zalo refusal.
    pub id: i64,
    /// As stored in `event_kind` (Zalo templates are configured by it).
    pub kind: &'a str,
    pub words: &'a Words,
    /// The visit's local time and the link, as a Zalo template's parameters.
    pub when: &'a str,
    pub link: Option<&'a str>,
    pub phone: Option<&'a Phone>,
    pub email: Option<&'a Email>,
    /// An `.ics` attachment for an email.
    pub ics: Option<String>,
}

impl Transports {
    async fn sms(&self, m: &Outgoing<'_>) -> Result<Delivered, SendError> {
        let sms = self
            .sms
            .as_ref()
            .ok_or_else(|| SendError::permanent("no SMS gateway configured"))?;
        let phone = m
            .phone
            .ok_or_else(|| SendError::permanent("no usable phone number"))?;
        let text = if sms.unicode() {
            m.words.text.clone()
        } else {
            render::without_marks(&m.words.text)
        };
        sms.send(m.key, phone, &text).await
    }

    /// Sends `m` by `channel`: Zalo, and SMS when Zalo refuses (or is not configured, or has no
    /// template for the kind); SMS; email.
    pub async fn send(
        &self,
        channel: PatientChannel,
        m: Outgoing<'_>,
    ) -> Result<Delivered, SendError> {
        match channel {
            PatientChannel::Zalo => {
                if let (Some(zalo), Some(phone)) = (&self.zalo, m.phone) {
                    match zalo.send(m.key, phone, m.kind, m.when, m.link).await {
                        Ok(d) => return Ok(d),
                        Err(ZaloError::Failed(e)) => return Err(e),
                        Err(ZaloError::Refused(why)) => {
                            tracing::info!(id = m.id, reason = %why, "Zalo refused; sending by SMS");
                        }
                    }
                }
                self.sms(&m).await
            }
            PatientChannel::Sms => self.sms(&m).await,
            PatientChannel::Email => {
                let email = self
                    .email
                    .as_ref()
                    .ok_or_else(|| SendError::permanent("no SMTP server configured"))?;
                let to = m
                    .email
                    .ok_or_else(|| SendError::permanent("no email address"))?;
                email.send(m.key, to, m.words, m.ics).await
            }
            PatientChannel::None => Err(SendError::obsolete("nothing is to be sent")),
        }
    }

    /// The host that qualifies invitation UIDs (the sender's domain), when email is configured.
    pub fn email_host(&self) -> Option<&str> {
        self.email.as_ref().map(EmailSender::host)
    }
}
