//! The outbox of one node, from its configuration: where messages go and the dispatcher that
//! sends them. A configuration that cannot work is refused at start, with the setting named.

use std::sync::Arc;

use super::clinicians::ClinicianSender;
use super::email::{EmailConfigError, EmailSender};
use super::patients::{PatientRoutes, PatientSender};
use super::sms::SmsGateway;
use super::transports::Transports;
use super::webhook::{SEND_TIMEOUT, WebhookChannel, WebhookConfigError, WebhookEndpoint};
use super::zalo::{ZaloConfigError, ZaloGateway};
use super::{
    CLINICIAN, Clock, DispatchSettings, Dispatcher, PATIENT, Routes, SystemClock, WEBHOOK,
};
use crate::config::Settings;
use crate::storage::Db;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Webhooks(#[from] WebhookConfigError),
    #[error(transparent)]
    Zalo(#[from] ZaloConfigError),
    #[error(transparent)]
    Email(#[from] EmailConfigError),
    #[error(
        "outbox_lease_seconds must be longer than one delivery attempt may take ({0} s), or a slow attempt would be claimed twice"
    )]
    LeaseTooShort(u64),
    #[error("the outbox's HTTP client cannot start: {0}")]
    Client(String),
    #[error(
        "messages to patients carry visit links: set public_url (the address patients open) to use sms, zalo or email"
    )]
    NoPublicUrl,
}

/// The routes every request's journal enqueues to, and this node's dispatcher (none when
/// nothing is configured, or `outbox_dispatcher = false`).
pub fn from_settings(
    settings: &Settings,
    db: &Db,
    visit_secret: &Arc<Vec<u8>>,
) -> Result<(Routes, Option<Dispatcher>), SetupError> {
    let (routes, dispatcher) = with_clock(settings, db, visit_secret, Arc::new(SystemClock))?;
    Ok((routes, dispatcher.filter(|_| settings.outbox_dispatcher)))
}

/// [`from_settings`] with time from `clock`, and the dispatcher whatever `outbox_dispatcher`
/// says (a test drives it with a manual clock).
pub fn with_clock(
    settings: &Settings,
    db: &Db,
    visit_secret: &Arc<Vec<u8>>,
    clock: Arc<dyn Clock>,
) -> Result<(Routes, Option<Dispatcher>), SetupError> {
    let webhooks = WebhookEndpoint::parse_all(&settings.webhooks)?;
    let attempt = SEND_TIMEOUT.as_secs();
    if u64::from(settings.outbox_lease_seconds) <= attempt {
        return Err(SetupError::LeaseTooShort(attempt));
    }
    let client_error = |e: reqwest::Error| SetupError::Client(e.without_url().to_string());
    let sms = settings
        .sms
        .as_ref()
        .map(SmsGateway::new)
        .transpose()
        .map_err(client_error)?;
    let zalo = settings.zalo.as_ref().map(ZaloGateway::new).transpose()?;
    let email = settings.email.as_ref().map(EmailSender::new).transpose()?;
    let patients = PatientRoutes::new(
        &settings.reminder_minutes_before,
        sms.is_some(),
        zalo.is_some(),
        email.is_some(),
    );
    let public_url = match (&patients, &settings.public_url) {
        (Some(_), None) => return Err(SetupError::NoPublicUrl),
        (_, url) => url.clone().unwrap_or_default(),
    };
    let routes = Routes::new(webhooks, patients);
    // Without endpoints or patient channels nothing is ever enqueued: no dispatcher polls for
    // nothing.
    let anything = !routes.webhooks().is_empty() || routes.patients.is_some();
    if !anything {
        return Ok((routes, None));
    }
    let mut dispatcher =
        Dispatcher::new(db.clone(), clock, DispatchSettings::from_settings(settings));
    if !routes.webhooks().is_empty() {
        let channel = WebhookChannel::new(routes.webhooks()).map_err(client_error)?;
        dispatcher = dispatcher.with_channel(WEBHOOK, Arc::new(channel));
    }
    if routes.patients.is_some() {
        let transports = Arc::new(Transports { sms, zalo, email });
        let sender = PatientSender::new(
            db.clone(),
            visit_secret.clone(),
            &public_url,
            transports.clone(),
        );
        let clinicians = ClinicianSender::new(db.clone(), &public_url, transports);
        dispatcher = dispatcher
            .with_channel(PATIENT, Arc::new(sender))
            .with_channel(CLINICIAN, Arc::new(clinicians));
    }
    Ok((routes, Some(dispatcher)))
}
