//! Rooms: who is in which consultation's call, who waits, who is reconnecting, and the rules of
//! admission and relay. The WebSocket edge ([`crate::ws`]) parses frames and hands them here;
//! everything sent to a participant goes through their [`Outbox`], a small bounded queue that the
//! connection's task drains, so a slow socket never makes the room wait.
//!
//! One `std::sync::Mutex` guards all rooms: every operation is a few lookups in a room of at most
//! six people, nothing is awaited while it is held, and large frames (SDP, chat) are serialised
//! after it is released.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::admission::{self, Admission, Refused};
use crate::ice::IceConfig;
use crate::protocol::{
    ClientMessage, LeftReason, MediaState, Participant, ParticipantId, Presence, RevokeReason,
    RoomClosedReason, ServerMessage, WaitingLeftReason,
};
use crate::token::{self, JoinClaims, Role};

/// Limits and timings of the signaling service.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Admitted, waiting and reconnecting participants together.
    pub max_participants_per_room: usize,
    pub max_rooms: usize,
    /// Open sockets on this node, joined or not.
    pub max_connections: usize,
    /// How long a dropped participant's place is kept.
    pub grace: Duration,
    /// How long a new socket may take to send `join`.
    pub join_timeout: Duration,
    pub ping_interval: Duration,
    /// A socket silent this long is closed (and its participant's grace period starts).
    pub idle_timeout: Duration,
    /// Messages per second per connection, sustained.
    pub rate_per_sec: u32,
    /// Messages a connection may send at once above the sustained rate.
    pub rate_burst: u32,
    pub ice: IceConfig,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_participants_per_room: 6,
            max_rooms: 10_000,
            max_connections: 19_500,
            grace: Duration::from_secs(60),
            join_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            rate_per_sec: 50,
            rate_burst: 200,
            ice: IceConfig::default(),
        }
    }
}

/// What the server learns from rooms: the call's start and end for the consultation record, and
/// every join, admission and removal for the audit trail. Called without any room lock held.
pub trait CallObserver: Send + Sync + 'static {
    /// The first clinician joined a room with no call running (server: consultation -> in_progress, started_at).
    fn call_started(&self, consultation: i64, at: DateTime<Utc>);
    /// The last admitted participant left (after grace): the server records end and duration.
    fn call_ended(&self, consultation: i64, started: DateTime<Utc>, ended: DateTime<Utc>);
    /// For the audit trail. Must not block (the server queues it).
    fn room_event(&self, event: RoomEvent);
}

/// One entry for the audit trail.
#[derive(Clone, Debug)]
pub struct RoomEvent {
    /// 0 for refused joins whose token cannot be read.
    pub consultation: i64,
    /// Who acted (participant id); None for refused joins with unreadable tokens.
    pub actor: Option<String>,
    pub actor_role: Option<Role>,
    /// The participant acted upon (admit/deny/remove), if another.
    pub subject: Option<String>,
    /// `join`, `wait`, `admit`, `deny`, `remove`, `leave`, `timeout`, `revoked` (the platform
    /// took the actor's access away), `join_refused`.
    pub action: &'static str,
    pub allowed: bool,
    /// The refusal's protocol code, when refused.
    pub code: Option<&'static str>,
}

/// Why [`Hub::close_room`] closes a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    Cancelled,
    /// Moved to a time whose join window does not contain now.
    Rescheduled,
    Completed,
    NoShow,
}

/// Who is in one room right now, for the clinician's day list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoomPresence {
    pub call_started: Option<DateTime<Utc>>,
    pub members: Vec<PresentMember>,
}

/// One member of a room: admitted (in the call) or waiting, and since when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PresentMember {
    pub id: ParticipantId,
    pub name: String,
    pub role: Role,
    pub admitted: bool,
    pub state: Presence,
    /// When they entered the room (its waiting room, for those not admitted).
    pub since: DateTime<Utc>,
}

/// A snapshot of this node's load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HubStats {
    pub rooms: usize,
    /// Admitted, waiting and reconnecting.
    pub participants: usize,
    pub waiting: usize,
    /// Open sockets, joined or not.
    pub connections: usize,
}

/// Messages waiting for one connection's task. Bounded: a consumer that falls this far behind
/// is disconnected (and gets the grace period like any dropped socket).
const OUTBOX_CAPACITY: usize = 128;

/// The queue toward one connection. Empty queues hold no allocation, which matters with tens of
/// thousands of idle participants.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    inner: Mutex<OutboxInner>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct OutboxInner {
    queue: VecDeque<Utf8Bytes>,
    close: Option<(u16, &'static str)>,
    overflowed: bool,
}

