//! SMS through a Vietnamese SMS-brandname gateway's HTTP API, and the phone numbers it takes.
//!
//! The request is the JSON shape of the common brandname gateways (eSMS's
//! `SendMultipleMessage_V4_post_json` is the model): `ApiKey`, `SecretKey`, `Phone`, `Content`,
//! `Brandname`, `SmsType` ("2": customer care, the type a brandname sends reminders as),
//! `IsUnicode`, and `RequestId`, the message's idempotency key, which the gateway uses to refuse
//! a second send of one request. The answer is `{"CodeResult": "100", "SMSID": ...}` on success.
//! The base URL is configuration: tests point it at a receiver on loopback.
//!
//! Codes: `100` sent. `99` (the gateway's own failure) and `103` (the account's balance ran out:
//! an operator tops it up) are retried; any other code says the request itself is refused (a bad
//! key, an unregistered brandname, a number the gateway will not send to) and retrying cannot
//! help.

use serde::{Deserialize, Serialize};

use super::channel::{Delivered, SendError};
use super::http;
use crate::config::{Secret, SmsSettings};

/// A Vietnamese mobile number as gateways take it: `84` and nine digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// From what a clinic typed: `0912 345 678`, `+84 912.345.678`, `84912345678`.
    pub fn parse(s: &str) -> Option<Phone> {
        let digits: String = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')'))
            .collect();
        let rest = digits
            .strip_prefix("+84")
            .or_else(|| digits.strip_prefix("84").filter(|r| r.len() == 9))
            .or_else(|| digits.strip_prefix('0'))?;
        let national = rest.strip_prefix('0').unwrap_or(rest);
        (national.len() == 9 && national.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Phone(format!("84{national}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Request<'a> {
    api_key: &'a str,
    secret_key: &'a str,
    phone: &'a str,
    content: &'a str,
    brandname: &'a str,
    sms_type: &'a str,
    is_unicode: &'a str,
    request_id: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    code_result: String,
}

/// The gateway of one deployment.
pub struct SmsGateway {
    client: reqwest::Client,
    url: Secret,
    api_key: Secret,
    secret_key: Secret,
    brandname: String,
    unicode: bool,
}

impl SmsGateway {
    pub fn new(s: &SmsSettings) -> Result<SmsGateway, reqwest::Error> {
        Ok(SmsGateway {
            client: http::client()?,
            url: s.url.clone(),
            api_key: s.api_key.clone(),
            secret_key: s.secret_key.clone(),
            brandname: s.brandname.clone(),
            unicode: s.unicode,
        })
    }

    /// True when texts go with their diacritics.
    pub fn unicode(&self) -> bool {
        self.unicode
    }

    /// Sends `text` to `phone`, once per `key`.
    pub async fn send(&self, key: &str, phone: &Phone, text: &str) -> Result<Delivered, SendError> {
        let body = Request {
            api_key: self.api_key.expose(),
            secret_key: self.secret_key.expose(),
            phone: phone.as_str(),
            content: text,
            brandname: &self.brandname,
            sms_type: "2",
            is_unicode: if self.unicode { "1" } else { "0" },
            request_id: key,
        };
        let answer = http::post_json(&self.client, self.url.expose(), &[], &body).await?;
        let answer: Answer = serde_json::from_slice(&answer.body).map_err(|_| {
            SendError::retry(format!("HTTP {}: not a gateway answer", answer.status))
        })?;
        classify(&answer.code_result)
    }
}

/// What a gateway's `CodeResult` means for the message.
pub fn classify(code: &str) -> Result<Delivered, SendError> {
    match code {
        "100" => Ok(Delivered {
            status: 200,
            via: super::SMS,
        }),
        "99" | "103" => Err(SendError::retry(format!("gateway code {code}"))),
        _ => Err(SendError::permanent(format!("gateway code {code}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_as_clinics_type_them() {
        let p = |s| Phone::parse(s).map(|p| p.0);
        assert_eq!(p("0912 345 678").as_deref(), Some("84912345678"));
        assert_eq!(p("+84 912.345.678").as_deref(), Some("84912345678"));
        assert_eq!(p("+84 0912345678").as_deref(), Some("84912345678"));
        assert_eq!(p("84912345678").as_deref(), Some("84912345678"));
        assert_eq!(p("091234567"), None);
        assert_eq!(p("0912a45678"), None);
        assert_eq!(p(""), None);
    }

    #[test]
    fn gateway_codes() {
        assert!(classify("100").is_ok());
        assert_eq!(classify("99").map_err(|e| e.retryable), Err(true));
        assert_eq!(classify("101").map_err(|e| e.retryable), Err(false));
    }
}
