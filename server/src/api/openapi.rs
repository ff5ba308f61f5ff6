//! The OpenAPI 3 document of the whole API, written by hand in `openapi.json` beside this file.
//! A test compares its paths and methods with [`super::route_table`], so the two cannot drift.

use std::sync::OnceLock;

use super::{ApiError, ApiResult, Ctx};

pub const DOCUMENT: &str = include_str!("openapi.json");

/// The parsed document; parsed once, and a unit test guarantees it parses.
pub fn document() -> Option<&'static serde_json::Value> {
    static DOC: OnceLock<Option<serde_json::Value>> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(DOCUMENT).ok())
        .as_ref()
}

/// GET /api/v1/openapi.json
pub async fn get(ctx: Ctx) -> ApiResult {
    let _: super::directory::NoQuery = ctx.query()?;
    let doc = document().ok_or_else(ApiError::internal)?;
    super::ok(doc)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn document_matches_the_route_table() {
        let doc = document().expect("openapi.json parses");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths is an object") {
            for method in item.as_object().expect("path item is an object").keys() {
                if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    documented.insert(format!("{} {}", method.to_uppercase(), path));
                }
            }
        }
        let routed: BTreeSet<String> = super::super::route_table()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from openapi.json: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "openapi.json documents routes that do not exist: {unrouted:?}"
        );
    }
}
