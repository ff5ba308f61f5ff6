//! Webhooks for hospital systems, signed as the Standard Webhooks specification says
//! (<https://www.standardwebhooks.com/>).
//!
//! A request is a `POST` of JSON `{"type", "timestamp", "data"}` with three headers:
//! `webhook-id` (the message's idempotency key, the same on every retry), `webhook-timestamp`
//! (unix seconds of this attempt) and `webhook-signature`, a space-separated list of
//! `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one per configured secret, so an
//! endpoint's secret can be rotated: configure the new one beside the old, let the receiver
//! switch, then remove the old. Secrets are written `whsec_<base64 of the key bytes>`.
//!
//! A 2xx answer is a delivery. A 4xx other than 408 and 429 says the request itself is wrong
//! (a gone endpoint, a refused signature): retrying cannot help, so the message is dead at once.
//! Everything else (5xx, 408, 429, a refused connection, a timeout) is retried.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use hmac::{KeyInit, Mac};
use serde::Serialize;

use super::EventKind;
use super::channel::{Channel, Delivered, SendError};
use super::store::Message;
use crate::config::{Secret, WebhookSettings};

/// A webhook secret's key bytes, parsed from `whsec_<base64>`.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl SigningKey {
    pub fn parse(secret: &str) -> Result<SigningKey, WebhookConfigError> {
        let b64 = secret
            .strip_prefix("whsec_")
            .ok_or(WebhookConfigError::SecretFormat)?;
        let bytes = BASE64
            .decode(b64)
            .map_err(|_| WebhookConfigError::SecretFormat)?;
        // The specification asks for 24 to 64 bytes; fewer than 16 is no secret at all.
        if bytes.len() < 16 {
            return Err(WebhookConfigError::SecretFormat);
        }
        Ok(SigningKey(bytes))
    }

    /// `v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// What is wrong with a configured webhook endpoint; found at start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("webhook endpoint names must be 1 to 64 letters, digits, '-' or '_', each used once")]
    Name,
    #[error("webhook endpoint {0}: the url must be an absolute http:// or https:// URL")]
    Url(String),
    #[error("webhook endpoint {0}: give at least one secret")]
    NoSecret(String),
    #[error("webhook secrets are written whsec_<base64 of at least 16 bytes>")]
    SecretFormat,
    #[error("webhook endpoint {name}: unknown event {event:?}; known: {known}")]
    Event {
        name: String,
        event: String,
        known: String,
    },
}

/// A configured endpoint, parsed and checked.
#[derive(Clone, Debug)]
pub struct WebhookEndpoint {
    name: String,
    url: Secret,
    keys: Vec<SigningKey>,
    /// Empty: every event.
    events: Vec<EventKind>,
}

