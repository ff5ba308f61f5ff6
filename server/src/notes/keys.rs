//! Clinicians' note signing keys: one random Ed25519 key per clinician, made on their first
//! signature, kept in `clinician_signing_keys` with the private half encrypted under the
//! key-encryption key (KEK) from the `notes_kek_file`, which lives outside the database.
//!
//! What the KEK protects against: someone holding the database (a dump, a backup, a replica)
//! but not the KEK file can neither sign as a clinician nor add a key of their own to a
//! clinician's published history, because every key row carries a tag (HMAC under a key derived
//! from the KEK) over its columns, and rows whose tag does not check are ignored. Someone holding
//! both the database and the KEK can still sign as anyone; only passkeys remove that.
//!
//! The visit-link key plays no part, so rotating it changes no signing key. Entries signed before
//! this, with keys derived from the visit-link key, are kept verifiable by [`adopt_legacy`]: when
//! the KEK is first created, the derived public key of each clinician with such entries is
//! recorded as a retired key, good for the entries that existed at that moment only.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::{NotesError, Result, public_key};
use crate::domain::ids::ClinicianId;
use crate::domain::time;
use crate::on_conn;
use crate::storage::{Conn, Db, UniqueKey};

/// One current key per clinician.
const CURRENT_KEY: UniqueKey = UniqueKey {
    table: "clinician_signing_keys",
    columns: &["clinician_id"],
};

/// A public key is one clinician's only.
const PUBLIC_KEY: UniqueKey = UniqueKey {
    table: "clinician_signing_keys",
    columns: &["public_key"],
};

/// The key-encryption key: its two uses get keys of their own, derived from the file's bytes.
pub struct Kek {
    seal: [u8; 32],
    tag: [u8; 32],
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

fn derive(secret: &[u8], label: &str) -> [u8; 32] {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

impl Kek {
    /// The KEK whose file holds `secret` (32 bytes or more).
    pub fn from_secret(secret: &[u8]) -> Kek {
        Kek {
            seal: derive(secret, "telehealth/notes-kek/v1/seal"),
            tag: derive(secret, "telehealth/notes-kek/v1/tag"),
        }
    }

    /// What binds an encrypted private key to its row: the clinician and the public key.
    fn aad(clinician: ClinicianId, public_key: &str) -> String {
        format!("telehealth/clinician-signing-key/v1/clinician/{clinician}/public/{public_key}")
    }

    fn seal(&self, clinician: ClinicianId, key: &SigningKey) -> Result<String> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| NotesError::NoKey)?;
        let cipher = ChaCha20Poly1305::new(&Key::from(self.seal));
        let aad = Self::aad(clinician, &public_key(key));
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: key.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| NotesError::NoKey)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    fn open(&self, clinician: ClinicianId, public: &str, sealed: &str) -> Result<SigningKey> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| NotesError::KeyUnusable)?;
        if bytes.len() < 12 {
            return Err(NotesError::KeyUnusable);
        }
        let (nonce, sealed) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| NotesError::KeyUnusable)?;
        let cipher = ChaCha20Poly1305::new(&Key::from(self.seal));
        let aad = Self::aad(clinician, public);
        let seed = cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| NotesError::KeyUnusable)?;
        let seed: [u8; 32] = seed.try_into().map_err(|_| NotesError::KeyUnusable)?;
        let key = SigningKey::from_bytes(&seed);
        if public_key(&key) != public {
            return Err(NotesError::KeyUnusable);
        }
        Ok(key)
    }

    /// The tag of a key row: every column that decides what the key may verify.
    fn tag(&self, r: &RowFields<'_>) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.tag).expect("HMAC accepts any key length");
        mac.update(
            format!(
                "telehealth/clinician-signing-key-row/v1\nclinician={}\npublic={}\nsealed={}\nlegacy_through={}\nretired={}",
                r.clinician,
                r.public_key,
                r.sealed.unwrap_or("-"),
                r.legacy_through.map_or("-".to_string(), |n| n.to_string()),
                r.retired,
            )
            .as_bytes(),
        );
        STANDARD.encode(mac.finalize().into_bytes())
    }

    /// The tag of another kind of row (a passkey's), over `text`, which names the kind.
    pub(crate) fn tag_text(&self, text: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.tag).expect("HMAC accepts any key length");
        mac.update(text.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Whether `tag` is [`Kek::tag_text`] of `text`.
    pub(crate) fn tag_matches(&self, text: &str, tag: &str) -> bool {
        constant_time_eq(&self.tag_text(text), tag)
    }

    fn tag_checks(&self, row: &KeyRow) -> bool {
        let expected = self.tag(&RowFields {
            clinician: row.clinician_id,
            public_key: &row.public_key,
            sealed: row.encrypted_private_key.as_deref(),
            legacy_through: row.legacy_through_entry,
            retired: row.retired_at.is_some(),
        });
        constant_time_eq(&expected, &row.tag)
    }
}

