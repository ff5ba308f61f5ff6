//! Encounter notes: drafts with their history, signing, addenda, and a patient's timeline.
//!
//! One note per consultation. Drafts are versioned: every save is a new `note_revisions` row and
//! bumps the note's `version`, guarded by the version the client last saw, so of two authors
//! saving over the same version exactly one wins and the other learns the current version (409).
//! Signing turns the draft at a given version into a signed entry: a canonical JSON document (see
//! [`crate::domain::note`]) naming the consultation, patient, signer and time, stored with its
//! SHA-256. Corrections are addenda, further signed entries that name the entry they amend and
//! its hash. Database triggers refuse any change to signed entries and revisions on both engines,
//! and any change to a note once signed.
//!
//! The rules and the signed documents live here; the SQL is in [`store`].

pub mod keys;
pub mod passkeys;
pub mod store;

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::auth::AccountId;
use crate::auth::policy::Visibility;
use crate::domain::code::ErrorCode;
use crate::domain::consultation::Consultation;
use crate::domain::ids::{ClinicianId, ConsultationId, PatientId};
use crate::domain::note::{self, DOCUMENT_FORMAT, EntryKind, NoteContent, NoteStatus};
use crate::domain::text::BoundedText;
use crate::domain::time;
use crate::journal::{About, Journal};
use crate::storage::{Conn, Db};
pub use keys::{Kek, KeyHistory, PublishedKey};
use passkeys::{
    Assertion, PasskeyError, Purpose, RelyingParty, SigningAnswer, SigningCeremony,
    SigningChallenge, TrustedPasskey,
};
use store::{ENTRY_SEQ, EntryRow, NOTE_OF_CONSULTATION, NewEntry, REVISION_VERSION, RevisionRow};
pub use store::{NoteRow, TimelineRow};

#[derive(Debug, thiserror::Error)]
pub enum NotesError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict {
        code: ErrorCode,
        message: String,
        /// The note's draft version now, so the client can reload and retry.
        current_version: i32,
    },
    #[error("invalid note")]
    Invalid(Vec<(&'static str, String)>),
    /// A stored document that does not parse: a bug or tampering, never the client's doing.
    #[error("stored note data is unreadable: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("a signing key cannot be made")]
    NoKey,
    /// The clinician's stored key does not open under this server's KEK (a wrong or replaced
    /// `notes_kek_file`, or a changed key row): an operator's problem, never the client's.
    #[error("the stored signing key cannot be opened with this server's key-encryption key")]
    KeyUnusable,
    /// The signer has a passkey, so the server may not sign for them with its own key.
    #[error("you have a passkey: sign with it")]
    PasskeyRequired,
    #[error(transparent)]
    Passkey(#[from] PasskeyError),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

pub type Result<T> = std::result::Result<T, NotesError>;

/// What signing and verifying entries needs besides the database: the key-encryption key of the
/// server-held signing keys (and of the passkey rows' tags), and the passkey relying party.
#[derive(Debug)]
pub struct Signatures {
    pub kek: Kek,
    pub passkeys: RelyingParty,
}

/// How an entry was signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignedWith {
    /// By the signer's passkey (and countersigned with their server-held key).
    Passkey,
    /// By the signer's server-held key only: they had no passkey then.
    ServerKey,
}

/// One saved draft.
#[derive(Clone, Debug, Serialize)]
pub struct Revision {
    pub version: i32,
    pub author_clinician_id: ClinicianId,
    pub saved_at: DateTime<Utc>,
    pub content: NoteContent,
}

impl TryFrom<RevisionRow> for Revision {
    type Error = NotesError;
    fn try_from(r: RevisionRow) -> Result<Revision> {
        Ok(Revision {
            version: r.version,
            author_clinician_id: r.author_clinician_id,
            saved_at: r.saved_at,
            content: serde_json::from_str(&r.content)?,
        })
    }
}

/// Whether an entry, as stored now, is what its signer signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// The hash covers the document, the signature verifies it under one of the signer's
    /// published keys, and the document names this entry's consultation, patient, position and
    /// signer.
    Verified,
    /// Any of that does not hold: the entry's text is not served.
    Failed,
}

/// A signed entry: the note (`kind` = `note`, `seq` 1) or an addendum.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub id: i64,
    pub seq: i32,
    pub kind: EntryKind,
    /// The entry an addendum amends.
    pub amends: Option<i64>,
    pub signer_clinician_id: ClinicianId,
    /// From the signed document; empty when the entry fails verification.
    pub signer_name: String,
    pub signed_at: DateTime<Utc>,
    /// Checked on every read; a failing entry has no `content` and no `document`.
    pub verification: Verification,
    /// Why it failed, for the clinicians and operators who investigate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_failure: Option<&'static str>,
    /// What was signed: the note's content, or `{"text"}` for an addendum (null when failed).
    pub content: serde_json::Value,
    /// The exact signed bytes (canonical JSON), for verification outside the platform (null when
    /// failed).
    pub document: Option<String>,
    /// Lowercase hex SHA-256 of `document`.
    pub content_hash: String,
    /// Base64 Ed25519 signature of `document` by the signer's key.
    pub signature: Option<String>,
    /// Base64 Ed25519 public key of the signer that verifies `signature`: one of the keys
    /// `GET /api/v1/clinicians/{id}/signing-key` publishes.
    pub public_key: Option<String>,
    pub signed_with: SignedWith,
    /// The signer's passkey assertion over `document` (its challenge is the document's SHA-256),
    /// verifiable with the passkey `GET /api/v1/clinicians/{id}/signing-key` publishes.
    pub passkey_assertion: Option<Assertion>,
    #[serde(skip)]
    pub note_id: i64,
    #[serde(skip)]
    pub patient_id: PatientId,
    #[serde(skip)]
    pub consultation_id: ConsultationId,
}

