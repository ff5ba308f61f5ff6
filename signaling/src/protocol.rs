//! The signaling protocol's messages: JSON text frames, each `{"v": 1, "type": "...", ...}`.
//!
//! Messages are parsed here, once, at the edge: a frame that is too large, not JSON, of an unknown
//! version or type, or missing a field becomes a [`ProtocolError`] that the connection answers
//! with an `error` message; it never panics and never reaches room logic.

use serde::{Deserialize, Serialize};

use crate::ice::IceServer;
use crate::token::Role;

/// The protocol version this crate speaks.
pub const VERSION: u32 = 1;
/// Largest text frame accepted, in bytes: an SDP offer with many candidates fits easily.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Largest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = 2000;

/// Who a participant is within a room: stable across reconnects.
pub type ParticipantId = String;

/// Messages a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientMessage {
    /// Join the room of the consultation the join token was issued for.
    Join {
        token: String,
        /// Present when resuming after a dropped connection.
        #[serde(default)]
        resume: Option<String>,
    },
    /// A clinician lets a waiting participant in.
    Admit {
        participant: ParticipantId,
    },
    /// A clinician refuses a waiting participant.
    Deny {
        participant: ParticipantId,
    },
    /// A clinician removes someone from the call.
    Remove {
        participant: ParticipantId,
    },
    /// Session descriptions and candidates, addressed to one peer.
    Offer {
        to: ParticipantId,
        sdp: String,
    },
    Answer {
        to: ParticipantId,
        sdp: String,
    },
    IceCandidate {
        to: ParticipantId,
        candidate: String,
        #[serde(default)]
        sdp_mid: Option<String>,
        #[serde(default)]
        sdp_m_line_index: Option<u16>,
    },
    EndOfCandidates {
        to: ParticipantId,
    },
    /// Ask a peer to renegotiate with new ICE credentials (after a network change).
    IceRestart {
        to: ParticipantId,
    },
    Chat {
        text: String,
    },
    MediaState {
        muted: bool,
        camera_off: bool,
        audio_only: bool,
    },
    Leave,
    Ping {
        nonce: u64,
    },
}

/// Why a frame was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("the frame is larger than {MAX_FRAME_BYTES} bytes")]
    TooLarge,
    #[error("the frame is not valid JSON: {0}")]
    NotJson(String),
    #[error("protocol version {0} is not supported; this server speaks version {VERSION}")]
    Version(u64),
    #[error("the frame has no protocol version field \"v\"")]
    NoVersion,
    #[error("not an acceptable message: {0}")]
    Invalid(String),
    #[error("a chat message may have at most {MAX_CHAT_CHARS} characters")]
    ChatTooLong,
}

impl ProtocolError {
    /// The stable code sent to the client in an `error` message.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::TooLarge => "frame_too_large",
            ProtocolError::NotJson(_) => "malformed_json",
            ProtocolError::Version(_) | ProtocolError::NoVersion => "unsupported_version",
            ProtocolError::Invalid(_) => "invalid_message",
            ProtocolError::ChatTooLong => "chat_too_long",
        }
    }
}

/// Parses one text frame from a client.
pub fn parse(frame: &str) -> Result<ClientMessage, ProtocolError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::TooLarge);
    }
    let mut value: serde_json::Value =
        serde_json::from_str(frame).map_err(|e| ProtocolError::NotJson(e.to_string()))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| ProtocolError::Invalid("a message is a JSON object".into()))?;
    match object.remove("v") {
        None => return Err(ProtocolError::NoVersion),
        Some(v) => match v.as_u64() {
            Some(n) if n == u64::from(VERSION) => {}
            Some(n) => return Err(ProtocolError::Version(n)),
            None => return Err(ProtocolError::Invalid("\"v\" must be a number".into())),
        },
    }
    let keys: Vec<String> = object.keys().cloned().collect();
    let message: ClientMessage =
        serde_json::from_value(value).map_err(|e| ProtocolError::Invalid(e.to_string()))?;
    // serde does not refuse unknown fields in internally tagged enums; compare with what the
    // message holds (every field, optional ones included, serialises back).
    let known =
        serde_json::to_value(&message).map_err(|e| ProtocolError::Invalid(e.to_string()))?;
    if let Some(unknown) = keys.iter().find(|k| known.get(k.as_str()).is_none()) {
        return Err(ProtocolError::Invalid(format!("unknown field `{unknown}`")));
    }
    if let ClientMessage::Chat { text } = &message
        && text.chars().count() > MAX_CHAT_CHARS
    {
        return Err(ProtocolError::ChatTooLong);
    }
    Ok(message)
}

