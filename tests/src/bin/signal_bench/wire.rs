//! What the coordinator and its worker processes say to each other: one JSON object per line, the
//! coordinator on the worker's stdin, the worker on its stdout (its stderr is for people).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Which protocol the generator speaks to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Signaling protocol v1 (`signaling/PROTOCOL.md`): join tokens, waiting room, admission.
    Signaling,
    /// The baseline relay: `{"type":"join","room":..}`, then every frame goes to the other peer.
    Plain,
}

/// Coordinator → worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Where and how to connect; sent once, first.
    Setup {
        /// `ws://127.0.0.1:PORT/PATH`.
        url: String,
        mode: Mode,
        /// Hex of the join-token key (signaling mode): on stdin, never in a command line.
        key_hex: Option<String>,
        /// Source address of this worker's sockets: every worker has its own, so each has the
        /// whole ephemeral port range to itself, and runs against different targets never meet
        /// an old socket in TIME_WAIT.
        source_ip: String,
    },
    /// Open these rooms (two participants each), each at its start time (unix microseconds).
    Join { rooms: Vec<(u32, u64)> },
    /// How many participants are still connected and in their room.
    Count,
    /// Every participant sends relay messages to its peer; `rate` messages per second in all
    /// (this worker's share), for `secs` seconds from `start_unix_us`.
    Relay {
        rate: f64,
        secs: f64,
        start_unix_us: u64,
    },
    /// Close every socket and exit.
    Close,
}

/// Worker → coordinator.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Ready {
        pid: u32,
    },
    Joined(JoinReport),
    Held {
        connected: u64,
        dropped: u64,
        errors: BTreeMap<String, u64>,
    },
    Relayed(RelayReport),
    Closed,
    Failed {
        message: String,
    },
}

/// The outcome of one `Join` command.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct JoinReport {
    pub participants_ok: u64,
    pub participants_failed: u64,
    pub rooms_ready: u64,
    /// Failure classes (`connect: ...`, `error token_invalid`, `timeout waiting for joined`, ...).
    pub failures: BTreeMap<String, u64>,
    pub failure_samples: Vec<String>,
    /// Start of the TCP connect → the answer to `join` (`joined`, or `waiting` for a patient).
    pub join: HistData,
    /// TCP connect and WebSocket handshake.
    pub connect: HistData,
    /// `join` sent → its answer.
    pub join_frame: HistData,
    /// `admit` sent by the clinician → `joined` at the patient (signaling mode).
    pub admit: HistData,
    /// Scheduled room start → both participants in the call.
    pub room_ready: HistData,
    /// How late the generator started rooms against their schedule (its own lag).
    pub start_lag: HistData,
    /// First and last actual room start, unix microseconds.
    pub first_start_us: u64,
    pub last_start_us: u64,
    /// When the last participant of these rooms was in, unix microseconds.
    pub last_ready_us: u64,
}

/// The outcome of one `Relay` command.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RelayReport {
    /// Messages the pacer asked for.
    pub scheduled: u64,
    /// Messages written to a socket.
    pub sent: u64,
    /// Relay messages received by the peers (those that arrived before the drain ended).
    pub received: u64,
    /// Send (just before the write) → receipt at the peer, microseconds.
    pub latency: HistData,
    pub errors: BTreeMap<String, u64>,
    pub error_samples: Vec<String>,
    /// Sockets that closed during the phase.
    pub dropped: u64,
    /// Start of the phase → the last relay message received, microseconds (0: none arrived).
    pub span_us: u64,
}

/// A histogram as `(value, count)` pairs: enough to merge workers' histograms exactly at the
/// histogram's own precision.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct HistData(pub Vec<(u64, u64)>);

impl HistData {
    pub fn from_histogram(h: &Histogram<u64>) -> HistData {
        HistData(
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    pub fn add_to(&self, h: &mut Histogram<u64>) {
        for &(value, count) in &self.0 {
            h.saturating_record_n(value, count);
        }
    }
}

pub use telehealth_tests::bench_support::new_histogram;
