//! A real signaling server on 127.0.0.1:0 and real WebSocket clients, plus an observer that
//! records what the hub reports and an admission that answers from memory what the platform
//! answers from its database.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use telehealth_signaling::admission::BoxFuture;
use telehealth_signaling::protocol::{ServerMessage, parse_server};
use telehealth_signaling::token::{self, JoinClaims, Role};
use telehealth_signaling::ws::routes;
use telehealth_signaling::{
    Admission, CallObserver, Hub, HubConfig, RoomAccess, RoomEvent, RoomState, Unavailable,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub enum Call {
    Started(i64, DateTime<Utc>),
    Ended(i64, DateTime<Utc>, DateTime<Utc>),
    Event(RoomEvent),
}

#[derive(Default)]
pub struct Recorder {
    pub calls: Mutex<Vec<Call>>,
}

impl CallObserver for Recorder {
    fn call_started(&self, consultation: i64, at: DateTime<Utc>) {
        self.calls
            .lock()
            .expect("lock")
            .push(Call::Started(consultation, at));
    }
    fn call_ended(&self, consultation: i64, started: DateTime<Utc>, ended: DateTime<Utc>) {
        self.calls
            .lock()
            .expect("lock")
            .push(Call::Ended(consultation, started, ended));
    }
    fn room_event(&self, event: RoomEvent) {
        self.calls.lock().expect("lock").push(Call::Event(event));
    }
}

impl Recorder {
    pub fn snapshot(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }
    pub fn started(&self, consultation: i64) -> usize {
        self.snapshot()
            .iter()
            .filter(|c| matches!(c, Call::Started(id, _) if *id == consultation))
            .count()
    }
    pub fn ended(&self, consultation: i64) -> usize {
        self.snapshot()
            .iter()
            .filter(|c| matches!(c, Call::Ended(id, _, _) if *id == consultation))
            .count()
    }
    pub fn events(&self) -> Vec<RoomEvent> {
        self.snapshot()
            .into_iter()
            .filter_map(|c| match c {
                Call::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }
    /// Waits until `check` holds (the observer is called from other tasks).
    pub async fn until(&self, what: &str, check: impl Fn(&Recorder) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !check(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "gave up waiting for {what}: {:?}",
                self.snapshot()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The access version every consultation starts with, in [`MemoryAdmission`] as in the platform.
pub const FIRST_ACCESS: i64 = 1;

/// The platform's records, kept in memory: every consultation is open at [`FIRST_ACCESS`] with a
/// wide window unless a test says otherwise; denials and removals the hub reports are kept and
/// answered, as the platform keeps them in its database.
#[derive(Default)]
pub struct MemoryAdmission {
    pub rooms: Mutex<HashMap<i64, RoomAccess>>,
    pub revoked: Mutex<HashMap<(i64, String), i64>>,
    /// When set, every check fails (the database is down).
    pub down: std::sync::atomic::AtomicBool,
    /// When set, denials and removals the hub reports are not kept (the write is still on its
    /// way), so only the hub's own memory refuses them.
    pub forget: std::sync::atomic::AtomicBool,
    pub checks: std::sync::atomic::AtomicUsize,
}

impl MemoryAdmission {
    pub fn open() -> RoomAccess {
        let now = Utc::now().timestamp();
        RoomAccess {
            state: RoomState::Open,
            version: FIRST_ACCESS,
            opens_at: now - 3600,
            closes_at: now + 3600,
            listed: true,
            revoked_at: None,
        }
    }

    /// Changes what the platform says about `consultation`.
    pub fn set(&self, consultation: i64, change: impl FnOnce(&mut RoomAccess)) {
        let mut rooms = self.rooms.lock().expect("lock");
        change(rooms.entry(consultation).or_insert_with(Self::open));
    }

    pub fn revocations(&self) -> usize {
        self.revoked.lock().expect("lock").len()
    }
}

impl Admission for MemoryAdmission {
    fn check<'a>(
        &'a self,
        consultation: i64,
        participant: &'a str,
    ) -> BoxFuture<'a, Result<Option<RoomAccess>, Unavailable>> {
        Box::pin(async move {
            self.checks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if self.down.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(Unavailable("the test said so".into()));
            }
            let mut access = self
                .rooms
                .lock()
                .expect("lock")
                .get(&consultation)
                .cloned()
                .unwrap_or_else(Self::open);
            access.revoked_at = self
                .revoked
                .lock()
                .expect("lock")
                .get(&(consultation, participant.to_string()))
                .copied();
            Ok(Some(access))
        })
    }

    fn revoked(&self, consultation: i64, participant: &str, at: DateTime<Utc>) {
        if self.forget.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        self.revoked
            .lock()
            .expect("lock")
            .insert((consultation, participant.to_string()), at.timestamp());
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub key: Vec<u8>,
    pub observer: Arc<Recorder>,
    pub admission: Arc<MemoryAdmission>,
}

/// Test timings: long enough not to fire by accident on a loaded machine.
pub fn config() -> HubConfig {
    HubConfig {
        grace: Duration::from_secs(30),
        join_timeout: Duration::from_secs(30),
        ..HubConfig::default()
    }
}

pub async fn start(config: HubConfig) -> Server {
    start_with(config, Arc::new(MemoryAdmission::default())).await
}

/// A server asking `admission`: two servers sharing one are two nodes (or one node before and
/// after a restart) sharing a database.
pub async fn start_with(config: HubConfig, admission: Arc<MemoryAdmission>) -> Server {
    let key = token::key_from_master(b"test master key");
    let observer = Arc::new(Recorder::default());
    let hub = Hub::new(config, key.clone(), observer.clone(), admission.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(warp::serve(routes(hub.clone())).incoming(listener).run());
    Server {
        addr,
        hub,
        key,
        observer,
        admission,
    }
}

pub fn role_of(participant: &str) -> Role {
    match participant.as_bytes().first() {
        Some(b'c') => Role::Clinician,
        Some(b'p') => Role::Patient,
        _ => Role::Guest,
    }
}

impl Server {
    /// A valid token for `participant` (its role from its first letter: c, p or g).
    pub fn token(&self, consultation: i64, participant: &str) -> String {
        let now = Utc::now().timestamp();
        self.token_with(consultation, participant, now - 60, now + 3600, now + 600)
    }

    pub fn token_with(
        &self,
        consultation: i64,
        participant: &str,
        opens_at: i64,
        closes_at: i64,
        expires_at: i64,
    ) -> String {
        self.token_of(JoinClaims {
            consultation,
            participant: participant.into(),
            name: format!("Name of {participant}"),
            role: role_of(participant),
            opens_at,
            closes_at,
            expires_at,
            access: FIRST_ACCESS,
            issued_at: Utc::now().timestamp(),
        })
    }

    /// A token with exactly these claims.
    pub fn token_of(&self, claims: JoinClaims) -> String {
        token::issue(&self.key, &claims)
    }

    pub async fn connect(&self) -> Client {
        let (ws, _) = connect_async(format!("ws://{}/signaling", self.addr))
            .await
            .expect("connect");
        Client { ws }
    }

    /// Connects and joins; returns the client and its `joined`/`waiting`.
    pub async fn join(&self, consultation: i64, participant: &str) -> (Client, ServerMessage) {
        let mut client = self.connect().await;
        client
            .send(json!({"type": "join", "token": self.token(consultation, participant)}))
            .await;
        let greeting = client.recv().await;
        assert!(
            matches!(
                greeting,
                ServerMessage::Joined { .. } | ServerMessage::Waiting { .. }
            ),
            "{participant}: {greeting:?}"
        );
        (client, greeting)
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a client read: a message, or the close (with its code).
#[derive(Debug)]
pub enum Read {
    Message(ServerMessage),
    Closed(Option<u16>),
}

impl Client {
    /// Sends `message` with `"v": 1` added.
    pub async fn send(&mut self, mut message: Value) {
        message["v"] = json!(1);
        self.send_raw(message.to_string()).await;
    }

    pub async fn send_raw(&mut self, text: String) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// The next message or the close, skipping WebSocket pings.
    pub async fn read(&mut self) -> Read {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the server answered in time");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Read::Message(
                        parse_server(text.as_str()).expect("server frame parses"),
                    );
                }
                Some(Ok(Message::Close(frame))) => {
                    return Read::Closed(frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(Message::Binary(_))) => panic!("the server sent a binary frame"),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Read::Closed(None),
            }
        }
    }

    pub async fn recv(&mut self) -> ServerMessage {
        match self.read().await {
            Read::Message(message) => message,
            Read::Closed(code) => panic!("closed ({code:?}) while a message was expected"),
        }
    }

    /// Expects an `error` with `code`.
    pub async fn expect_error(&mut self, code: &str) {
        match self.recv().await {
            ServerMessage::Error { code: got, .. } => assert_eq!(got, code),
            other => panic!("expected error {code}, got {other:?}"),
        }
    }

    /// Expects the close with `code` (reading past any messages).
    pub async fn expect_closed(&mut self, code: u16) -> Vec<ServerMessage> {
        let mut before = Vec::new();
        loop {
            match self.read().await {
                Read::Message(m) => before.push(m),
                Read::Closed(got) => {
                    assert_eq!(got, Some(code), "close code; read before: {before:?}");
                    return before;
                }
            }
        }
    }

    /// Sends a ping and expects its pong next: nothing else was queued for this client.
    pub async fn expect_quiet(&mut self) {
        self.send(json!({"type": "ping", "nonce": 99})).await;
        match self.recv().await {
            ServerMessage::Pong { nonce: 99 } => {}
            other => panic!("expected only the pong, got {other:?}"),
        }
    }
}