/// A participant's microphone and camera, as they report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaState {
    pub muted: bool,
    pub camera_off: bool,
    pub audio_only: bool,
}

/// Whether a participant's socket is open or they are within the grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Connected,
    Reconnecting,
}

/// A participant as others see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub id: ParticipantId,
    pub name: String,
    pub role: Role,
    pub state: Presence,
    pub media: MediaState,
}

/// Why someone left the call (`participant-left`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeftReason {
    Left,
    Removed,
    Timeout,
    /// The platform revoked their access (the consultation moved to another clinician).
    Revoked,
}

/// Why someone left the waiting room (`waiting-left`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitingLeftReason {
    Left,
    Denied,
    Admitted,
    Timeout,
    /// The platform revoked their access.
    Revoked,
}

/// Why a room was closed (`room-closed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomClosedReason {
    Cancelled,
    /// Moved to a time whose join window does not contain now.
    Rescheduled,
    /// A clinician completed the visit.
    Completed,
    /// A clinician recorded that the patient did not come.
    #[serde(rename = "no_show")]
    NoShow,
}

/// Why the platform took a participant's access away (`access-revoked`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevokeReason {
    /// The consultation was moved to another clinician.
    Reassigned,
}

/// Messages the server sends. [`ServerMessage::to_frame`] adds the version field.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    /// Admitted: at join for clinicians, at `admit` for others, or on resume.
    Joined {
        you: Participant,
        session: String,
        consultation: i64,
        /// The others admitted to the call, reconnecting ones included.
        participants: Vec<Participant>,
        /// Who waits to be admitted; always empty for non-clinicians.
        waiting: Vec<Participant>,
        ice_servers: Vec<IceServer>,
        resumed: bool,
    },
    /// A non-clinician joined and waits for a clinician to admit them.
    Waiting {
        you: Participant,
        session: String,
        consultation: i64,
        resumed: bool,
    },
    ParticipantWaiting {
        participant: Participant,
    },
    WaitingLeft {
        participant: ParticipantId,
        reason: WaitingLeftReason,
    },
    ParticipantJoined {
        participant: Participant,
    },
    ParticipantLeft {
        participant: ParticipantId,
        reason: LeftReason,
    },
    ParticipantReconnecting {
        participant: ParticipantId,
    },
    ParticipantReconnected {
        participant: ParticipantId,
    },
    Denied,
    Removed,
    /// The platform took this participant's access away; the server then closes (1000).
    AccessRevoked {
        reason: RevokeReason,
    },
    Offer {
        from: ParticipantId,
        sdp: String,
    },
    Answer {
        from: ParticipantId,
        sdp: String,
    },
    IceCandidate {
        from: ParticipantId,
        candidate: String,
        sdp_mid: Option<String>,
        sdp_m_line_index: Option<u16>,
    },
    EndOfCandidates {
        from: ParticipantId,
    },
    IceRestart {
        from: ParticipantId,
    },
    Chat {
        from: ParticipantId,
        text: String,
        /// RFC 3339, UTC, milliseconds.
        at: String,
    },
    MediaState {
        from: ParticipantId,
        muted: bool,
        camera_off: bool,
        audio_only: bool,
    },
    RoomClosed {
        reason: RoomClosedReason,
    },
    /// To those waiting: the clinician runs this many minutes late (0: on time again).
    RunningLate {
        minutes: u32,
    },
    Pong {
        nonce: u64,
    },
    Error {
        code: String,
        message: String,
    },
}

