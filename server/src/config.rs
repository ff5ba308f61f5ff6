//! Configuration: documented defaults, then an optional TOML file, then environment variables,
//! then command-line flags, each overriding the one before.
//!
//! | setting | file key | environment | flag | default |
//! |---|---|---|---|---|
//! | listen address | `listen` | `TELEHEALTH_LISTEN` | `--listen` | `127.0.0.1:8080` |
//! | data directory | `data_dir` | `TELEHEALTH_DATA_DIR` | `--data-dir` | `./data` |
//! | database URL | `database_url` | `DATABASE_URL` | `--database-url` | `sqlite://<data_dir>/telehealth.db` |
//! | pool size | `database_max_connections` | `TELEHEALTH_DATABASE_MAX_CONNECTIONS` | | 16 |
//! | log format | `log_format` | `TELEHEALTH_LOG_FORMAT` | `--log-format` | `text` (or `json`) |
//! | log filter | `log_filter` | `RUST_LOG` | | `info` |
//! | hold length, seconds | `hold_seconds` | `TELEHEALTH_HOLD_SECONDS` | | 300 |
//! | largest JSON body | `max_body_bytes` | `TELEHEALTH_MAX_BODY_BYTES` | | 65536 |
//! | visit-link key file | `visit_link_key_file` | `TELEHEALTH_VISIT_LINK_KEY_FILE` | | `<data_dir>/visit-link.key` |
//! | note signing keys' key-encryption key file | `notes_kek_file` | `TELEHEALTH_NOTES_KEK_FILE` | | `<data_dir>/notes-kek.key` |
//! | the address users open (passkeys are bound to its host) | `public_url` | `TELEHEALTH_PUBLIC_URL` | | none: passkeys on `localhost`, any port |
//! | TLS certificate chain, PEM | `tls_cert` | `TELEHEALTH_TLS_CERT` | | none: plain HTTP |
//! | TLS private key, PEM | `tls_key` | `TELEHEALTH_TLS_KEY` | | none: plain HTTP |
//! | self-signed TLS for development | `tls_self_signed` | `TELEHEALTH_TLS_SELF_SIGNED` | | `false` |
//! | STUN servers for calls | `stun_urls` | `TELEHEALTH_STUN_URLS` | | none |
//! | TURN servers for calls | `turn_urls` | `TELEHEALTH_TURN_URLS` | | none |
//! | TURN shared secret (coturn `static-auth-secret`) | `turn_secret` | `TELEHEALTH_TURN_SECRET` | | none |
//! | TURN credential lifetime, seconds | `turn_ttl_seconds` | `TELEHEALTH_TURN_TTL_SECONDS` | | 28800 |
//! | signaling sockets per node | `signaling_max_connections` | `TELEHEALTH_SIGNALING_MAX_CONNECTIONS` | | 19500 |
//! | signaling rooms per node | `signaling_max_rooms` | `TELEHEALTH_SIGNALING_MAX_ROOMS` | | 10000 |
//! | `/metrics` on an address of its own | `metrics_listen` | `TELEHEALTH_METRICS_LISTEN` | | none |
//! | `/metrics` behind a Bearer token | `metrics_token` | `TELEHEALTH_METRICS_TOKEN` | | none |
//! | sign-in attempts per client address per minute, per node | `sign_in_per_address_per_minute` | `TELEHEALTH_SIGN_IN_PER_ADDRESS_PER_MINUTE` | | 1200 |
//! | sign-in attempts per client address at once, per node | `sign_in_per_address_burst` | `TELEHEALTH_SIGN_IN_PER_ADDRESS_BURST` | | 100 |
//! | wait for a database connection, ms | `database_acquire_timeout_ms` | `TELEHEALTH_DATABASE_ACQUIRE_TIMEOUT_MS` | | 1000 |
//! | longest statement (PostgreSQL), ms; silence longer by half is a broken connection | `database_statement_timeout_ms` | `TELEHEALTH_DATABASE_STATEMENT_TIMEOUT_MS` | | 2000 |
//! | SQLite quota, pages of 4 KiB | `sqlite_max_page_count` | `TELEHEALTH_SQLITE_MAX_PAGE_COUNT` | | none |
//! | holds one account keeps at once (0: no cap) | `holds_per_account` | `TELEHEALTH_HOLDS_PER_ACCOUNT` | | 100 |
//! | holds one patient has at once (0: no cap) | `holds_per_patient` | `TELEHEALTH_HOLDS_PER_PATIENT` | | 10 |
//! | booking requests per account per minute, per node (0: no limit) | `booking_per_account_per_minute` | `TELEHEALTH_BOOKING_PER_ACCOUNT_PER_MINUTE` | | 600 |
//! | booking requests per account at once, per node | `booking_per_account_burst` | `TELEHEALTH_BOOKING_PER_ACCOUNT_BURST` | | 120 |
//! | audit checkpoint signing key (Ed25519 seed) | `audit_checkpoint_key_file` | `TELEHEALTH_AUDIT_CHECKPOINT_KEY_FILE` | | `<data_dir>/keys/audit-checkpoint.key` |
//! | audit checkpoint log (JSON lines) | `audit_checkpoint_log` | `TELEHEALTH_AUDIT_CHECKPOINT_LOG` | | `<data_dir>/audit/checkpoints.jsonl` |
//! | least time between audit checkpoints, ms | `audit_checkpoint_interval_ms` | `TELEHEALTH_AUDIT_CHECKPOINT_INTERVAL_MS` | | 1000 |
//! | HTTP endpoint each audit checkpoint is POSTed to | `audit_checkpoint_url` | `TELEHEALTH_AUDIT_CHECKPOINT_URL` | | none |
//! | Bearer token for that endpoint | `audit_checkpoint_token` | `TELEHEALTH_AUDIT_CHECKPOINT_TOKEN` | | none |
//! | run the outbox dispatcher on this node | `outbox_dispatcher` | `TELEHEALTH_OUTBOX_DISPATCHER` | | `true` |
//! | attempts before a message is dead | `outbox_max_attempts` | `TELEHEALTH_OUTBOX_MAX_ATTEMPTS` | | 10 |
//! | lease of a claimed message, seconds (more than one attempt's 10) | `outbox_lease_seconds` | `TELEHEALTH_OUTBOX_LEASE_SECONDS` | | 60 |
//! | largest delay before the first retry, ms | `outbox_backoff_base_ms` | `TELEHEALTH_OUTBOX_BACKOFF_BASE_MS` | | 5000 |
//! | largest delay before any retry, ms | `outbox_backoff_max_ms` | `TELEHEALTH_OUTBOX_BACKOFF_MAX_MS` | | 3600000 |
//! | how often an idle dispatcher looks, ms | `outbox_poll_ms` | `TELEHEALTH_OUTBOX_POLL_MS` | | 1000 |
//! | webhook endpoints of hospital systems | `webhooks` | `TELEHEALTH_WEBHOOKS` | | none |
//! | the SMS-brandname gateway patients' SMS go through | `sms` | `TELEHEALTH_SMS` | | none |
//! | Zalo notification service (ZNS) templates | `zalo` | `TELEHEALTH_ZALO` | | none |
//! | SMTP server for patients' email | `email` | `TELEHEALTH_EMAIL` | | none |
//! | reminders before a visit, minutes (the "join now" at the room's opening is always sent) | `reminder_minutes_before` | `TELEHEALTH_REMINDER_MINUTES_BEFORE` | | `[1440, 60]` |
//!
//! Lists in the environment are written as TOML arrays:
//! `TELEHEALTH_TURN_URLS='["turn:turn.example.vn:3478?transport=udp","turns:turn.example.vn:443?transport=tcp"]'`.
//!
//! Webhook endpoints (see `outbox::webhook`), each with a unique name, a URL, one or more
//! secrets (`whsec_<base64>`; several while one is rotated: each request carries a signature per
//! secret) and the events it wants (none listed: all of them):
//!
//! ```toml
//! [[webhooks]]
//! name = "his-cho-ray"
//! url = "https://his.choray.vn/hooks/telehealth"
//! secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
//! events = ["consultation.booked", "consultation.rescheduled", "consultation.cancelled"]
//! ```
//!
//! Patients' channels (see `outbox::sms`, `outbox::zalo`, `outbox::email`); each is off until
//! configured, and a patient is sent nothing until their consent and channel are recorded:
//!
//! ```toml
//! [sms]
//! url = "https://rest.esms.vn/MainService.svc/json/SendMultipleMessage_V4_post_json/"
//! api_key = "..."
//! secret_key = "..."
//! brandname = "TELEHEALTH"
//! unicode = false            # Vietnamese without diacritics: one SMS part holds 160 letters
//!
//! [zalo]
//! url = "https://business.openapi.zalo.me/message/template"
//! access_token = "..."
//! # One approved ZNS template per kind of message; a kind without one goes by SMS.
//! templates = { "consultation.booked" = "301234", "consultation.reminder" = "301235" }
//!
//! [email]
//! smtp_url = "smtps://user:password@smtp.example.vn:465"
//! from = "Telehealth <no-reply@example.vn>"
//! ```
//!
//! `tls_cert` and `tls_key` go together and turn on HTTPS. `tls_self_signed = true` instead makes
//! a certificate for `localhost`, the loopback addresses and the listen address in
//! `<data_dir>/tls/` (kept and reused on later starts), so a development server on a LAN address
//! gives browsers the secure context that camera and microphone need. Setting both is an error.
//!
//! `/metrics` is served only with `metrics_token` (16 characters or more) or on `metrics_listen`;
//! with neither it answers 404.
//!
//! The database timeouts decide how a fault looks to clients: while the database is down or
//! silent, or its disk is full, requests are answered 503 with `Retry-After` within about
//! `database_acquire_timeout_ms` (a connection that stopped answering: within
//! `database_statement_timeout_ms` and a half), and the server recovers by itself once the
//! database does. Both must be at least 1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A database URL, which may carry a password: it is never printed whole.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn redacted(&self) -> String {
        crate::storage::redact_url(&self.0)
    }
}

