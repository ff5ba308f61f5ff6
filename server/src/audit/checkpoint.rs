//! Signed checkpoints of the audit chain, kept outside the database: what makes the trail
//! tamper-evident to someone who holds the database.
//!
//! The hash chain alone proves only that the events agree with one another: whoever can write
//! the database can drop the append-only trigger, delete the newest events (or all of them), or
//! rewrite events and recompute every hash after them, and the chain still verifies. So after
//! the writer commits a batch, the newest link (sequence number and chain hash) is signed with an
//! Ed25519 key that lives in a file, not in the database, and appended to a JSON-lines log, also a
//! file, fsynced: one line per batch, at most one per `audit_checkpoint_interval_ms` (under load
//! batches come faster than that, and each checkpoint covers everything before it). Optionally
//! each checkpoint is also POSTed to an HTTP endpoint off the machine.
//!
//! [`verify_trail`] checks each line's signature and that the database still holds every
//! checkpointed event with the same chain hash: fewer events is truncation, another hash is
//! rewriting. Events after the newest checkpoint are allowed (they are at most one interval
//! old) and counted as unanchored.
//!
//! A line is `{"seq":N,"hash":"<hex>","at":"<RFC 3339, ms, UTC>","key_id":"<hex>","sig":"<base64>"}`;
//! the signature covers `telehealth-audit-checkpoint-v1 \x1f seq \x1f hash \x1f at \x1f key_id`
//! (0x1f, the unit separator, between the parts), so a receiver can check it with any Ed25519
//! library. `key_id` (the first 8 bytes of the SHA-256 of the public key, hex) names the key, so
//! keys can be rotated later with the old public keys kept for verifying.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use chrono::{SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::Verification;
use crate::config::{Secret, Settings};
use crate::storage::Db;

/// What the signature covers first: a checkpoint signature cannot be taken for any other.
const DOMAIN: &str = "telehealth-audit-checkpoint-v1";
/// Chain hashes read per round trip while verifying.
const VERIFY_PAGE: i64 = 10_000;
/// How long one POST to the sink may take.
const SINK_TIMEOUT: Duration = Duration::from_secs(5);
/// The first wait after a failed POST, doubled after each further failure up to the most.
const SINK_BACKOFF: Duration = Duration::from_millis(500);
const SINK_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The sink failures counter (a failed POST, retried).
pub const SINK_FAILURES: &str = "audit_checkpoint_sink_failures_total";

/// Where checkpoints go, from the settings.
#[derive(Clone, Debug)]
pub struct CheckpointSettings {
    /// The signing key (a 32-byte Ed25519 seed), created owner-only on first start.
    pub key_file: PathBuf,
    /// The append-only JSON-lines log.
    pub log_file: PathBuf,
    /// An HTTP endpoint each checkpoint is POSTed to, as JSON; none: the log only.
    pub sink_url: Option<Secret>,
    /// Sent to the sink as `Authorization: Bearer <token>`.
    pub sink_token: Option<Secret>,
    /// The least time between two checkpoints.
    pub interval: Duration,
}