impl ServerMessage {
    /// The text frame: `{"v":1,"type":...}`.
    pub fn to_frame(&self) -> String {
        #[derive(Serialize)]
        struct Envelope<'a> {
            v: u32,
            #[serde(flatten)]
            message: &'a ServerMessage,
        }
        // Strings, integers, booleans and enums only: serialising to JSON cannot fail.
        serde_json::to_string(&Envelope {
            v: VERSION,
            message: self,
        })
        .expect("server messages serialise")
    }

    /// An `error` message with a stable code.
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// Parses a frame from the server (for clients and the load generator). Unknown fields are
/// ignored so that clients keep working when the server adds some.
pub fn parse_server(frame: &str) -> Result<ServerMessage, ProtocolError> {
    let value: serde_json::Value =
        serde_json::from_str(frame).map_err(|e| ProtocolError::NotJson(e.to_string()))?;
    match value.get("v").map(serde_json::Value::as_u64) {
        None => return Err(ProtocolError::NoVersion),
        Some(Some(n)) if n == u64::from(VERSION) => {}
        Some(Some(n)) => return Err(ProtocolError::Version(n)),
        Some(None) => return Err(ProtocolError::Invalid("\"v\" must be a number".into())),
    }
    serde_json::from_value(value).map_err(|e| ProtocolError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_message() {
        let cases = [
            (
                r#"{"v":1,"type":"join","token":"t"}"#,
                ClientMessage::Join {
                    token: "t".into(),
                    resume: None,
                },
            ),
            (
                r#"{"v":1,"type":"admit","participant":"p1"}"#,
                ClientMessage::Admit {
                    participant: "p1".into(),
                },
            ),
            (
                r#"{"v":1,"type":"deny","participant":"p1"}"#,
                ClientMessage::Deny {
                    participant: "p1".into(),
                },
            ),
            (
                r#"{"v":1,"type":"remove","participant":"p1"}"#,
                ClientMessage::Remove {
                    participant: "p1".into(),
                },
            ),
            (
                r#"{"v":1,"type":"offer","to":"p2","sdp":"v=0"}"#,
                ClientMessage::Offer {
                    to: "p2".into(),
                    sdp: "v=0".into(),
                },
            ),
            (
                r#"{"v":1,"type":"answer","to":"p2","sdp":"v=0"}"#,
                ClientMessage::Answer {
                    to: "p2".into(),
                    sdp: "v=0".into(),
                },
            ),
            (
                r#"{"v":1,"type":"ice-candidate","to":"p2","candidate":"candidate:1","sdp_mid":"0","sdp_m_line_index":0}"#,
                ClientMessage::IceCandidate {
                    to: "p2".into(),
                    candidate: "candidate:1".into(),
                    sdp_mid: Some("0".into()),
                    sdp_m_line_index: Some(0),
                },
            ),
            (
                r#"{"v":1,"type":"end-of-candidates","to":"p2"}"#,
                ClientMessage::EndOfCandidates { to: "p2".into() },
            ),
            (
                r#"{"v":1,"type":"ice-restart","to":"p2"}"#,
                ClientMessage::IceRestart { to: "p2".into() },
            ),
            (
                r#"{"v":1,"type":"chat","text":"xin chào"}"#,
                ClientMessage::Chat {
                    text: "xin chào".into(),
                },
            ),
            (
                r#"{"v":1,"type":"media-state","muted":true,"camera_off":false,"audio_only":false}"#,
                ClientMessage::MediaState {
                    muted: true,
                    camera_off: false,
                    audio_only: false,
                },
            ),
            (r#"{"v":1,"type":"leave"}"#, ClientMessage::Leave),
            (
                r#"{"v":1,"type":"ping","nonce":7}"#,
                ClientMessage::Ping { nonce: 7 },
            ),
        ];
        for (frame, expected) in cases {
            assert_eq!(parse(frame), Ok(expected), "{frame}");
        }
    }

    #[test]
    fn refuses_bad_frames_with_a_code() {
        let cases = [
            ("not json", "malformed_json"),
            ("[1,2]", "invalid_message"),
            (r#"{"type":"leave"}"#, "unsupported_version"),
            (r#"{"v":2,"type":"leave"}"#, "unsupported_version"),
            (r#"{"v":"1","type":"leave"}"#, "invalid_message"),
            (r#"{"v":1,"type":"teleport"}"#, "invalid_message"),
            (r#"{"v":1,"type":"admit"}"#, "invalid_message"),
            (r#"{"v":1,"type":"leave","extra":1}"#, "invalid_message"),
            (r#"{"v":1,"type":"ping","nonce":-1}"#, "invalid_message"),
        ];
        for (frame, code) in cases {
            assert_eq!(parse(frame).map_err(|e| e.code()), Err(code), "{frame}");
        }
        let long_chat = format!(
            r#"{{"v":1,"type":"chat","text":"{}"}}"#,
            "a".repeat(MAX_CHAT_CHARS + 1)
        );
        assert_eq!(parse(&long_chat), Err(ProtocolError::ChatTooLong));
        let huge = format!(
            r#"{{"v":1,"type":"chat","text":"{}"}}"#,
            "a".repeat(MAX_FRAME_BYTES)
        );
        assert_eq!(parse(&huge), Err(ProtocolError::TooLarge));
    }

    /// The examples in PROTOCOL.md are what the code sends and accepts, and cover every type.
    #[test]
    fn the_documented_examples_parse() {
        let doc = include_str!("../PROTOCOL.md");
        let (client_part, server_part) = doc
            .split_once("## Examples: server → client")
            .expect("the server examples heading");
        let client_part = client_part
            .split_once("## Examples: client → server")
            .expect("the client examples heading")
            .1;
        let json_lines = |part: &str| -> Vec<String> {
            let block = part
                .split_once("```json\n")
                .and_then(|(_, rest)| rest.split_once("```"))
                .expect("a json block")
                .0;
            block.lines().map(str::to_owned).collect()
        };
        let type_of = |line: &str| -> String {
            let value: serde_json::Value = serde_json::from_str(line).expect("JSON");
            value["type"].as_str().expect("a type").to_owned()
        };
        let mut client_types = std::collections::BTreeSet::new();
        for line in json_lines(client_part) {
            parse(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            client_types.insert(type_of(&line));
        }
        let mut server_types = std::collections::BTreeSet::new();
        for line in json_lines(server_part) {
            let message = parse_server(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(message.to_frame(), line, "the server writes it exactly so");
            server_types.insert(type_of(&line));
        }
        assert_eq!(client_types.len(), 13, "{client_types:?}");
        assert_eq!(server_types.len(), 22, "{server_types:?}");
    }

    /// Arbitrary bytes and mutations of valid frames never panic: every outcome is a message or
    /// a typed error. (A deterministic generator keeps the test reproducible.)
    #[test]
    fn arbitrary_input_never_panics() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seeds = [
            r#"{"v":1,"type":"offer","to":"p2","sdp":"v=0"}"#,
            r#"{"v":1,"type":"media-state","muted":true,"camera_off":false,"audio_only":false}"#,
            r#"{"v":1,"type":"ice-candidate","to":"p","candidate":"c","sdp_m_line_index":3}"#,
        ];
        let alphabet = b"{}[]\":,0123456789-eE.truefalsnul \\u00ffvtype";
        let mut outcomes = (0usize, 0usize);
        for i in 0..20_000 {
            let mut bytes: Vec<u8> = if i % 2 == 0 {
                seeds[(next() % 3) as usize].as_bytes().to_vec()
            } else {
                (0..(next() % 200)).map(|_| (next() % 256) as u8).collect()
            };
            for _ in 0..(next() % 6) {
                if bytes.is_empty() {
                    break;
                }
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = alphabet[(next() as usize) % alphabet.len()],
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            match parse(&text) {
                Ok(_) => outcomes.0 += 1,
                Err(e) => {
                    assert!(!e.code().is_empty());
                    outcomes.1 += 1;
                }
            }
        }
        // Both outcomes occur, so the generator exercises the parser and not only its first check.
        assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
    }
}