impl Entry {
    /// The entry `r` as it may be served: verified against `keys`, or without its text.
    fn checked(r: EntryRow, trust: &Trust<'_>) -> Entry {
        let (verification, failure, signer_name, content, document) = match check(&r, trust) {
            Ok(mut doc) => {
                let signer_name = doc["signer"]["name"].as_str().unwrap_or("").to_string();
                let content = doc
                    .get_mut("content")
                    .map(serde_json::Value::take)
                    .unwrap_or_default();
                (
                    Verification::Verified,
                    None,
                    signer_name,
                    content,
                    Some(r.document),
                )
            }
            Err(why) => {
                metrics::counter!("note_verification_failures_total").increment(1);
                (
                    Verification::Failed,
                    Some(why),
                    String::new(),
                    serde_json::Value::Null,
                    None,
                )
            }
        };
        let passkey_assertion = r
            .passkey_assertion
            .as_deref()
            .and_then(|a| serde_json::from_str(a).ok());
        Entry {
            id: r.id,
            seq: r.seq,
            kind: r.kind,
            amends: r.amends,
            signer_clinician_id: r.signer_clinician_id,
            signer_name,
            signed_at: r.signed_at,
            verification,
            verification_failure: failure,
            content,
            document,
            content_hash: r.content_hash,
            signature: r.signature,
            public_key: r.public_key,
            signed_with: if r.passkey_assertion.is_some() {
                SignedWith::Passkey
            } else {
                SignedWith::ServerKey
            },
            passkey_assertion,
            note_id: r.note_id,
            patient_id: r.patient_id,
            consultation_id: r.consultation_id,
        }
    }

    pub fn verified(&self) -> bool {
        self.verification == Verification::Verified
    }
}

/// What entries are checked against: their signers' trusted keys and passkeys.
struct Trust<'a> {
    keys: KeyHistory,
    passkeys: HashMap<ClinicianId, Vec<TrustedPasskey>>,
    rp: &'a RelyingParty,
}

