// One call: the signaling socket (signaling/PROTOCOL.md, version 1), a peer connection per other
// participant, and reconnection. Negotiation follows the "perfect negotiation" pattern: either
// side may offer at any time; on a collision the polite side (the larger participant id) yields,
// so glare never wedges a call. A dropped socket is retried with backoff and a fresh join token,
// resuming the same place in the room; then every peer connection restarts ICE.

import { post } from '../api.js';

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];

/** The session id of an SDP's origin line (`o=- <id> <version> ...`): one per RTCPeerConnection. */
const sessionId = (sdp) => { const m = /^o=\S+ (\S+) /m.exec(sdp || ''); return m ? m[1] : null; };

export class Room extends EventTarget {
  /** `token`: a guest's join token from their invitation (a guest has no account to ask the
   * API for one); it lasts the call's window and is used for every reconnection. */
  constructor(consultationId, localStream, { token = null } = {}) {
    super();
    this.id = consultationId;
    this.fixedToken = token;
    this.local = localStream;
    this.peers = new Map();
    this.session = null;
    /** Our participant id (`p7`, `c12`); `me` is the whole participant object. */
    this.you = null;
    this.me = null;
    this.iceServers = [];
    this.admitted = false;
    this.closed = false;
    this.attempt = 0;
    this.audioOnly = false;
    this.ws = null;
    this.pingTimer = null;
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  async connect() {
    let grant;
    try {
      grant = this.fixedToken ? { token: this.fixedToken, url: '/signaling' } : await post(`/consultations/${this.id}/join-token`);
    } catch (e) {
      // Too early: the API says when the call opens; wait for it here and join then.
      if (e.code === 'too_early' && e.details && e.details.opens_at) {
        const wait = Math.max(1000, new Date(e.details.opens_at).getTime() - Date.now() + 1000);
        this.emit('too-early', { opens_at: e.details.opens_at });
        clearTimeout(this.earlyTimer);
        this.earlyTimer = setTimeout(() => { if (!this.closed) this.connect(); }, Math.min(wait, 2 ** 31 - 1));
        return;
      }
      // Any other refusal by the API (too late, not yours) will not change by retrying.
      if (e.status && e.status < 500 && e.status !== 429) { this.emit('fatal', { code: e.code, message: e.message }); this.closed = true; return; }
      this.retry();
      return;
    }
    if (this.closed) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}${grant.url || '/signaling'}`);
    this.ws = ws;
    ws.onopen = () => {
      const join = { v: 1, type: 'join', token: grant.token };
      if (this.session) join.resume = this.session;
      ws.send(JSON.stringify(join));
      clearInterval(this.pingTimer);
      let nonce = 0;
      this.pingTimer = setInterval(() => this.send({ type: 'ping', nonce: ++nonce }), 15000);
    };
    ws.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      this.onMessage(m).catch((err) => console.warn('signaling message failed', m.type, err));
    };
    ws.onclose = () => {
      if (ws !== this.ws) return;
      clearInterval(this.pingTimer);
      if (!this.closed) this.retry();
    };
  }

  retry() {
    this.emit('reconnecting', { attempt: this.attempt });
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    setTimeout(() => { if (!this.closed) this.connect(); }, base + Math.random() * base * 0.3);
  }

  send(m) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ v: 1, ...m }));
  }

  async onMessage(m) {
    switch (m.type) {
      case 'waiting':
        // Back in the waiting room after being in the call: the server lost the room (it
        // restarted) and we joined it anew. The old media goes, so the page never shows the
        // waiting room above a call that is no longer one.
        const reset = this.admitted;
        if (reset) {
          this.admitted = false;
          for (const id of [...this.peers.keys()]) { this.dropPeer(id); this.emit('left', { participant: id, reason: 'reset' }); }
        }
        this.you = m.you.id;
        this.me = m.you;
        this.session = m.session;
        this.attempt = 0;
        this.emit('waiting', m);
        if (reset) this.emit('reset', m);
        this.sendMediaState();
        break;
      case 'joined': {
        const resumed = this.admitted;
        this.you = m.you.id;
        this.me = m.you;
        this.session = m.session;
        this.iceServers = m.ice_servers || [];
        this.admitted = true;
        this.attempt = 0;
        if (m.resumed) this.resumes = (this.resumes || 0) + 1;
        // Whoever we had a call with but the room does not list (a fresh room after the server
        // restarted: they wait to be admitted again, or have gone) leaves the screen.
        const present = new Set(m.participants.map((p) => p.id));
        for (const id of [...this.peers.keys()]) {
          if (!present.has(id)) { this.dropPeer(id); this.emit('left', { participant: id, reason: 'reset' }); }
        }
        this.emit('joined', m);
        this.sendMediaState();
        for (const p of m.participants) this.emit('participant', p);
        for (const w of m.waiting || []) this.emit('waiting-add', w);
        // The newcomer (or the one coming back) offers; on resume, with fresh ICE credentials.
        for (const p of m.participants) {
          const existing = this.peers.get(p.id);
          if (existing && (resumed || m.resumed)) existing.pc.restartIce();
          else if (!existing) this.peer(p.id, true);
        }
        break;
      }
      case 'participant-waiting': this.emit('waiting-add', m.participant); break;
      case 'waiting-left': this.emit('waiting-remove', m); break;
      case 'participant-joined': this.emit('participant', m.participant); break;
      case 'participant-left': this.dropPeer(m.participant); this.emit('left', m); break;
      case 'participant-reconnecting': this.emit('peer-state', { id: m.participant, state: 'reconnecting' }); break;
      case 'participant-reconnected': this.emit('peer-state', { id: m.participant, state: 'connected' }); break;
      case 'offer': case 'answer': await this.onDescription(m.from, m.type, m.sdp); break;
      case 'ice-candidate': {
        const p = this.peers.get(m.from);
        if (!p) break;
        try {
          await p.pc.addIceCandidate({ candidate: m.candidate, sdpMid: m.sdp_mid, sdpMLineIndex: m.sdp_m_line_index });
        } catch (e) { if (!p.ignoreOffer) console.warn('candidate refused', e); }
        break;
      }
      case 'end-of-candidates': break;
      case 'ice-restart': { const p = this.peers.get(m.from); if (p) p.pc.restartIce(); break; }
      case 'chat': this.emit('chat', m); break;
      case 'media-state': this.emit('media-state', m); break;
      case 'running-late': this.emit('running-late', m); break;
      case 'denied': case 'removed': case 'room-closed': case 'access-revoked':
        this.closed = true;
        this.emit('ended', { why: m.type === 'room-closed' ? `closed_${m.reason}` : m.type === 'access-revoked' ? `revoked_${m.reason}` : m.type });
        break;
      case 'error':
        // The socket closes; the retry fetches a fresh token, which the API refuses if the
        // consultation no longer includes us (then the call ends there).
        // A guest's token is all they have: when it no longer admits, the call is over for them.
        if ((m.code === 'token_expired' || m.code === 'token_revoked') && !this.fixedToken) break;
        if (['token_invalid', 'token_expired', 'token_revoked', 'too_early', 'too_late', 'room_closed', 'room_full', 'replaced'].includes(m.code)) {
          this.closed = true;
          this.emit('fatal', m);
        } else this.emit('protocol-error', m);
        break;
      default: break;
    }
  }

  /** The connection to `id`, made on first need; `initiator` adds our tracks at once (so it offers). */
  peer(id, initiator = false) {
    let p = this.peers.get(id);
    if (p) return p;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    p = { id, pc, polite: this.you > id, makingOffer: false, ignoreOffer: false, stream: new MediaStream(), tracksAdded: false };
    this.peers.set(id, p);
    pc.ontrack = (e) => {
      p.stream.addTrack(e.track);
      e.track.onended = () => p.stream.removeTrack(e.track);
      this.emit('remote-stream', { id, stream: p.stream });
    };
    pc.onicecandidate = (e) => {
      if (e.candidate) this.send({ type: 'ice-candidate', to: id, candidate: e.candidate.candidate, sdp_mid: e.candidate.sdpMid, sdp_m_line_index: e.candidate.sdpMLineIndex });
      else this.send({ type: 'end-of-candidates', to: id });
    };
    pc.onnegotiationneeded = async () => {
      try {
        p.makingOffer = true;
        await pc.setLocalDescription();
        this.send({ type: 'offer', to: id, sdp: pc.localDescription.sdp });
      } catch (e) {
        console.warn('offer failed', e);
      } finally {
        p.makingOffer = false;
      }
    };
    pc.oniceconnectionstatechange = () => {
      const st = pc.iceConnectionState;
      if (st === 'failed') pc.restartIce();
      this.emit('peer-state', { id, state: st === 'disconnected' || st === 'failed' ? 'reconnecting' : st === 'connected' || st === 'completed' ? 'connected' : 'connecting' });
    };
    if (initiator) this.addTracks(p);
    return p;
  }

  addTracks(p) {
    if (p.tracksAdded || !this.local) return;
    p.tracksAdded = true;
    for (const track of this.local.getTracks()) {
      const sender = p.pc.addTrack(track, this.local);
      if (track.kind === 'video' && this.audioOnly) sender.replaceTrack(null);
    }
  }

  async onDescription(from, type, sdp) {
    // An offer from a new session (the peer reloaded its page or switched device and came back
    // in the same place) cannot renegotiate the old connection: start a fresh one.
    const old = this.peers.get(from);
    if (type === 'offer' && old && old.pc.remoteDescription && sessionId(old.pc.remoteDescription.sdp) !== sessionId(sdp)) this.dropPeer(from);
    const p = this.peer(from, false);
    const collision = type === 'offer' && (p.makingOffer || p.pc.signalingState !== 'stable');
    p.ignoreOffer = !p.polite && collision;
    if (p.ignoreOffer) return;
    await p.pc.setRemoteDescription({ type, sdp });
    if (type === 'offer') {
      // Added after the remote offer so our tracks ride on the transceivers it created.
      this.addTracks(p);
      await p.pc.setLocalDescription();
      this.send({ type: 'answer', to: from, sdp: p.pc.localDescription.sdp });
    }
  }

  dropPeer(id) {
    const p = this.peers.get(id);
    if (!p) return;
    p.pc.close();
    this.peers.delete(id);
  }

  admit(id) { this.send({ type: 'admit', participant: id }); }
  deny(id) { this.send({ type: 'deny', participant: id }); }
  chat(text) { this.send({ type: 'chat', text }); }

  setMuted(muted) { for (const tr of this.local ? this.local.getAudioTracks() : []) tr.enabled = !muted; this.muted = muted; this.sendMediaState(); }
  setCameraOff(off) { for (const tr of this.local ? this.local.getVideoTracks() : []) tr.enabled = !off; this.cameraOff = off; this.sendMediaState(); }

  /** Swaps our microphone or camera for `track` (another device) in every connection, keeping
   * mute, camera off and audio only as they are. */
  replaceTrack(track) {
    const kind = track.kind;
    if (!this.local) this.local = new MediaStream();
    for (const old of this.local.getTracks().filter((x) => x.kind === kind)) { this.local.removeTrack(old); old.stop(); }
    this.local.addTrack(track);
    track.enabled = kind === 'audio' ? !this.muted : !this.cameraOff;
    for (const p of this.peers.values()) {
      const tr = p.pc.getTransceivers().find((x) => !x.stopped && x.receiver.track.kind === kind);
      if (!tr) continue;
      tr.sender.replaceTrack(kind === 'video' && this.audioOnly ? null : track);
    }
  }

  /** Audio only: stop sending video and ask peers to stop sending theirs (transceivers inactive). */
  setAudioOnly(on) {
    this.audioOnly = on;
    const video = this.local && this.local.getVideoTracks()[0];
    for (const p of this.peers.values()) {
      for (const tr of p.pc.getTransceivers()) {
        if (tr.receiver.track.kind !== 'video' || tr.stopped) continue;
        tr.sender.replaceTrack(on ? null : video || null);
        tr.direction = on ? 'inactive' : 'sendrecv';
      }
    }
    this.sendMediaState();
  }

  sendMediaState() { this.send({ type: 'media-state', muted: !!this.muted, camera_off: !!this.cameraOff, audio_only: !!this.audioOnly }); }

  /** Per peer: packet loss (0..1) and round-trip time (s) since the last call, and video decoded. */
  async quality() {
    const out = [];
    for (const p of this.peers.values()) {
      const stats = await p.pc.getStats();
      let lost = 0; let received = 0; let rtt = null; let framesDecoded = 0; let bytes = 0;
      stats.forEach((r) => {
        if (r.type === 'inbound-rtp') {
          lost += r.packetsLost || 0; received += r.packetsReceived || 0; bytes += r.bytesReceived || 0;
          if (r.kind === 'video') framesDecoded += r.framesDecoded || 0;
        }
        if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded' && r.currentRoundTripTime !== undefined) rtt = r.currentRoundTripTime;
      });
      const prev = p.lastStats || { lost: 0, received: 0 };
      const dl = lost - prev.lost;
      const dr = received - prev.received;
      p.lastStats = { lost, received };
      out.push({ id: p.id, loss: dl + dr > 0 ? Math.max(0, dl) / (dl + dr) : 0, rtt, framesDecoded, bytes, ice: p.pc.iceConnectionState });
    }
    return out;
  }

  /** Per peer, from getStats: inbound video frames decoded and bytes received. */
  async videoStats() {
    const out = [];
    for (const p of this.peers.values()) {
      let framesDecoded = 0; let bytes = 0;
      (await p.pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') { framesDecoded += r.framesDecoded || 0; bytes += r.bytesReceived || 0; }
      });
      out.push({ id: p.id, framesDecoded, bytes, ice: p.pc.iceConnectionState });
    }
    return out;
  }

  leave() {
    this.closed = true;
    clearInterval(this.pingTimer);
    clearTimeout(this.earlyTimer);
    this.send({ type: 'leave' });
    for (const id of [...this.peers.keys()]) this.dropPeer(id);
    if (this.ws) this.ws.close(1000);
  }
}
