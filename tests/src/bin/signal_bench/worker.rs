//! A worker process: holds a share of the participants (at most a few thousand sockets, well
//! inside one process's open-file limit), joins their rooms when told, paces relay messages and
//! measures what comes back. It runs on one thread: the workers are the parallelism.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::Value;
use telehealth_signaling::token::{self, JoinClaims, Role};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::wire::{Command, Event, HistData, JoinReport, Mode, RelayReport, new_histogram};
use crate::{Result, instant_at, unix_us};

type Ws = WebSocketStream<TcpStream>;

/// A participant that has not got through the join (and admission) by then has failed.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// After the last relay message is sent, how long the peers may take to receive the rest.
const DRAIN: Duration = Duration::from_secs(2);
/// Synthetic consultations are numbered from here, far above any booked one.
pub const CONSULTATION_BASE: i64 = 10_000_000;

/// What every task of the worker shares. One thread: the locks are never contended.
struct Shared {
    epoch: Instant,
    relay: Mutex<Histogram<u64>>,
    sent: AtomicU64,
    received: AtomicU64,
    /// When the last relay message arrived (`now_us`).
    last_received: AtomicU64,
    connected: AtomicU64,
    dropped: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    error_samples: Mutex<Vec<String>>,
}

/// A poisoned lock only means another task panicked mid-update of a counter: keep counting.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn error(&self, class: String, sample: &str) {
        *lock(&self.errors).entry(class).or_default() += 1;
        let mut samples = lock(&self.error_samples);
        if samples.len() < 5 {
            samples.push(format!("{sample:.300}"));
        }
    }
}

struct Ctx {
    mode: Mode,
    url: String,
    addr: SocketAddr,
    source: IpAddr,
    key: Option<Vec<u8>>,
    shared: Arc<Shared>,
}

enum PeerCmd {
    Send,
    Close,
}

pub async fn run() -> Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    let mut reply = async |event: Event| -> Result<()> {
        let mut line = serde_json::to_string(&event)?;
        line.push('\n');
        out.write_all(line.as_bytes()).await?;
        out.flush().await?;
        Ok(())
    };
    let Some(first) = lines.next_line().await? else {
        return Ok(());
    };
    let ctx = match serde_json::from_str::<Command>(&first)? {
        Command::Setup {
            url,
            mode,
            key_hex,
            source_ip,
        } => {
            let addr = target_addr(&url)?;
            let key = key_hex.map(|h| decode_hex(&h)).transpose()?;
            Arc::new(Ctx {
                mode,
                url,
                addr,
                source: source_ip.parse()?,
                key,
                shared: Arc::new(Shared {
                    epoch: Instant::now(),
                    relay: Mutex::new(new_histogram()?),
                    sent: AtomicU64::new(0),
                    received: AtomicU64::new(0),
                    last_received: AtomicU64::new(0),
                    connected: AtomicU64::new(0),
                    dropped: AtomicU64::new(0),
                    errors: Mutex::new(BTreeMap::new()),
                    error_samples: Mutex::new(Vec::new()),
                }),
            })
        }
        other => return Err(format!("expected setup first, got {other:?}").into()),
    };
    if ctx.mode == Mode::Signaling && ctx.key.is_none() {
        return Err("signaling mode needs the join-token key".into());
    }
    reply(Event::Ready {
        pid: std::process::id(),
    })
    .await?;

    let mut peers: Vec<mpsc::UnboundedSender<PeerCmd>> = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let event = match serde_json::from_str::<Command>(&line)? {
            Command::Setup { .. } => Event::Failed {
                message: "setup sent twice".into(),
            },
            Command::Join { rooms } => {
                let (report, new_peers) = join_rooms(&ctx, rooms).await?;
                peers.extend(new_peers);
                Event::Joined(report)
            }
            Command::Count => Event::Held {
                connected: ctx.shared.connected.load(Ordering::Relaxed),
                dropped: ctx.shared.dropped.load(Ordering::Relaxed),
                errors: lock(&ctx.shared.errors).clone(),
            },
            Command::Relay {
                rate,
                secs,
                start_unix_us,
            } => Event::Relayed(relay(&ctx, &peers, rate, secs, start_unix_us).await?),
            Command::Close => {
                for p in &peers {
                    let _ = p.send(PeerCmd::Close);
                }
                let deadline = Instant::now() + Duration::from_secs(10);
                while ctx.shared.connected.load(Ordering::Relaxed) > 0 && Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                reply(Event::Closed).await?;
                return Ok(());
            }
        };
        reply(event).await?;
    }
    Ok(())
}

