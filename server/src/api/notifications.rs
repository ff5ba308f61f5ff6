//! Notifications as people see them: a patient's contact preferences and consent, a
//! consultation's delivery log with resend, and the administrators' dead letters.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;

use super::access::{consultation_access, patient_facts};
use super::ctx::Ctx;
use super::directory::NoQuery;
use super::error::ApiError;
use super::reply::{ApiResult, ok};
use super::validate::Validator;
use crate::auth::policy;
use crate::domain::code::ErrorCode;
use crate::domain::ids::{ConsultationId, PatientId};
use crate::journal::About;
use crate::outbox::contacts::{self, Contacts, Email, Language, PatientChannel, QuietHours};
use crate::outbox::sms::Phone;
use crate::outbox::store::{self, MessageView, Resent};

#[derive(Serialize)]
struct QuietView {
    from: String,
    until: String,
}

/// A patient's answer as the API shows it.
#[derive(Serialize)]
struct ContactsView {
    /// False until someone records the patient's answer: nothing is sent before.
    asked: bool,
    consent: bool,
    channel: &'static str,
    language: &'static str,
    email: Option<String>,
    quiet_hours: Option<QuietView>,
    updated_at: Option<DateTime<Utc>>,
    updated_by: Option<i64>,
}

impl ContactsView {
    fn of(r: Option<contacts::Recorded>) -> ContactsView {
        match r {
            None => ContactsView {
                asked: false,
                consent: false,
                channel: PatientChannel::None.as_str(),
                language: Language::Vi.as_str(),
                email: None,
                quiet_hours: None,
                updated_at: None,
                updated_by: None,
            },
            Some(r) => ContactsView {
                asked: true,
                consent: r.contacts.consent,
                channel: r.contacts.channel.as_str(),
                language: r.contacts.language.as_str(),
                email: r.contacts.email.as_ref().map(|e| e.as_str().to_owned()),
                quiet_hours: r.contacts.quiet.map(|q| QuietView {
                    from: q.from_text(),
                    until: q.until_text(),
                }),
                updated_at: Some(r.updated_at),
                updated_by: Some(r.updated_by.0),
            },
        }
    }
}

