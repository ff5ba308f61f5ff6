//! Join tokens: what the API hands a participant so that the signaling edge knows who they are
//! and when they may join. `j1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>`.
//!
//! The signature, window and expiry are checked here, offline; whether the consultation still
//! admits the bearer is asked of the platform once per join ([`crate::admission`]).
//!
//! The key is derived from the server's visit-link key ([`key_from_master`]) so that a
//! deployment has one secret to share between nodes, while a join token can never be replayed
//! as a visit link or the other way round.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted: claims are a few short fields, so anything larger is abuse.
pub const MAX_TOKEN_BYTES: usize = 1024;
const PREFIX: &str = "j1";
const KEY_LABEL: &[u8] = b"telehealth join-token v1";

/// A participant's part in a consultation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Clinician,
    Patient,
    Guest,
}

/// What a join token says. Times are unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinClaims {
    pub consultation: i64,
    /// Stable across reconnects: `c<clinician id>`, `p<patient id>`, `g<random>`.
    pub participant: String,
    /// Display name shown to the others in the room.
    pub name: String,
    pub role: Role,
    /// Start of the join window (consultation start − 15 min).
    pub opens_at: i64,
    /// End of the join window (consultation end + 30 min).
    pub closes_at: i64,
    /// The token's own expiry, never after `closes_at`.
    pub expires_at: i64,
    /// The consultation's access version when the token was issued: joining refuses it once the
    /// consultation's people or joinability changed (see [`crate::admission`]). Tokens from before
    /// this field existed read as 0, which no consultation has, so they are refused.
    #[serde(default)]
    pub access: i64,
    /// When the token was issued: a denial or removal refuses the participant's tokens issued
    /// until then.
    #[serde(default)]
    pub issued_at: i64,
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the join token is malformed")]
    Malformed,
    #[error("the join token's signature is wrong")]
    BadSignature,
    #[error("the join token has expired: ask for a new one")]
    Expired,
    #[error("the consultation's join window has not opened yet")]
    TooEarly,
    #[error("the consultation's join window has closed")]
    TooLate,
}

impl TokenError {
    /// The protocol's error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed | TokenError::BadSignature => "token_invalid",
            TokenError::Expired => "token_expired",
            TokenError::TooEarly => "too_early",
            TokenError::TooLate => "too_late",
        }
    }
}

/// The join-token key: HMAC-SHA256(master, "telehealth join-token v1").
pub fn key_from_master(master: &[u8]) -> Vec<u8> {
    let mut mac = new_mac(master);
    mac.update(KEY_LABEL);
    mac.finalize().into_bytes().to_vec()
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed), so this cannot fail.
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

fn signed_part_mac(key: &[u8], signed: &str) -> HmacSha256 {
    let mut mac = new_mac(key);
    mac.update(signed.as_bytes());
    mac
}

/// Signs `claims` into a token.
pub fn issue(key: &[u8], claims: &JoinClaims) -> String {
    // Serialising a struct of integers, strings and a unit enum to JSON cannot fail.
    let json = serde_json::to_vec(claims).expect("claims serialise");
    let signed = format!("{PREFIX}.{}", URL_SAFE_NO_PAD.encode(json));
    let tag = signed_part_mac(key, &signed).finalize().into_bytes();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Checks the signature, then the join window and the token's expiry at `now_unix`.
pub fn verify(key: &[u8], token: &str, now_unix: i64) -> Result<JoinClaims, TokenError> {
    verify_with_claims(key, token, now_unix).map_err(|(error, _)| error)
}

/// [`verify`], also giving the claims of a genuine token refused for its time (for the audit).
pub(crate) fn verify_with_claims(
    key: &[u8],
    token: &str,
    now_unix: i64,
) -> Result<JoinClaims, (TokenError, Option<JoinClaims>)> {
    let malformed = || (TokenError::Malformed, None);
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed());
    }
    let (signed, tag) = token.rsplit_once('.').ok_or_else(malformed)?;
    let (prefix, payload) = signed.split_once('.').ok_or_else(malformed)?;
    if prefix != PREFIX {
        return Err(malformed());
    }
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| malformed())?;
    signed_part_mac(key, signed)
        .verify_slice(&tag)
        .map_err(|_| (TokenError::BadSignature, None))?;
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| malformed())?;
    let claims: JoinClaims = serde_json::from_slice(&json).map_err(|_| malformed())?;
    // Past the window no new token helps, so say so before "expired".
    let refusal = if now_unix >= claims.closes_at {
        TokenError::TooLate
    } else if now_unix >= claims.expires_at {
        TokenError::Expired
    } else if now_unix < claims.opens_at {
        TokenError::TooEarly
    } else {
        return Ok(claims);
    };
    Err((refusal, Some(claims)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> JoinClaims {
        JoinClaims {
            consultation: 42,
            participant: "p7".into(),
            name: "Nguyễn Văn A".into(),
            role: Role::Patient,
            opens_at: 1_000,
            closes_at: 5_000,
            expires_at: 2_000,
            access: 1,
            issued_at: 1_000,
        }
    }

    #[test]
    fn round_trip_and_window() {
        let key = key_from_master(b"master");
        let token = issue(&key, &claims());
        assert!(token.starts_with("j1."));
        assert_eq!(verify(&key, &token, 1_500), Ok(claims()));
        assert_eq!(verify(&key, &token, 999), Err(TokenError::TooEarly));
        assert_eq!(verify(&key, &token, 2_000), Err(TokenError::Expired));
        assert_eq!(verify(&key, &token, 5_000), Err(TokenError::TooLate));
        assert_eq!(TokenError::TooLate.code(), "too_late");
    }

    #[test]
    fn refuses_forgeries_and_garbage() {
        let key = key_from_master(b"master");
        let other = key_from_master(b"other master");
        let token = issue(&key, &claims());
        assert_eq!(verify(&other, &token, 1_500), Err(TokenError::BadSignature));
        // A changed payload with the original tag.
        let mut forged = claims();
        forged.role = Role::Clinician;
        let forged_token = issue(&other, &forged);
        let (_, tag) = token.rsplit_once('.').unwrap_or_default();
        let (forged_signed, _) = forged_token.rsplit_once('.').unwrap_or_default();
        assert_eq!(
            verify(&key, &format!("{forged_signed}.{tag}"), 1_500),
            Err(TokenError::BadSignature)
        );
        for bad in [
            "",
            "j1",
            "j1..",
            "x1.abc.def",
            "j1.abc.%%%",
            &"j".repeat(2000),
        ] {
            let err = verify(&key, bad, 1_500).map_err(|e| e.code());
            assert_eq!(err, Err("token_invalid"), "{bad}");
        }
        // Correctly signed but not claims.
        let signed = format!("j1.{}", URL_SAFE_NO_PAD.encode(b"{\"x\":1}"));
        let tag = signed_part_mac(&key, &signed).finalize().into_bytes();
        let odd = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag));
        assert_eq!(verify(&key, &odd, 1_500), Err(TokenError::Malformed));
        // The master key itself does not verify tokens (the derived key differs).
        assert_ne!(key_from_master(b"master"), b"master".to_vec());
    }
}