fn target_addr(url: &str) -> Result<SocketAddr> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or("only ws:// targets are supported")?;
    let host_port = rest.split('/').next().unwrap_or(rest);
    Ok(host_port.parse()?)
}

fn decode_hex(hex: &str) -> Result<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return Err("odd-length hex key".into());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| Ok(u8::from_str_radix(&hex[i..i + 2], 16)?))
        .collect()
}

// ---- joining ----------------------------------------------------------------------------------

/// One participant's way into its room.
#[derive(Default)]
struct Joining {
    ws: Option<Ws>,
    connect_us: u64,
    join_us: u64,
    join_frame_us: u64,
    admit_us: Option<u64>,
    in_call: Option<Instant>,
    failure: Option<(String, String)>,
}

impl Joining {
    fn fail(mut self, class: impl Into<String>, detail: impl Into<String>) -> Joining {
        self.failure = Some((class.into(), detail.into()));
        self.ws = None;
        self
    }
}

struct RoomOutcome {
    scheduled: Instant,
    started_unix_us: u64,
    participants: [(Joining, String); 2],
}

async fn join_rooms(
    ctx: &Arc<Ctx>,
    rooms: Vec<(u32, u64)>,
) -> Result<(JoinReport, Vec<mpsc::UnboundedSender<PeerCmd>>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (room, start_unix_us) in rooms {
        let ctx = ctx.clone();
        let scheduled = instant_at(start_unix_us);
        tasks.spawn(async move {
            tokio::time::sleep_until(scheduled.into()).await;
            let started_unix_us = unix_us();
            let started = Instant::now();
            let clinician = format!("c{room}");
            let patient = format!("p{room}");
            let (c, p) = match ctx.mode {
                Mode::Signaling => {
                    let admit_sent = AtomicU64::new(0);
                    tokio::join!(
                        join_clinician(&ctx, room, started, &patient, &admit_sent),
                        join_patient(&ctx, room, started, &admit_sent),
                    )
                }
                Mode::Plain => tokio::join!(
                    join_plain(&ctx, room, started),
                    join_plain(&ctx, room, started)
                ),
            };
            RoomOutcome {
                scheduled,
                started_unix_us,
                // Each side's peer: where its relay messages go.
                participants: [(c, patient), (p, clinician)],
            }
        });
    }
    let mut report = JoinReport::default();
    let mut join = new_histogram()?;
    let mut connect = new_histogram()?;
    let mut join_frame = new_histogram()?;
    let mut admit = new_histogram()?;
    let mut room_ready = new_histogram()?;
    let mut start_lag = new_histogram()?;
    let mut peers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let outcome = done?;
        let lag = outcome
            .started_unix_us
            .saturating_sub(instant_to_unix(outcome.scheduled));
        start_lag.saturating_record(lag.max(1));
        if report.first_start_us == 0 || outcome.started_unix_us < report.first_start_us {
            report.first_start_us = outcome.started_unix_us;
        }
        report.last_start_us = report.last_start_us.max(outcome.started_unix_us);
        let mut all_in: Option<Instant> = Some(outcome.scheduled);
        for (p, peer) in outcome.participants {
            if let Some((class, detail)) = p.failure {
                report.participants_failed += 1;
                *report.failures.entry(class).or_default() += 1;
                if report.failure_samples.len() < 5 {
                    report.failure_samples.push(detail);
                }
                all_in = None;
                continue;
            }
            report.participants_ok += 1;
            join.saturating_record(p.join_us.max(1));
            connect.saturating_record(p.connect_us.max(1));
            join_frame.saturating_record(p.join_frame_us.max(1));
            if let Some(a) = p.admit_us {
                admit.saturating_record(a.max(1));
            }
            all_in = match (all_in, p.in_call) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
            if let Some(ws) = p.ws {
                let (tx, rx) = mpsc::unbounded_channel();
                peers.push(tx);
                let ctx = ctx.clone();
                tokio::spawn(async move { in_room(&ctx, ws, peer, rx).await });
            }
        }
        if let Some(ready) = all_in {
            report.rooms_ready += 1;
            let us = u64::try_from(ready.duration_since(outcome.scheduled).as_micros())
                .unwrap_or(u64::MAX);
            room_ready.saturating_record(us.max(1));
            report.last_ready_us = report.last_ready_us.max(instant_to_unix(ready));
        }
    }
    report.join = HistData::from_histogram(&join);
    report.connect = HistData::from_histogram(&connect);
    report.join_frame = HistData::from_histogram(&join_frame);
    report.admit = HistData::from_histogram(&admit);
    report.room_ready = HistData::from_histogram(&room_ready);
    report.start_lag = HistData::from_histogram(&start_lag);
    Ok((report, peers))
}

