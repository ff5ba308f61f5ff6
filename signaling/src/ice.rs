//! ICE servers handed to a participant in `joined`: STUN as configured, TURN with short-lived
//! credentials of the TURN REST API that coturn's `use-auth-secret` accepts, so the TURN server
//! needs no user database and a leaked credential stops working by itself.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;

/// Where browsers find STUN and TURN, and the secret shared with the TURN server.
#[derive(Clone, Debug, Default)]
pub struct IceConfig {
    pub stun_urls: Vec<String>,
    pub turn_urls: Vec<String>,
    /// coturn's `static-auth-secret`; without it no TURN server is offered.
    pub turn_secret: Option<String>,
    /// How long a TURN credential lasts.
    pub turn_ttl_secs: u64,
}

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl IceConfig {
    /// The ICE servers for `participant`, with TURN credentials valid `turn_ttl_secs` from now.
    pub fn servers_for(&self, participant: &str, now_unix: i64) -> Vec<IceServer> {
        let mut servers = Vec::with_capacity(2);
        if !self.stun_urls.is_empty() {
            servers.push(IceServer {
                urls: self.stun_urls.clone(),
                username: None,
                credential: None,
            });
        }
        if let Some(secret) = &self.turn_secret
            && !self.turn_urls.is_empty()
        {
            let ttl = i64::try_from(self.turn_ttl_secs).unwrap_or(i64::MAX);
            let expiry = now_unix.saturating_add(ttl);
            let username = format!("{expiry}:{participant}");
            servers.push(IceServer {
                urls: self.turn_urls.clone(),
                credential: Some(turn_credential(secret, &username)),
                username: Some(username),
            });
        }
        servers
    }
}

/// base64(HMAC-SHA1(secret, username)).
pub fn turn_credential(secret: &str, username: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_credentials_match_coturn() {
        // python3: base64.b64encode(hmac.new(b'north-secret', b'1764600000:p7', hashlib.sha1).digest())
        assert_eq!(
            turn_credential("north-secret", "1764600000:p7"),
            "IRmhwffb8xIuuKj83JGSPFSxYLQ="
        );
        let config = IceConfig {
            stun_urls: vec!["stun:stun.example.org:3478".into()],
            turn_urls: vec!["turn:turn.example.org:3478?transport=udp".into()],
            turn_secret: Some("north-secret".into()),
            turn_ttl_secs: 600,
        };
        let servers = config.servers_for("p7", 1_764_599_400);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].username, None);
        assert_eq!(servers[1].username.as_deref(), Some("1764600000:p7"));
        assert_eq!(
            servers[1].credential.as_deref(),
            Some("IRmhwffb8xIuuKj83JGSPFSxYLQ=")
        );
        let json = serde_json::to_string(&servers[0]).expect("serialises");
        assert_eq!(json, r#"{"urls":["stun:stun.example.org:3478"]}"#);
    }

    #[test]
    fn no_turn_without_a_secret() {
        let config = IceConfig {
            turn_urls: vec!["turn:t".into()],
            ..IceConfig::default()
        };
        assert!(config.servers_for("p1", 0).is_empty());
    }
}