/// GET /api/v1/patients/{id}/contact-preferences
pub async fn get_contacts(ctx: Ctx) -> ApiResult {
    let id: PatientId = ctx.param("id")?;
    let _: NoQuery = ctx.query()?;
    patient_facts(&ctx, id).await?;
    let mut c = ctx.state.db.acquire().await?;
    ok(&ContactsView::of(contacts::get(c.conn(), id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietBody {
    from: String,
    until: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactsBody {
    consent: bool,
    channel: String,
    language: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    quiet_hours: Option<QuietBody>,
}

/// The channel and language every contact answer has, each refused beside its field.
fn channel_and_language(
    v: &mut Validator,
    channel: &str,
    language: &str,
) -> (Option<PatientChannel>, Option<Language>) {
    let channel = PatientChannel::parse(channel);
    if channel.is_none() {
        v.fail("channel", "must be zalo, sms, email or none");
    }
    let language = Language::parse(language);
    if language.is_none() {
        v.fail("language", "must be vi or en");
    }
    (channel, language)
}

/// An optional email address; needed when `channel` is email.
fn email_for(
    v: &mut Validator,
    raw: Option<&str>,
    channel: Option<PatientChannel>,
) -> Option<Email> {
    match raw.map(str::trim) {
        None | Some("") => {
            if channel == Some(PatientChannel::Email) {
                v.fail("email", "is needed to send by email");
            }
            None
        }
        Some(e) => {
            let parsed = Email::parse(e);
            if parsed.is_none() {
                v.fail("email", "is not an email address");
            }
            parsed
        }
    }
}

/// PUT /api/v1/patients/{id}/contact-preferences
pub async fn put_contacts(ctx: Ctx) -> ApiResult {
    let id: PatientId = ctx.param("id")?;
    let body: ContactsBody = ctx.json()?;
    let mut v = Validator::default();
    let (channel, language) = channel_and_language(&mut v, &body.channel, &body.language);
    let email = email_for(&mut v, body.email.as_deref(), channel);
    let quiet = match &body.quiet_hours {
        None => None,
        Some(q) => {
            let parsed = QuietHours::parse(&q.from, &q.until);
            if parsed.is_none() {
                v.fail(
                    "quiet_hours",
                    "needs two different times of day written HH:MM (from 21:00 until 07:00)",
                );
            }
            parsed
        }
    };
    v.finish()?;
    let (Some(channel), Some(language)) = (channel, language) else {
        return Err(ApiError::internal());
    };
    let (facts, _) = patient_facts(&ctx, id).await?;
    let caller = ctx.user()?;
    if !policy::can_set_patient_contacts(caller, &facts) {
        return Err(ApiError::forbidden(
            "record this patient's contact preferences (the patient, their care centre and schedulers who book for them do)",
        ));
    }
    if matches!(channel, PatientChannel::Sms | PatientChannel::Zalo) {
        let patient = crate::scheduling::directory::get_patient(&ctx.state.db, id).await?;
        if patient.phone.as_deref().and_then(Phone::parse).is_none() {
            let mut v = Validator::default();
            v.fail(
                "channel",
                "needs a Vietnamese mobile number on the patient's record (none is there)",
            );
            v.finish()?;
        }
    }
    let contacts = Contacts {
        consent: body.consent,
        channel,
        language,
        email,
        quiet,
    };
    let journal = ctx.journal(StatusCode::OK);
    let now = crate::domain::time::now();
    let mut tx = ctx.state.db.begin().await?;
    contacts::put(tx.conn(), id, &contacts, caller.account_id, now).await?;
    let view = ContactsView::of(Some(contacts::Recorded {
        contacts,
        updated_at: now,
        updated_by: caller.account_id,
    }));
    journal
        .write(tx.conn(), About::record(id).patient(id), &view)
        .await?;
    tx.commit().await?;
    ok(&view)
}

/// A message as the delivery log shows it: never its content, never an address.
#[derive(Serialize)]
struct LogEntry {
    id: i64,
    kind: String,
    /// `patient` or `webhook`.
    channel: String,
    /// The patient's channel when it was queued, or the webhook endpoint's name.
    to: String,
    status: String,
    attempts: i32,
    due_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    sent_via: Option<String>,
    last_error: Option<String>,
}

impl From<MessageView> for LogEntry {
    fn from(m: MessageView) -> LogEntry {
        LogEntry {
            id: m.id,
            kind: m.event_kind,
            channel: m.channel,
            to: m.endpoint,
            status: m.status,
            attempts: m.attempts,
            due_at: m.due_at,
            sent_at: m.sent_at,
            sent_via: m.sent_via,
            last_error: m.last_error,
        }
    }
}

/// GET /api/v1/consultations/{id}/messages
pub async fn consultation_log(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    let _: NoQuery = ctx.query()?;
    let found = consultation_access(&ctx, id).await?;
    if !policy::can_manage_consultation(&found.principal, &found.facts()) {
        return Err(ApiError::forbidden(
            "see this consultation's messages (those who manage it do)",
        ));
    }
    let mut c = ctx.state.db.acquire().await?;
    let log: Vec<LogEntry> = store::list(c.conn(), Some(id.0))
        .await?
        .into_iter()
        .map(LogEntry::from)
        .collect();
    ok(&log)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadQuery {
    limit: Option<i64>,
}

/// GET /api/v1/outbox/dead: the messages no attempt could deliver, newest first.
pub async fn dead_letters(ctx: Ctx) -> ApiResult {
    let q: DeadQuery = ctx.query()?;
    policy::require_admin(ctx.user()?)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        let mut v = Validator::default();
        v.fail("limit", "must be 1 to 500");
        v.finish()?;
    }
    let mut c = ctx.state.db.acquire().await?;
    let dead: Vec<LogEntry> = store::dead(c.conn(), limit)
        .await?
        .into_iter()
        .map(LogEntry::from)
        .collect();
    ok(&dead)
}

#[derive(Serialize)]
struct ResentView {
    /// The message that will go: the same one (a dead letter, retried with its idempotency key)
    /// or a new copy (a message already sent or cancelled).
    id: i64,
    requeued: bool,
}

/// POST /api/v1/outbox/messages/{id}/resend
pub async fn resend(ctx: Ctx) -> ApiResult {
    let id: i64 = ctx.param("id")?;
    let caller = ctx.user()?.clone();
    let message = {
        let mut c = ctx.state.db.acquire().await?;
        store::get(c.conn(), id).await?
    };
    let Some(message) = message else {
        return Err(ctx.hidden("message"));
    };
    // Administrators resend any message (they see no content); otherwise only those who manage
    // the consultation it is about, who may see it.
    if !caller.has(crate::auth::Role::Administrator) {
        let Some(consultation) = message.consultation_id else {
            return Err(ctx.hidden("message"));
        };
        let found = consultation_access(&ctx, ConsultationId(consultation)).await?;
        if !policy::can_manage_consultation(&found.principal, &found.facts()) {
            return Err(ApiError::forbidden(
                "resend this consultation's messages (those who manage it do)",
            ));
        }
    }
    let journal = ctx.journal_ok();
    let now = crate::domain::time::now();
    let mut tx = ctx.state.db.begin().await?;
    let view = match store::resend(tx.conn(), id, now, crate::outbox::new_key()).await? {
        Resent::Requeued => ResentView { id, requeued: true },
        Resent::Copied(new) => ResentView {
            id: new,
            requeued: false,
        },
        Resent::Pending => {
            return Err(ApiError::conflict(
                ErrorCode::MessagePending,
                "the message is still queued or being sent; it cannot be resent until it settles",
            ));
        }
        Resent::Missing => return Err(ctx.hidden("message")),
    };
    let patient = message.recipient_patient_id.map(PatientId);
    journal
        .write(tx.conn(), About::record(id).patient(patient), &view)
        .await?;
    tx.commit().await?;
    ok(&view)
}

/// A clinician's own answer as the API shows it.
#[derive(Serialize)]
struct ClinicianContactsView {
    asked: bool,
    channel: &'static str,
    language: &'static str,
    phone: Option<String>,
    email: Option<String>,
    updated_at: Option<DateTime<Utc>>,
}

impl ClinicianContactsView {
    fn of(r: Option<crate::outbox::clinicians::Recorded>) -> ClinicianContactsView {
        match r {
            None => ClinicianContactsView {
                asked: false,
                channel: PatientChannel::None.as_str(),
                language: Language::Vi.as_str(),
                phone: None,
                email: None,
                updated_at: None,
            },
            Some(r) => ClinicianContactsView {
                asked: true,
                channel: r.contacts.channel.as_str(),
                language: r.contacts.language.as_str(),
                phone: r.contacts.phone.as_ref().map(|p| p.as_str().to_owned()),
                email: r.contacts.email.as_ref().map(|e| e.as_str().to_owned()),
                updated_at: Some(r.updated_at),
            },
        }
    }
}

fn own_clinician(ctx: &Ctx) -> Result<crate::domain::ids::ClinicianId, ApiError> {
    policy::own_clinician(ctx.user()?).ok_or_else(|| {
        ApiError::forbidden("set a clinician's contact preferences (clinicians set their own)")
    })
}

/// GET /api/v1/me/contact-preferences
pub async fn get_my_contacts(ctx: Ctx) -> ApiResult {
    let _: NoQuery = ctx.query()?;
    let me = own_clinician(&ctx)?;
    let mut c = ctx.state.db.acquire().await?;
    ok(&ClinicianContactsView::of(
        crate::outbox::clinicians::get(c.conn(), me).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClinicianContactsBody {
    channel: String,
    language: String,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

/// PUT /api/v1/me/contact-preferences
pub async fn put_my_contacts(ctx: Ctx) -> ApiResult {
    let body: ClinicianContactsBody = ctx.json()?;
    let mut v = Validator::default();
    let (channel, language) = channel_and_language(&mut v, &body.channel, &body.language);
    let phone = match body.phone.as_deref().map(str::trim) {
        None | Some("") => {
            if matches!(channel, Some(PatientChannel::Sms | PatientChannel::Zalo)) {
                v.fail("phone", "is needed to send by SMS or Zalo");
            }
            None
        }
        Some(p) => {
            let parsed = Phone::parse(p);
            if parsed.is_none() {
                v.fail(
                    "phone",
                    "must be a Vietnamese mobile number (0912 345 678 or +84 912 345 678)",
                );
            }
            parsed
        }
    };
    let email = email_for(&mut v, body.email.as_deref(), channel);
    v.finish()?;
    let (Some(channel), Some(language)) = (channel, language) else {
        return Err(ApiError::internal());
    };
    let me = own_clinician(&ctx)?;
    let by = ctx.user()?.account_id;
    let contacts = crate::outbox::clinicians::Contacts {
        channel,
        language,
        phone,
        email,
    };
    let journal = ctx.journal(StatusCode::OK);
    let now = crate::domain::time::now();
    let mut tx = ctx.state.db.begin().await?;
    crate::outbox::clinicians::put(tx.conn(), me, &contacts, by, now).await?;
    let view = ClinicianContactsView::of(Some(crate::outbox::clinicians::Recorded {
        contacts,
        updated_at: now,
    }));
    journal.write(tx.conn(), About::record(me), &view).await?;
    tx.commit().await?;
    ok(&view)
}
