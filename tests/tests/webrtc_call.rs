//! End to end with real WebRTC: a patient and a clinician, each a peer connection of the `webrtc`
//! crate, get join tokens from the API, meet through the signaling server (waiting room, admit),
//! negotiate with trickle ICE relayed by the server and talk over a data channel. Then the
//! patient's socket is cut without a close frame; the patient comes back with a fresh token,
//! resumes its place, restarts ICE over the server, and the same data channel carries messages
//! again.
//!
//! Session descriptions are sent without their `a=candidate` lines: every candidate goes through
//! the server as an `ice-candidate` message, so a relay that lost or misaddressed one would show.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use telehealth_tests::{Cast, TestApp, both_engines};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceCandidateInit,
    RTCIceConnectionState, RTCIceGatheringState, RTCPeerConnectionIceEvent, RTCSessionDescription,
    SettingEngineBuilder,
};

/// Long enough that only a broken run reaches it, on a busy machine too.
const WAIT: Duration = Duration::from_secs(20);

/// A fresh join token for `who`, from the API.
async fn join_token(who: &TestApp, consultation: i64) -> Value {
    let reply = who
        .post(
            &format!("/api/v1/consultations/{consultation}/join-token"),
            json!({}),
        )
        .await
        .expect(201);
    assert!(reply.body["token"].is_string(), "{}", reply.text);
    assert_eq!(reply.body["url"], "/signaling", "{}", reply.text);
    reply.body
}

fn ufrag(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .unwrap_or_else(|| panic!("no ice-ufrag in {sdp}"))
        .to_string()
}

/// The description without candidates: those travel one by one through the server.
fn without_candidates(sdp: &str) -> String {
    let mut out = String::new();
    for line in sdp.split_inclusive('\n') {
        let attr = line.trim_end();
        if !attr.starts_with("a=candidate:") && attr != "a=end-of-candidates" {
            out.push_str(line);
        }
    }
    out
}

/// What goes to the signaling server, in order. While a description is being set, the
/// candidates it starts gathering are held back, so that the description itself leaves first
/// (a candidate must not reach the peer before the description it belongs to). While the socket
/// is down everything waits for the next one.
#[derive(Default)]
struct Outbox {
    peer: Option<String>,
    socket: Option<mpsc::UnboundedSender<Value>>,
    holding: bool,
    queue: Vec<Value>,
    /// The `candidate` of every local candidate sent, in order.
    candidates_sent: Vec<String>,
}

impl Outbox {
    fn push(&mut self, message: Value) {
        self.queue.push(message);
        self.flush();
    }

    fn flush(&mut self) {
        if self.holding {
            return;
        }
        if let Some(socket) = &self.socket {
            for message in self.queue.drain(..) {
                if socket.send(message).is_err() {
                    break;
                }
            }
        }
    }

    fn peer(&self) -> String {
        self.peer
            .clone()
            .expect("the peer is known before ICE starts")
    }

    /// Sends `description` ahead of anything held back, and stops holding.
    fn release_with(&mut self, description: Value) {
        self.queue.insert(0, description);
        self.holding = false;
        self.flush();
    }
}

type SharedOutbox = Arc<Mutex<Outbox>>;

fn lock(outbox: &SharedOutbox) -> std::sync::MutexGuard<'_, Outbox> {
    outbox.lock().expect("outbox lock")
}

/// The peer connection's events: local candidates go out through the server as they appear.
struct Glue {
    outbox: SharedOutbox,
    channels: mpsc::UnboundedSender<Arc<dyn DataChannel>>,
    ice_states: mpsc::UnboundedSender<RTCIceConnectionState>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Glue {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let init = event
            .candidate
            .to_json()
            .expect("a gathered candidate serialises");
        let mut outbox = lock(&self.outbox);
        let message = json!({"v": 1, "type": "ice-candidate", "to": outbox.peer(),
            "candidate": &init.candidate, "sdp_mid": init.sdp_mid,
            "sdp_m_line_index": init.sdp_mline_index});
        outbox.candidates_sent.push(init.candidate);
        outbox.push(message);
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let mut outbox = lock(&self.outbox);
            let message = json!({"v": 1, "type": "end-of-candidates", "to": outbox.peer()});
            outbox.push(message);
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        let _ = self.ice_states.send(state);
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let _ = self.channels.send(channel);
    }
}