impl WebhookEndpoint {
    pub fn parse(s: &WebhookSettings) -> Result<WebhookEndpoint, WebhookConfigError> {
        let name_ok = !s.name.is_empty()
            && s.name.len() <= 64
            && s.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(WebhookConfigError::Name);
        }
        let url_ok = url::Url::parse(s.url.expose())
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !url_ok {
            return Err(WebhookConfigError::Url(s.name.clone()));
        }
        if s.secrets.is_empty() {
            return Err(WebhookConfigError::NoSecret(s.name.clone()));
        }
        let keys = s
            .secrets
            .iter()
            .map(|k| SigningKey::parse(k.expose()))
            .collect::<Result<Vec<_>, _>>()?;
        let events = s
            .events
            .iter()
            .map(|e| {
                EventKind::parse(e).ok_or_else(|| WebhookConfigError::Event {
                    name: s.name.clone(),
                    event: e.clone(),
                    known: EventKind::ALL.map(EventKind::as_str).join(", "),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WebhookEndpoint {
            name: s.name.clone(),
            url: s.url.clone(),
            keys,
            events,
        })
    }

    /// Parses every endpoint and checks their names are distinct.
    pub fn parse_all(all: &[WebhookSettings]) -> Result<Vec<WebhookEndpoint>, WebhookConfigError> {
        let endpoints = all
            .iter()
            .map(WebhookEndpoint::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let mut names: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(WebhookConfigError::Name);
        }
        Ok(endpoints)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }

    /// The `webhook-signature` header of `body` for message `id` at `timestamp`.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        self.keys
            .iter()
            .map(|k| k.sign(id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The body of a webhook.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: DateTime<Utc>,
    data: serde_json::Value,
}

pub use super::http::SEND_TIMEOUT;

/// The webhook channel: sends each message to the endpoint it names.
pub struct WebhookChannel {
    client: reqwest::Client,
    endpoints: HashMap<String, WebhookEndpoint>,
}

impl WebhookChannel {
    pub fn new(endpoints: &[WebhookEndpoint]) -> Result<WebhookChannel, reqwest::Error> {
        let client = super::http::client()?;
        Ok(WebhookChannel {
            client,
            endpoints: endpoints
                .iter()
                .map(|e| (e.name.clone(), e.clone()))
                .collect(),
        })
    }

    async fn deliver(&self, m: &Message, now: DateTime<Utc>) -> Result<Delivered, SendError> {
        let endpoint = self
            .endpoints
            .get(&m.endpoint)
            .ok_or_else(|| SendError::permanent("endpoint no longer configured"))?;
        let data = serde_json::from_str(&m.payload)
            .map_err(|_| SendError::permanent("stored payload is not JSON"))?;
        let body = serde_json::to_vec(&Body {
            kind: &m.event_kind,
            timestamp: m.created_at,
            data,
        })
        .map_err(|_| SendError::permanent("payload cannot be serialised"))?;
        let timestamp = now.timestamp();
        let signature = endpoint.signature(&m.idempotency_key, timestamp, &body);
        let answer = self
            .client
            .post(endpoint.url.expose())
            .header("content-type", "application/json")
            .header("webhook-id", &m.idempotency_key)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match answer {
            Ok(r) => classify(r.status().as_u16()),
            Err(e) => Err(super::http::failed(&e)),
        }
    }
}

/// What a receiver's status means for the message.
pub fn classify(status: u16) -> Result<Delivered, SendError> {
    match status {
        200..=299 => Ok(Delivered {
            status,
            via: super::WEBHOOK,
        }),
        _ => Err(super::http::refusal(status)),
    }
}

impl Channel for WebhookChannel {
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
    fn statuses_are_classified_as_the_issue_says() {
        assert_eq!(
            classify(204),
            Ok(Delivered {
                status: 204,
                via: crate::outbox::WEBHOOK
            })
        );
        let retryable = |status| classify(status).map_err(|e| e.retryable);
        assert_eq!(retryable(410), Err(false));
        assert_eq!(retryable(400), Err(false));
        assert_eq!(retryable(408), Err(true));
        assert_eq!(retryable(429), Err(true));
        assert_eq!(retryable(503), Err(true));
        assert_eq!(retryable(302), Err(true));
    }

    #[test]
    fn the_standard_webhooks_example_signature() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn bad_endpoints_are_refused_with_a_reason() {
        let good = WebhookSettings {
            name: "his".into(),
            url: Secret::new("https://his.example.vn/hook"),
            secrets: vec![Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
            events: vec!["consultation.booked".into()],
        };
        let e = WebhookEndpoint::parse(&good).expect("a good endpoint");
        assert!(e.wants(EventKind::ConsultationBooked));
        assert!(!e.wants(EventKind::ConsultationCancelled));
        let bad_event = WebhookSettings {
            events: vec!["consultation.exploded".into()],
            ..good.clone()
        };
        assert!(matches!(
            WebhookEndpoint::parse(&bad_event),
            Err(WebhookConfigError::Event { .. })
        ));
        let bad_secret = WebhookSettings {
            secrets: vec![Secret::new("hunter2")],
            ..good.clone()
        };
        assert!(matches!(
            WebhookEndpoint::parse(&bad_secret),
            Err(WebhookConfigError::SecretFormat)
        ));
        let bad_url = WebhookSettings {
            url: Secret::new("ftp://x"),
            ..good.clone()
        };
        assert!(WebhookEndpoint::parse(&bad_url).is_err());
        assert!(WebhookEndpoint::parse_all(&[good.clone(), good]).is_err());
    }
}
