//! The cross-site request check on state-changing requests signed in by cookie.

use warp::http::{HeaderMap, Method, StatusCode};

use super::error::ApiError;
use crate::auth::Principal;
use crate::domain::code::ErrorCode;

/// Refuses state-changing requests authenticated by cookie that come from another site: a
/// `Sec-Fetch-Site` other than same-origin, or an `Origin` whose scheme, host or port is not the
/// server's own (`tls`: it serves HTTPS; `authority`: the host and port the request was sent
/// to). The cookie is SameSite=Strict and the API takes only JSON bodies, so this is the third
/// fence.
pub fn check_csrf(
    method: &Method,
    headers: &HeaderMap,
    authority: Option<&warp::host::Authority>,
    tls: bool,
    principal: &Principal,
) -> Result<(), ApiError> {
    if !principal.via_cookie || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let cross_site = ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::CrossSiteRequest,
        "this request came from another site and was refused",
    );
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Err(cross_site);
    }
    let Some(origin) = header("origin") else {
        return Ok(());
    };
    // The server's own origin: its scheme (https exactly when it serves TLS, so an http:// page
    // on the same host, which a network attacker can serve, is another origin), and the host
    // and port the request was sent to, a missing port being the scheme's default.
    let (scheme, default_port) = if tls { ("https", 443) } else { ("http", 80) };
    let Some(own) = authority else {
        return Err(cross_site);
    };
    let own_port = own.port_u16().unwrap_or(default_port);
    // An Origin is `scheme://host[:port]` and nothing more; "null" and anything else fail.
    let bare = origin
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.contains(['/', '?', '#', '@']));
    let same = bare
        && origin.parse::<warp::http::Uri>().ok().is_some_and(|uri| {
            let (Some(their_scheme), Some(theirs)) = (uri.scheme_str(), uri.authority()) else {
                return false;
            };
            their_scheme.eq_ignore_ascii_case(scheme)
                && theirs.host().eq_ignore_ascii_case(own.host())
                && theirs.port_u16().unwrap_or(default_port) == own_port
        });
    if same { Ok(()) } else { Err(cross_site) }
}