/// One participant: a peer connection, its current signaling socket (run by a task that answers
/// offers and adds candidates by itself and passes every server message on), and its data
/// channel's traffic.
struct Side {
    name: &'static str,
    api: TestApp,
    pc: Arc<dyn PeerConnection>,
    outbox: SharedOutbox,
    /// Server messages, after the socket task has acted on them.
    events: mpsc::UnboundedReceiver<Value>,
    events_tx: mpsc::UnboundedSender<Value>,
    socket_task: Option<tokio::task::JoinHandle<()>>,
    candidates_added: Arc<AtomicUsize>,
    channels: mpsc::UnboundedReceiver<Arc<dyn DataChannel>>,
    ice_states: mpsc::UnboundedReceiver<RTCIceConnectionState>,
    channel: Option<Arc<dyn DataChannel>>,
    opened: Option<mpsc::UnboundedReceiver<()>>,
    received: Option<mpsc::UnboundedReceiver<String>>,
}

impl Side {
    async fn new(name: &'static str, api: TestApp) -> Side {
        let outbox: SharedOutbox = Arc::default();
        let (channels_tx, channels) = mpsc::unbounded_channel();
        let (ice_tx, ice_states) = mpsc::unbounded_channel();
        let glue = Glue {
            outbox: outbox.clone(),
            channels: channels_tx,
            ice_states: ice_tx,
        };
        // By default this crate keeps its sockets and local candidates across an ICE restart and
        // announces them again only inside the new description, never to `on_ice_candidate`.
        // Discarding them makes a restart rebind (fresh ports) and gather anew, as after a
        // change of network: the new candidates then have to trickle through the server, and
        // the old path is gone, so messages after the restart prove the new ICE session works.
        let settings = SettingEngineBuilder::new()
            .with_discard_local_candidates_during_ice_restart(true)
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_setting_engine(settings)
            .with_handler(Arc::new(glue))
            .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
            .build()
            .await
            .expect("peer connection");
        let (events_tx, events) = mpsc::unbounded_channel();
        Side {
            name,
            api,
            pc: Arc::new(pc),
            outbox,
            events,
            events_tx,
            socket_task: None,
            candidates_added: Arc::default(),
            channels,
            ice_states,
            channel: None,
            opened: None,
            received: None,
        }
    }

    /// Opens a signaling socket and sends `join` with a fresh token from the API.
    async fn join(&mut self, consultation: i64, resume: Option<&str>) -> Value {
        let grant = join_token(&self.api, consultation).await;
        let stream = TcpStream::connect(self.api.addr())
            .await
            .expect("TCP connect");
        let url = format!(
            "ws://{}{}",
            self.api.addr(),
            grant["url"].as_str().expect("url")
        );
        let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .expect("WebSocket handshake");
        let mut join = json!({"v": 1, "type": "join", "token": grant["token"]});
        if let Some(session) = resume {
            join["resume"] = json!(session);
        }
        ws.send(Message::text(join.to_string()))
            .await
            .expect("send join");
        let (socket_tx, socket_rx) = mpsc::unbounded_channel();
        {
            let mut outbox = lock(&self.outbox);
            outbox.socket = Some(socket_tx);
            outbox.flush();
        }
        self.socket_task = Some(tokio::spawn(run_socket(
            self.name,
            ws,
            socket_rx,
            self.pc.clone(),
            self.outbox.clone(),
            self.events_tx.clone(),
            self.candidates_added.clone(),
        )));
        grant
    }

    /// Cuts the socket: no close frame, no `leave`, as when a train enters a tunnel.
    fn cut(&mut self) {
        {
            // What was not yet written is lost with the socket, as it would be for a browser.
            let mut outbox = lock(&self.outbox);
            outbox.socket = None;
            outbox.queue.clear();
        }
        if let Some(task) = self.socket_task.take() {
            task.abort();
        }
    }

    fn send(&self, message: Value) {
        let outbox = lock(&self.outbox);
        outbox
            .socket
            .as_ref()
            .expect("a socket")
            .send(message)
            .expect("socket task running");
    }

    fn candidates_sent(&self) -> Vec<String> {
        lock(&self.outbox).candidates_sent.clone()
    }

    /// Forgets the ICE states reported so far.
    fn forget_ice_states(&mut self) {
        while let Ok(state) = self.ice_states.try_recv() {
            eprintln!("{}: ICE was {state}", self.name);
        }
    }

    fn set_peer(&self, peer: &str) {
        lock(&self.outbox).peer = Some(peer.to_string());
    }

    /// The next server message of type `kind`, skipping others; an `error` fails the test.
    async fn until(&mut self, kind: &str) -> Value {
        self.until_any(&[kind]).await
    }