/// A shared secret from the configuration: never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// One webhook endpoint as configured; parsed and checked at start
/// (`outbox::WebhookEndpoint::parse`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Stored with each message: renaming an endpoint strands its queued messages (dead).
    pub name: String,
    /// May carry credentials: never printed.
    pub url: Secret,
    /// `whsec_<base64>`, one or more (rotation).
    pub secrets: Vec<Secret>,
    /// Event kinds this endpoint receives; empty: all.
    #[serde(default)]
    pub events: Vec<String>,
}

/// The SMS-brandname gateway (`outbox::sms`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSettings {
    /// The gateway's send endpoint; tests point it at a local receiver.
    pub url: Secret,
    pub api_key: Secret,
    pub secret_key: Secret,
    /// The registered sender name the messages carry.
    pub brandname: String,
    /// Send Vietnamese with its diacritics (a unicode SMS part holds 70 characters instead of
    /// 160, and brandname gateways charge per part).
    #[serde(default)]
    pub unicode: bool,
}

/// Zalo notification service (`outbox::zalo`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZaloSettings {
    pub url: Secret,
    pub access_token: Secret,
    /// The approved template id of each kind of message (`consultation.booked`, ...).
    #[serde(default)]
    pub templates: std::collections::BTreeMap<String, String>,
}