/// What a connection's task takes out of its outbox.
pub(crate) struct Drained {
    pub frames: VecDeque<Utf8Bytes>,
    pub close: Option<(u16, &'static str)>,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, OutboxInner> {
        // A panic while holding this lock cannot leave the queue inconsistent, so a poisoned
        // lock is used as it is.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame; a full queue closes the connection instead.
    pub(crate) fn push(&self, frame: Utf8Bytes) {
        let mut inner = self.lock();
        if inner.close.is_some() {
            return;
        }
        if inner.queue.len() >= OUTBOX_CAPACITY {
            inner.queue.clear();
            inner.close = Some((1008, "too slow to receive"));
            inner.overflowed = true;
            tracing::info!("signaling: disconnecting a slow consumer");
        } else {
            inner.queue.push_back(frame);
        }
        drop(inner);
        self.notify.notify_one();
    }

    /// Sends what is queued, then closes with `code`.
    pub(crate) fn close(&self, code: u16, reason: &'static str) {
        let mut inner = self.lock();
        if inner.close.is_none() {
            inner.close = Some((code, reason));
        }
        drop(inner);
        self.notify.notify_one();
    }

    pub(crate) fn take(&self) -> Drained {
        let mut inner = self.lock();
        Drained {
            frames: std::mem::take(&mut inner.queue),
            close: inner.close,
        }
    }

    /// True once a push found the queue full: the connection is to be dropped.
    pub(crate) fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }

    pub(crate) async fn wait(&self) {
        self.notify.notified().await;
    }
}

/// Where a joined connection sits: what the edge passes back with every message.
#[derive(Clone, Debug)]
pub(crate) struct Seat {
    pub consultation: i64,
    pub participant: ParticipantId,
    pub conn_id: u64,
}

/// A refused message: the `error` sent back and whether the socket then closes.
#[derive(Clone, Debug)]
pub(crate) struct Refusal {
    pub code: &'static str,
    pub message: String,
    /// Close code when the refusal ends the connection.
    pub close: Option<u16>,
}

impl Refusal {
    pub(crate) fn stays(code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
            close: None,
        }
    }
    pub(crate) fn closes(code: &'static str, message: impl Into<String>, close: u16) -> Self {
        Refusal {
            code,
            message: message.into(),
            close: Some(close),
        }
    }
}

/// What the edge does after a message was handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum After {
    Stay,
    /// The participant left: close the socket normally.
    Close,
}

struct Conn {
    id: u64,
    outbox: Arc<Outbox>,
}

struct Member {
    id: ParticipantId,
    name: String,
    role: Role,
    admitted: bool,
    /// None while in the grace period.
    conn: Option<Conn>,
    session: String,
    media: MediaState,
    /// Changes whenever the socket is attached or detached, so a grace timer started for an
    /// earlier drop does nothing.
    epoch: u64,
    /// When they entered the room.
    since: DateTime<Utc>,
}

impl Member {
    fn info(&self) -> Participant {
        Participant {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            state: if self.conn.is_some() {
                Presence::Connected
            } else {
                Presence::Reconnecting
            },
            media: self.media,
        }
    }
    fn is_clinician(&self) -> bool {
        self.role == Role::Clinician
    }
    fn send(&self, frame: &Utf8Bytes) {
        if let Some(conn) = &self.conn {
            conn.outbox.push(frame.clone());
        }
    }
}

#[derive(Default)]
struct Room {
    members: Vec<Member>,
    call_started: Option<DateTime<Utc>>,
}

impl Room {
    fn find(&self, id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }
    /// Sends one frame to every member `to` selects (serialised once).
    fn broadcast(&self, message: &ServerMessage, to: impl Fn(&Member) -> bool) {
        let mut frame = None;
        for member in self.members.iter().filter(|m| m.conn.is_some() && to(m)) {
            let frame = frame.get_or_insert_with(|| Utf8Bytes::from(message.to_frame()));
            member.send(frame);
        }
    }
}

/// Things to do once the rooms lock is released.
#[derive(Default)]
struct Effects {
    events: Vec<RoomEvent>,
    started: Option<(i64, DateTime<Utc>)>,
    ended: Option<(i64, DateTime<Utc>, DateTime<Utc>)>,
    /// (consultation, participant, epoch) whose grace period starts now.
    grace: Option<(i64, ParticipantId, u64)>,
    /// Denials and removals for the platform to keep.
    revocations: Vec<(i64, ParticipantId, DateTime<Utc>)>,
}

impl Effects {
    fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.started.is_none()
            && self.ended.is_none()
            && self.grace.is_none()
            && self.revocations.is_empty()
    }
}

/// Cancelled consultations (and consultations with revoked participants) remembered before old
/// entries are pruned.
const CLOSED_PRUNE_AT: usize = 10_000;

/// A token lives at most as long as its consultation's window (hours): a day of memory is
/// enough for what this node refuses on its own.
fn remembered(at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - at < chrono::Duration::hours(24)
}

/// Participants of one consultation whose tokens this node refuses: denied, removed or revoked,
/// with the moment (unix seconds) until which their tokens were issued before it.
struct Revoked {
    last: DateTime<Utc>,
    participants: HashMap<ParticipantId, i64>,
}

