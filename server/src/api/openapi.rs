//! The OpenAPI 3 document of the whole API, written by hand in `openapi.json` beside this file.
//! A test beside the route table ([`super::routes`]) compares its paths and methods with the
//! table, so the two cannot drift.

use std::sync::OnceLock;

use super::ctx::Ctx;
use super::directory::NoQuery;
use super::error::ApiError;
use super::reply::{ApiResult, ok};

pub const DOCUMENT: &str = include_str!("openapi.json");

/// The parsed document; parsed once, and a unit test guarantees it parses.
pub fn document() -> Option<&'static serde_json::Value> {
    static DOC: OnceLock<Option<serde_json::Value>> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(DOCUMENT).ok())
        .as_ref()
}

/// GET /api/v1/openapi.json
pub async fn get(ctx: Ctx) -> ApiResult {
    let _: NoQuery = ctx.query()?;
    let doc = document().ok_or_else(ApiError::internal)?;
    ok(doc)
}