/// The SMTP server of patients' email (`outbox::email`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// `smtp://host:port` (STARTTLS required unless `?tls=none`, for a local relay),
    /// `smtps://user:password@host:465`; lettre's URL form.
    pub smtp_url: Secret,
    /// The sender, `Name <address>`.
    pub from: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None` means the embedded SQLite file in `data_dir`.
    pub database_url: Option<DatabaseUrl>,
    pub database_max_connections: u32,
    pub log_format: LogFormat,
    pub log_filter: String,
    /// How long a held slot stays reserved before it frees itself.
    pub hold_seconds: u32,
    pub max_body_bytes: usize,
    /// PEM certificate chain, leaf first; with `tls_key`, the server speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate kept in `<data_dir>/tls/`: for development.
    pub tls_self_signed: bool,
    /// The key that signs visit links; created on first start when missing. Every node of one
    /// deployment must share it, or links issued by one node fail on another.
    pub visit_link_key_file: Option<PathBuf>,
    /// The key-encryption key of clinicians' note signing keys (stored encrypted in the
    /// database); created (owner-only) on first start when missing. Keep it outside the database
    /// and its backups; every node of one deployment must share it.
    pub notes_kek_file: Option<PathBuf>,
    /// The address users open, e.g. `https://telehealth.example.vn`: clinicians' passkeys are
    /// bound to its host name, which must not change once they enrol. Without it, passkeys work
    /// on `localhost` only (a laptop, the tests).
    pub public_url: Option<String>,
    /// STUN servers offered to call participants, e.g. `stun:stun.example.vn:3478`.
    pub stun_urls: Vec<String>,
    /// TURN servers offered with time-limited credentials (needs `turn_secret`).
    pub turn_urls: Vec<String>,
    /// The secret shared with the TURN server (coturn `use-auth-secret` / `static-auth-secret`).
    pub turn_secret: Option<Secret>,
    /// How long TURN credentials stay valid: longer than the longest call.
    pub turn_ttl_seconds: u64,
    /// Most signaling sockets one node holds (each is an open file: keep under the process limit).
    pub signaling_max_connections: usize,
    /// Most call rooms one node holds.
    pub signaling_max_rooms: usize,
    /// Serve `/metrics` on this address only (plain HTTP, for a scraper on a private network
    /// or loopback), and not on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve `/metrics` only to requests with `Authorization: Bearer <metrics_token>`.
    pub metrics_token: Option<Secret>,
    /// Sign-in attempts one client address may make on one node per minute, on average...
    pub sign_in_per_address_per_minute: u32,
    /// ...and at once: enough for a care centre's staff behind one address arriving together.
    /// (The limits that hold across nodes live in the database; see `auth::throttle`.)
    pub sign_in_per_address_burst: u32,
    // --- faults recover by themselves (issue 12) ---
    /// How long a request waits for a database connection (an idle one from the pool, or a new
    /// one) before it is answered 503: while the database is down, requests fail after about
    /// this long instead of queueing.
    pub database_acquire_timeout_ms: u64,
    /// The longest one statement may take on PostgreSQL (its `statement_timeout`). The server
    /// waits half as long again for any answer at all, on either engine (on SQLite on top of its
    /// 10 s wait for the write lock): a connection that goes silent, as one does behind a
    /// network that drops its packets, is given up on and replaced, and the request gets a 503.
    pub database_statement_timeout_ms: u64,
    /// SQLite only: the most pages (4 KiB each) the database file may grow to (SQLite's
    /// `max_page_count`), a quota that keeps the file from filling its disk. A database at its
    /// quota refuses writes with 503 `storage_full` and `/readyz` answers 503 until space is
    /// freed (rows deleted) or the quota raised (a restart). None: no quota.
    pub sqlite_max_page_count: Option<u32>,
    // --- booking limits ---
    // See `scheduling::booking::limits` for why these defaults are far above any clinic's use.
    /// Holds one account may keep standing at once (0: no cap). Counted in the database, so
    /// across nodes.
    pub holds_per_account: u32,
    /// Holds one patient may have standing at once, whoever made them (0: no cap).
    pub holds_per_patient: u32,
    /// Booking requests (book or hold, reschedule, confirm) one account may make per minute on
    /// one node, on average (0: no rate limit)...
    pub booking_per_account_per_minute: u32,
    /// ...and at once.
    pub booking_per_account_burst: u32,
    // --- audit checkpoints (issue 12; see `audit::checkpoint`) ---
    /// The Ed25519 key that signs audit checkpoints; created owner-only on first start. Keep it
    /// out of database backups: it is what a database alone cannot forge.
    pub audit_checkpoint_key_file: Option<PathBuf>,
    /// The append-only log of signed checkpoints. Best on another disk or filesystem than the
    /// database; with several nodes, each keeps its own (or they share one file).
    pub audit_checkpoint_log: Option<PathBuf>,
    /// The least time between two checkpoints (one per audit batch, at most this often): bounds
    /// the fsyncs and the log's growth, and is how old unanchored events can be.
    pub audit_checkpoint_interval_ms: u64,
    /// An HTTP(S) endpoint each checkpoint is POSTed to as JSON, so a copy lives beyond this
    /// machine. May carry credentials: never printed.
    pub audit_checkpoint_url: Option<Secret>,
    /// Sent to `audit_checkpoint_url` as `Authorization: Bearer <token>`.
    pub audit_checkpoint_token: Option<Secret>,
    // --- the outbox (issue 14; see `outbox`) ---
    /// Run a dispatcher on this node. Every node may: they share the work through leases.
    pub outbox_dispatcher: bool,
    /// Attempts before a message is dead (left for an administrator to see).
    pub outbox_max_attempts: u32,
    /// How long a claimed message is kept from other nodes: longer than one attempt can take.
    pub outbox_lease_seconds: u32,
    /// The largest delay before the first retry; it doubles each retry (full jitter below it)...
    pub outbox_backoff_base_ms: u64,
    /// ...up to this.
    pub outbox_backoff_max_ms: u64,
    /// How often an idle dispatcher looks for due messages.
    pub outbox_poll_ms: u64,
    /// Hospital systems' webhook endpoints.
    pub webhooks: Vec<WebhookSettings>,
    /// Patients' SMS; none: no SMS.
    pub sms: Option<SmsSettings>,
    /// Patients' Zalo messages; none: those who chose Zalo get SMS.
    pub zalo: Option<ZaloSettings>,
    /// Patients' email; none: no email.
    pub email: Option<EmailSettings>,
    /// Reminders before each visit, in minutes.
    pub reminder_minutes_before: Vec<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_max_connections: 16,
            log_format: LogFormat::Text,
            log_filter: "info".to_string(),
            hold_seconds: 300,
            max_body_bytes: 64 * 1024,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            visit_link_key_file: None,
            notes_kek_file: None,
            public_url: None,
            stun_urls: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret: None,
            turn_ttl_seconds: 8 * 3600,
            signaling_max_connections: 19_500,
            signaling_max_rooms: 10_000,
            metrics_listen: None,
            metrics_token: None,
            sign_in_per_address_per_minute: 1200,
            sign_in_per_address_burst: 100,
            database_acquire_timeout_ms: 1000,
            database_statement_timeout_ms: 2000,
            sqlite_max_page_count: None,
            holds_per_account: 100,
            holds_per_patient: 10,
            booking_per_account_per_minute: 600,
            booking_per_account_burst: 120,
            audit_checkpoint_key_file: None,
            audit_checkpoint_log: None,
            audit_checkpoint_interval_ms: 1000,
            audit_checkpoint_url: None,
            audit_checkpoint_token: None,
            outbox_dispatcher: true,
            outbox_max_attempts: 10,
            outbox_lease_seconds: 60,
            outbox_backoff_base_ms: 5000,
            outbox_backoff_max_ms: 3_600_000,
            outbox_poll_ms: 1000,
            webhooks: Vec::new(),
            sms: None,
            zalo: None,
            email: None,
            reminder_minutes_before: vec![1440, 60],
        }
    }
}

