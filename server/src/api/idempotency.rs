//! `Idempotency-Key` on the requests that create or change state (the IETF httpapi draft's
//! semantics): the same key with the same request answers the first answer again; the same key
//! with another request is refused (422). The first answer is stored by the write itself, in its
//! transaction ([`crate::journal`]); this is the dispatcher's half: reading the header, and
//! replaying.
//!
//! Keys are scoped to the signed-in account, so one caller's key can never replay another's
//! answer; on public routes (signing in, opening a visit link) the header is ignored. A request
//! with a key that fails (4xx, 5xx) stores nothing: its retry runs again.

use sha2::{Digest, Sha256};
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;

use super::error::ApiError;
use crate::auth::Principal;
use crate::domain::code::ErrorCode;
use crate::journal::{Claim, StoredAnswer};

pub const HEADER: &str = "idempotency-key";
/// Says a response is a replay of the first answer to its key.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest key accepted; a UUID is 36.
pub const MAX_KEY: usize = 255;

/// The claim of a request: its key (if it sent one, on a method that writes, signed in) and the
/// fingerprint of what it asks. A malformed key is a 400.
pub fn claim(
    method: &Method,
    headers: &HeaderMap,
    principal: Option<&Principal>,
    path: &str,
    query: &str,
    body: &[u8],
) -> Result<Option<Claim>, ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(None);
    }
    let (Some(raw), Some(principal)) = (headers.get(HEADER), principal) else {
        return Ok(None);
    };
    let key = parse_key(raw)?;
    let mut h = Sha256::new();
    for part in [
        method.as_str().as_bytes(),
        path.as_bytes(),
        query.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(body);
    Ok(Some(Claim {
        scope: format!("account:{}", principal.account_id),
        key,
        fingerprint: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    }))
}

/// The key: 1 to 255 visible ASCII characters, bare or as a structured-field string (`"…"`).
fn parse_key(raw: &HeaderValue) -> Result<String, ApiError> {
    let bad = || {
        ApiError::bad_request(
            ErrorCode::InvalidIdempotencyKey,
            format!(
                "Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters (a UUID will do)"
            ),
        )
    };
    let text = raw.to_str().map_err(|_| bad())?.trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if text.is_empty() || text.len() > MAX_KEY || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(text.to_string())
}

/// The answer to a request whose key already has `stored`: the first answer again, or a 422 when
/// the key was used for another request.
pub fn replay(claim: &Claim, stored: StoredAnswer) -> Result<Response, ApiError> {
    if stored.fingerprint != claim.fingerprint {
        return Err(ApiError::unprocessable(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was already used for a different request; use a new key for each action",
        ));
    }
    let status = u16::try_from(stored.status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(ApiError::internal)?;
    let mut response = if status == StatusCode::NO_CONTENT {
        warp::Reply::into_response(warp::reply())
    } else {
        let mut r = warp::Reply::into_response(stored.body);
        r.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(response)
}
