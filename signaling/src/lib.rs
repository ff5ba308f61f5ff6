//! WebRTC signaling for consultation rooms: join, waiting room, admission, offer/answer/ICE
//! relay and reconnection.
//!
//! This crate knows nothing about SQL: the server will give it a small interface that answers
//! "who may join which consultation, and when". It is empty until the signaling issue; the
//! server already depends on it so that the seam exists from the start.

/// Version of the signaling protocol that the server will speak.
pub const PROTOCOL_VERSION: u32 = 1;