/// The rooms of this node.
pub struct Hub {
    config: HubConfig,
    token_key: Vec<u8>,
    observer: Arc<dyn CallObserver>,
    /// Asked once per join whether the token still admits (the platform's records).
    admission: Arc<dyn Admission>,
    rooms: Mutex<HashMap<i64, Room>>,
    /// Consultations whose room was closed because they were cancelled, and when. The platform
    /// refuses their tokens too; this node's memory also covers a join whose check ran just
    /// before the cancellation was committed. Locked only while `rooms` is held.
    closed: Mutex<HashMap<i64, DateTime<Utc>>>,
    /// Denials, removals and revocations made on this node, refused at once: the platform keeps
    /// denials and removals too, but its write may land a moment later. Locked only while
    /// `rooms` is held.
    revoked: Mutex<HashMap<i64, Revoked>>,
    connections: AtomicUsize,
    participants: AtomicUsize,
    waiting: AtomicUsize,
    room_count: AtomicUsize,
    next_conn: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("stats", &self.stats()).finish()
    }
}

/// Decrements the connection count when a socket's task ends, however it ends.
pub(crate) struct ConnectionSlot {
    hub: Arc<Hub>,
    pub id: u64,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.hub.connections.fetch_sub(1, Ordering::Relaxed);
        self.hub.publish_gauges();
    }
}

