//! How a patient wants to be told of their visits: consent, channel, language, an email address
//! and quiet hours, parsed once at the edge (the API) into the types below and stored in
//! `patient_contacts`. Without a row, or without consent, nothing is sent to the patient.

use chrono::{DateTime, Duration, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::AccountId;
use crate::domain::ids::PatientId;
use crate::domain::time::Zone;
use crate::on_conn;
use crate::storage::Conn;

/// The language a patient's messages are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Vi,
    En,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Vi => "vi",
            Language::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Language> {
        match s {
            "vi" => Some(Language::Vi),
            "en" => Some(Language::En),
            _ => None,
        }
    }
}

/// The channel a patient chose. Zalo falls back to SMS when Zalo refuses the message (the
/// number has no Zalo account, or has blocked the sender).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PatientChannel {
    Zalo,
    Sms,
    Email,
    /// Asked, and wants nothing sent.
    None,
}

impl PatientChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            PatientChannel::Zalo => super::ZALO,
            PatientChannel::Sms => super::SMS,
            PatientChannel::Email => super::EMAIL,
            PatientChannel::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<PatientChannel> {
        match s {
            "zalo" => Some(PatientChannel::Zalo),
            "sms" => Some(PatientChannel::Sms),
            "email" => Some(PatientChannel::Email),
            "none" => Some(PatientChannel::None),
            _ => None,
        }
    }
}

/// A checked email address (lettre's parser: the address SMTP will be given).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(lettre::Address);

impl Email {
    pub fn parse(s: &str) -> Option<Email> {
        if s.len() > 254 {
            return None;
        }
        s.trim().parse().ok().map(Email)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    pub fn address(&self) -> &lettre::Address {
        &self.0
    }
}

/// Quiet hours in the patient's local time: from `from` until `until`, wrapping past midnight
/// when `from` is later in the day (21:00 to 07:00).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuietHours {
    from: u16,
    until: u16,
}

impl QuietHours {
    /// Minutes after midnight; `None` for an empty span or minutes outside the day.
    pub fn new(from: u16, until: u16) -> Option<QuietHours> {
        (from < 1440 && until < 1440 && from != until).then_some(QuietHours { from, until })
    }

    /// From `HH:MM` texts.
    pub fn parse(from: &str, until: &str) -> Option<QuietHours> {
        let minutes = |s: &str| {
            NaiveTime::parse_from_str(s, "%H:%M")
                .ok()
                .and_then(|t| u16::try_from(t.hour() * 60 + t.minute()).ok())
        };
        QuietHours::new(minutes(from)?, minutes(until)?)
    }

    fn text(m: u16) -> String {
        format!("{:02}:{:02}", m / 60, m % 60)
    }

    pub fn from_text(self) -> String {
        QuietHours::text(self.from)
    }

    pub fn until_text(self) -> String {
        QuietHours::text(self.until)
    }

    fn contains(self, minute: u16) -> bool {
        if self.from < self.until {
            (self.from..self.until).contains(&minute)
        } else {
            minute >= self.from || minute < self.until
        }
    }

    /// When quiet hours that hold `at` end (in `zone`), or `None` when `at` is not in them.
    pub fn end_after(self, at: DateTime<Utc>, zone: Zone) -> Option<DateTime<Utc>> {
        let local = zone.to_local(at);
        let minute = u16::try_from(local.hour() * 60 + local.minute()).ok()?;
        if !self.contains(minute) {
            return None;
        }
        let mut date = local.date();
        if minute >= self.until {
            // Wrapped: the quiet hours end tomorrow morning.
            date += Duration::days(1);
        }
        let end =
            NaiveTime::from_hms_opt(u32::from(self.until / 60), u32::from(self.until % 60), 0)?;
        // A local time a clock change skips is taken an hour later.
        zone.to_utc(date.and_time(end))
            .or_else(|| zone.to_utc(date.and_time(end) + Duration::hours(1)))
    }
}

/// A patient's answer, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contacts {
    pub consent: bool,
    pub channel: PatientChannel,
    pub language: Language,
    pub email: Option<Email>,
    pub quiet: Option<QuietHours>,
}

impl Contacts {
    /// The channel to send by, when anything is to be sent at all.
    pub fn reachable_by(&self) -> Option<PatientChannel> {
        (self.consent && self.channel != PatientChannel::None).then_some(self.channel)
    }
}

/// [`Contacts`] with who recorded them and when.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub contacts: Contacts,
    pub updated_at: DateTime<Utc>,
    pub updated_by: AccountId,
}

