//! Shared state handed to every request.

use std::sync::Arc;

use chrono::Duration;
use metrics_exporter_prometheus::PrometheusHandle;
use warp::http::HeaderMap;

use crate::auth::Principal;
use crate::storage::Db;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// How long a hold reserves a slot.
    pub hold_ttl: Duration,
    pub max_body_bytes: usize,
    pub metrics: Option<Arc<PrometheusHandle>>,
}

impl AppState {
    /// The caller of a request. Identity is the next issue: for now every request runs as the
    /// development principal, and this is the one function that will change.
    pub fn principal_for(&self, _headers: &HeaderMap) -> Principal {
        Principal::development()
    }
}