/// Both are base64 of a fixed-length MAC: comparing them leaks nothing worth a timing attack's
/// effort, but compare in constant time anyway.
fn constant_time_eq(expected: &str, given: &str) -> bool {
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

struct RowFields<'a> {
    clinician: ClinicianId,
    public_key: &'a str,
    sealed: Option<&'a str>,
    legacy_through: Option<i64>,
    retired: bool,
}

#[derive(Debug, sqlx::FromRow)]
struct KeyRow {
    clinician_id: ClinicianId,
    public_key: String,
    encrypted_private_key: Option<String>,
    legacy_through_entry: Option<i64>,
    tag: String,
    created_at: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
}

macro_rules! key_columns {
    () => {
        "clinician_id, public_key, encrypted_private_key, legacy_through_entry, tag, created_at, retired_at"
    };
}

async fn rows_of(conn: Conn<'_>, clinicians: &[ClinicianId]) -> Result<Vec<KeyRow>> {
    if clinicians.is_empty() {
        return Ok(Vec::new());
    }
    let rows = on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(concat!(
            "SELECT ",
            key_columns!(),
            " FROM clinician_signing_keys WHERE clinician_id IN ("
        ));
        let mut sep = q.separated(", ");
        for id in clinicians {
            sep.push_bind(*id);
        }
        q.push(") ORDER BY clinician_id, id");
        q.build_query_as::<KeyRow>().fetch_all(&mut *c).await
    })?;
    Ok(rows)
}