/// Checks a stored entry; returns its parsed document, or why it fails.
fn check(r: &EntryRow, trust: &Trust<'_>) -> std::result::Result<serde_json::Value, &'static str> {
    use ed25519_dalek::{Signature, VerifyingKey};
    let keys = &trust.keys;
    if note::sha256_hex(r.document.as_bytes()) != r.content_hash {
        return Err("the content hash does not match the stored document");
    }
    let (Some(signature), Some(public)) = (r.signature.as_deref(), r.public_key.as_deref()) else {
        return Err("the entry has no signature");
    };
    if !keys.allows(r.signer_clinician_id, public, r.id) {
        return Err("the public key is not one of the signer's published signing keys");
    }
    let key: [u8; 32] = STANDARD
        .decode(public)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or("the public key is not an Ed25519 key")?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| "the public key is not an Ed25519 key")?;
    let signature: [u8; 64] = STANDARD
        .decode(signature)
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or("the signature is not an Ed25519 signature")?;
    key.verify_strict(r.document.as_bytes(), &Signature::from_bytes(&signature))
        .map_err(|_| "the signature does not verify the stored document")?;
    let doc: serde_json::Value =
        serde_json::from_str(&r.document).map_err(|_| "the signed document is not JSON")?;
    let names = doc["format"] == DOCUMENT_FORMAT
        && doc["kind"] == r.kind.as_str()
        && doc["seq"] == r.seq
        && doc["consultation_id"] == r.consultation_id.0
        && doc["patient_id"] == r.patient_id.0
        && doc["signer"]["clinician_id"] == r.signer_clinician_id.0;
    if !names {
        return Err("the signed document names another consultation, patient, position or signer");
    }
    let passkeys = trust
        .passkeys
        .get(&r.signer_clinician_id)
        .map_or(&[][..], Vec::as_slice);
    match &r.passkey_assertion {
        Some(a) => passkeys::verify(trust.rp, passkeys, &r.document, a)?,
        // Once a clinician has a passkey the server signs nothing for them with its own key, so
        // such an entry is one the server (or whoever holds its keys) made alone.
        None if passkeys.iter().any(|p| p.created_at() <= r.signed_at) => {
            return Err("signed without the passkey the signer had enrolled by then");
        }
        None => {}
    }
    Ok(doc)
}

/// What a signature covers. Field order does not matter: the canonical form sorts keys.
#[derive(Serialize)]
struct SignedDocument<'a, C: Serialize> {
    format: &'static str,
    kind: EntryKind,
    consultation_id: ConsultationId,
    patient_id: PatientId,
    seq: i32,
    /// For an addendum: the entry it amends, by position and hash.
    amends: Option<Amends<'a>>,
    signer: Signer<'a>,
    /// RFC 3339 in UTC, whole seconds.
    signed_at: String,
    content: &'a C,
}

#[derive(Serialize)]
struct Amends<'a> {
    seq: i32,
    content_hash: &'a str,
}

#[derive(Serialize)]
struct Signer<'a> {
    clinician_id: ClinicianId,
    name: &'a str,
    title: &'a str,
}

/// An addendum's signed content.
#[derive(Serialize)]
struct AddendumContent<'a> {
    text: &'a str,
}

/// The key a clinician signed with before per-clinician keys ([`keys`]): derived from the
/// visit-link secret (HMAC-SHA256 of a label naming the clinician is the seed), so anyone with
/// that secret could make it. Kept only so [`keys::adopt_legacy`] can recognise the entries it
/// signed; nothing signs with it any more.
pub fn legacy_signing_key(secret: &[u8], clinician: ClinicianId) -> Result<SigningKey> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| NotesError::NoKey)?;
    mac.update(format!("telehealth/note-signing-key/v1/clinician/{clinician}").as_bytes());
    let seed: [u8; 32] = mac.finalize().into_bytes().into();
    Ok(SigningKey::from_bytes(&seed))
}

/// The base64 (standard, padded) public key of `key`.
pub fn public_key(key: &SigningKey) -> String {
    STANDARD.encode(key.verifying_key().to_bytes())
}

fn sign_document(key: &SigningKey, document: &str) -> String {
    STANDARD.encode(key.sign(document.as_bytes()).to_bytes())
}

/// A document signed by a clinician: its canonical bytes, their hash, the signature and the key
/// that verifies it.
struct Signed {
    document: String,
    hash: String,
    signature: String,
    public_key: String,
}

impl Signed {
    /// `document` (canonical JSON) signed with `key`.
    fn new(key: &SigningKey, document: String) -> Signed {
        Signed {
            hash: note::sha256_hex(document.as_bytes()),
            signature: sign_document(key, &document),
            public_key: public_key(key),
            document,
        }
    }

    /// The entry that stores this document (and the passkey assertion that signed it).
    #[allow(clippy::too_many_arguments)]
    fn entry<'a>(
        &'a self,
        note_id: i64,
        seq: i32,
        kind: EntryKind,
        amends: Option<i64>,
        signer: ClinicianId,
        at: DateTime<Utc>,
        passkey_assertion: Option<&'a str>,
    ) -> NewEntry<'a> {
        NewEntry {
            note_id,
            seq,
            kind,
            amends,
            document: &self.document,
            content_hash: &self.hash,
            signer,
            signed_at: at,
            signature: &self.signature,
            public_key: &self.public_key,
            passkey_assertion,
        }
    }
}