    async fn until_any(&mut self, kinds: &[&str]) -> Value {
        let name = self.name;
        let events = &mut self.events;
        tokio::time::timeout(WAIT, async {
            loop {
                let m = events.recv().await.expect("socket task alive");
                let t = m["type"].as_str().unwrap_or_default();
                assert!(
                    t != "error" && t != "test-failure",
                    "{name} got {m} while waiting for {kinds:?}"
                );
                if kinds.contains(&t) {
                    return m;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{name}: no {kinds:?} within {WAIT:?}"))
    }

    /// Sends an offer (an ICE restart if `restart`) through the server; returns its SDP.
    async fn offer(&self, restart: bool) -> String {
        lock(&self.outbox).holding = true;
        if restart {
            self.pc.restart_ice().await.expect("restart_ice");
        }
        let offer = self.pc.create_offer(None).await.expect("create_offer");
        self.pc
            .set_local_description(offer.clone())
            .await
            .expect("set local offer");
        let mut outbox = lock(&self.outbox);
        let message = json!({"v": 1, "type": "offer", "to": outbox.peer(),
            "sdp": without_candidates(&offer.sdp)});
        outbox.release_with(message);
        offer.sdp
    }

    /// Starts reading the data channel `channel`.
    fn watch(&mut self, channel: Arc<dyn DataChannel>) {
        let (open_tx, open_rx) = mpsc::unbounded_channel();
        let (msg_tx, msg_rx) = mpsc::unbounded_channel();
        let reader = channel.clone();
        tokio::spawn(async move {
            while let Some(event) = reader.poll().await {
                match event {
                    DataChannelEvent::OnOpen => {
                        let _ = open_tx.send(());
                    }
                    DataChannelEvent::OnMessage(m) => {
                        let _ = msg_tx.send(String::from_utf8_lossy(&m.data).into_owned());
                    }
                    DataChannelEvent::OnClose => break,
                    _ => {}
                }
            }
        });
        self.channel = Some(channel);
        self.opened = Some(open_rx);
        self.received = Some(msg_rx);
    }

    async fn create_channel(&mut self, label: &str) {
        let channel = self
            .pc
            .create_data_channel(label, None)
            .await
            .expect("create_data_channel");
        self.watch(channel);
    }

    /// Waits for the channel the other side opened.
    async fn accept_channel(&mut self) -> String {
        let channel = tokio::time::timeout(WAIT, self.channels.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: no data channel within {WAIT:?}", self.name))
            .expect("handler alive");
        let label = channel.label().await.expect("label");
        self.watch(channel);
        label
    }

    async fn wait_open(&mut self) {
        let opened = self.opened.as_mut().expect("a data channel");
        tokio::time::timeout(WAIT, opened.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: data channel not open within {WAIT:?}", self.name))
            .expect("reader alive");
    }

    async fn say(&self, text: &str) {
        self.channel
            .as_ref()
            .expect("a data channel")
            .send_text(text)
            .await
            .expect("send_text");
    }

    async fn hear(&mut self) -> String {
        let received = self.received.as_mut().expect("a data channel");
        tokio::time::timeout(WAIT, received.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: no data-channel message within {WAIT:?}", self.name))
            .expect("reader alive")
    }

    /// Waits until ICE reports `state` (states seen before are skipped).
    async fn until_ice(&mut self, state: RTCIceConnectionState) {
        let name = self.name;
        let states = &mut self.ice_states;
        tokio::time::timeout(WAIT, async {
            while let Some(s) = states.recv().await {
                eprintln!("{name}: ICE {s}");
                assert_ne!(s, RTCIceConnectionState::Failed, "{name}: ICE failed");
                if s == state {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{name}: ICE not {state} within {WAIT:?}"));
    }
}

/// Runs one signaling socket: sends what the outbox hands it, answers offers, applies answers
/// and candidates, and passes every message on to the test.
async fn run_socket(
    name: &'static str,
    mut ws: WebSocketStream<TcpStream>,
    mut outgoing: mpsc::UnboundedReceiver<Value>,
    pc: Arc<dyn PeerConnection>,
    outbox: SharedOutbox,
    events: mpsc::UnboundedSender<Value>,
    candidates_added: Arc<AtomicUsize>,
) {
    loop {
        tokio::select! {
            out = outgoing.recv() => {
                let Some(out) = out else { break };
                if ws.send(Message::text(out.to_string())).await.is_err() {
                    break;
                }
            }
            incoming = ws.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.map(|f| u16::from(f.code));
                        let _ = events.send(json!({"type": "socket-closed", "code": code}));
                        break;
                    }
                    Some(Ok(_)) => continue,
                    None | Some(Err(_)) => {
                        let _ = events.send(json!({"type": "socket-closed"}));
                        break;
                    }
                };
                let message: Value = match serde_json::from_str(text.as_str()) {
                    Ok(m) => m,
                    Err(e) => {
                        let _ = events.send(json!({"type": "test-failure", "message": format!("{name}: not JSON ({e}): {text}")}));
                        continue;
                    }
                };
                if let Err(e) = act(&pc, &outbox, &message, &candidates_added).await {
                    let _ = events.send(json!({"type": "test-failure", "message": format!("{name}: {e} on {message}")}));
                }
                let _ = events.send(message);
            }
        }
    }
}

/// The WebRTC side of a relayed message.
async fn act(
    pc: &Arc<dyn PeerConnection>,
    outbox: &SharedOutbox,
    message: &Value,
    candidates_added: &AtomicUsize,
) -> Result<(), String> {
    let sdp = || message["sdp"].as_str().map(str::to_string).ok_or("no sdp");
    match message["type"].as_str().unwrap_or_default() {
        "offer" => {
            lock(outbox).holding = true;
            let offer = RTCSessionDescription::offer(sdp()?).map_err(|e| e.to_string())?;
            pc.set_remote_description(offer)
                .await
                .map_err(|e| format!("set remote offer: {e}"))?;
            let answer = pc.create_answer(None).await.map_err(|e| e.to_string())?;
            pc.set_local_description(answer.clone())
                .await
                .map_err(|e| format!("set local answer: {e}"))?;
            let mut outbox = lock(outbox);
            let reply = json!({"v": 1, "type": "answer", "to": message["from"],
                "sdp": without_candidates(&answer.sdp)});
            outbox.release_with(reply);
        }
        "answer" => {
            let answer = RTCSessionDescription::answer(sdp()?).map_err(|e| e.to_string())?;
            pc.set_remote_description(answer)
                .await
                .map_err(|e| format!("set remote answer: {e}"))?;
        }
        "ice-candidate" => {
            let init = RTCIceCandidateInit {
                candidate: message["candidate"]
                    .as_str()
                    .ok_or("no candidate")?
                    .to_string(),
                sdp_mid: message["sdp_mid"].as_str().map(str::to_string),
                sdp_mline_index: message["sdp_m_line_index"]
                    .as_u64()
                    .and_then(|i| u16::try_from(i).ok()),
                ..Default::default()
            };
            pc.add_ice_candidate(init)
                .await
                .map_err(|e| format!("add_ice_candidate: {e}"))?;
            candidates_added.fetch_add(1, Ordering::SeqCst);
        }
        _ => {}
    }
    Ok(())
}

both_engines!(call_survives_a_dropped_socket, |app: TestApp| async move {
    let cast = Cast::create(&app).await;
    let consultation = cast.book_now(&app).await;
    let clinician_api = app
        .as_new_user("bs.an", &[("clinician", None)], None, Some(cast.specialist))
        .await;
    let patient_api = app
        .as_new_user("mai", &[("patient", None)], Some(cast.patient), None)
        .await;
    let clinician_id = format!("c{}", cast.specialist);
    let patient_id = format!("p{}", cast.patient);

    let mut clinician = Side::new("clinician", clinician_api).await;
    let mut patient = Side::new("patient", patient_api).await;

    // The clinician opens the room; the patient waits until admitted.
    let grant = clinician.join(consultation, None).await;
    assert_eq!(grant["participant"], clinician_id);
    let joined = clinician.until_any(&["joined", "waiting"]).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["you"]["id"], clinician_id);
    assert_eq!(joined["resumed"], false);

    let grant = patient.join(consultation, None).await;
    assert_eq!(grant["participant"], patient_id);
    let waiting = patient.until_any(&["joined", "waiting"]).await;
    assert_eq!(waiting["type"], "waiting", "{waiting}");
    assert_eq!(waiting["you"]["id"], patient_id);

    let knock = clinician.until("participant-waiting").await;
    assert_eq!(knock["participant"]["id"], patient_id);
    clinician.send(json!({"v": 1, "type": "admit", "participant": patient_id}));
    let admitted = patient.until("joined").await;
    assert_eq!(admitted["resumed"], false);
    let present: Vec<&Value> = admitted["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(present, [&json!(clinician_id)], "{admitted}");
    let session = admitted["session"]
        .as_str()
        .or(waiting["session"].as_str())
        .expect("a session to resume")
        .to_string();
    assert_eq!(
        clinician.until("participant-joined").await["participant"]["id"],
        patient_id
    );
    clinician.set_peer(&patient_id);
    patient.set_peer(&clinician_id);

    // The newcomer offers; candidates trickle both ways through the server.
    patient.create_channel("consultation").await;
    let first_offer = patient.offer(false).await;
    let answer = patient.until("answer").await;
    assert_eq!(answer["from"], clinician_id);
    let first_answer = answer["sdp"].as_str().expect("sdp").to_string();
    assert_eq!(clinician.accept_channel().await, "consultation");
    patient.wait_open().await;
    patient.until_ice(RTCIceConnectionState::Connected).await;
    assert!(patient.candidates_added.load(Ordering::SeqCst) > 0);
    assert!(clinician.candidates_added.load(Ordering::SeqCst) > 0);

    patient.say("Chào bác sĩ").await;
    assert_eq!(clinician.hear().await, "Chào bác sĩ");
    clinician.say("Chào chị Mai").await;
    assert_eq!(patient.hear().await, "Chào chị Mai");

    // The patient's network drops: the clinician is told, the place is kept.
    patient.cut();
    assert_eq!(
        clinician.until("participant-reconnecting").await["participant"],
        patient_id
    );

    // Back with a fresh token: straight into the call, not the waiting room.
    let before = (
        patient.candidates_added.load(Ordering::SeqCst),
        clinician.candidates_added.load(Ordering::SeqCst),
    );
    let old_candidates = [patient.candidates_sent(), clinician.candidates_sent()];
    patient.join(consultation, Some(&session)).await;
    let back = patient.until_any(&["joined", "waiting"]).await;
    assert_eq!(back["type"], "joined", "{back}");
    assert_eq!(back["resumed"], true, "{back}");
    assert_eq!(back["you"]["id"], patient_id);
    assert_eq!(
        clinician.until("participant-reconnected").await["participant"],
        patient_id
    );

    // ICE restart over the server: fresh credentials on both sides, candidates again.
    patient.forget_ice_states();
    clinician.forget_ice_states();
    let restart_offer = patient.offer(true).await;
    assert_ne!(ufrag(&restart_offer), ufrag(&first_offer));
    let answer = patient.until("answer").await;
    let restart_answer = answer["sdp"].as_str().expect("sdp");
    assert_ne!(ufrag(restart_answer), ufrag(&first_answer));
    patient.until_ice(RTCIceConnectionState::Connected).await;
    clinician.until_ice(RTCIceConnectionState::Connected).await;
    assert!(patient.candidates_added.load(Ordering::SeqCst) > before.0);
    assert!(clinician.candidates_added.load(Ordering::SeqCst) > before.1);
    // New sockets: the restarted generation's candidates name none of the old ones.
    for (side, old) in [&patient, &clinician].into_iter().zip(&old_candidates) {
        let all = side.candidates_sent();
        let new = &all[old.len()..];
        assert!(
            !new.is_empty(),
            "{}: no candidates after the restart",
            side.name
        );
        assert!(
            new.iter().all(|c| !old.contains(c)),
            "{}: old candidates {old:?}, after the restart {new:?}",
            side.name
        );
    }

    // The same data channel carries the conversation on: the clinician was offered no other.
    assert!(clinician.channels.try_recv().is_err());
    patient.say("Em nghe rõ rồi").await;
    assert_eq!(clinician.hear().await, "Em nghe rõ rồi");
    clinician.say("Tiếp tục nhé").await;
    assert_eq!(patient.hear().await, "Tiếp tục nhé");

    // Hang up first, so that no late candidate is sent to someone who has left (the server
    // would rightly refuse it); a ping answered proves the server has handled all before it.
    patient.pc.close().await.expect("close");
    clinician.pc.close().await.expect("close");
    for side in [&mut patient, &mut clinician] {
        side.send(json!({"v": 1, "type": "ping", "nonce": 7}));
        assert_eq!(side.until("pong").await["nonce"], 7);
    }

    // Leaving: the server says goodbye with a close frame (1000), and the clinician is told.
    patient.send(json!({"v": 1, "type": "leave"}));
    assert_eq!(patient.until("socket-closed").await["code"], 1000);
    let left = clinician.until("participant-left").await;
    assert_eq!(left["participant"], patient_id);
    assert_eq!(left["reason"], "left");
    clinician.send(json!({"v": 1, "type": "leave"}));
    assert_eq!(clinician.until("socket-closed").await["code"], 1000);
});