fn instant_to_unix(at: Instant) -> u64 {
    let now_i = Instant::now();
    let now_u = unix_us();
    if at >= now_i {
        now_u.saturating_add(u64::try_from((at - now_i).as_micros()).unwrap_or(u64::MAX))
    } else {
        now_u.saturating_sub(u64::try_from((now_i - at).as_micros()).unwrap_or(u64::MAX))
    }
}

fn us_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
}

async fn open(ctx: &Ctx) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .set_reuseaddr(true)
        .map_err(|e| format!("SO_REUSEADDR: {e}"))?;
    socket
        .bind(SocketAddr::new(ctx.source, 0))
        .map_err(|e| format!("bind {}: {e}", ctx.source))?;
    let stream = socket
        .connect(ctx.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    // Small buffers: the generator holds thousands of sockets, and signaling frames are small.
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(ctx.url.as_str(), stream, Some(config))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

/// The next JSON frame, skipping control frames; an error when the socket closes or the
/// deadline passes.
async fn next_json(ws: &mut Ws, deadline: Instant) -> Result<Value, (String, String)> {
    loop {
        let frame = tokio::time::timeout_at(deadline.into(), ws.next())
            .await
            .map_err(|_| ("timeout".to_string(), "no answer in 30 s".to_string()))?;
        match frame {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str())
                    .map_err(|e| ("malformed frame".to_string(), format!("{e}: {t:.200}")))?;
                if v["type"] == "error" {
                    let code = v["code"].as_str().unwrap_or("?");
                    return Err((format!("error {code}"), format!("{t:.300}")));
                }
                return Ok(v);
            }
            Some(Ok(Message::Close(c))) => {
                return Err(("closed".to_string(), format!("closed by the target: {c:?}")));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(("socket error".to_string(), e.to_string())),
            None => return Err(("closed".to_string(), "socket ended".to_string())),
        }
    }
}

/// A participant id as the protocol sends it: a bare id, or a participant object's `id`.
fn participant_id(v: &Value) -> Option<&str> {
    v.as_str().or_else(|| v["id"].as_str())
}

async fn send_text(ws: &mut Ws, text: String) -> Result<(), (String, String)> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| ("send".to_string(), e.to_string()))
}

fn join_message(ctx: &Ctx, room: u32, participant: &str, role: Role) -> Result<String, String> {
    let key = ctx.key.as_deref().ok_or("no join-token key")?;
    let now = i64::try_from(unix_us() / 1_000_000).map_err(|e| e.to_string())?;
    let claims = JoinClaims {
        consultation: CONSULTATION_BASE + i64::from(room),
        participant: participant.to_string(),
        name: match role {
            Role::Clinician => format!("Bench clinician {room}"),
            _ => format!("Bench patient {room}"),
        },
        role,
        opens_at: now - 15 * 60,
        closes_at: now + 3 * 3600,
        expires_at: now + 10 * 60,
        // The access version a consultation starts at (the coordinator seeded them).
        access: 1,
        issued_at: now,
    };
    Ok(
        serde_json::json!({"v": 1, "type": "join", "token": token::issue(key, &claims)})
            .to_string(),
    )
}

/// Connects and sends `join`; returns when the answer that is not `skip` arrives.
async fn connect_and_join(
    ctx: &Ctx,
    started: Instant,
    deadline: Instant,
    frame: String,
    j: &mut Joining,
) -> Result<(Ws, Value), (String, String)> {
    let mut ws = open(ctx)
        .await
        .map_err(|e| (e.split(':').next().unwrap_or("connect").to_string(), e))?;
    j.connect_us = us_since(started);
    let sent = Instant::now();
    send_text(&mut ws, frame).await?;
    let answer = next_json(&mut ws, deadline).await?;
    j.join_frame_us = us_since(sent);
    j.join_us = us_since(started);
    Ok((ws, answer))
}