fn conflict(code: ErrorCode, message: impl Into<String>, current_version: i32) -> NotesError {
    NotesError::Conflict {
        code,
        message: message.into(),
        current_version,
    }
}

fn signed_conflict(version: i32) -> NotesError {
    conflict(
        ErrorCode::NoteSigned,
        "this note is signed and can no longer change; add an addendum to correct it",
        version,
    )
}

/// The note of `consultation`, if one has been started.
pub async fn find(db: &Db, consultation: ConsultationId) -> Result<Option<NoteRow>> {
    let mut c = db.acquire().await?;
    Ok(store::find(c.conn(), consultation).await?)
}

/// The draft saved as `version` of note `note_id`.
pub async fn revision(db: &Db, note_id: i64, version: i32) -> Result<Revision> {
    let mut c = db.acquire().await?;
    let row = store::revision(c.conn(), note_id, version).await?;
    row.ok_or(NotesError::NotFound("note revision"))?.try_into()
}

/// Every saved draft of note `note_id`, oldest first.
pub async fn revisions(db: &Db, note_id: i64) -> Result<Vec<Revision>> {
    let mut c = db.acquire().await?;
    let rows = store::revisions(c.conn(), note_id).await?;
    rows.into_iter().map(Revision::try_from).collect()
}

/// The signed entries of the notes `note_ids`, each note's in order (the note, then addenda),
/// each verified against its signer's keys as `kek` vouches for them. Every failing entry counts
/// in `note_verification_failures_total`.
pub async fn entries(db: &Db, sig: &Signatures, note_ids: &[i64]) -> Result<Vec<Entry>> {
    if note_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut c = db.acquire().await?;
    let rows = store::entries(c.conn(), note_ids).await?;
    checked(c.conn(), sig, rows).await
}

async fn checked(mut conn: Conn<'_>, sig: &Signatures, rows: Vec<EntryRow>) -> Result<Vec<Entry>> {
    let mut signers: Vec<ClinicianId> = rows.iter().map(|r| r.signer_clinician_id).collect();
    signers.sort_unstable();
    signers.dedup();
    let trust = Trust {
        keys: KeyHistory::load(conn.reborrow(), &sig.kek, &signers).await?,
        passkeys: passkeys::trusted(conn, &sig.kek, &signers).await?,
        rp: &sig.passkeys,
    };
    Ok(rows
        .into_iter()
        .map(|r| Entry::checked(r, &trust))
        .collect())
}

/// What `telehealth notes verify` found.
#[derive(Debug, Default)]
pub struct VerifySummary {
    pub entries: u64,
    pub failures: u64,
}

/// Verifies every signed entry in the database, `page` at a time, calling `failed` with each
/// entry that does not verify.
pub async fn verify_all(
    db: &Db,
    sig: &Signatures,
    page: i64,
    mut failed: impl FnMut(&Entry),
) -> Result<VerifySummary> {
    let mut summary = VerifySummary::default();
    let mut after = 0;
    loop {
        let mut c = db.acquire().await?;
        let rows = store::entries_after(c.conn(), after, page).await?;
        let Some(last) = rows.last().map(|r| r.id) else {
            return Ok(summary);
        };
        after = last;
        for e in checked(c.conn(), sig, rows).await? {
            summary.entries += 1;
            if !e.verified() {
                summary.failures += 1;
                failed(&e);
            }
        }
    }
}

/// A note as it stands inside the write that changed it, read in that write's transaction: what
/// the write answers (and stores for an idempotency key).
pub struct Written {
    pub note: NoteRow,
    /// The draft at the note's version, while it is a draft.
    pub draft: Option<Revision>,
    /// The signed note and its addenda, in order.
    pub entries: Vec<Entry>,
}

/// A draft has no signed entries; a signed note's are read with `kek`, which verifies them.
async fn written(mut conn: Conn<'_>, sig: Option<&Signatures>, note: NoteRow) -> Result<Written> {
    let draft = if note.status == NoteStatus::Draft {
        let row = store::revision(conn.reborrow(), note.id, note.version).await?;
        Some(
            row.ok_or(NotesError::NotFound("note revision"))?
                .try_into()?,
        )
    } else {
        None
    };
    // Verified as every read verifies them: the answer stored for a retry is what a GET shows.
    let entries = match sig {
        Some(sig) if note.status == NoteStatus::Signed => {
            let rows = store::entries(conn.reborrow(), &[note.id]).await?;
            checked(conn, sig, rows).await?
        }
        _ => Vec::new(),
    };
    Ok(Written {
        note,
        draft,
        entries,
    })
}

