//! Reading a request's body: bounded in size, and JSON whenever a write sends one.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use warp::http::{HeaderMap, Method, StatusCode};

use super::error::ApiError;
use crate::domain::code::ErrorCode;

/// Reads the body up to `limit` bytes; JSON is the only body the API accepts.
pub async fn read_body<S, B>(
    method: &Method,
    headers: &HeaderMap,
    mut body: S,
    limit: usize,
) -> Result<Bytes, ApiError>
where
    S: futures::Stream<Item = Result<B, warp::Error>> + Unpin + Send,
    B: bytes::Buf,
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTooLarge,
            format!("the request body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(warp::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| {
            ApiError::bad_request(
                ErrorCode::BodyUnreadable,
                "the request body could not be read",
            )
        })?;
        if buf.len() + chunk.remaining() > limit {
            return Err(too_large());
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            buf.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    if !buf.is_empty()
        && matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        && !is_json(headers)
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    Ok(buf.freeze())
}

/// Whether the `Content-Type` is `application/json` (parameters such as the charset aside).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(warp::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false)
}