#[derive(sqlx::FromRow)]
struct Row {
    consent: bool,
    channel: String,
    language: String,
    email: Option<String>,
    quiet_from: Option<i32>,
    quiet_until: Option<i32>,
    updated_at: DateTime<Utc>,
    updated_by: AccountId,
}

impl Row {
    /// Rows are written only from parsed values; one that does not parse (edited by hand) is
    /// read as "asked, no consent", so a doubtful row never sends anything.
    fn into_recorded(self) -> Recorded {
        let quiet = match (self.quiet_from, self.quiet_until) {
            (Some(f), Some(u)) => {
                QuietHours::new(u16::try_from(f).unwrap_or(0), u16::try_from(u).unwrap_or(0))
            }
            _ => None,
        };
        let email = self.email.as_deref().and_then(Email::parse);
        let channel = PatientChannel::parse(&self.channel);
        let language = Language::parse(&self.language);
        let parsed = channel.is_some() && language.is_some();
        Recorded {
            contacts: Contacts {
                consent: self.consent && parsed,
                channel: channel.unwrap_or(PatientChannel::None),
                language: language.unwrap_or(Language::Vi),
                email,
                quiet,
            },
            updated_at: self.updated_at,
            updated_by: self.updated_by,
        }
    }
}

/// Patient `id`'s recorded answer, if they were asked.
pub async fn get(conn: Conn<'_>, id: PatientId) -> Result<Option<Recorded>, sqlx::Error> {
    let row: Option<Row> = on_conn!(conn, c => sqlx::query_as(
        "SELECT consent, channel, language, email, quiet_from, quiet_until, updated_at, updated_by
         FROM patient_contacts WHERE patient_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(row.map(Row::into_recorded))
}

/// Records patient `id`'s answer (replacing an earlier one).
pub async fn put(
    conn: Conn<'_>,
    id: PatientId,
    contacts: &Contacts,
    by: AccountId,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "INSERT INTO patient_contacts
             (patient_id, consent, channel, language, email, quiet_from, quiet_until,
              updated_at, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (patient_id) DO UPDATE SET
             consent = excluded.consent, channel = excluded.channel,
             language = excluded.language, email = excluded.email,
             quiet_from = excluded.quiet_from, quiet_until = excluded.quiet_until,
             updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(id)
    .bind(contacts.consent)
    .bind(contacts.channel.as_str())
    .bind(contacts.language.as_str())
    .bind(contacts.email.as_ref().map(Email::as_str))
    .bind(contacts.quiet.map(|q| i32::from(q.from)))
    .bind(contacts.quiet.map(|q| i32::from(q.until)))
    .bind(at)
    .bind(by)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .expect("a valid instant")
    }

    #[test]
    fn quiet_hours_wrap_past_midnight_in_the_patients_zone() {
        let zone = Zone::parse("Asia/Ho_Chi_Minh").expect("a zone");
        let q = QuietHours::parse("21:00", "07:00").expect("quiet hours");
        // 23:30 local (16:30 UTC): quiet until 07:00 local the next morning (00:00 UTC).
        assert_eq!(
            q.end_after(at("2026-12-14T16:30:00Z"), zone),
            Some(at("2026-12-15T00:00:00Z"))
        );
        // 05:00 local (22:00 UTC the day before): quiet until 07:00 the same local morning.
        assert_eq!(
            q.end_after(at("2026-12-14T22:00:00Z"), zone),
            Some(at("2026-12-15T00:00:00Z"))
        );
        // 07:00 and 20:59 local are not quiet.
        assert_eq!(q.end_after(at("2026-12-15T00:00:00Z"), zone), None);
        assert_eq!(q.end_after(at("2026-12-15T13:59:00Z"), zone), None);
        let day = QuietHours::parse("12:00", "13:30").expect("a midday rest");
        assert_eq!(
            day.end_after(at("2026-12-15T05:10:00Z"), zone),
            Some(at("2026-12-15T06:30:00Z"))
        );
        assert_eq!(QuietHours::parse("07:00", "07:00"), None);
        assert_eq!(QuietHours::parse("25:00", "07:00"), None);
    }

    #[test]
    fn only_a_consenting_patient_with_a_channel_is_reachable() {
        let mut c = Contacts {
            consent: true,
            channel: PatientChannel::Zalo,
            language: Language::Vi,
            email: None,
            quiet: None,
        };
        assert_eq!(c.reachable_by(), Some(PatientChannel::Zalo));
        c.channel = PatientChannel::None;
        assert_eq!(c.reachable_by(), None);
        c.channel = PatientChannel::Sms;
        c.consent = false;
        assert_eq!(c.reachable_by(), None);
        assert!(Email::parse("an@benhvien.vn").is_some());
        assert!(Email::parse("not an address").is_none());
    }
}
