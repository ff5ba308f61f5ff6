//! Passkeys that sign encounter notes: signatures the server alone cannot make.
//!
//! A clinician enrols a WebAuthn credential (a passkey: a phone, a security key, a laptop's
//! built-in authenticator). From then on every entry they sign, the note and each addendum, is
//! signed by that authenticator: the server first builds the entry's canonical document, and the
//! WebAuthn challenge it sends is the document's SHA-256. The authenticator's assertion
//! (authenticator data, client data, signature) is stored with the entry. The client data carries
//! the challenge, so anyone holding the document, the assertion and the clinician's published
//! public key can check that the clinician's authenticator, with the clinician verified on it,
//! signed exactly this document, without trusting this server (README, "Signed notes").
//!
//! [webauthn-rs](https://docs.rs/webauthn-rs) runs the ceremonies and checks every answer, on
//! signing and again on every read. It draws its challenges at random and has no way to be given
//! one, so [`with_challenge`] puts the document's hash into the state it returns (serialisable
//! with its `danger-allow-state-serialisation` feature) and into the options sent to the browser;
//! the library then checks the answer against the hash exactly as it would against its own
//! challenge. A test signs with a real software authenticator, so a change of that state's shape
//! in the library fails the suite instead of passing unnoticed.
//!
//! The server's half of a ceremony lives in `webauthn_ceremonies` for [`CEREMONY_SECONDS`], one
//! use each, so the answer may reach any node. Credential rows carry a tag under the notes KEK,
//! like signing keys ([`super::keys`]), so a credential planted through the database alone
//! verifies nothing.

pub mod store;

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
pub use webauthn_rs::prelude::RegisterPublicKeyCredential;
use webauthn_rs::prelude::{
    COSEAlgorithm, COSEKey, COSEKeyType, ECDSACurve, EDDSACurve, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use super::keys::Kek;
use crate::auth::AccountId;
use crate::domain::ids::{ClinicianId, ConsultationId};
use crate::domain::time;
use crate::journal::{About, Journal};
use crate::storage::{Conn, Db};
use store::{CREDENTIAL_ID, CeremonyRow, NewCeremony, PasskeyRow};

/// How long a ceremony waits for the authenticator's answer: long enough to find a phone.
pub const CEREMONY_SECONDS: i64 = 300;

/// At most this many passkeys per clinician (a phone, a spare key, a laptop, ...).
pub const MAX_PASSKEYS: usize = 10;

/// Why a passkey operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// No such ceremony for this caller and purpose, or it expired or was used.
    #[error("this passkey request is unknown, expired or already used: start again")]
    UnknownCeremony,
    /// The authenticator's answer does not verify (wrong challenge, origin, key, no user
    /// verification, ...): the library's reason, for the client.
    #[error("the passkey's answer does not verify: {0}")]
    Rejected(String),
    #[error("this clinician has no passkey: enrol one first")]
    NotEnrolled,
    #[error("this passkey is already enrolled")]
    AlreadyEnrolled,
    #[error("at most {MAX_PASSKEYS} passkeys per clinician")]
    TooMany,
    /// webauthn-rs no longer has the state shape [`with_challenge`] edits: a bug to fix on upgrade.
    #[error("the WebAuthn library's ceremony state has an unexpected shape")]
    StateShape,
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Storage(#[from] sqlx::Error),
}

type Result<T> = std::result::Result<T, PasskeyError>;

/// The relying party: who the passkeys are for, and the web origins that may use them.
pub struct RelyingParty {
    webauthn: Webauthn,
    rp_id: String,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RelyingParty({})", self.rp_id)
    }
}

/// The configured public address cannot carry passkeys.
#[derive(Debug, thiserror::Error)]
#[error("public_url {url:?} cannot be a passkey relying party: {why}")]
pub struct RelyingPartyError {
    url: String,
    why: String,
}

