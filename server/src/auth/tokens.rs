//! Opaque session tokens and signed visit links.
//!
//! A session token is 32 random bytes, base64url; the database keeps only its SHA-256, so a
//! stolen database does not yield live sessions. A visit link is `v1.<payload>.<mac>`: the payload
//! names the link, the consultation, the patient and the expiry, and the MAC is HMAC-SHA256 with
//! the server's secret, so it cannot be altered or forged; its one-time use is recorded in the
//! database.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::domain::ids::{ConsultationId, PatientId};

/// A new random token and the hash to store.
pub fn new_session_token() -> Result<(String, String), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_token(&token);
    Ok((token, hash))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random secret for signing visit links, when none is configured.
pub fn new_secret() -> Result<Vec<u8>, getrandom::Error> {
    let mut bytes = vec![0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// What a visit link grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VisitClaims {
    pub link_id: i64,
    pub consultation_id: ConsultationId,
    pub patient_id: PatientId,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VisitLinkError {
    #[error("the visit link is malformed")]
    Malformed,
    #[error("the visit link's signature is wrong")]
    BadSignature,
    #[error("the visit link has expired")]
    Expired,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], payload: &str) -> Result<HmacSha256, VisitLinkError> {
    let mut m = HmacSha256::new_from_slice(secret).map_err(|_| VisitLinkError::Malformed)?;
    m.update(payload.as_bytes());
    Ok(m)
}

pub fn sign_visit_link(secret: &[u8], claims: &VisitClaims) -> Result<String, VisitLinkError> {
    let payload = URL_SAFE_NO_PAD.encode(format!(
        "{}.{}.{}.{}",
        claims.link_id,
        claims.consultation_id,
        claims.patient_id,
        claims.expires_at.timestamp()
    ));
    let tag = mac(secret, &payload)?.finalize().into_bytes();
    Ok(format!("v1.{payload}.{}", URL_SAFE_NO_PAD.encode(tag)))
}

/// Checks the signature and expiry of a visit link (not its one-time use: that is the database's).
pub fn verify_visit_link(
    secret: &[u8],
    token: &str,
    now: DateTime<Utc>,
) -> Result<VisitClaims, VisitLinkError> {
    if token.len() > 512 {
        return Err(VisitLinkError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some("v1"), Some(payload), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VisitLinkError::Malformed);
    };
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| VisitLinkError::Malformed)?;
    // Constant-time comparison, by the MAC itself.
    mac(secret, payload)?
        .verify_slice(&tag)
        .map_err(|_| VisitLinkError::BadSignature)?;
    let decoded = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| VisitLinkError::Malformed)?;
    let text = String::from_utf8(decoded).map_err(|_| VisitLinkError::Malformed)?;
    let fields: Vec<i64> = text
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| VisitLinkError::Malformed)?;
    let [link_id, consultation, patient, expires] = fields[..] else {
        return Err(VisitLinkError::Malformed);
    };
    let expires_at = DateTime::from_timestamp(expires, 0).ok_or(VisitLinkError::Malformed)?;
    if expires_at <= now {
        return Err(VisitLinkError::Expired);
    }
    Ok(VisitClaims {
        link_id,
        consultation_id: ConsultationId(consultation),
        patient_id: PatientId(patient),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_are_random_and_hashed() {
        let (a, ha) = new_session_token().expect("randomness");
        let (b, _) = new_session_token().expect("randomness");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(ha, hash_token(&a));
        assert_eq!(ha.len(), 64);
    }

    #[test]
    fn visit_links_are_signed_and_expire() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let now = Utc::now();
        let claims = VisitClaims {
            link_id: 7,
            consultation_id: ConsultationId(42),
            patient_id: PatientId(9),
            expires_at: DateTime::from_timestamp(now.timestamp() + 600, 0).expect("valid time"),
        };
        let link = sign_visit_link(secret, &claims).expect("signs");
        assert_eq!(verify_visit_link(secret, &link, now), Ok(claims));
        assert_eq!(
            verify_visit_link(b"another secret, 32 bytes long...", &link, now),
            Err(VisitLinkError::BadSignature)
        );
        let later = now + chrono::Duration::seconds(601);
        assert_eq!(
            verify_visit_link(secret, &link, later),
            Err(VisitLinkError::Expired)
        );
        // Changing the consultation in the payload breaks the signature.
        let forged_payload =
            URL_SAFE_NO_PAD.encode(format!("7.43.9.{}", claims.expires_at.timestamp()));
        let parts: Vec<&str> = link.split('.').collect();
        let forged = format!("v1.{forged_payload}.{}", parts[2]);
        assert_eq!(
            verify_visit_link(secret, &forged, now),
            Err(VisitLinkError::BadSignature)
        );
        assert_eq!(
            verify_visit_link(secret, "garbage", now),
            Err(VisitLinkError::Malformed)
        );
    }
}
