//! WebRTC signaling for consultation rooms: join, waiting room, admission, offer/answer/ICE
//! relay and reconnection.
//!
//! This crate knows nothing about SQL: the server will give it a small interface that answers
//! "who may join which consultation, and when". So far it holds the protocol's client messages
//! and their parser ([`protocol`]); rooms and the WebSocket edge are the signaling issue's work.

pub mod protocol;

/// Version of the signaling protocol that the server speaks.
pub const PROTOCOL_VERSION: u32 = protocol::VERSION;