impl RelyingParty {
    /// The relying party of `public_url`, the address users open (`https://telehealth.example.vn`):
    /// its host is the relying party id passkeys are bound to, so it must not change once
    /// clinicians enrol. Without one, `localhost` on any port, over HTTP or HTTPS (a laptop, the
    /// tests): browsers allow passkeys there and nowhere else without HTTPS.
    pub fn new(public_url: Option<&str>) -> std::result::Result<RelyingParty, RelyingPartyError> {
        let fail = |url: &str, why: String| RelyingPartyError {
            url: url.to_string(),
            why,
        };
        let (origin, rp_id, any_port) = match public_url {
            Some(u) => {
                let origin = Url::parse(u).map_err(|e| fail(u, e.to_string()))?;
                let host = origin
                    .domain()
                    .ok_or_else(|| fail(u, "it has no domain name (passkeys need one)".into()))?
                    .to_string();
                (origin, host, false)
            }
            None => (
                Url::parse("http://localhost")
                    .map_err(|e| fail("http://localhost", e.to_string()))?,
                "localhost".to_string(),
                true,
            ),
        };
        let url = origin.to_string();
        let mut builder = WebauthnBuilder::new(&rp_id, &origin)
            .map_err(|e| fail(&url, e.to_string()))?
            .rp_name("Telehealth")
            .allow_any_port(any_port);
        let https_localhost;
        if any_port {
            https_localhost =
                Url::parse("https://localhost").map_err(|e| fail(&url, e.to_string()))?;
            builder = builder.append_allowed_origin(&https_localhost);
        }
        let webauthn = builder.build().map_err(|e| fail(&url, e.to_string()))?;
        Ok(RelyingParty { webauthn, rp_id })
    }

    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }
}

/// A ceremony started: what the browser passes to `navigator.credentials.create` or `.get`.
#[derive(Clone, Debug, Serialize)]
pub struct Challenge {
    /// Names the ceremony when its answer comes back.
    pub ceremony_id: String,
    /// `{"publicKey": {...}}` with binary fields in base64url.
    pub options: Value,
    pub expires_at: DateTime<Utc>,
}

/// What a ceremony is for; a ceremony answers only its own purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Register,
    SignNote,
    SignAddendum,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::SignNote => "sign_note",
            Purpose::SignAddendum => "sign_addendum",
        }
    }
}

/// A passkey as it is published: enough for anyone to verify an entry's assertion.
#[derive(Clone, Debug, Serialize)]
pub struct PublishedPasskey {
    pub id: i64,
    pub name: String,
    /// base64url of the credential id (the assertion names it).
    pub credential_id: String,
    /// COSE name of the signature algorithm: `ES256`, `EdDSA`, `RS256`, ...
    pub algorithm: String,
    /// The public key as a JSON Web Key (RFC 7517).
    pub public_key_jwk: Value,
    pub created_at: DateTime<Utc>,
}

/// A passkey this server trusts: a row whose tag checks and whose key is the published one.
#[derive(Clone, Debug)]
pub struct TrustedPasskey {
    pub published: PublishedPasskey,
    passkey: Passkey,
}

/// The assertion stored with an entry, exactly as the authenticator returned it (base64url).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Assertion {
    pub credential_id: String,
    pub authenticator_data: String,
    pub client_data_json: String,
    pub signature: String,
}

/// The answer to a signing challenge, as the client sends it back.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningAnswer {
    pub ceremony_id: String,
    /// The `PublicKeyCredential` from `navigator.credentials.get`, binary fields in base64url.
    pub credential: Box<PublicKeyCredential>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The public key of a credential as a JSON Web Key, and its algorithm's name.
fn jwk_of(key: &COSEKey) -> (String, Value) {
    let algorithm = format!("{:?}", key.type_);
    let jwk = match &key.key {
        COSEKeyType::EC_EC2(ec) => {
            let crv = match ec.curve {
                ECDSACurve::SECP256R1 => "P-256",
                ECDSACurve::SECP384R1 => "P-384",
                ECDSACurve::SECP521R1 => "P-521",
            };
            json!({"kty": "EC", "crv": crv, "x": b64(&ec.x), "y": b64(&ec.y)})
        }
        COSEKeyType::EC_OKP(okp) => {
            let crv = match okp.curve {
                EDDSACurve::ED25519 => "Ed25519",
                EDDSACurve::ED448 => "Ed448",
            };
            json!({"kty": "OKP", "crv": crv, "x": b64(&okp.x)})
        }
        COSEKeyType::RSA(rsa) => json!({"kty": "RSA", "n": b64(&rsa.n), "e": b64(&rsa.e)}),
    };
    let alg = match key.type_ {
        COSEAlgorithm::EDDSA => "EdDSA".to_string(),
        _ => algorithm,
    };
    (alg, jwk)
}