/// Values given on the command line; `None` leaves the layer below in force.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<DatabaseUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

impl Settings {
    /// Reads the layers in order: defaults, `file` (when given), environment, `overrides`.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment
            .merge(Env::prefixed("TELEHEALTH_").ignore(&["CONFIG", "NEW_PASSWORD"]))
            .merge(Env::raw().only(&["DATABASE_URL"]))
            .merge(Env::raw().only(&["RUST_LOG"]).map(|_| "log_filter".into()))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| ConfigError(Box::new(e)))
    }

    /// The database to use: the configured URL, or the embedded SQLite file in the data directory.
    pub fn database_url(&self) -> DatabaseUrl {
        match &self.database_url {
            Some(url) => url.clone(),
            None => DatabaseUrl(format!(
                "sqlite://{}",
                self.data_dir.join("telehealth.db").display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_overrides() {
        let s = Settings::default();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url().expose(), "sqlite://./data/telehealth.db");
        let url = DatabaseUrl::new("postgres://u:pw@h/db");
        assert_eq!(format!("{url:?}"), "postgres://u:***@h/db");
        assert_eq!(
            (s.tls_cert, s.tls_key, s.tls_self_signed),
            (None, None, false)
        );
    }

    #[test]
    fn tls_settings_from_a_file() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let file = dir.path().join("telehealth.toml");
        std::fs::write(
            &file,
            "tls_cert = \"/etc/th/cert.pem\"\ntls_key = \"/etc/th/key.pem\"\ntls_self_signed = false\n",
        )
        .expect("config written");
        let s = Settings::load(Some(&file), Overrides::default()).expect("settings load");
        assert_eq!(s.tls_cert, Some(PathBuf::from("/etc/th/cert.pem")));
        assert_eq!(s.tls_key, Some(PathBuf::from("/etc/th/key.pem")));
        assert!(!s.tls_self_signed);
    }

    #[test]
    fn audit_checkpoint_settings_from_a_file_and_the_sink_never_printed() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let file = dir.path().join("telehealth.toml");
        std::fs::write(
            &file,
            "audit_checkpoint_key_file = \"/etc/th/audit.key\"\naudit_checkpoint_log = \"/var/log/th/checkpoints.jsonl\"\naudit_checkpoint_interval_ms = 250\naudit_checkpoint_url = \"https://sink.example.vn/c?k=hush-4242\"\naudit_checkpoint_token = \"tok-hush-0123\"\n",
        )
        .expect("config written");
        let s = Settings::load(Some(&file), Overrides::default()).expect("settings load");
        assert_eq!(
            s.audit_checkpoint_key_file,
            Some(PathBuf::from("/etc/th/audit.key"))
        );
        assert_eq!(
            s.audit_checkpoint_log,
            Some(PathBuf::from("/var/log/th/checkpoints.jsonl"))
        );
        assert_eq!(s.audit_checkpoint_interval_ms, 250);
        let printed = format!("{s:?}");
        assert!(!printed.contains("hush"), "{printed}");
        let d = Settings::default();
        assert_eq!(d.audit_checkpoint_interval_ms, 1000);
        let cs = crate::audit::checkpoint::CheckpointSettings::from_settings(&d);
        assert_eq!(
            cs.key_file,
            PathBuf::from("./data/keys/audit-checkpoint.key")
        );
        assert_eq!(cs.log_file, PathBuf::from("./data/audit/checkpoints.jsonl"));
    }

    #[test]
    fn webhooks_from_a_file_and_their_secrets_never_printed() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let file = dir.path().join("telehealth.toml");
        std::fs::write(
            &file,
            "outbox_max_attempts = 4\n[[webhooks]]\nname = \"his\"\nurl = \"https://his.example.vn/h?k=hush-1\"\nsecrets = [\"whsec_hushhushhushhushhushhush\", \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\nevents = [\"consultation.booked\"]\n",
        )
        .expect("config written");
        let s = Settings::load(Some(&file), Overrides::default()).expect("settings load");
        assert_eq!(s.outbox_max_attempts, 4);
        assert_eq!(s.webhooks.len(), 1);
        assert_eq!(s.webhooks[0].name, "his");
        assert_eq!(s.webhooks[0].secrets.len(), 2);
        assert_eq!(s.webhooks[0].events, ["consultation.booked"]);
        assert!(!format!("{s:?}").contains("hush"));
        assert!(Settings::default().webhooks.is_empty());
    }

    #[test]
    fn metrics_settings_from_a_file_and_never_printed() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let file = dir.path().join("telehealth.toml");
        std::fs::write(
            &file,
            "metrics_listen = \"127.0.0.1:9464\"\nmetrics_token = \"scrape-0123456789abcdef\"\n",
        )
        .expect("config written");
        let s = Settings::load(Some(&file), Overrides::default()).expect("settings load");
        assert_eq!(
            s.metrics_listen,
            Some("127.0.0.1:9464".parse().expect("address"))
        );
        assert_eq!(
            s.metrics_token.as_ref().map(Secret::expose),
            Some("scrape-0123456789abcdef")
        );
        assert!(!format!("{s:?}").contains("scrape-0123"));
        let d = Settings::default();
        assert_eq!((d.metrics_listen, d.metrics_token), (None, None));
    }
}