impl CheckpointSettings {
    pub fn from_settings(s: &Settings) -> CheckpointSettings {
        CheckpointSettings {
            key_file: s
                .audit_checkpoint_key_file
                .clone()
                .unwrap_or_else(|| s.data_dir.join("keys").join("audit-checkpoint.key")),
            log_file: s
                .audit_checkpoint_log
                .clone()
                .unwrap_or_else(|| s.data_dir.join("audit").join("checkpoints.jsonl")),
            sink_url: s.audit_checkpoint_url.clone(),
            sink_token: s.audit_checkpoint_token.clone(),
            interval: Duration::from_millis(s.audit_checkpoint_interval_ms),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("audit checkpoint key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("audit checkpoint log {path}: {source}")]
    Log {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("audit checkpoint sink: {0}")]
    Sink(String),
}

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The newest event chained when the checkpoint was made...
    pub seq: i64,
    /// ...and its chain hash, which covers every event before it.
    pub hash: String,
    /// When the checkpoint was signed (kept as signed, not reformatted).
    pub at: String,
    pub key_id: String,
    /// Ed25519 over [`message`], base64.
    pub sig: String,
}

/// The bytes a checkpoint's signature covers.
fn message(seq: i64, hash: &str, at: &str, key_id: &str) -> String {
    format!("{DOMAIN}\u{1f}{seq}\u{1f}{hash}\u{1f}{at}\u{1f}{key_id}")
}

/// The name of a key in checkpoint lines: the first 8 bytes of its public key's SHA-256, in hex.
pub fn key_id(key: &VerifyingKey) -> String {
    Sha256::digest(key.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A public key as printed for pinning elsewhere: its 32 bytes in base64.
pub fn public_key_text(key: &VerifyingKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
}

/// Parses a public key printed by [`public_key_text`].
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    VerifyingKey::from_bytes(&bytes.try_into().ok()?).ok()
}

fn sign(key: &SigningKey, key_id: &str, seq: i64, hash: &str) -> Checkpoint {
    let at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let sig = key.sign(message(seq, hash, &at, key_id).as_bytes());
    Checkpoint {
        seq,
        hash: hash.to_string(),
        at,
        key_id: key_id.to_string(),
        sig: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
    }
}

/// Whether `c` is signed by `key`.
fn signed_by(c: &Checkpoint, key: &VerifyingKey) -> bool {
    let Some(sig) = base64::engine::general_purpose::STANDARD
        .decode(&c.sig)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
    else {
        return false;
    };
    key.verify(message(c.seq, &c.hash, &c.at, &c.key_id).as_bytes(), &sig)
        .is_ok()
}

fn key_error(path: &Path, reason: impl ToString) -> CheckpointError {
    CheckpointError::Key {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn read_seed(path: &Path) -> Result<SigningKey, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|e| key_error(path, e))?;
    seed_key(path, &bytes)
}

/// The Ed25519 key whose seed is `bytes`, read from `path`.
fn seed_key(path: &Path, bytes: &[u8]) -> Result<SigningKey, CheckpointError> {
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| key_error(path, "not a 32-byte Ed25519 seed"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The public key of the key file at `path`, for verifying; never creates the file.
pub fn public_key_from_file(path: &Path) -> Result<VerifyingKey, CheckpointError> {
    read_seed(path).map(|k| k.verifying_key())
}

/// The signing key at `path`, created there (owner-only, fsynced) when missing.
fn load_or_create_key(path: &Path) -> Result<SigningKey, CheckpointError> {
    let (bytes, _) = crate::storage::secret_file(path, true).map_err(|e| key_error(path, e))?;
    seed_key(path, &bytes)
}

/// Opens the log for appending (owner-only when created). A line torn by a crash mid-write is
/// ended first, so the next line is not glued to it; verify reports the torn one.
fn open_log(path: &Path) -> Result<std::fs::File, CheckpointError> {
    let fail = |source| CheckpointError::Log {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::storage::create_private_dir(dir).map_err(fail)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true).read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(fail)?;
    let len = file.metadata().map_err(fail)?.len();
    if len > 0 {
        use std::io::{Read, Seek, SeekFrom};
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(len - 1))
            .and_then(|_| file.read_exact(&mut last))
            .map_err(fail)?;
        if last[0] != b'\n' {
            file.write_all(b"\n").map_err(fail)?;
        }
    }
    Ok(file)
}

/// The writer's handle on checkpointing: it [`note`](Checkpointer::note)s each new head of the
/// chain; a task of its own signs, appends and fsyncs, so the writer never waits for the disk
/// or the sink.
pub struct Checkpointer {
    head: watch::Sender<Option<(i64, String)>>,
}

impl Checkpointer {
    /// Loads (or creates) the key, opens the log, and starts the checkpoint task and, when a URL
    /// is set, the sink task.
    pub fn start(settings: &CheckpointSettings) -> Result<Checkpointer, CheckpointError> {
        let key = load_or_create_key(&settings.key_file)?;
        let log_existed = settings.log_file.exists();
        let file = open_log(&settings.log_file)?;
        let public = key.verifying_key();
        tracing::info!(
            key_id = %key_id(&public),
            public_key = %public_key_text(&public),
            log = %settings.log_file.display(),
            "audit checkpoints signed with this key"
        );
        let (head, heads) = watch::channel(None);
        let (shipped, to_ship) = watch::channel(None);
        if let Some(url) = &settings.sink_url {
            let client = reqwest::Client::builder()
                .timeout(SINK_TIMEOUT)
                .build()
                .map_err(|e| CheckpointError::Sink(e.without_url().to_string()))?;
            tokio::spawn(ship(
                client,
                url.clone(),
                settings.sink_token.clone(),
                to_ship,
            ));
        }
        tokio::spawn(write_checkpoints(
            CheckpointSigner {
                key,
                key_id: key_id(&public),
            },
            Arc::new(Mutex::new(file)),
            settings.log_file.clone(),
            log_existed,
            settings.interval,
            heads,
            shipped,
        ));
        Ok(Checkpointer { head })
    }

    /// The chain's newest committed link is now `seq` with `hash`.
    pub fn note(&self, seq: i64, hash: String) {
        self.head.send_replace(Some((seq, hash)));
    }
}

/// The key and its name, moved into the checkpoint task.
struct CheckpointSigner {
    key: SigningKey,
    key_id: String,
}

async fn write_checkpoints(
    signer: CheckpointSigner,
    file: Arc<Mutex<std::fs::File>>,
    path: PathBuf,
    log_existed: bool,
    interval: Duration,
    mut heads: watch::Receiver<Option<(i64, String)>>,
    shipped: watch::Sender<Option<Checkpoint>>,
) {
    let mut written: Option<(i64, String)> = None;
    let mut failing = false;
    let mut first = true;
    while heads.changed().await.is_ok() {
        let Some(head) = heads.borrow_and_update().clone() else {
            continue;
        };
        if written.as_ref() == Some(&head) {
            continue;
        }
        if first && !log_existed && head.0 > 0 {
            // Expected once, on the first start with checkpoints; otherwise the log was removed
            // and `audit verify` will say so until this line is the only one left.
            tracing::warn!(
                events = head.0,
                log = %path.display(),
                "the audit checkpoint log was missing although the trail has events; starting a new one"
            );
        }
        first = false;
        let checkpoint = sign(&signer.key, &signer.key_id, head.0, &head.1);
        let line = match serde_json::to_string(&checkpoint) {
            Ok(json) => json + "\n",
            // A struct of strings and a number always serialises.
            Err(_) => continue,
        };
        let file = file.clone();
        // One write, then one fsync per checkpoint (not per event): at most one a second.
        let result = tokio::task::spawn_blocking(move || {
            let mut f = file
                .lock()
                .map_err(|_| std::io::Error::other("the log handle was poisoned"))?;
            f.write_all(line.as_bytes())?;
            f.sync_data()
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match result {
            Ok(()) => {
                metrics::counter!("audit_checkpoints_total").increment(1);
                if failing {
                    tracing::info!("audit checkpoints are written again");
                    failing = false;
                }
                written = Some(head);
                shipped.send_replace(Some(checkpoint));
            }
            Err(err) => {
                metrics::counter!("audit_checkpoint_write_failures_total").increment(1);
                if !failing {
                    tracing::error!(error = %err, log = %path.display(), "audit checkpoint not written");
                    failing = true;
                }
                // Tried again with the next batch, or after the interval.
                heads.mark_changed();
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Ships each checkpoint to the sink. A failed POST is counted and retried with backoff; a newer
/// checkpoint replaces one not yet shipped (it covers everything the older one did).
async fn ship(
    client: reqwest::Client,
    url: Secret,
    token: Option<Secret>,
    mut to_ship: watch::Receiver<Option<Checkpoint>>,
) {
    let mut failing = false;
    while to_ship.changed().await.is_ok() {
        let mut backoff = SINK_BACKOFF;
        loop {
            let Some(checkpoint) = to_ship.borrow_and_update().clone() else {
                break;
            };
            match post(&client, &url, token.as_ref(), &checkpoint).await {
                Ok(()) => {
                    if failing {
                        tracing::info!("the audit checkpoint sink accepts checkpoints again");
                        failing = false;
                    }
                    break;
                }
                Err(err) => {
                    metrics::counter!(SINK_FAILURES).increment(1);
                    if !failing {
                        // The URL may carry a token: never printed.
                        tracing::warn!(error = %err, "audit checkpoint sink failed; retrying");
                        failing = true;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(SINK_BACKOFF_MAX);
                }
            }
        }
    }
}

async fn post(
    client: &reqwest::Client,
    url: &Secret,
    token: Option<&Secret>,
    checkpoint: &Checkpoint,
) -> Result<(), CheckpointError> {
    let mut req = client.post(url.expose()).json(checkpoint);
    if let Some(t) = token {
        req = req.bearer_auth(t.expose());
    }
    req.send()
        .await
        .and_then(|r| r.error_for_status())
        .map(|_| ())
        .map_err(|e| CheckpointError::Sink(e.without_url().to_string()))
}

// --- verifying ---

/// What is wrong with the checkpoint log, or with the trail measured against it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The trail has events but the log is absent or empty.
    MissingLog { path: String, events: i64 },
    /// A line is not a checkpoint (torn by a crash, or edited into nonsense).
    Unreadable { line: u64, why: String },
    /// A line names a key other than the one verifying.
    UnknownKey { line: u64, key_id: String },
    /// A line's signature does not hold: edited or forged without the key.
    BadSignature { line: u64, seq: i64 },
    /// Two signed checkpoints disagree on one event's hash: the trail was rewritten between them.
    Conflicting { seq: i64 },
    /// A checkpoint covers events the trail no longer has.
    Truncated {
        checkpointed: i64,
        at: String,
        trail_ends: i64,
    },
    /// At a checkpointed event the trail's hash is another (or the event is gone): the event or
    /// one before it was changed, and the chain recomputed.
    Rewritten {
        seq: i64,
        at: String,
        /// The newest checkpoint before it that still matches: the change lies after it.
        after: Option<i64>,
        /// Further checkpoints that disagree too.
        later: u64,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::MissingLog { path, events } => write!(
                f,
                "missing checkpoint log: {path} is absent or empty, yet the trail has {events} events"
            ),
            Problem::Unreadable { line, why } => {
                write!(f, "checkpoint log line {line} is not a checkpoint: {why}")
            }
            Problem::UnknownKey { line, key_id } => write!(
                f,
                "checkpoint log line {line} is signed by key {key_id}, not by the key verifying"
            ),
            Problem::BadSignature { line, seq } => write!(
                f,
                "checkpoint log line {line} (event {seq}) has a bad signature: edited or forged"
            ),
            Problem::Conflicting { seq } => write!(
                f,
                "rewritten: two signed checkpoints give event {seq} different hashes"
            ),
            Problem::Truncated {
                checkpointed,
                at,
                trail_ends,
            } => write!(
                f,
                "truncated: a checkpoint signed at {at} covers event {checkpointed}, but the trail ends at event {trail_ends} ({} events removed)",
                checkpointed - trail_ends
            ),
            Problem::Rewritten {
                seq,
                at,
                after,
                later,
            } => {
                write!(
                    f,
                    "rewritten: event {seq} does not have the chain hash checkpointed at {at}"
                )?;
                match after {
                    Some(a) => write!(f, "; the change lies in events {}..={seq}", a + 1)?,
                    None => write!(f, "; the change lies in events 1..={seq}")?,
                }
                if *later > 0 {
                    write!(f, " ({later} later checkpoints disagree too)")?;
                }
                Ok(())
            }
        }
    }
}

/// The checkpoint log measured against the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckpointReport {
    pub key_id: String,
    pub public_key: String,
    /// Lines in the log (0 when it is missing).
    pub log_lines: u64,
    /// The newest event a valid checkpoint covers.
    pub last_checkpointed: Option<i64>,
    /// Events after it: chained since the last checkpoint, so not yet anchored.
    pub unanchored: u64,
    pub problems: Vec<Problem>,
}

/// What `telehealth audit verify` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrailReport {
    pub chain: Verification,
    pub checkpoints: CheckpointReport,
}

impl TrailReport {
    pub fn is_intact(&self) -> bool {
        self.chain.first_broken.is_none() && self.checkpoints.problems.is_empty()
    }

    /// The report as printed, a finding a line; the last line is the verdict.
    pub fn lines(&self) -> Vec<String> {
        let c = &self.checkpoints;
        let mut out = vec![match &self.chain.first_broken {
            None => format!("chain: {} events, every link verified", self.chain.events),
            Some((seq, why)) => format!("chain BROKEN at event {seq}: {why}"),
        }];
        out.push(format!(
            "checkpoint key {} (public key {})",
            c.key_id, c.public_key
        ));
        out.push(match c.last_checkpointed {
            Some(seq) => format!(
                "checkpoints: {} lines, the newest valid one covers event {seq}; {} events after it are not yet anchored",
                c.log_lines, c.unanchored
            ),
            None => format!("checkpoints: {} lines, none valid", c.log_lines),
        });
        out.extend(c.problems.iter().map(|p| format!("PROBLEM: {p}")));
        out.push(if self.is_intact() {
            "audit trail intact".to_string()
        } else {
            "audit trail NOT intact".to_string()
        });
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("reading the audit trail: {0}")]
    Storage(#[from] sqlx::Error),
    #[error("reading the audit checkpoint log {path}: {source}")]
    Log {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Checks the chain ([`super::verify`]), then the checkpoint log at `log_file` against `key`
/// and the trail.
pub async fn verify_trail(
    db: &Db,
    log_file: &Path,
    key: &VerifyingKey,
) -> Result<TrailReport, VerifyError> {
    let chain = super::verify(db).await?;
    let wanted_id = key_id(key);
    let mut problems = Vec::new();

    // The valid checkpoints, as (seq, hash, at).
    let mut valid: Vec<(i64, String, String)> = Vec::new();
    let mut log_lines = 0u64;
    let log_missing = match std::fs::File::open(log_file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(source) => {
            return Err(VerifyError::Log {
                path: log_file.display().to_string(),
                source,
            });
        }
        Ok(file) => {
            use std::io::BufRead;
            for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|source| VerifyError::Log {
                    path: log_file.display().to_string(),
                    source,
                })?;
                let number = i as u64 + 1;
                if line.trim().is_empty() {
                    continue;
                }
                log_lines += 1;
                match serde_json::from_str::<Checkpoint>(&line) {
                    Err(e) => problems.push(Problem::Unreadable {
                        line: number,
                        why: e.to_string(),
                    }),
                    Ok(c) if c.key_id != wanted_id => problems.push(Problem::UnknownKey {
                        line: number,
                        key_id: c.key_id,
                    }),
                    Ok(c) if !signed_by(&c, key) => problems.push(Problem::BadSignature {
                        line: number,
                        seq: c.seq,
                    }),
                    Ok(c) => valid.push((c.seq, c.hash, c.at)),
                }
            }
            log_lines == 0
        }
    };

    // Nodes sharing a log append in their own order; the earliest signing of each event is kept.
    valid.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    let mut checkpoints: Vec<(i64, String, String)> = Vec::with_capacity(valid.len());
    for c in valid {
        match checkpoints.last() {
            Some(last) if last.0 == c.0 => {
                if last.1 != c.1 && !problems.contains(&Problem::Conflicting { seq: c.0 }) {
                    problems.push(Problem::Conflicting { seq: c.0 });
                }
            }
            _ => checkpoints.push(c),
        }
    }

    // Walk the stored hashes beside the checkpoints.
    let mut c = db.acquire().await?;
    let trail_end = super::store::last_link(c.conn())
        .await?
        .map(|(seq, _)| seq)
        .unwrap_or(0);
    if log_missing && trail_end > 0 {
        problems.push(Problem::MissingLog {
            path: log_file.display().to_string(),
            events: trail_end,
        });
    }
    let mut found = Mismatches::default();
    let mut pending = checkpoints.iter().filter(|c| c.0 <= trail_end).peekable();
    let mut after = 0i64;
    while pending.peek().is_some() {
        let page = super::store::hashes_after(c.conn(), after, VERIFY_PAGE).await?;
        let Some(&(page_end, _)) = page.last() else {
            break;
        };
        let mut stored = page.iter().peekable();
        while let Some(cp) = pending.next_if(|cp| cp.0 <= page_end) {
            while stored.next_if(|(seq, _)| *seq < cp.0).is_some() {}
            if stored
                .peek()
                .is_some_and(|(seq, h)| *seq == cp.0 && *h == cp.1)
            {
                found.agree(cp.0);
            } else {
                found.disagree(cp);
            }
        }
        after = page_end;
    }
    // Checkpointed events past the last one stored (only if the trail shrank while this ran).
    for cp in pending {
        found.disagree(cp);
    }
    if let Some((seq, at, after)) = found.first {
        problems.push(Problem::Rewritten {
            seq,
            at,
            after,
            later: found.later,
        });
    }
    let newest = checkpoints.last();
    if let Some((seq, _, at)) = newest
        && *seq > trail_end
    {
        problems.push(Problem::Truncated {
            checkpointed: *seq,
            at: at.clone(),
            trail_ends: trail_end,
        });
    }
    let last_checkpointed = newest.map(|c| c.0);
    Ok(TrailReport {
        chain,
        checkpoints: CheckpointReport {
            key_id: wanted_id,
            public_key: public_key_text(key),
            log_lines,
            last_checkpointed,
            unanchored: (trail_end - last_checkpointed.unwrap_or(0)).max(0) as u64,
            problems,
        },
    })
}

/// Checkpoints the trail disagrees with: the first (with the newest that agreed before it), and
/// how many after it disagree too (one change early on breaks every later checkpoint).
#[derive(Default)]
struct Mismatches {
    first: Option<(i64, String, Option<i64>)>,
    later: u64,
    last_match: Option<i64>,
}

impl Mismatches {
    fn agree(&mut self, seq: i64) {
        if self.first.is_none() {
            self.last_match = Some(seq);
        }
    }

    fn disagree(&mut self, cp: &(i64, String, String)) {
        if self.first.is_none() {
            self.first = Some((cp.0, cp.2.clone(), self.last_match));
        } else {
            self.later += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_verifies_and_an_edited_one_does_not() {
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let id = key_id(&key.verifying_key());
        let c = sign(&key, &id, 42, "ab");
        assert!(signed_by(&c, &key.verifying_key()));
        let moved = Checkpoint {
            seq: 41,
            ..c.clone()
        };
        assert!(!signed_by(&moved, &key.verifying_key()));
        let other = SigningKey::from_bytes(&[4u8; 32]).verifying_key();
        assert!(!signed_by(&c, &other));
        assert_eq!(
            parse_public_key(&public_key_text(&key.verifying_key())),
            Some(key.verifying_key())
        );
    }

    #[test]
    fn the_key_is_created_once_owner_only_and_reused() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("keys").join("audit.key");
        let first = load_or_create_key(&path).expect("created");
        let second = load_or_create_key(&path).expect("read back");
        assert_eq!(first.to_bytes(), second.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").expect("spoiled");
        assert!(load_or_create_key(&path).is_err());
    }

    #[test]
    fn a_torn_last_line_is_ended_before_the_next_one() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, b"{\"seq\":1,\"ha").expect("torn");
        let mut f = open_log(&path).expect("opened");
        f.write_all(b"next\n").expect("appended");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "{\"seq\":1,\"ha\nnext\n");
    }
}
