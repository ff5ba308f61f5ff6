//! The web client's static files: embedded in the binary (release builds; debug builds read
//! `web-client/` from the source tree once, at the first request), served at `/` with a fallback
//! to `index.html` for the client's own paths.
//!
//! Caching, for phones on slow mobile data: `index.html` is always revalidated (`no-cache` and an
//! ETag, so a visit costs one small round trip, usually a 304). It loads everything else from
//! `/v/<build>/...`, where `<build>` is a hash of every file of the client, so those answers can be
//! cached for a year as immutable: a changed file changes the hash, hence every URL, and a page
//! never mixes two versions of the modules. JavaScript modules import each other by relative
//! path, so they stay under the same `/v/<build>/` prefix with no build step. The same files
//! without the prefix (and under an outdated build) are served with `no-cache` and an ETag.
//! Text files are gzip-compressed once, when the bundle is loaded.

use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};
use warp::Filter;
use warp::http::header::{self, HeaderValue};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

#[derive(RustEmbed)]
#[folder = "../web-client/"]
struct Files;

/// In `index.html`, replaced by the build hash when it is served.
const BUILD_PLACEHOLDER: &str = "__BUILD__";

/// First path segments that belong to the server, never to the client's router.
const SERVER_PREFIXES: [&str; 6] = ["api", "signaling", "metrics", "healthz", "readyz", "v"];

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

struct Asset {
    body: Bytes,
    gzip: Option<Bytes>,
    etag: HeaderValue,
    content_type: &'static str,
}

/// Every file of the client, ready to send.
struct Bundle {
    build: String,
    files: HashMap<String, Asset>,
    index: Asset,
}

fn bundle() -> &'static Bundle {
    static BUNDLE: OnceLock<Bundle> = OnceLock::new();
    BUNDLE.get_or_init(Bundle::load)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Bundle {
    fn load() -> Bundle {
        let mut names: Vec<String> = Files::iter().map(|n| n.into_owned()).collect();
        names.sort();
        let mut whole = Sha256::new();
        let mut raw = Vec::with_capacity(names.len());
        for name in names {
            // Listed by the same embed a moment ago; in debug builds a file deleted in between
            // is simply left out.
            let Some(file) = Files::get(&name) else {
                continue;
            };
            whole.update(name.as_bytes());
            whole.update([0]);
            whole.update(&file.data);
            whole.update([0]);
            raw.push((name, file.data.into_owned()));
        }
        let build: String = whole
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        let index_text = raw
            .iter()
            .find(|(n, _)| n == "index.html")
            .map(|(_, b)| String::from_utf8_lossy(b).replace(BUILD_PLACEHOLDER, &build))
            .unwrap_or_else(|| "<!doctype html><title>Telehealth</title>".to_string());
        let index = Asset::new("index.html", index_text.into_bytes());
        let files = raw
            .into_iter()
            .map(|(name, bytes)| {
                let asset = Asset::new(&name, bytes);
                (name, asset)
            })
            .collect();
        Bundle {
            build,
            files,
            index,
        }
    }
}

impl Asset {
    fn new(name: &str, bytes: Vec<u8>) -> Asset {
        let content_type = content_type(name);
        let etag = HeaderValue::from_str(&format!("\"{}\"", &sha256_hex(&bytes)[..32]))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        let compressible = content_type.starts_with("text/")
            || content_type.starts_with("application/javascript")
            || content_type.starts_with("application/json")
            || content_type.starts_with("application/manifest+json")
            || content_type.starts_with("image/svg+xml");
        let gzip = if compressible && bytes.len() > 256 {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
            // Writing to a Vec cannot fail.
            let done = encoder.write_all(&bytes).and_then(|()| encoder.finish());
            done.ok().filter(|z| z.len() < bytes.len()).map(Bytes::from)
        } else {
            None
        };
        Asset {
            body: Bytes::from(bytes),
            gzip,
            etag,
            content_type,
        }
    }

