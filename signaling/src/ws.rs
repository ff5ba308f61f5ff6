//! The WebSocket edge: `GET /signaling`, one tokio task per socket. It owns framing, size
//! limits, rate limiting, pings and timeouts, parses every frame once, and hands messages to the
//! [`Hub`]; what the hub sends arrives through the connection's outbox.
//!
//! The upgrade is done here rather than with `warp::ws()` because warp cannot set tungstenite's
//! read buffer, which is allocated eagerly (128 KiB by default): with tens of thousands of idle
//! participants per node, a small one is what keeps memory per connection low.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use warp::{Filter, Rejection, Reply};

use crate::hub::{After, ConnectionSlot, Hub, Outbox, Refusal, Seat};
use crate::protocol::{self, ClientMessage, ServerMessage};

/// Above this a message closes the socket (1009); between [`protocol::MAX_FRAME_BYTES`] and this it is
/// refused with `frame_too_large` and the socket stays.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Eagerly allocated per socket; larger frames grow it while they are read.
pub const READ_BUFFER_BYTES: usize = 1024;
/// A socket that cannot take a frame within this time is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Refused frames in a row that close the socket.
const MAX_REFUSED_IN_A_ROW: u32 = 50;
/// How long a closing socket may take to answer our close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// `GET /signaling` with a WebSocket upgrade.
pub fn routes(hub: Arc<Hub>) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path("signaling")
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<OnUpgrade>())
        .map(move |headers: HeaderMap, on_upgrade: Option<OnUpgrade>| {
            upgrade(&hub, &headers, on_upgrade)
        })
}

