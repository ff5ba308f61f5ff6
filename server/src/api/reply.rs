//! The successful answers a handler gives: JSON with a status, or an empty 204. Errors are
//! [`super::error::ApiError`]'s.

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;

use super::error::ApiError;

/// What a handler returns.
pub type ApiResult = Result<Response, ApiError>;

/// A JSON response with `status`.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> ApiResult {
    let mut response = warp::Reply::into_response(warp::reply::json(body));
    *response.status_mut() = status;
    Ok(response)
}

pub fn ok<T: Serialize>(body: &T) -> ApiResult {
    json_response(StatusCode::OK, body)
}

pub fn created<T: Serialize>(body: &T) -> ApiResult {
    json_response(StatusCode::CREATED, body)
}

pub fn no_content() -> ApiResult {
    Ok(warp::Reply::into_response(warp::reply::with_status(
        warp::reply(),
        StatusCode::NO_CONTENT,
    )))
}