fn now_rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn new_session() -> String {
    let mut bytes = [0u8; 12];
    // The session only tells a client which place it had; it is not a credential (resuming
    // needs a valid token of the same participant), so a weak fallback does no harm.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        bytes[..8].copy_from_slice(&nanos.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Hub {
    pub fn new(
        config: HubConfig,
        token_key: Vec<u8>,
        observer: Arc<dyn CallObserver>,
        admission: Arc<dyn Admission>,
    ) -> Arc<Hub> {
        let hub = Arc::new(Hub {
            config,
            token_key,
            observer,
            admission,
            rooms: Mutex::new(HashMap::new()),
            closed: Mutex::new(HashMap::new()),
            revoked: Mutex::new(HashMap::new()),
            connections: AtomicUsize::new(0),
            participants: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            room_count: AtomicUsize::new(0),
            next_conn: AtomicU64::new(1),
        });
        hub.publish_gauges();
        hub
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Sends `room-closed` to everyone in that room and closes their sockets (consultation
    /// cancelled, or moved to a time whose window does not contain now). A running call ends
    /// (`call_ended`).
    pub fn close_room(&self, consultation: i64, reason: CloseReason) {
        let mut effects = Effects::default();
        {
            let mut rooms = self.lock_rooms();
            // A closed consultation's tokens are refused on this node at once (a join whose
            // check ran just before the change committed); a moved one's may join again.
            if reason != CloseReason::Rescheduled {
                let now = Utc::now();
                let mut closed = self.lock_closed();
                if closed.len() >= CLOSED_PRUNE_AT {
                    closed.retain(|_, at| remembered(*at, now));
                }
                closed.insert(consultation, now);
            }
            let Some(room) = rooms.remove(&consultation) else {
                return;
            };
            self.room_count.fetch_sub(1, Ordering::Relaxed);
            let reason = match reason {
                CloseReason::Cancelled => RoomClosedReason::Cancelled,
                CloseReason::Rescheduled => RoomClosedReason::Rescheduled,
                CloseReason::Completed => RoomClosedReason::Completed,
                CloseReason::NoShow => RoomClosedReason::NoShow,
            };
            room.broadcast(&ServerMessage::RoomClosed { reason }, |_| true);
            for member in &room.members {
                self.participants.fetch_sub(1, Ordering::Relaxed);
                if !member.admitted {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                }
                if let Some(conn) = &member.conn {
                    conn.outbox.close(1000, "room closed");
                }
            }
            if let Some(started) = room.call_started {
                effects.ended = Some((consultation, started, Utc::now()));
            }
        }
        self.apply(effects);
    }

    /// Who is in `consultation`'s room on this node, or `None` when it has no room here.
    pub fn presence(&self, consultation: i64) -> Option<RoomPresence> {
        let rooms = self.lock_rooms();
        let room = rooms.get(&consultation)?;
        Some(RoomPresence {
            call_started: room.call_started,
            members: room
                .members
                .iter()
                .map(|m| PresentMember {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    role: m.role,
                    admitted: m.admitted,
                    state: m.info().state,
                    since: m.since,
                })
                .collect(),
        })
    }

    /// Tells those waiting in `consultation`'s room that its clinician runs `minutes` late (0: on
    /// time again). Returns how many were told.
    pub fn announce_running_late(&self, consultation: i64, minutes: u32) -> usize {
        let rooms = self.lock_rooms();
        let Some(room) = rooms.get(&consultation) else {
            return 0;
        };
        let told = room
            .members
            .iter()
            .filter(|m| !m.admitted && m.conn.is_some())
            .count();
        room.broadcast(&ServerMessage::RunningLate { minutes }, |m| !m.admitted);
        told
    }

    /// The platform changed who may join `consultation` (it was moved to another clinician):
    /// everyone present for whom `still_allowed(participant, role)` is false gets
    /// `access-revoked` and is closed, the others see them leave, and this node refuses their
    /// tokens issued until now at once (the platform's records refuse them on every node).
    /// Returns how many were removed.
    pub fn revoke_participants(
        &self,
        consultation: i64,
        still_allowed: impl Fn(&str, Role) -> bool,
        reason: RevokeReason,
    ) -> usize {
        let mut effects = Effects::default();
        let mut removed = 0;
        {
            let mut rooms = self.lock_rooms();
            let Some(room) = rooms.get_mut(&consultation) else {
                return 0;
            };
            let now = Utc::now();
            while let Some(index) = room
                .members
                .iter()
                .position(|m| !still_allowed(&m.id, m.role))
            {
                let gone = self.take_member(room, index);
                self.mark_revoked(consultation, &gone.id, now);
                if let Some(conn) = &gone.conn {
                    conn.outbox.push(Utf8Bytes::from(
                        ServerMessage::AccessRevoked { reason }.to_frame(),
                    ));
                    conn.outbox.close(1000, "access revoked");
                }
                announce_departure(room, &gone, LeftReason::Revoked, WaitingLeftReason::Revoked);
                effects.events.push(RoomEvent {
                    consultation,
                    actor: Some(gone.id.clone()),
                    actor_role: Some(gone.role),
                    subject: None,
                    action: "revoked",
                    allowed: true,
                    code: None,
                });
                removed += 1;
            }
            if removed > 0 {
                self.after_departure(&mut rooms, consultation, &mut effects);
            }
        }
        self.apply(effects);
        removed
    }

    /// Refuses `participant`'s tokens of `consultation` issued until `at` on this node. Called
    /// with `rooms` held, so that a join seated after it sees it.
    fn mark_revoked(&self, consultation: i64, participant: &str, at: DateTime<Utc>) {
        let mut revoked = self.lock_revoked();
        if revoked.len() >= CLOSED_PRUNE_AT {
            revoked.retain(|_, r| remembered(r.last, at));
        }
        let entry = revoked.entry(consultation).or_insert_with(|| Revoked {
            last: at,
            participants: HashMap::new(),
        });
        entry.last = at;
        entry
            .participants
            .insert(participant.to_owned(), at.timestamp());
    }

    fn lock_closed(&self) -> MutexGuard<'_, HashMap<i64, DateTime<Utc>>> {
        // Plain inserts and lookups: a poisoned lock holds a usable map.
        self.closed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_revoked(&self) -> MutexGuard<'_, HashMap<i64, Revoked>> {
        // Plain inserts and lookups: a poisoned lock holds a usable map.
        self.revoked.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self) -> HubStats {
        HubStats {
            rooms: self.room_count.load(Ordering::Relaxed),
            participants: self.participants.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
        }
    }

    fn publish_gauges(&self) {
        let stats = self.stats();
        metrics::gauge!("signaling_connections").set(stats.connections as f64);
        metrics::gauge!("signaling_participants").set(stats.participants as f64);
        metrics::gauge!("signaling_rooms").set(stats.rooms as f64);
        metrics::gauge!("signaling_waiting").set(stats.waiting as f64);
    }

    fn lock_rooms(&self) -> MutexGuard<'_, HashMap<i64, Room>> {
        // Room operations do not panic midway (no arithmetic or indexing on client input);
        // if one ever did, the rooms are still usable, so a poisoned lock is used as it is.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a connection slot for a new socket, or None when this node is full.
    pub(crate) fn open_connection(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let max = self.config.max_connections;
        self.connections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        self.publish_gauges();
        Some(ConnectionSlot {
            hub: self.clone(),
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Records a refusal the edge made itself (before or outside room logic).
    pub(crate) fn refused(&self, code: &'static str) {
        metrics::counter!("signaling_refused_total", "code" => code).increment(1);
    }

    fn apply(&self, effects: Effects) {
        // Refusals are counted by the edge, which answers every one of them.
        for event in effects.events {
            self.observer.room_event(event);
        }
        if let Some((consultation, at)) = effects.started {
            self.observer.call_started(consultation, at);
        }
        if let Some((consultation, started, ended)) = effects.ended {
            self.observer.call_ended(consultation, started, ended);
        }
        for (consultation, participant, at) in effects.revocations {
            self.admission.revoked(consultation, &participant, at);
        }
        self.publish_gauges();
    }

    /// Verifies the token, asks the platform whether it still admits, and seats the
    /// participant: admitted (clinicians, or anyone resuming an admitted place) or waiting.
    /// `joined`/`waiting` goes through `outbox`.
    pub(crate) async fn join(
        self: &Arc<Self>,
        token_text: &str,
        outbox: &Arc<Outbox>,
        conn_id: u64,
    ) -> Result<Seat, Refusal> {
        let now = Utc::now();
        let claims = match token::verify_with_claims(&self.token_key, token_text, now.timestamp()) {
            Ok(claims) => claims,
            Err((error, claims)) => {
                self.apply(Effects {
                    events: vec![RoomEvent {
                        consultation: claims.as_ref().map_or(0, |c| c.consultation),
                        actor: claims.as_ref().map(|c| c.participant.clone()),
                        actor_role: claims.as_ref().map(|c| c.role),
                        subject: None,
                        action: "join_refused",
                        allowed: false,
                        code: Some(error.code()),
                    }],
                    ..Effects::default()
                });
                return Err(Refusal::closes(error.code(), error.to_string(), 1008));
            }
        };
        // One lookup per join, none per message. A failed lookup refuses: a join is never let
        // through unchecked.
        let verdict = match self
            .admission
            .check(claims.consultation, &claims.participant)
            .await
        {
            Ok(access) => admission::judge(&claims, access.as_ref(), Utc::now().timestamp()),
            Err(error) => {
                tracing::warn!(%error, "signaling: the admission check failed");
                Err(Refused::Unavailable)
            }
        };
        let mut effects = Effects::default();
        let result = match verdict {
            Ok(()) => self.seat(&claims, outbox, conn_id, Utc::now(), &mut effects),
            Err(refused) => Err(Refusal::closes(
                refused.code(),
                refused.message(),
                refused.close_code(),
            )),
        };
        if let Err(refusal) = &result {
            effects.events.push(RoomEvent {
                consultation: claims.consultation,
                actor: Some(claims.participant.clone()),
                actor_role: Some(claims.role),
                subject: None,
                action: "join_refused",
                allowed: false,
                code: Some(refusal.code),
            });
        }
        self.apply(effects);
        result
    }

    fn seat(
        &self,
        claims: &JoinClaims,
        outbox: &Arc<Outbox>,
        conn_id: u64,
        now: DateTime<Utc>,
        effects: &mut Effects,
    ) -> Result<Seat, Refusal> {
        let mut rooms = self.lock_rooms();
        // Checked with `rooms` held: a cancellation or revocation made on this node while the
        // platform was being asked is seen here.
        let refused = if self.lock_closed().contains_key(&claims.consultation) {
            Some(Refused::Cancelled)
        } else if self
            .lock_revoked()
            .get(&claims.consultation)
            .and_then(|r| r.participants.get(claims.participant.as_str()))
            .is_some_and(|at| claims.issued_at <= *at)
        {
            Some(Refused::DeniedOrRemoved)
        } else {
            None
        };
        if let Some(refused) = refused {
            return Err(Refusal::closes(
                refused.code(),
                refused.message(),
                refused.close_code(),
            ));
        }
        if !rooms.contains_key(&claims.consultation) && rooms.len() >= self.config.max_rooms {
            return Err(Refusal::closes(
                "server_busy",
                "this server holds its maximum of rooms: try again shortly",
                1013,
            ));
        }
        let room = rooms.entry(claims.consultation).or_insert_with(|| {
            self.room_count.fetch_add(1, Ordering::Relaxed);
            Room::default()
        });
        let conn = Conn {
            id: conn_id,
            outbox: outbox.clone(),
        };
        let (index, resumed) = match room.find(&claims.participant) {
            Some(index) => {
                let member = &mut room.members[index];
                if let Some(old) = member.conn.take() {
                    old.outbox.push(Utf8Bytes::from(
                        ServerMessage::error(
                            "replaced",
                            "the same participant joined from another connection",
                        )
                        .to_frame(),
                    ));
                    old.outbox.close(4000, "replaced");
                }
                member.conn = Some(conn);
                member.epoch += 1;
                let (id, admitted) = (member.id.clone(), member.admitted);
                room.broadcast(
                    &ServerMessage::ParticipantReconnected { participant: id },
                    |m| m.id != claims.participant && m.admitted && (admitted || m.is_clinician()),
                );
                (index, true)
            }
            None => {
                if room.members.len() >= self.config.max_participants_per_room {
                    let empty = room.members.is_empty();
                    if empty {
                        rooms.remove(&claims.consultation);
                        self.room_count.fetch_sub(1, Ordering::Relaxed);
                    }
                    return Err(Refusal::closes(
                        "room_full",
                        format!(
                            "{} participants are already present",
                            self.config.max_participants_per_room
                        ),
                        1008,
                    ));
                }
                let admitted = claims.role == Role::Clinician;
                room.members.push(Member {
                    id: claims.participant.clone(),
                    name: claims.name.clone(),
                    role: claims.role,
                    admitted,
                    conn: Some(conn),
                    session: new_session(),
                    media: MediaState::default(),
                    epoch: 0,
                    since: now,
                });
                self.participants.fetch_add(1, Ordering::Relaxed);
                let index = room.members.len() - 1;
                let info = room.members[index].info();
                if admitted {
                    room.broadcast(
                        &ServerMessage::ParticipantJoined { participant: info },
                        |m| m.id != claims.participant && m.admitted,
                    );
                    if room.call_started.is_none() {
                        room.call_started = Some(now);
                        effects.started = Some((claims.consultation, now));
                    }
                } else {
                    self.waiting.fetch_add(1, Ordering::Relaxed);
                    room.broadcast(
                        &ServerMessage::ParticipantWaiting { participant: info },
                        |m| m.admitted && m.is_clinician(),
                    );
                }
                (index, false)
            }
        };
        let member = &room.members[index];
        let greeting = self.greeting(room, member, claims.consultation, resumed, now);
        member.send(&Utf8Bytes::from(greeting.to_frame()));
        effects.events.push(RoomEvent {
            consultation: claims.consultation,
            actor: Some(member.id.clone()),
            actor_role: Some(member.role),
            subject: None,
            action: if member.admitted { "join" } else { "wait" },
            allowed: true,
            code: None,
        });
        Ok(Seat {
            consultation: claims.consultation,
            participant: member.id.clone(),
            conn_id,
        })
    }

    /// `joined` for the admitted, `waiting` for the others.
    fn greeting(
        &self,
        room: &Room,
        member: &Member,
        consultation: i64,
        resumed: bool,
        now: DateTime<Utc>,
    ) -> ServerMessage {
        if !member.admitted {
            return ServerMessage::Waiting {
                you: member.info(),
                session: member.session.clone(),
                consultation,
                resumed,
            };
        }
        let others = room.members.iter().filter(|m| m.id != member.id);
        ServerMessage::Joined {
            you: member.info(),
            session: member.session.clone(),
            consultation,
            participants: others
                .clone()
                .filter(|m| m.admitted)
                .map(Member::info)
                .collect(),
            waiting: if member.is_clinician() {
                others.filter(|m| !m.admitted).map(Member::info).collect()
            } else {
                Vec::new()
            },
            ice_servers: self.config.ice.servers_for(&member.id, now.timestamp()),
            resumed,
        }
    }

    /// Handles one message of a joined connection.
    pub(crate) fn handle(
        self: &Arc<Self>,
        seat: &Seat,
        message: ClientMessage,
    ) -> Result<After, Refusal> {
        let mut effects = Effects::default();
        let result = self.handle_locked(seat, message, &mut effects);
        // Relayed messages (the bulk of the traffic) change no counts and report nothing: skip
        // the gauge updates for them. Every message that moves a count also reports an event.
        if !effects.is_empty() {
            self.apply(effects);
        }
        result
    }

    fn handle_locked(
        &self,
        seat: &Seat,
        message: ClientMessage,
        effects: &mut Effects,
    ) -> Result<After, Refusal> {
        let mut relay: Option<(Vec<Arc<Outbox>>, ServerMessage, &'static str)> = None;
        let after = {
            let mut rooms = self.lock_rooms();
            let room = rooms.get_mut(&seat.consultation).ok_or_else(|| {
                Refusal::stays("not_joined", "this connection has no place in a room")
            })?;
            let me_index = room
                .find(&seat.participant)
                .filter(|&i| {
                    room.members[i]
                        .conn
                        .as_ref()
                        .is_some_and(|c| c.id == seat.conn_id)
                })
                .ok_or_else(|| {
                    Refusal::stays("not_joined", "this connection has no place in a room")
                })?;
            let (my_role, i_am_admitted) = {
                let me = &room.members[me_index];
                (me.role, me.admitted)
            };
            let event =
                |action: &'static str, subject: &str, refused: Option<&'static str>| RoomEvent {
                    consultation: seat.consultation,
                    actor: Some(seat.participant.clone()),
                    actor_role: Some(my_role),
                    subject: Some(subject.to_owned()),
                    action,
                    allowed: refused.is_none(),
                    code: refused,
                };
            let moderation = match &message {
                ClientMessage::Admit { participant } => Some(("admit", participant)),
                ClientMessage::Deny { participant } => Some(("deny", participant)),
                ClientMessage::Remove { participant } => Some(("remove", participant)),
                _ => None,
            };
            if let Some((action, subject)) = moderation
                && my_role != Role::Clinician
            {
                effects
                    .events
                    .push(event(action, subject, Some("not_permitted")));
                return Err(Refusal::stays(
                    "not_permitted",
                    "only a clinician of the consultation may admit, deny or remove",
                ));
            }
            match message {
                ClientMessage::Join { .. } | ClientMessage::Ping { .. } => After::Stay,
                ClientMessage::Admit { participant } => {
                    let Some(target) = room
                        .find(&participant)
                        .filter(|&i| !room.members[i].admitted)
                    else {
                        effects.events.push(event(
                            "admit",
                            &participant,
                            Some("unknown_participant"),
                        ));
                        return Err(unknown(&participant, "waiting"));
                    };
                    effects.events.push(event("admit", &participant, None));
                    room.members[target].admitted = true;
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    room.broadcast(
                        &ServerMessage::WaitingLeft {
                            participant: participant.clone(),
                            reason: WaitingLeftReason::Admitted,
                        },
                        |m| m.admitted && m.is_clinician() && m.id != participant,
                    );
                    let info = room.members[target].info();
                    room.broadcast(
                        &ServerMessage::ParticipantJoined { participant: info },
                        |m| m.admitted && m.id != participant,
                    );
                    let target = &room.members[target];
                    let joined = self.greeting(room, target, seat.consultation, false, Utc::now());
                    target.send(&Utf8Bytes::from(joined.to_frame()));
                    After::Stay
                }
                ClientMessage::Deny { participant } => {
                    let Some(target) = room
                        .find(&participant)
                        .filter(|&i| !room.members[i].admitted)
                    else {
                        effects.events.push(event(
                            "deny",
                            &participant,
                            Some("unknown_participant"),
                        ));
                        return Err(unknown(&participant, "waiting"));
                    };
                    effects.events.push(event("deny", &participant, None));
                    let target = self.take_member(room, target);
                    let at = Utc::now();
                    self.mark_revoked(seat.consultation, &participant, at);
                    effects
                        .revocations
                        .push((seat.consultation, participant.clone(), at));
                    if let Some(conn) = &target.conn {
                        conn.outbox
                            .push(Utf8Bytes::from(ServerMessage::Denied.to_frame()));
                        conn.outbox.close(1000, "denied");
                    }
                    room.broadcast(
                        &ServerMessage::WaitingLeft {
                            participant,
                            reason: WaitingLeftReason::Denied,
                        },
                        |m| m.admitted && m.is_clinician(),
                    );
                    After::Stay
                }
                ClientMessage::Remove { participant } => {
                    let Some(target) = room
                        .find(&participant)
                        .filter(|_| participant != seat.participant)
                    else {
                        effects.events.push(event(
                            "remove",
                            &participant,
                            Some("unknown_participant"),
                        ));
                        return Err(unknown(&participant, "present (other than you)"));
                    };
                    effects.events.push(event("remove", &participant, None));
                    let target = self.take_member(room, target);
                    let at = Utc::now();
                    self.mark_revoked(seat.consultation, &participant, at);
                    effects
                        .revocations
                        .push((seat.consultation, participant.clone(), at));
                    if let Some(conn) = &target.conn {
                        conn.outbox
                            .push(Utf8Bytes::from(ServerMessage::Removed.to_frame()));
                        conn.outbox.close(1000, "removed");
                    }
                    announce_departure(
                        room,
                        &target,
                        LeftReason::Removed,
                        WaitingLeftReason::Denied,
                    );
                    self.after_departure(&mut rooms, seat.consultation, effects);
                    After::Stay
                }
                ClientMessage::Leave => {
                    effects.events.push(RoomEvent {
                        subject: None,
                        ..event("leave", "", None)
                    });
                    let gone = self.take_member(room, me_index);
                    announce_departure(room, &gone, LeftReason::Left, WaitingLeftReason::Left);
                    self.after_departure(&mut rooms, seat.consultation, effects);
                    After::Close
                }
                ClientMessage::MediaState {
                    muted,
                    camera_off,
                    audio_only,
                } => {
                    let media = MediaState {
                        muted,
                        camera_off,
                        audio_only,
                    };
                    room.members[me_index].media = media;
                    if room.members[me_index].admitted {
                        relay = Some((
                            outboxes(room, |m| m.admitted && m.id != seat.participant),
                            ServerMessage::MediaState {
                                from: seat.participant.clone(),
                                muted,
                                camera_off,
                                audio_only,
                            },
                            "media-state",
                        ));
                    }
                    After::Stay
                }
                message => {
                    if !i_am_admitted {
                        return Err(Refusal::stays(
                            "not_admitted",
                            "wait until a clinician admits you",
                        ));
                    }
                    let from = seat.participant.clone();
                    if let ClientMessage::Chat { text } = message {
                        let at = now_rfc3339(Utc::now());
                        relay = Some((
                            outboxes(room, |m| m.admitted),
                            ServerMessage::Chat { from, text, at },
                            "chat",
                        ));
                    } else {
                        let (to, outgoing, kind) = match message {
                            ClientMessage::Offer { to, sdp } => {
                                (to, ServerMessage::Offer { from, sdp }, "offer")
                            }
                            ClientMessage::Answer { to, sdp } => {
                                (to, ServerMessage::Answer { from, sdp }, "answer")
                            }
                            ClientMessage::IceCandidate {
                                to,
                                candidate,
                                sdp_mid,
                                sdp_m_line_index,
                            } => (
                                to,
                                ServerMessage::IceCandidate {
                                    from,
                                    candidate,
                                    sdp_mid,
                                    sdp_m_line_index,
                                },
                                "ice-candidate",
                            ),
                            ClientMessage::EndOfCandidates { to } => (
                                to,
                                ServerMessage::EndOfCandidates { from },
                                "end-of-candidates",
                            ),
                            ClientMessage::IceRestart { to } => {
                                (to, ServerMessage::IceRestart { from }, "ice-restart")
                            }
                            _ => return Ok(After::Stay),
                        };
                        let target = room
                            .find(&to)
                            .filter(|&i| room.members[i].admitted && to != seat.participant)
                            .ok_or_else(|| unknown(&to, "admitted"))?;
                        // A reconnecting peer renegotiates when it is back; what was meant
                        // for its old connection is of no use to it.
                        let targets = room.members[target]
                            .conn
                            .iter()
                            .map(|c| c.outbox.clone())
                            .collect();
                        relay = Some((targets, outgoing, kind));
                    }
                    After::Stay
                }
            }
        };
        if let Some((targets, message, kind)) = relay {
            if !targets.is_empty() {
                let frame = Utf8Bytes::from(message.to_frame());
                for outbox in &targets {
                    outbox.push(frame.clone());
                }
            }
            metrics::counter!("signaling_messages_relayed_total", "type" => kind).increment(1);
        }
        Ok(after)
    }

    /// Removes a member and keeps the counts right.
    fn take_member(&self, room: &mut Room, index: usize) -> Member {
        let member = room.members.remove(index);
        self.participants.fetch_sub(1, Ordering::Relaxed);
        if !member.admitted {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        member
    }

    /// Ends the call when nobody admitted is left, and forgets an empty room.
    fn after_departure(
        &self,
        rooms: &mut HashMap<i64, Room>,
        consultation: i64,
        effects: &mut Effects,
    ) {
        let Some(room) = rooms.get_mut(&consultation) else {
            return;
        };
        if let Some(started) = room.call_started
            && !room.members.iter().any(|m| m.admitted)
        {
            room.call_started = None;
            effects.ended = Some((consultation, started, Utc::now()));
        }
        if room.members.is_empty() {
            rooms.remove(&consultation);
            self.room_count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The socket of a joined connection is gone without `leave`: keep the place for the grace
    /// period.
    pub(crate) fn disconnected(self: &Arc<Self>, seat: &Seat) {
        let mut effects = Effects::default();
        {
            let mut rooms = self.lock_rooms();
            let Some(room) = rooms.get_mut(&seat.consultation) else {
                return;
            };
            let Some(index) = room.find(&seat.participant) else {
                return;
            };
            let member = &mut room.members[index];
            // A replaced connection's place now belongs to the new one.
            if member.conn.as_ref().is_none_or(|c| c.id != seat.conn_id) {
                return;
            }
            member.conn = None;
            member.epoch += 1;
            let (admitted, epoch) = (member.admitted, member.epoch);
            room.broadcast(
                &ServerMessage::ParticipantReconnecting {
                    participant: seat.participant.clone(),
                },
                |m| m.admitted && (admitted || m.is_clinician()),
            );
            effects.grace = Some((seat.consultation, seat.participant.clone(), epoch));
        }
        if let Some((consultation, participant, epoch)) = effects.grace.take() {
            let hub = self.clone();
            let grace = self.config.grace;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                hub.grace_expired(consultation, &participant, epoch);
            });
        }
        self.apply(effects);
    }

    fn grace_expired(&self, consultation: i64, participant: &str, epoch: u64) {
        let mut effects = Effects::default();
        {
            let mut rooms = self.lock_rooms();
            let Some(room) = rooms.get_mut(&consultation) else {
                return;
            };
            let Some(index) = room
                .find(participant)
                .filter(|&i| room.members[i].epoch == epoch && room.members[i].conn.is_none())
            else {
                return;
            };
            let gone = self.take_member(room, index);
            effects.events.push(RoomEvent {
                consultation,
                actor: Some(gone.id.clone()),
                actor_role: Some(gone.role),
                subject: None,
                action: "timeout",
                allowed: true,
                code: None,
            });
            announce_departure(room, &gone, LeftReason::Timeout, WaitingLeftReason::Timeout);
            self.after_departure(&mut rooms, consultation, &mut effects);
        }
        self.apply(effects);
    }
}

/// Tells the others that `gone` is no longer in the room.
fn announce_departure(
    room: &Room,
    gone: &Member,
    left: LeftReason,
    waiting_left: WaitingLeftReason,
) {
    if gone.admitted {
        room.broadcast(
            &ServerMessage::ParticipantLeft {
                participant: gone.id.clone(),
                reason: left,
            },
            |m| m.admitted,
        );
    } else {
        room.broadcast(
            &ServerMessage::WaitingLeft {
                participant: gone.id.clone(),
                reason: waiting_left,
            },
            |m| m.admitted && m.is_clinician(),
        );
    }
}

fn outboxes(room: &Room, to: impl Fn(&Member) -> bool) -> Vec<Arc<Outbox>> {
    room.members
        .iter()
        .filter(|m| to(m))
        .filter_map(|m| m.conn.as_ref().map(|c| c.outbox.clone()))
        .collect()
}

fn unknown(participant: &str, state: &str) -> Refusal {
    // Participant ids come from the client: cap what is echoed back.
    let shown: String = participant.chars().take(64).collect();
    Refusal::stays(
        "unknown_participant",
        format!("nobody {state} is called \"{shown}\""),
    )
}