/// The tungstenite settings of every signaling socket.
pub fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        // Frames are written as they come: signaling is latency-bound, not throughput-bound.
        .write_buffer_size(0)
        .max_write_buffer_size(4 * MAX_MESSAGE_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

fn plain(status: StatusCode, text: &'static str) -> warp::reply::Response {
    warp::reply::with_status(text, status).into_response()
}

fn upgrade(
    hub: &Arc<Hub>,
    headers: &HeaderMap,
    on_upgrade: Option<OnUpgrade>,
) -> warp::reply::Response {
    let key = headers.get(header::SEC_WEBSOCKET_KEY);
    let is_websocket = has_token(headers, header::CONNECTION, "upgrade")
        && has_token(headers, header::UPGRADE, "websocket");
    let (Some(key), true) = (key, is_websocket) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "this address speaks WebSocket: see the signaling protocol",
        );
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut response = plain(StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only");
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    }
    let Some(on_upgrade) = on_upgrade else {
        return plain(
            StatusCode::BAD_REQUEST,
            "this connection cannot be upgraded",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let slot = hub.open_connection();
    let hub = hub.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "signaling: upgrade failed");
                return;
            }
        };
        let socket = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(socket_config()),
        )
        .await;
        match slot {
            Some(slot) => Connection::new(hub, slot, socket).run().await,
            None => {
                hub.refused("server_busy");
                let mut socket = socket;
                let busy = ServerMessage::error(
                    "server_busy",
                    "this server holds its maximum of connections: try again shortly",
                );
                if send_text(&mut socket, busy.to_frame()).await.is_ok() {
                    close(&mut socket, 1013, "server busy").await;
                }
            }
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

async fn send_text(socket: &mut Socket, text: String) -> Result<(), ()> {
    match timeout(WRITE_TIMEOUT, socket.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Sends a close frame and waits briefly for the other side's, so that it sees our code.
async fn close(socket: &mut Socket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    if let Ok(Ok(())) = timeout(WRITE_TIMEOUT, socket.close(Some(frame))).await {
        let _ = timeout(CLOSE_TIMEOUT, async {
            while let Some(Ok(_)) = socket.next().await {}
        })
        .await;
    }
}

/// Allows `rate` messages a second with bursts of `burst`.
struct TokenBucket {
    tokens: f32,
    last: Instant,
}

impl TokenBucket {
    fn take(&mut self, rate: u32, burst: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f32();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate as f32).min(burst as f32);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What woke a connection's task.
enum Event {
    Outbox,
    Frame(Option<Result<Message, WsError>>),
    Timer,
}

/// Why the loop of a connection ended.
enum Ending {
    /// Closed on purpose (a close frame was sent or the peer closed).
    Closed,
    /// The socket failed or timed out.
    Broken,
}

struct Connection {
    hub: Arc<Hub>,
    slot: ConnectionSlot,
    socket: Socket,
    outbox: Arc<Outbox>,
    seat: Option<Seat>,
    bucket: TokenBucket,
    refused_in_a_row: u32,
    opened: Instant,
    last_heard: Instant,
    next_ping: Instant,
}

impl Connection {
    fn new(hub: Arc<Hub>, slot: ConnectionSlot, socket: Socket) -> Self {
        let now = Instant::now();
        let config = hub.config();
        let (burst, ping) = (config.rate_burst, config.ping_interval);
        Connection {
            hub,
            slot,
            socket,
            outbox: Arc::new(Outbox::default()),
            seat: None,
            bucket: TokenBucket {
                tokens: burst as f32,
                last: now,
            },
            refused_in_a_row: 0,
            opened: now,
            last_heard: now,
            next_ping: now + ping,
        }
    }

    async fn run(mut self) {
        let _ending = self.serve().await;
        // Whatever ended the socket, a participant still seated on it gets the grace period
        // (the hub ignores seats already given up: left, denied, removed, replaced, closed).
        if let Some(seat) = &self.seat {
            self.hub.disconnected(seat);
        }
        tracing::trace!(connection = self.slot.id, "signaling: connection ended");
    }

    fn deadline(&self) -> Instant {
        let config = self.hub.config();
        let mut deadline = self.next_ping.min(self.last_heard + config.idle_timeout);
        if self.seat.is_none() {
            deadline = deadline.min(self.opened + config.join_timeout);
        }
        deadline
    }

    async fn serve(&mut self) -> Ending {
        loop {
            let deadline = self.deadline();
            let event = tokio::select! {
                biased;
                () = self.outbox.wait() => Event::Outbox,
                frame = self.socket.next() => Event::Frame(frame),
                () = tokio::time::sleep_until(deadline) => Event::Timer,
            };
            // Handling is boxed: an idle connection's task then holds only the wait above,
            // not the state of every await below it (a few KiB per socket otherwise).
            if let Some(ending) = Box::pin(self.on_event(event)).await {
                return ending;
            }
        }
    }

    async fn on_event(&mut self, event: Event) -> Option<Ending> {
        let now = Instant::now();
        let frame = match event {
            Event::Outbox => return self.flush_outbox().await,
            Event::Timer => return self.on_timer().await,
            Event::Frame(frame) => frame,
        };
        match frame {
            Some(Ok(Message::Text(text))) => {
                self.last_heard = now;
                self.on_text(text.as_str(), now).await
            }
            Some(Ok(Message::Binary(_))) => {
                self.last_heard = now;
                let refusal = if self.bucket_allows(now) {
                    Refusal::stays(
                        "invalid_message",
                        "binary frames are not accepted: send JSON text",
                    )
                } else {
                    rate_limited()
                };
                self.refuse(refusal).await
            }
            Some(Ok(_)) => {
                self.last_heard = now;
                None
            }
            Some(Err(WsError::Capacity(_))) => {
                self.hub.refused("frame_too_large");
                close(&mut self.socket, 1009, "message too large").await;
                Some(Ending::Closed)
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "signaling: socket error");
                Some(Ending::Broken)
            }
            None => Some(Ending::Closed),
        }
    }

    async fn on_timer(&mut self) -> Option<Ending> {
        let now = Instant::now();
        let config = self.hub.config();
        let (join_timeout, idle_timeout, ping_interval) = (
            config.join_timeout,
            config.idle_timeout,
            config.ping_interval,
        );
        if self.seat.is_none() && now >= self.opened + join_timeout {
            self.hub.refused("join_timeout");
            close(&mut self.socket, 1008, "no join in time").await;
            return Some(Ending::Closed);
        }
        if now >= self.last_heard + idle_timeout {
            close(&mut self.socket, 1001, "silent for too long").await;
            return Some(Ending::Broken);
        }
        if now >= self.next_ping {
            self.next_ping = now + ping_interval;
            let ping = timeout(
                WRITE_TIMEOUT,
                self.socket.send(Message::Ping(Default::default())),
            );
            if !matches!(ping.await, Ok(Ok(()))) {
                return Some(Ending::Broken);
            }
        }
        None
    }

    /// Writes what the hub queued; closes when the hub asked for it.
    async fn flush_outbox(&mut self) -> Option<Ending> {
        let drained = self.outbox.take();
        for frame in drained.frames {
            let fed = self.socket.feed(Message::Text(frame));
            if !unless_overflowing(&self.outbox, fed).await {
                return Some(Ending::Broken);
            }
        }
        if !unless_overflowing(&self.outbox, self.socket.flush()).await {
            return Some(Ending::Broken);
        }
        if let Some((code, reason)) = drained.close {
            close(&mut self.socket, code, reason).await;
            return Some(Ending::Closed);
        }
        None
    }

    fn bucket_allows(&mut self, now: Instant) -> bool {
        let config = self.hub.config();
        let (rate, burst) = (config.rate_per_sec, config.rate_burst);
        self.bucket.take(rate, burst, now)
    }

    async fn on_text(&mut self, text: &str, now: Instant) -> Option<Ending> {
        if !self.bucket_allows(now) {
            return self.refuse(rate_limited()).await;
        }
        let message = match protocol::parse(text) {
            Ok(message) => message,
            Err(error) => {
                return self
                    .refuse(Refusal::stays(error.code(), error.to_string()))
                    .await;
            }
        };
        match message {
            ClientMessage::Ping { nonce } => {
                self.refused_in_a_row = 0;
                if send_text(&mut self.socket, ServerMessage::Pong { nonce }.to_frame())
                    .await
                    .is_err()
                {
                    return Some(Ending::Broken);
                }
                None
            }
            ClientMessage::Join { token, .. } => {
                if self.seat.is_some() {
                    return self
                        .refuse(Refusal::stays(
                            "already_joined",
                            "this connection has already joined",
                        ))
                        .await;
                }
                let started = Instant::now();
                match self.hub.join(&token, &self.outbox, self.slot.id).await {
                    Ok(seat) => {
                        metrics::histogram!("signaling_join_seconds")
                            .record(started.elapsed().as_secs_f64());
                        self.seat = Some(seat);
                        self.refused_in_a_row = 0;
                        None
                    }
                    Err(refusal) => self.refuse(refusal).await,
                }
            }
            message => {
                let Some(seat) = &self.seat else {
                    return self
                        .refuse(Refusal::stays(
                            "not_joined",
                            "send join with a join token first",
                        ))
                        .await;
                };
                match self.hub.handle(seat, message) {
                    Ok(After::Stay) => {
                        self.refused_in_a_row = 0;
                        None
                    }
                    Ok(After::Close) => {
                        // What the hub queued for us before we left still goes out.
                        if let Some(ending) = self.flush_outbox().await {
                            return Some(ending);
                        }
                        close(&mut self.socket, 1000, "left").await;
                        Some(Ending::Closed)
                    }
                    Err(refusal) => self.refuse(refusal).await,
                }
            }
        }
    }

    /// Answers a refused frame with `error`; closes when the refusal says so or when too many
    /// frames in a row were refused.
    async fn refuse(&mut self, refusal: Refusal) -> Option<Ending> {
        self.hub.refused(refusal.code);
        let error = ServerMessage::error(refusal.code, refusal.message);
        if send_text(&mut self.socket, error.to_frame()).await.is_err() {
            return Some(Ending::Broken);
        }
        if let Some(code) = refusal.close {
            close(&mut self.socket, code, refusal.code).await;
            return Some(Ending::Closed);
        }
        self.refused_in_a_row += 1;
        if self.refused_in_a_row >= MAX_REFUSED_IN_A_ROW {
            close(&mut self.socket, 1008, "too many refused messages").await;
            return Some(Ending::Closed);
        }
        None
    }
}

/// Runs a write unless it takes longer than [`WRITE_TIMEOUT`] or the outbox overflows meanwhile
/// (a client that does not read is dropped at once rather than after the timeout). True when
/// the write succeeded.
async fn unless_overflowing(
    outbox: &Outbox,
    write: impl Future<Output = Result<(), WsError>>,
) -> bool {
    let write = timeout(WRITE_TIMEOUT, write);
    tokio::pin!(write);
    let mut woken = false;
    let written = loop {
        tokio::select! {
            result = &mut write => break matches!(result, Ok(Ok(()))),
            () = outbox.wait() => {
                if outbox.overflowed() {
                    return false;
                }
                woken = true;
            }
        }
    };
    if woken {
        // The wake-up was for the connection's loop: pass it on.
        outbox.wake();
    }
    written
}

fn rate_limited() -> Refusal {
    Refusal::stays(
        "rate_limited",
        "more than the allowed messages per second: the message was dropped",
    )
}
