//! The HTTP client every HTTP channel (webhooks, SMS, Zalo) sends with, and what an answer's
//! status means for a message.

use serde::Serialize;

use super::channel::SendError;

/// How long one attempt may take before it counts as a (retryable) timeout.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The most of an answer's body read (a gateway's JSON verdict is a few dozen bytes).
const MAX_ANSWER: usize = 64 * 1024;

/// A client that gives up after [`SEND_TIMEOUT`] and follows no redirect: a provider that
/// redirects is misconfigured, and following could carry credentials or a signed body elsewhere.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// A 2xx answer.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What a status other than 2xx means: 408 and 429 and every 5xx (and 3xx: a misconfigured
/// provider may be fixed) are retried; any other 4xx says the request itself is wrong.
pub fn refusal(status: u16) -> SendError {
    match status {
        408 | 429 => SendError::retry(format!("HTTP {status}")),
        400..=499 => SendError::permanent(format!("HTTP {status}")),
        _ => SendError::retry(format!("HTTP {status}")),
    }
}

/// A transport failure, described without the URL (it may carry credentials).
pub fn failed(e: &reqwest::Error) -> SendError {
    if e.is_timeout() {
        SendError::retry("timed out")
    } else if e.is_connect() {
        SendError::retry("connection failed")
    } else {
        SendError::retry("request failed")
    }
}

/// POSTs `body` as JSON with `headers`; a 2xx answer's status and (bounded) body.
pub async fn post_json<T: Serialize>(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    body: &T,
) -> Result<Answer, SendError> {
    let mut request = client.post(url).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut answer = request.send().await.map_err(|e| failed(&e))?;
    let status = answer.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(refusal(status));
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| failed(&e))? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(SendError::retry(format!("HTTP {status}: answer too long")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer { status, body })
}