    fn respond(&self, headers: &HeaderMap, cache: &'static str) -> Response {
        let not_modified = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| {
                let ours = self.etag.to_str().unwrap_or("");
                tags.split(',').any(|t| {
                    let t = t.trim();
                    t == "*" || t.trim_start_matches("W/") == ours
                })
            });
        let gzip = self.gzip.as_ref().filter(|_| accepts_gzip(headers));
        let mut response = if not_modified {
            let mut r = Response::new(Default::default());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            Response::new(gzip.cloned().unwrap_or_else(|| self.body.clone()).into())
        };
        let h = response.headers_mut();
        h.insert(header::ETAG, self.etag.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if !not_modified {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            );
            if gzip.is_some() {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
        }
        response
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "application/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// What a path asks for.
enum Target<'a> {
    /// The client's entry page: `/`, `/index.html`, or one of the client's own routes.
    Index,
    /// `/v/<build>/<file>`.
    Versioned { build: &'a str, file: &'a str },
    /// `/<file>`.
    Plain(&'a str),
}

/// First path segments of the client's routes (`web-client/js/app.js` declares them); only these
/// fall back to the entry page.
const CLIENT_ROUTES: &[&str] = &[
    "signin",
    "visit",
    "guest",
    "book",
    "schedule",
    "consultations",
    "call",
];

fn classify(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() || rest == "index.html" {
        return Some(Target::Index);
    }
    let first = rest.split('/').next().unwrap_or("");
    if first == "v" {
        let (build, file) = rest.strip_prefix("v/")?.split_once('/')?;
        return Some(Target::Versioned { build, file });
    }
    if SERVER_PREFIXES.contains(&first) {
        return None;
    }
    let last = rest.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        Some(Target::Plain(rest))
    } else if CLIENT_ROUTES.contains(&first) {
        // A route of the client (`/visit`, `/book`, `/call/12`): its router draws the screen.
        Some(Target::Index)
    } else {
        // Anything else is nothing here: a 404, not a page that pretends `/etc/passwd` exists.
        None
    }
}

fn serve(path: &str, headers: &HeaderMap) -> Option<Response> {
    let bundle = bundle();
    match classify(path)? {
        Target::Index => Some(bundle.index.respond(headers, REVALIDATE)),
        Target::Versioned { build, file } => {
            let asset = bundle.files.get(file).filter(|_| file != "index.html")?;
            // An older page may still ask for its own build: answer with today's file, but
            // never let it be cached for ever under the old name.
            let cache = if build == bundle.build {
                IMMUTABLE
            } else {
                REVALIDATE
            };
            Some(asset.respond(headers, cache))
        }
        Target::Plain(file) => bundle
            .files
            .get(file)
            .map(|asset| asset.respond(headers, REVALIDATE)),
    }
}

/// `GET`/`HEAD` of anything that is not the server's: the web client's files and routes.
pub fn filter() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::get()
        .or(warp::head())
        .unify()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and_then(
            |path: warp::path::FullPath, headers: HeaderMap| async move {
                serve(path.as_str(), &headers).ok_or_else(warp::reject::not_found)
            },
        )
}

/// The build hash of the embedded client (the `/v/<build>/` prefix of its files).
pub fn build_id() -> &'static str {
    &bundle().build
}

/// The client's files and their sizes in bytes, raw and gzip-compressed, for reports.
pub fn sizes() -> Vec<(String, usize, usize)> {
    let mut out: Vec<_> = bundle()
        .files
        .iter()
        .map(|(n, a)| {
            (
                n.clone(),
                a.body.len(),
                a.gzip.as_ref().map_or(a.body.len(), Bytes::len),
            )
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified() {
        assert!(matches!(classify("/"), Some(Target::Index)));
        assert!(matches!(classify("/visit"), Some(Target::Index)));
        assert!(matches!(classify("/call/12"), Some(Target::Index)));
        assert!(matches!(classify("/app.js"), Some(Target::Plain("app.js"))));
        assert!(matches!(
            classify("/v/abc/js/app.js"),
            Some(Target::Versioned {
                build: "abc",
                file: "js/app.js"
            })
        ));
        for server in [
            "/api/v1/x",
            "/api",
            "/signaling",
            "/metrics",
            "/healthz",
            "/v",
        ] {
            assert!(classify(server).is_none(), "{server}");
        }
    }

    #[test]
    fn gzip_is_negotiated() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0"),
        );
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        assert!(!accepts_gzip(&h));
    }
}
