//! Shared state handed to every request.

use std::sync::Arc;

use chrono::Duration;
use metrics_exporter_prometheus::PrometheusHandle;
use warp::http::HeaderMap;

use crate::audit::AuditLog;
use crate::auth::cache::SessionCache;
use crate::auth::{Principal, accounts};
use crate::storage::Db;

/// Name of the session cookie of the web client.
pub const SESSION_COOKIE: &str = "th_session";

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub audit: AuditLog,
    /// How long a hold reserves a slot.
    pub hold_ttl: Duration,
    pub max_body_bytes: usize,
    pub metrics: Option<Arc<PrometheusHandle>>,
    /// Signs visit links. Loaded from `visit_link_key_file` (default
    /// `<data_dir>/visit-link.key`), created there on first start, so links survive restarts and
    /// every node sharing the file agrees. Note signing keys do not depend on it.
    pub visit_secret: Arc<Vec<u8>>,
    /// What signs and verifies notes: the KEK that encrypts clinicians' note signing keys and
    /// vouches for their published keys and passkeys (`notes_kek_file`, default
    /// `<data_dir>/notes-kek.key`), and the passkey relying party (`public_url`).
    pub notes: Arc<crate::notes::Signatures>,
    /// The address users open (`public_url`), for links the server hands out whole (QR codes).
    pub public_url: Option<String>,
    /// Cookies carry `Secure` when the server speaks TLS.
    pub secure_cookies: bool,
    pub sessions: Arc<SessionCache>,
    /// The signaling hub of this node: rooms of the calls it serves.
    pub hub: Arc<telehealth_signaling::Hub>,
    /// Signs join tokens for the signaling server (derived from the visit-link key, so every node
    /// that shares that file accepts the others' tokens).
    pub join_key: Arc<Vec<u8>>,
    /// Sign-in limits: the in-process rate per address, and the handle to the shared ones.
    pub sign_in: Arc<crate::auth::throttle::SignInLimits>,
    /// Hold caps and the in-process rate of booking requests per account.
    pub booking_limits: Arc<crate::scheduling::booking::BookingLimits>,
    /// Where notifications go: each write's journal enqueues to these in its transaction.
    pub outbox: crate::outbox::SharedRoutes,
}

/// The session token of a request: a Bearer header for API clients, else the session cookie.
pub fn session_token(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(auth) = headers
        .get(warp::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return auth
            .strip_prefix("Bearer ")
            .map(|t| (t.trim().to_string(), false));
    }
    headers
        .get_all(warp::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| (v.to_string(), true))
}

impl AppState {
    /// The caller of a request, if it carries a live session.
    pub async fn principal_for(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, sqlx::Error> {
        let Some((token, via_cookie)) = session_token(headers) else {
            return Ok(None);
        };
        let Some(hash) = accounts::token_hash(&token) else {
            return Ok(None);
        };
        if let Some(mut p) = self.sessions.get(&hash) {
            p.via_cookie = via_cookie;
            return Ok(Some(p));
        }
        let found = accounts::authenticate(&self.db, &hash, via_cookie).await?;
        if let Some(p) = &found {
            self.sessions.put(hash, p.clone());
        }
        Ok(found)
    }
}