/// Writes the request's journal (audit event, idempotent answer) for note `note` of `c`: the
/// answer is `answer` of the note as the write left it.
async fn journal_note<T: Serialize>(
    mut conn: Conn<'_>,
    c: &Consultation,
    note: NoteRow,
    sig: Option<&Signatures>,
    journal: &Journal,
    answer: impl FnOnce(Written) -> T,
) -> Result<T> {
    let id = note.id;
    let answer = answer(written(conn.reborrow(), sig, note).await?);
    journal
        .write(conn, About::record(id).patient(c.patient_id), &answer)
        .await?;
    Ok(answer)
}

/// Explains why a guarded write touched nothing.
async fn refusal(db: &Db, consultation: ConsultationId, expected: i32) -> NotesError {
    match find(db, consultation).await {
        Err(e) => e,
        Ok(None) => conflict(
            ErrorCode::VersionConflict,
            "this consultation has no note yet: save the first draft with version 0",
            0,
        ),
        Ok(Some(n)) if n.status == NoteStatus::Signed => signed_conflict(n.version),
        Ok(Some(n)) => conflict(
            ErrorCode::VersionConflict,
            format!(
                "the draft has changed since version {expected}: it is now at version {v}; \
                 reload it, merge your changes and save again with version {v}",
                v = n.version
            ),
            n.version,
        ),
    }
}

/// Saves `content` as the next draft of `c`'s note, if the note is still at version `expected`
/// (0: no note yet), with the request's journal; answers `answer` of the saved note.
pub async fn save_draft<T: Serialize>(
    db: &Db,
    c: &Consultation,
    author: ClinicianId,
    expected: i32,
    content: &NoteContent,
    journal: &Journal,
    answer: impl FnOnce(Written) -> T,
) -> Result<T> {
    let json = serde_json::to_string(content)?;
    let now = time::now();
    let mut tx = db.begin().await?;
    match write_draft(tx.conn(), c, expected, &json, author, now).await? {
        Some(note) => {
            let answer = journal_note(tx.conn(), c, note, None, journal, answer).await?;
            tx.commit().await?;
            Ok(answer)
        }
        None => {
            // Nothing of it is kept: dropping the transaction rolls it back.
            drop(tx);
            Err(refusal(db, c.id, expected).await)
        }
    }
}

/// The next draft's note row and revision; `None` when another save got there first (the note
/// is not at `expected`, or a concurrent save took the same version).
async fn write_draft(
    mut conn: Conn<'_>,
    c: &Consultation,
    expected: i32,
    json: &str,
    author: ClinicianId,
    now: DateTime<Utc>,
) -> std::result::Result<Option<NoteRow>, sqlx::Error> {
    let note = if expected == 0 {
        match store::insert_note(conn.reborrow(), c.id, c.patient_id, now).await {
            Err(e) if NOTE_OF_CONSULTATION.violated_by(&e) => return Ok(None),
            inserted => inserted?,
        }
    } else {
        let Some(note) = store::next_version(conn.reborrow(), c.id, expected, now).await? else {
            return Ok(None);
        };
        note
    };
    match store::insert_revision(conn, &note, json, author, now).await {
        Err(e) if REVISION_VERSION.violated_by(&e) => Ok(None),
        inserted => inserted.map(|()| Some(note)),
    }
}

/// The name and title a signature carries.
async fn signer_of(db: &Db, clinician: ClinicianId) -> Result<(String, String)> {
    let mut c = db.acquire().await?;
    let row = store::signer(c.conn(), clinician).await?;
    row.ok_or(NotesError::NotFound("clinician"))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Who signs: the clinician and their account, and, when they sign with a passkey, its answer
/// to the challenge the server gave them.
#[derive(Clone, Copy)]
pub struct SignAs<'a> {
    pub clinician: ClinicianId,
    pub account: AccountId,
    pub passkey: Option<&'a SigningAnswer>,
}

impl SignAs<'_> {
    fn ceremony(
        &self,
        purpose: Purpose,
        c: &Consultation,
        version: Option<i32>,
    ) -> SigningCeremony {
        SigningCeremony {
            account: self.account,
            clinician: self.clinician,
            purpose,
            consultation: c.id,
            note_version: version,
        }
    }
}