async fn join_clinician(
    ctx: &Ctx,
    room: u32,
    started: Instant,
    patient: &str,
    admit_sent: &AtomicU64,
) -> Joining {
    let mut j = Joining::default();
    let deadline = started + JOIN_TIMEOUT;
    let frame = match join_message(ctx, room, &format!("c{room}"), Role::Clinician) {
        Ok(f) => f,
        Err(e) => return j.fail("token", e),
    };
    let (mut ws, answer) = match connect_and_join(ctx, started, deadline, frame, &mut j).await {
        Ok(x) => x,
        Err((class, detail)) => return j.fail(class, detail),
    };
    if answer["type"] != "joined" {
        return j.fail(
            format!("clinician got {} instead of joined", answer["type"]),
            answer.to_string(),
        );
    }
    let admit = serde_json::json!({"v": 1, "type": "admit", "participant": patient}).to_string();
    let mut admitted = false;
    let waiting_now = answer["waiting"]
        .as_array()
        .is_some_and(|w| w.iter().any(|p| participant_id(p) == Some(patient)));
    if waiting_now {
        admit_sent.store(us_since(started).max(1), Ordering::Relaxed);
        if let Err((class, detail)) = send_text(&mut ws, admit.clone()).await {
            return j.fail(class, detail);
        }
        admitted = true;
    }
    loop {
        let v = match next_json(&mut ws, deadline).await {
            Ok(v) => v,
            Err((class, detail)) => return j.fail(format!("clinician: {class}"), detail),
        };
        let who = participant_id(&v["participant"]);
        match v["type"].as_str() {
            Some("participant-waiting") if who == Some(patient) && !admitted => {
                admit_sent.store(us_since(started).max(1), Ordering::Relaxed);
                if let Err((class, detail)) = send_text(&mut ws, admit.clone()).await {
                    return j.fail(class, detail);
                }
                admitted = true;
            }
            Some("participant-joined") if who == Some(patient) => break,
            _ => {}
        }
    }
    j.in_call = Some(Instant::now());
    j.ws = Some(ws);
    j
}

async fn join_patient(ctx: &Ctx, room: u32, started: Instant, admit_sent: &AtomicU64) -> Joining {
    let mut j = Joining::default();
    let deadline = started + JOIN_TIMEOUT;
    let frame = match join_message(ctx, room, &format!("p{room}"), Role::Patient) {
        Ok(f) => f,
        Err(e) => return j.fail("token", e),
    };
    let (mut ws, answer) = match connect_and_join(ctx, started, deadline, frame, &mut j).await {
        Ok(x) => x,
        Err((class, detail)) => return j.fail(class, detail),
    };
    match answer["type"].as_str() {
        Some("joined") => {}
        Some("waiting") => loop {
            let v = match next_json(&mut ws, deadline).await {
                Ok(v) => v,
                Err((class, detail)) => return j.fail(format!("patient: {class}"), detail),
            };
            if v["type"] == "joined" {
                let sent = admit_sent.load(Ordering::Relaxed);
                j.admit_us = (sent > 0).then(|| us_since(started).saturating_sub(sent));
                break;
            }
        },
        _ => {
            return j.fail(
                format!("patient got {} instead of waiting", answer["type"]),
                answer.to_string(),
            );
        }
    }
    j.in_call = Some(Instant::now());
    j.ws = Some(ws);
    j
}

async fn join_plain(ctx: &Ctx, room: u32, started: Instant) -> Joining {
    let mut j = Joining::default();
    let frame = serde_json::json!({"type": "join", "room": format!("r{room}")}).to_string();
    let (ws, answer) =
        match connect_and_join(ctx, started, started + JOIN_TIMEOUT, frame, &mut j).await {
            Ok(x) => x,
            Err((class, detail)) => return j.fail(class, detail),
        };
    if answer["type"] != "joined" {
        return j.fail("unexpected answer", answer.to_string());
    }
    j.in_call = Some(Instant::now());
    j.ws = Some(ws);
    j
}

// ---- in the room ------------------------------------------------------------------------------

/// A relay message: an ICE candidate whose foundation carries the send time (microseconds since
/// this worker's epoch). The same bytes go to both targets: the baseline relays them as they are,
/// the signaling server relays the candidate with `from` instead of `to`.
fn relay_frame(to: &str, ts: u64) -> String {
    format!(
        r#"{{"v":1,"type":"ice-candidate","to":"{to}","candidate":"candidate:{ts} 1 udp 2122260223 192.0.2.10 54321 typ host generation 0 ufrag bNch network-id 1","sdp_mid":"0","sdp_m_line_index":0}}"#
    )
}