/// What a credential row's tag covers: everything that decides what it may verify.
fn tag_text(
    clinician: ClinicianId,
    credential_id: &str,
    jwk: &str,
    created: DateTime<Utc>,
) -> String {
    format!(
        "telehealth/clinician-passkey/v1\nclinician={clinician}\ncredential={credential_id}\njwk={jwk}\ncreated={}",
        created.timestamp()
    )
}

/// The user handle an authenticator keeps for a clinician: stable, and naming no one.
fn user_handle(clinician: ClinicianId) -> Uuid {
    let hash = Sha256::digest(format!("telehealth/passkey-user/v1/{clinician}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    Uuid::from_bytes(bytes)
}

/// Puts `challenge` into a ceremony's state and into its options, in place of the library's
/// random one (see the module's comment). `forget_counters`: for re-checking an old assertion,
/// whose signature counter is naturally behind the credential's latest.
fn with_challenge(
    state: &PasskeyAuthentication,
    options: &mut Value,
    challenge: &[u8],
    forget_counters: bool,
) -> Result<PasskeyAuthentication> {
    let encoded = Value::String(b64(challenge));
    let mut state = serde_json::to_value(state)?;
    let ast = state
        .get_mut("ast")
        .and_then(Value::as_object_mut)
        .ok_or(PasskeyError::StateShape)?;
    match ast.get_mut("challenge") {
        Some(c @ Value::String(_)) => *c = encoded.clone(),
        _ => return Err(PasskeyError::StateShape),
    }
    if forget_counters {
        let credentials = ast
            .get_mut("credentials")
            .and_then(Value::as_array_mut)
            .ok_or(PasskeyError::StateShape)?;
        for c in credentials {
            match c.get_mut("counter") {
                Some(n @ Value::Number(_)) => *n = json!(0),
                _ => return Err(PasskeyError::StateShape),
            }
        }
    }
    match options
        .get_mut("publicKey")
        .and_then(|p| p.get_mut("challenge"))
    {
        Some(c @ Value::String(_)) => *c = encoded,
        _ => return Err(PasskeyError::StateShape),
    }
    Ok(serde_json::from_value(state)?)
}

/// The trusted passkeys of `clinicians`.
pub async fn trusted(
    conn: Conn<'_>,
    kek: &Kek,
    clinicians: &[ClinicianId],
) -> Result<HashMap<ClinicianId, Vec<TrustedPasskey>>> {
    let mut out: HashMap<ClinicianId, Vec<TrustedPasskey>> = HashMap::new();
    for row in store::of_clinicians(conn, clinicians).await? {
        if let Some((clinician, passkey)) = trust(kek, row) {
            out.entry(clinician).or_default().push(passkey);
        }
    }
    Ok(out)
}

/// The row as a trusted passkey, if its tag checks and its stored credential is the published key.
fn trust(kek: &Kek, row: PasskeyRow) -> Option<(ClinicianId, TrustedPasskey)> {
    let text = tag_text(
        row.clinician_id,
        &row.credential_id,
        &row.public_jwk,
        row.created_at,
    );
    if !kek.tag_matches(&text, &row.tag) {
        return None;
    }
    let passkey: Passkey = serde_json::from_str(&row.credential).ok()?;
    let (algorithm, jwk) = jwk_of(passkey.get_public_key());
    let published_jwk: Value = serde_json::from_str(&row.public_jwk).ok()?;
    if jwk != published_jwk || b64(passkey.cred_id()) != row.credential_id {
        return None;
    }
    let published = PublishedPasskey {
        id: row.id,
        name: row.name,
        credential_id: row.credential_id,
        algorithm,
        public_key_jwk: jwk,
        created_at: row.created_at,
    };
    Some((row.clinician_id, TrustedPasskey { published, passkey }))
}

/// `clinician`'s trusted passkeys, oldest first, as published.
pub async fn published(
    db: &Db,
    kek: &Kek,
    clinician: ClinicianId,
) -> Result<Vec<PublishedPasskey>> {
    let mut c = db.acquire().await?;
    let mut all = trusted(c.conn(), kek, &[clinician]).await?;
    Ok(all
        .remove(&clinician)
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.published)
        .collect())
}

/// Stores a ceremony and the request's journal in one transaction; the answer (journaled for
/// an idempotency key) is `answer` of the challenge.
async fn open_ceremony<T: Serialize>(
    db: &Db,
    ceremony: NewCeremony<'_>,
    options: Value,
    journal: &Journal,
    answer: impl FnOnce(Challenge) -> T,
) -> Result<T> {
    let answer = answer(Challenge {
        ceremony_id: ceremony.id.to_string(),
        options,
        expires_at: ceremony.expires_at,
    });
    let mut tx = db.begin().await?;
    store::insert_ceremony(tx.conn(), &ceremony).await?;
    journal
        .write(tx.conn(), About::record(ceremony.id), &answer)
        .await?;
    tx.commit().await?;
    Ok(answer)
}

/// Takes (deletes, whatever comes next) ceremony `id` of `account` for `purpose`, if it has not
/// expired: a ceremony answers once, right or wrong.
async fn take_ceremony(
    db: &Db,
    id: &str,
    account: AccountId,
    purpose: Purpose,
) -> Result<CeremonyRow> {
    let mut c = db.acquire().await?;
    let row = store::take_ceremony(c.conn(), id, account, purpose.as_str()).await?;
    match row {
        Some(r) if r.expires_at > time::now() => Ok(r),
        _ => Err(PasskeyError::UnknownCeremony),
    }
}

fn new_ceremony_id() -> String {
    Uuid::new_v4().to_string()
}

fn expiry() -> DateTime<Utc> {
    time::now() + chrono::Duration::seconds(CEREMONY_SECONDS)
}

/// Starts enrolling a passkey for `clinician` (signed in as `account`).
pub async fn start_registration(
    db: &Db,
    rp: &RelyingParty,
    kek: &Kek,
    who: (AccountId, ClinicianId),
    user_name: &str,
    display_name: &str,
    journal: &Journal,
) -> Result<Challenge> {
    let (account, clinician) = who;
    let existing = published(db, kek, clinician).await?;
    if existing.len() >= MAX_PASSKEYS {
        return Err(PasskeyError::TooMany);
    }
    let exclude = existing
        .iter()
        .filter_map(|p| URL_SAFE_NO_PAD.decode(&p.credential_id).ok())
        .collect();
    let (options, state): (_, PasskeyRegistration) = rp
        .webauthn
        .start_passkey_registration(
            user_handle(clinician),
            user_name,
            display_name,
            Some(exclude),
        )
        .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
    let id = new_ceremony_id();
    let state = serde_json::to_string(&state)?;
    let ceremony = NewCeremony {
        id: &id,
        account,
        purpose: Purpose::Register.as_str(),
        state: &state,
        consultation: None,
        note_version: None,
        document: None,
        expires_at: expiry(),
    };
    open_ceremony(
        db,
        ceremony,
        serde_json::to_value(&options)?,
        journal,
        |c| c,
    )
    .await
}

/// Finishes enrolling: verifies the authenticator's new credential against ceremony
/// `ceremony_id` and stores it, with the request's journal.
#[allow(clippy::too_many_arguments)]
pub async fn finish_registration(
    db: &Db,
    rp: &RelyingParty,
    kek: &Kek,
    who: (AccountId, ClinicianId),
    ceremony_id: &str,
    name: &str,
    credential: &RegisterPublicKeyCredential,
    journal: &Journal,
) -> Result<PublishedPasskey> {
    let (account, clinician) = who;
    let ceremony = take_ceremony(db, ceremony_id, account, Purpose::Register).await?;
    let state: PasskeyRegistration = serde_json::from_str(&ceremony.state)?;
    let passkey = rp
        .webauthn
        .finish_passkey_registration(credential, &state)
        .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
    let (algorithm, jwk) = jwk_of(passkey.get_public_key());
    let credential_id = b64(passkey.cred_id());
    let jwk_text = jwk.to_string();
    let created_at = time::now();
    let tag = kek.tag_text(&tag_text(clinician, &credential_id, &jwk_text, created_at));
    let mut tx = db.begin().await?;
    if store::count_of(tx.conn(), clinician).await? >= MAX_PASSKEYS as i64 {
        return Err(PasskeyError::TooMany);
    }
    let row = store::NewPasskey {
        clinician,
        credential_id: &credential_id,
        name,
        credential: &serde_json::to_string(&passkey)?,
        public_jwk: &jwk_text,
        tag: &tag,
        created_at,
    };
    let id = match store::insert_passkey(tx.conn(), &row).await {
        Err(e) if CREDENTIAL_ID.violated_by(&e) => return Err(PasskeyError::AlreadyEnrolled),
        inserted => inserted?,
    };
    let published = PublishedPasskey {
        id,
        name: name.to_string(),
        credential_id,
        algorithm,
        public_key_jwk: jwk,
        created_at,
    };
    journal
        .write(tx.conn(), About::record(id), &published)
        .await?;
    tx.commit().await?;
    Ok(published)
}

/// What a signing ceremony is about: the entry's consultation and, for a note, the draft version.
#[derive(Clone, Copy, Debug)]
pub struct SigningCeremony {
    pub account: AccountId,
    pub clinician: ClinicianId,
    pub purpose: Purpose,
    pub consultation: ConsultationId,
    pub note_version: Option<i32>,
}

/// A signing challenge: the ceremony, and the exact document its challenge is the hash of.
#[derive(Clone, Debug, Serialize)]
pub struct SigningChallenge {
    #[serde(flatten)]
    pub challenge: Challenge,
    /// The canonical document the authenticator is asked to sign, as the entry will store it.
    pub document: String,
    /// Lowercase hex SHA-256 of `document`; its bytes are the WebAuthn challenge.
    pub content_hash: String,
}

/// Starts a signing ceremony for `document` with `s.clinician`'s passkeys.
pub async fn start_signing(
    db: &Db,
    rp: &RelyingParty,
    kek: &Kek,
    s: SigningCeremony,
    document: String,
    journal: &Journal,
) -> Result<SigningChallenge> {
    let passkeys: Vec<Passkey> = {
        let mut c = db.acquire().await?;
        let mut all = trusted(c.conn(), kek, &[s.clinician]).await?;
        all.remove(&s.clinician)
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.passkey)
            .collect()
    };
    if passkeys.is_empty() {
        return Err(PasskeyError::NotEnrolled);
    }
    let (options, state) = rp
        .webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
    let hash = Sha256::digest(document.as_bytes());
    let mut options = serde_json::to_value(&options)?;
    let state = with_challenge(&state, &mut options, &hash, false)?;
    let id = new_ceremony_id();
    let state = serde_json::to_string(&state)?;
    let ceremony = NewCeremony {
        id: &id,
        account: s.account,
        purpose: s.purpose.as_str(),
        state: &state,
        consultation: Some(s.consultation),
        note_version: s.note_version,
        document: Some(&document),
        expires_at: expiry(),
    };
    let content_hash = hex(&hash);
    let document = document.clone();
    open_ceremony(db, ceremony, options, journal, |challenge| {
        SigningChallenge {
            challenge,
            content_hash,
            document,
        }
    })
    .await
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A signing ceremony answered and verified: the document it signed, the assertion to store
/// with the entry, and the credential's new state (its signature counter) to store with it.
pub struct Signed {
    pub document: String,
    pub assertion: String,
    passkey_id: i64,
    credential: String,
}

impl Signed {
    /// Records the credential's new counter, in the entry's transaction.
    pub async fn record_use(&self, conn: Conn<'_>) -> Result<()> {
        store::record_use(conn, self.passkey_id, &self.credential, time::now()).await?;
        Ok(())
    }
}

/// Verifies the answer to signing ceremony `answer.ceremony_id`, which must be `s`'s.
pub async fn finish_signing(
    db: &Db,
    rp: &RelyingParty,
    kek: &Kek,
    s: SigningCeremony,
    answer: &SigningAnswer,
) -> Result<Signed> {
    let ceremony = take_ceremony(db, &answer.ceremony_id, s.account, s.purpose).await?;
    let (Some(document), true, true) = (
        ceremony.document,
        ceremony.consultation_id == Some(s.consultation),
        s.note_version.is_none() || ceremony.note_version == s.note_version,
    ) else {
        return Err(PasskeyError::UnknownCeremony);
    };
    let state: PasskeyAuthentication = serde_json::from_str(&ceremony.state)?;
    let result = rp
        .webauthn
        .finish_passkey_authentication(&answer.credential, &state)
        .map_err(|e| PasskeyError::Rejected(e.to_string()))?;
    let mut mine = {
        let mut c = db.acquire().await?;
        trusted(c.conn(), kek, &[s.clinician]).await?
    }
    .remove(&s.clinician)
    .unwrap_or_default();
    let used = mine
        .iter_mut()
        .find(|t| t.passkey.cred_id() == result.cred_id())
        .ok_or(PasskeyError::NotEnrolled)?;
    used.passkey.update_credential(&result);
    let response = &answer.credential.response;
    let assertion = Assertion {
        credential_id: b64(result.cred_id()),
        authenticator_data: b64(&response.authenticator_data),
        client_data_json: b64(&response.client_data_json),
        signature: b64(&response.signature),
    };
    Ok(Signed {
        document,
        assertion: serde_json::to_string(&assertion)?,
        passkey_id: used.published.id,
        credential: serde_json::to_string(&used.passkey)?,
    })
}

/// Checks an entry's stored `assertion` over `document` against the signer's trusted `passkeys`:
/// the credential is one of theirs, the challenge is the document's hash, the origin and relying
/// party are this deployment's, the user was verified, and the signature verifies.
pub fn verify(
    rp: &RelyingParty,
    passkeys: &[TrustedPasskey],
    document: &str,
    assertion: &str,
) -> std::result::Result<(), &'static str> {
    let a: Assertion = serde_json::from_str(assertion)
        .map_err(|_| "the stored passkey assertion is unreadable")?;
    let passkey = passkeys
        .iter()
        .find(|p| p.published.credential_id == a.credential_id)
        .ok_or("the assertion's credential is not one of the signer's passkeys")?;
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s);
    let (Ok(raw_id), Ok(authenticator_data), Ok(client_data_json), Ok(signature)) = (
        decode(&a.credential_id),
        decode(&a.authenticator_data),
        decode(&a.client_data_json),
        decode(&a.signature),
    ) else {
        return Err("the stored passkey assertion is unreadable");
    };
    let credential: PublicKeyCredential = serde_json::from_value(json!({
        "id": a.credential_id,
        "rawId": b64(&raw_id),
        "response": {
            "authenticatorData": b64(&authenticator_data),
            "clientDataJSON": b64(&client_data_json),
            "signature": b64(&signature),
            "userHandle": null,
        },
        "type": "public-key",
    }))
    .map_err(|_| "the stored passkey assertion is unreadable")?;
    let (options, state) = rp
        .webauthn
        .start_passkey_authentication(std::slice::from_ref(&passkey.passkey))
        .map_err(|_| "the signer's passkey cannot be used")?;
    let mut options =
        serde_json::to_value(&options).map_err(|_| "the signer's passkey cannot be used")?;
    let hash = Sha256::digest(document.as_bytes());
    let state = with_challenge(&state, &mut options, &hash, true)
        .map_err(|_| "the signer's passkey cannot be used")?;
    rp.webauthn
        .finish_passkey_authentication(&credential, &state)
        .map(|_| ())
        .map_err(|_| "the passkey assertion does not verify the stored document")
}

/// Sweeps ceremonies that expired unanswered; returns how many.
pub async fn purge_expired(conn: Conn<'_>) -> std::result::Result<u64, sqlx::Error> {
    store::purge_ceremonies(conn, time::now()).await
}

impl TrustedPasskey {
    pub fn created_at(&self) -> DateTime<Utc> {
        self.published.created_at
    }
}