/// The document to store and, when a passkey signed it, the verified answer: the passkey's
/// document, or `fresh` (built now) when the signer has no passkey. A signer with a passkey who
/// sends no answer is refused: the server no longer signs for them alone.
async fn authorised(
    db: &Db,
    sig: &Signatures,
    who: &SignAs<'_>,
    ceremony: SigningCeremony,
    fresh: impl std::future::Future<Output = Result<String>>,
) -> Result<(String, Option<passkeys::Signed>)> {
    match who.passkey {
        Some(answer) => {
            let signed =
                passkeys::finish_signing(db, &sig.passkeys, &sig.kek, ceremony, answer).await?;
            Ok((signed.document.clone(), Some(signed)))
        }
        None if !passkeys::published(db, &sig.kek, who.clinician)
            .await?
            .is_empty() =>
        {
            Err(NotesError::PasskeyRequired)
        }
        None => Ok((fresh.await?, None)),
    }
}

/// The `signed_at` a document names (RFC 3339): what the entry's column stores.
fn signed_at_of(document: &serde_json::Value) -> Result<DateTime<Utc>> {
    document["signed_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or(NotesError::NotFound("signing time"))
}

/// `c`'s note, which must be a draft at `expected`.
async fn draft_at(db: &Db, c: &Consultation, expected: i32) -> Result<NoteRow> {
    let Some(note) = find(db, c.id).await? else {
        return Err(conflict(
            ErrorCode::NoDraft,
            "this consultation has no draft to sign: save one first",
            0,
        ));
    };
    if note.status == NoteStatus::Signed {
        return Err(signed_conflict(note.version));
    }
    if note.version != expected {
        return Err(refusal(db, c.id, expected).await);
    }
    Ok(note)
}

/// The canonical document that signs `note`'s draft at `expected`, dated now.
async fn note_document(
    db: &Db,
    c: &Consultation,
    note: &NoteRow,
    signer: ClinicianId,
    expected: i32,
) -> Result<String> {
    // Revisions never change, so the content read here is the content of `expected` for good;
    // the guarded update that signs makes sure `expected` is still the latest.
    let draft = revision(db, note.id, expected).await?;
    let missing = draft
        .content
        .ready_to_sign(c.referring_clinician_id.is_some());
    if !missing.is_empty() {
        return Err(NotesError::Invalid(
            missing
                .into_iter()
                .map(|(f, m)| (f, m.to_string()))
                .collect(),
        ));
    }
    let (name, title) = signer_of(db, signer).await?;
    Ok(note::canonical_json(&SignedDocument {
        format: DOCUMENT_FORMAT,
        kind: EntryKind::Note,
        consultation_id: c.id,
        patient_id: c.patient_id,
        seq: 1,
        amends: None,
        signer: Signer {
            clinician_id: signer,
            name: &name,
            title: &title,
        },
        signed_at: rfc3339(time::now()),
        content: &draft.content,
    })?)
}

/// Starts signing the draft of `c`'s note at `expected` with `who`'s passkey: the document to
/// sign and the challenge (its hash), with the request's journal.
pub async fn sign_challenge(
    db: &Db,
    c: &Consultation,
    who: SignAs<'_>,
    sig: &Signatures,
    expected: i32,
    journal: &Journal,
) -> Result<SigningChallenge> {
    let note = draft_at(db, c, expected).await?;
    let document = note_document(db, c, &note, who.clinician, expected).await?;
    let ceremony = who.ceremony(Purpose::SignNote, c, Some(expected));
    Ok(passkeys::start_signing(db, &sig.passkeys, &sig.kek, ceremony, document, journal).await?)
}

/// Signs the draft of `c`'s note at `expected`, which must be its current version, with the
/// request's journal; answers `answer` of the signed note. With a passkey answer the entry is
/// the document the passkey signed; without one (a signer with no passkey) a document made now,
/// signed by the signer's server-held key. Both are countersigned with that key.
pub async fn sign<T: Serialize>(
    db: &Db,
    c: &Consultation,
    who: SignAs<'_>,
    sig: &Signatures,
    expected: i32,
    journal: &Journal,
    answer: impl FnOnce(Written) -> T,
) -> Result<T> {
    let note = draft_at(db, c, expected).await?;
    let ceremony = who.ceremony(Purpose::SignNote, c, Some(expected));
    let fresh = note_document(db, c, &note, who.clinician, expected);
    let (document, by_passkey) = authorised(db, sig, &who, ceremony, fresh).await?;
    let at = signed_at_of(&serde_json::from_str(&document)?)?;
    let key = &keys::current(db, &sig.kek, who.clinician).await?;
    let signed = Signed::new(key, document);
    let assertion = by_passkey.as_ref().map(|p| p.assertion.as_str());
    let mut tx = db.begin().await?;
    let Some(row) = store::mark_signed(tx.conn(), note.id, expected, at).await? else {
        drop(tx);
        return Err(refusal(db, c.id, expected).await);
    };
    let entry = signed.entry(
        note.id,
        1,
        EntryKind::Note,
        None,
        who.clinician,
        at,
        assertion,
    );
    store::insert_entry(tx.conn(), &entry).await?;
    if let Some(p) = &by_passkey {
        p.record_use(tx.conn()).await?;
    }
    // The referring clinician's hospital system hears of it with the signature: ids only.
    journal
        .notify(
            tx.conn(),
            crate::outbox::EventKind::NoteSigned,
            c,
            crate::domain::time::now(),
        )
        .await?;
    let answer = journal_note(tx.conn(), c, row, Some(sig), journal, answer).await?;
    tx.commit().await?;
    Ok(answer)
}

/// `c`'s note, which must be signed (addenda amend signed notes only).
async fn signed_note(db: &Db, c: &Consultation) -> Result<NoteRow> {
    match find(db, c.id).await? {
        Some(n) if n.status == NoteStatus::Signed => Ok(n),
        other => Err(conflict(
            ErrorCode::NoteNotSigned,
            "only a signed note takes addenda; while it is a draft, edit the draft instead",
            other.map(|n| n.version).unwrap_or(0),
        )),
    }
}

/// The signed note's first entry (what addenda amend) and the next free position.
async fn addendum_position(db: &Db, sig: &Signatures, note: &NoteRow) -> Result<(Entry, i32)> {
    let existing = entries(db, sig, &[note.id]).await?;
    let seq = existing.iter().map(|e| e.seq).max().unwrap_or(1) + 1;
    let original = existing
        .into_iter()
        .find(|e| e.seq == 1)
        .ok_or(NotesError::NotFound("signed note"))?;
    Ok((original, seq))
}

/// The canonical document of an addendum by `signer` with `text` at the next position, dated now.
async fn addendum_document(
    db: &Db,
    sig: &Signatures,
    c: &Consultation,
    note: &NoteRow,
    signer: ClinicianId,
    text: &BoundedText,
) -> Result<String> {
    let (name, title) = signer_of(db, signer).await?;
    let (original, seq) = addendum_position(db, sig, note).await?;
    Ok(note::canonical_json(&SignedDocument {
        format: DOCUMENT_FORMAT,
        kind: EntryKind::Addendum,
        consultation_id: c.id,
        patient_id: c.patient_id,
        seq,
        amends: Some(Amends {
            seq: original.seq,
            content_hash: &original.content_hash,
        }),
        signer: Signer {
            clinician_id: signer,
            name: &name,
            title: &title,
        },
        signed_at: rfc3339(time::now()),
        content: &AddendumContent {
            text: text.as_str(),
        },
    })?)
}

/// Starts signing an addendum with `text` to `c`'s signed note with `who`'s passkey.
pub async fn addendum_challenge(
    db: &Db,
    c: &Consultation,
    who: SignAs<'_>,
    sig: &Signatures,
    text: &BoundedText,
    journal: &Journal,
) -> Result<SigningChallenge> {
    let note = signed_note(db, c).await?;
    let document = addendum_document(db, sig, c, &note, who.clinician, text).await?;
    let ceremony = who.ceremony(Purpose::SignAddendum, c, None);
    Ok(passkeys::start_signing(db, &sig.passkeys, &sig.kek, ceremony, document, journal).await?)
}

/// Adds a signed addendum by `who` with `text` to `c`'s signed note, amending the note's first
/// entry, with the request's journal (the answer is the entry). With a passkey answer the
/// addendum is the document the passkey signed, which must carry `text`.
pub async fn add_addendum(
    db: &Db,
    c: &Consultation,
    who: SignAs<'_>,
    sig: &Signatures,
    text: &BoundedText,
    journal: &Journal,
) -> Result<Entry> {
    let note = signed_note(db, c).await?;
    let key = &keys::current(db, &sig.kek, who.clinician).await?;
    // Two addenda at once may both pick the same next position; the unique (note_id, seq) lets
    // one in and the other tries again with the next one (a passkey's document names its
    // position, so that one is refused instead: its signer signs again).
    for _ in 0..5 {
        let ceremony = who.ceremony(Purpose::SignAddendum, c, None);
        let fresh = addendum_document(db, sig, c, &note, who.clinician, text);
        let (document, by_passkey) = authorised(db, sig, &who, ceremony, fresh).await?;
        let doc: serde_json::Value = serde_json::from_str(&document)?;
        if doc["content"]["text"] != text.as_str() {
            return Err(NotesError::Invalid(vec![(
                "text",
                "is not the text the passkey signed: send the same text".to_string(),
            )]));
        }
        let at = signed_at_of(&doc)?;
        let (original, next) = addendum_position(db, sig, &note).await?;
        let seq = doc["seq"]
            .as_i64()
            .and_then(|s| i32::try_from(s).ok())
            .unwrap_or(next);
        let signed = Signed::new(key, document);
        let assertion = by_passkey.as_ref().map(|p| p.assertion.as_str());
        let entry = signed.entry(
            note.id,
            seq,
            EntryKind::Addendum,
            Some(original.id),
            who.clinician,
            at,
            assertion,
        );
        let mut tx = db.begin().await?;
        let entry: Entry = match store::insert_entry(tx.conn(), &entry).await {
            // The failed insert ended the transaction (on PostgreSQL); the next try has its own.
            Err(e) if ENTRY_SEQ.violated_by(&e) && by_passkey.is_none() => continue,
            Err(e) if ENTRY_SEQ.violated_by(&e) => {
                return Err(conflict(
                    ErrorCode::Busy,
                    "another addendum was signed while you signed yours: sign it again",
                    note.version,
                ));
            }
            inserted => entry_in(tx.conn(), sig, note.id, inserted?).await?,
        };
        if let Some(p) = &by_passkey {
            p.record_use(tx.conn()).await?;
        }
        journal
            .write(
                tx.conn(),
                About::record(note.id).patient(c.patient_id),
                &entry,
            )
            .await?;
        tx.commit().await?;
        return Ok(entry);
    }
    Err(conflict(
        ErrorCode::Busy,
        "too many addenda are being added at once; try again",
        note.version,
    ))
}

/// Entry `id` of note `note_id`, as a read serves it (verified), read on `conn`: inside the
/// write that made it, so the stored answer is what a later read shows.
async fn entry_in(mut conn: Conn<'_>, sig: &Signatures, note_id: i64, id: i64) -> Result<Entry> {
    let rows = store::entries(conn.reborrow(), &[note_id]).await?;
    checked(conn, sig, rows)
        .await?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or(NotesError::NotFound("signed entry"))
}

/// A patient's consultations (but holds that never became bookings), newest first.
pub async fn timeline(
    db: &Db,
    patient: PatientId,
    visible: &Visibility,
    limit: i64,
    offset: i64,
) -> Result<Vec<TimelineRow>> {
    let mut c = db.acquire().await?;
    Ok(store::timeline(c.conn(), patient, visible, limit, offset).await?)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::Verifier;

    use super::*;

    #[test]
    fn each_clinician_has_one_stable_key() {
        let secret = b"a secret of the deployment";
        let a = legacy_signing_key(secret, ClinicianId(1)).expect("key");
        let again = legacy_signing_key(secret, ClinicianId(1)).expect("key");
        let b = legacy_signing_key(secret, ClinicianId(2)).expect("key");
        assert_eq!(public_key(&a), public_key(&again));
        assert_ne!(public_key(&a), public_key(&b));
        let other_secret = legacy_signing_key(b"another deployment", ClinicianId(1)).expect("key");
        assert_ne!(public_key(&a), public_key(&other_secret));

        let signature = a.sign(b"{\"seq\":1}");
        assert!(a.verifying_key().verify(b"{\"seq\":1}", &signature).is_ok());
        assert!(
            b.verifying_key()
                .verify(b"{\"seq\":1}", &signature)
                .is_err()
        );
        assert!(
            a.verifying_key()
                .verify(b"{\"seq\":2}", &signature)
                .is_err()
        );
    }
}