/// The send time in a relayed candidate, if the frame is one.
fn relay_timestamp(frame: &str) -> Option<u64> {
    let at = frame.find("candidate:")? + "candidate:".len();
    let digits: &str = &frame[at..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

async fn in_room(ctx: &Ctx, mut ws: Ws, peer: String, mut rx: mpsc::UnboundedReceiver<PeerCmd>) {
    let shared = &ctx.shared;
    shared.connected.fetch_add(1, Ordering::Relaxed);
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(PeerCmd::Send) => {
                    let frame = relay_frame(&peer, shared.now_us());
                    if ws.send(Message::text(frame)).await.is_err() {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                }
                Some(PeerCmd::Close) | None => {
                    let _ = ws.close(None).await;
                    // Read to the target's close frame, so the close handshake completes.
                    let _ = tokio::time::timeout(Duration::from_secs(5), async {
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                    break;
                }
            },
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let t = t.as_str();
                    if let Some(ts) = relay_timestamp(t) {
                        let now = shared.now_us();
                        lock(&shared.relay).saturating_record(now.saturating_sub(ts).max(1));
                        shared.received.fetch_add(1, Ordering::Relaxed);
                        shared.last_received.fetch_max(now, Ordering::Relaxed);
                    } else if t.contains(r#""type":"error""#) {
                        let code = serde_json::from_str::<Value>(t)
                            .ok()
                            .and_then(|v| v["code"].as_str().map(str::to_string))
                            .unwrap_or_else(|| "?".into());
                        shared.error(format!("error {code}"), t);
                    }
                }
                Some(Ok(Message::Close(c))) => {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                    shared.error("closed by the target".into(), &format!("{c:?}"));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                    shared.error("socket error".into(), &e.to_string());
                    break;
                }
                None => {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
    shared.connected.fetch_sub(1, Ordering::Relaxed);
}

async fn relay(
    ctx: &Ctx,
    peers: &[mpsc::UnboundedSender<PeerCmd>],
    rate: f64,
    secs: f64,
    start_unix_us: u64,
) -> Result<RelayReport> {
    let shared = &ctx.shared;
    let start = instant_at(start_unix_us);
    lock(&shared.relay).reset();
    lock(&shared.errors).clear();
    lock(&shared.error_samples).clear();
    shared.sent.store(0, Ordering::Relaxed);
    shared.received.store(0, Ordering::Relaxed);
    let dropped_before = shared.dropped.load(Ordering::Relaxed);
    let total = if peers.is_empty() {
        0
    } else {
        (rate * secs).round() as u64
    };
    tokio::time::sleep_until(start.into()).await;
    let start_us = shared.now_us();
    shared.last_received.store(0, Ordering::Relaxed);
    // Round robin over the participants: each sends rate / participants messages per second,
    // far below the server's per-participant rate limit, and both sides of every room talk.
    let mut scheduled: u64 = 0;
    let mut next = 0usize;
    while scheduled < total {
        let due = ((start.elapsed().as_secs_f64() * rate) as u64).min(total);
        while scheduled < due {
            let _ = peers[next].send(PeerCmd::Send);
            next = (next + 1) % peers.len();
            scheduled += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let drain_until = Instant::now() + DRAIN;
    while shared.received.load(Ordering::Relaxed) < shared.sent.load(Ordering::Relaxed)
        && Instant::now() < drain_until
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(RelayReport {
        scheduled,
        sent: shared.sent.load(Ordering::Relaxed),
        received: shared.received.load(Ordering::Relaxed),
        latency: HistData::from_histogram(&lock(&shared.relay)),
        errors: lock(&shared.errors).clone(),
        error_samples: lock(&shared.error_samples).clone(),
        dropped: shared.dropped.load(Ordering::Relaxed) - dropped_before,
        span_us: shared
            .last_received
            .load(Ordering::Relaxed)
            .saturating_sub(start_us),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_send_time_survives_the_relay_frame() {
        let frame = relay_frame("p7", 123_456_789);
        assert_eq!(relay_timestamp(&frame), Some(123_456_789));
        // The signaling server's relayed form names `from` instead of `to`.
        let relayed = frame.replace(r#""to":"p7""#, r#""from":"c7""#);
        assert_eq!(relay_timestamp(&relayed), Some(123_456_789));
        assert_eq!(relay_timestamp(r#"{"type":"pong"}"#), None);
    }
}
