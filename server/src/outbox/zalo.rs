//! Zalo notification service (ZNS) template messages, the channel most Vietnamese patients read.
//!
//! The request is ZNS's: a `POST` of `{"phone", "template_id", "template_data", "tracking_id"}`
//! with the official account's `access_token` header, where `tracking_id` is the message's
//! idempotency key. The answer is `{"error": 0, "message": "Success", "data": {...}}`; any other
//! `error` is Zalo refusing this message (the number has no Zalo account, blocked the official
//! account, a template not approved, a quota spent), and the caller then sends it by SMS. A
//! transport failure or a 5xx is retried like any other channel's; a kind of message with no
//! configured template goes by SMS at once.
//!
//! Templates are approved by Zalo with named parameters; ours are `time` (the visit's local
//! time, as [`super::render::local_time`] writes it) and `link` (the visit link, empty for a
//! cancellation), so no clinical content can reach a template either.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::channel::{Delivered, SendError};
use super::http;
use super::render::Notice;
use super::sms::Phone;
use crate::config::{Secret, ZaloSettings};

#[derive(Serialize)]
struct Request<'a> {
    phone: &'a str,
    template_id: &'a str,
    template_data: TemplateData<'a>,
    tracking_id: &'a str,
}

#[derive(Serialize)]
struct TemplateData<'a> {
    time: &'a str,
    link: &'a str,
}

#[derive(Deserialize)]
struct Answer {
    error: i64,
}

/// Why a message did not go by Zalo.
#[derive(Debug)]
pub enum ZaloError {
    /// Zalo will not send this one (its `error` code, or no template): send it by SMS.
    Refused(String),
    /// Zalo could not be asked: retry later.
    Failed(SendError),
}

/// The official account of one deployment.
pub struct ZaloGateway {
    client: reqwest::Client,
    url: Secret,
    access_token: Secret,
    templates: BTreeMap<String, String>,
}

/// What is wrong with the Zalo configuration: found at start.
#[derive(Debug, thiserror::Error)]
pub enum ZaloConfigError {
    #[error("zalo.templates: unknown kind {0:?}; known: {1}")]
    UnknownKind(String, String),
    #[error("the Zalo HTTP client cannot start: {0}")]
    Client(String),
}

impl ZaloGateway {
    pub fn new(s: &ZaloSettings) -> Result<ZaloGateway, ZaloConfigError> {
        let known_kind =
            |k: &str| Notice::parse(k).is_some() || super::clinicians::KINDS.contains(&k);
        if let Some(bad) = s.templates.keys().find(|k| !known_kind(k)) {
            let mut known: Vec<&str> = Notice::ALL.map(Notice::as_str).to_vec();
            known.extend(super::clinicians::KINDS);
            known.sort_unstable();
            known.dedup();
            let known = known.join(", ");
            return Err(ZaloConfigError::UnknownKind(bad.clone(), known));
        }
        Ok(ZaloGateway {
            client: http::client()
                .map_err(|e| ZaloConfigError::Client(e.without_url().to_string()))?,
            url: s.url.clone(),
            access_token: s.access_token.clone(),
            templates: s.templates.clone(),
        })
    }

    /// Sends a message of `kind` to `phone` by its template, once per `key`.
    pub async fn send(
        &self,
        key: &str,
        phone: &Phone,
        kind: &str,
        time: &str,
        link: Option<&str>,
    ) -> Result<Delivered, ZaloError> {
        let Some(template_id) = self.templates.get(kind) else {
            return Err(ZaloError::Refused("no template".into()));
        };
        let body = Request {
            phone: phone.as_str(),
            template_id,
            template_data: TemplateData {
                time,
                link: link.unwrap_or(""),
            },
            tracking_id: key,
        };
        let headers = [("access_token", self.access_token.expose())];
        let answer = http::post_json(&self.client, self.url.expose(), &headers, &body)
            .await
            .map_err(ZaloError::Failed)?;
        let verdict: Answer = serde_json::from_slice(&answer.body).map_err(|_| {
            ZaloError::Failed(SendError::retry(format!(
                "HTTP {}: not a ZNS answer",
                answer.status
            )))
        })?;
        if verdict.error == 0 {
            Ok(Delivered {
                status: answer.status,
                via: super::ZALO,
            })
        } else {
            Err(ZaloError::Refused(format!("zalo error {}", verdict.error)))
        }
    }
}
