//! WebRTC signaling for consultation rooms: join, waiting room, admission, offer/answer/ICE
//! relay and reconnection.
//!
//! This crate knows nothing about SQL: the server issues join tokens ([`token`]) that say who may
//! join which consultation and when, answers at each join whether the consultation still admits
//! the token ([`Admission`]), mounts [`ws::routes`], and learns about calls through a
//! [`CallObserver`]. The protocol is written down in `PROTOCOL.md` beside this crate.

pub mod admission;
pub mod hub;
pub mod ice;
pub mod protocol;
pub mod token;
pub mod ws;

pub use admission::{Admission, RoomAccess, RoomState, Unavailable};
pub use hub::{
    CallObserver, CloseReason, Hub, HubConfig, HubStats, PresentMember, RoomEvent, RoomPresence,
};

/// Version of the signaling protocol that the server speaks.
pub const PROTOCOL_VERSION: u32 = protocol::VERSION;