async fn insert(
    conn: Conn<'_>,
    kek: &Kek,
    r: RowFields<'_>,
    now: DateTime<Utc>,
) -> std::result::Result<(), sqlx::Error> {
    let tag = kek.tag(&r);
    let retired_at = r.retired.then_some(now);
    on_conn!(conn, c => sqlx::query(
        "INSERT INTO clinician_signing_keys
             (clinician_id, public_key, encrypted_private_key, legacy_through_entry, tag, created_at, retired_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(r.clinician)
    .bind(r.public_key)
    .bind(r.sealed)
    .bind(r.legacy_through)
    .bind(tag)
    .bind(now)
    .bind(retired_at)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// A key as the signing-key endpoint publishes it.
#[derive(Clone, Debug, Serialize)]
pub struct PublishedKey {
    pub algorithm: &'static str,
    /// Base64 (standard, padded) of the 32-byte Ed25519 public key.
    pub public_key: String,
    pub created_at: DateTime<Utc>,
    /// Set on a key no longer used for new signatures.
    pub retired_at: Option<DateTime<Utc>>,
    /// For a retired key derived from the old shared secret: it verifies entries up to this id only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_through_entry: Option<i64>,
}

/// The trusted keys of some clinicians: rows whose tag checks under this server's KEK.
#[derive(Default)]
pub struct KeyHistory {
    keys: HashMap<ClinicianId, Vec<PublishedKey>>,
}

impl KeyHistory {
    /// The trusted keys of `clinicians`.
    pub async fn load(conn: Conn<'_>, kek: &Kek, clinicians: &[ClinicianId]) -> Result<KeyHistory> {
        let mut keys: HashMap<ClinicianId, Vec<PublishedKey>> = HashMap::new();
        for row in rows_of(conn, clinicians).await? {
            if !kek.tag_checks(&row) {
                continue;
            }
            keys.entry(row.clinician_id)
                .or_default()
                .push(PublishedKey {
                    algorithm: "Ed25519",
                    public_key: row.public_key,
                    created_at: row.created_at,
                    retired_at: row.retired_at,
                    legacy_through_entry: row.legacy_through_entry,
                });
        }
        Ok(KeyHistory { keys })
    }

    /// Whether `public` is one of `clinician`'s keys that may verify entry `entry_id`.
    pub fn allows(&self, clinician: ClinicianId, public: &str, entry_id: i64) -> bool {
        self.keys.get(&clinician).is_some_and(|keys| {
            keys.iter().any(|k| {
                k.public_key == public
                    && k.legacy_through_entry
                        .is_none_or(|through| entry_id <= through)
            })
        })
    }

    /// `clinician`'s keys, oldest first.
    pub fn of(&self, clinician: ClinicianId) -> &[PublishedKey] {
        self.keys.get(&clinician).map_or(&[], Vec::as_slice)
    }
}

/// `clinician`'s current signing key, made (random, from the operating system) on first use.
/// A current key that the KEK cannot open is an error, never replaced: a new key would hide that
/// the server runs with the wrong KEK.
pub async fn current(db: &Db, kek: &Kek, clinician: ClinicianId) -> Result<SigningKey> {
    for _ in 0..3 {
        let rows = {
            let mut c = db.acquire().await?;
            rows_of(c.conn(), &[clinician]).await?
        };
        if let Some(row) = rows.iter().find(|r| r.retired_at.is_none()) {
            let sealed = row
                .encrypted_private_key
                .as_deref()
                .ok_or(NotesError::KeyUnusable)?;
            if !kek.tag_checks(row) {
                return Err(NotesError::KeyUnusable);
            }
            return kek.open(clinician, &row.public_key, sealed);
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| NotesError::NoKey)?;
        let key = SigningKey::from_bytes(&seed);
        let public = public_key(&key);
        let sealed = kek.seal(clinician, &key)?;
        let mut c = db.acquire().await?;
        let fields = RowFields {
            clinician,
            public_key: &public,
            sealed: Some(&sealed),
            legacy_through: None,
            retired: false,
        };
        match insert(c.conn(), kek, fields, time::now()).await {
            Ok(()) => return Ok(key),
            // Another first signature made one at the same moment: use that one.
            Err(e) if CURRENT_KEY.violated_by(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(NotesError::NoKey)
}

/// Whether `kek` is the KEK the stored keys were made under: `false` when key rows exist and
/// none of the first few has a tag that checks (a wrong or replaced `notes_kek_file`).
pub async fn kek_matches(db: &Db, kek: &Kek) -> Result<bool> {
    const SQL: &str = concat!(
        "SELECT ",
        key_columns!(),
        " FROM clinician_signing_keys ORDER BY id LIMIT 20"
    );
    let mut c = db.acquire().await?;
    let rows: Vec<KeyRow> = on_conn!(c.conn(), c => sqlx::query_as(SQL).fetch_all(&mut *c).await)?;
    Ok(rows.is_empty() || rows.iter().any(|r| kek.tag_checks(r)))
}

/// `clinician`'s published keys (those this server trusts), oldest first.
pub async fn published(db: &Db, kek: &Kek, clinician: ClinicianId) -> Result<Vec<PublishedKey>> {
    let mut c = db.acquire().await?;
    let history = KeyHistory::load(c.conn(), kek, &[clinician]).await?;
    Ok(history.of(clinician).to_vec())
}

/// Records, as retired keys, the keys derived from the visit-link secret `secret` that signed
/// the entries stored now. Run once, when the KEK is created, and only on a database that has no
/// key rows yet: run later (or after a KEK file was removed), it would let whoever holds that
/// secret and the database add forged entries and have them adopted. Returns how many keys it
/// recorded.
pub async fn adopt_legacy(db: &Db, kek: &Kek, secret: &[u8]) -> Result<usize> {
    let existing: i64 = {
        let mut c = db.acquire().await?;
        on_conn!(c.conn(), c => sqlx::query_scalar("SELECT COUNT(*) FROM clinician_signing_keys")
            .fetch_one(&mut *c)
            .await)?
    };
    if existing > 0 {
        return Ok(0);
    }
    let candidates: Vec<(ClinicianId, String, i64)> = {
        let mut c = db.acquire().await?;
        on_conn!(c.conn(), c => sqlx::query_as(
            "SELECT signer_clinician_id, public_key, MAX(id) FROM note_entries
             WHERE public_key IS NOT NULL
             GROUP BY signer_clinician_id, public_key",
        )
        .fetch_all(&mut *c)
        .await)?
    };
    let mut adopted = 0;
    for (clinician, public, through) in candidates {
        // Only the key the old scheme gives this clinician under this secret: anything else in
        // the column is not a legacy key and stays unverifiable.
        if public_key(&super::legacy_signing_key(secret, clinician)?) != public {
            continue;
        }
        let mut c = db.acquire().await?;
        let fields = RowFields {
            clinician,
            public_key: &public,
            sealed: None,
            legacy_through: Some(through),
            retired: true,
        };
        match insert(c.conn(), kek, fields, time::now()).await {
            Ok(()) => adopted += 1,
            Err(e) if PUBLIC_KEY.violated_by(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(adopted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_their_kek_and_row() {
        let kek = Kek::from_secret(&[7u8; 32]);
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let public = public_key(&key);
        let sealed = kek.seal(ClinicianId(1), &key).expect("seals");
        let opened = kek.open(ClinicianId(1), &public, &sealed).expect("opens");
        assert_eq!(opened.as_bytes(), key.as_bytes());
        // Another clinician's row, or another KEK: nothing.
        assert!(kek.open(ClinicianId(2), &public, &sealed).is_err());
        assert!(
            Kek::from_secret(&[8u8; 32])
                .open(ClinicianId(1), &public, &sealed)
                .is_err()
        );
        assert!(!sealed.contains(&STANDARD.encode(key.as_bytes())));
    }
}
