// The call page: a device check (preview, microphone level, device choice, a clear message when
// permission is refused or there is no camera), then the waiting room or the call itself
// (remote video, self view, mute, camera off, audio only, a quality indicator, chat), the admit
// list for clinicians, the SOAP note beside the video for the specialist, and "reconnecting"
// while the network is away.

import { h, mount, field, select, toast } from '../dom.js';
import { t, fmtTime, fmtDateTime, localDate } from '../i18n.js';
import { get, post } from '../api.js';
import { navigate } from '../router.js';
import * as s from '../session.js';
import { acquire, listDevices, meter, stopStream, VIDEO } from '../call/devices.js';
import { Room } from '../call/room.js';
import { notePanel } from './note.js';
import { lifeCycle } from './consultation.js';
import { errorBox, zoneOf, errorText, qrFigure, linkBox } from './common.js';

const POOR_SAMPLES = 3;

/** What a guest's page knows of the visit: what their invitation's token says. */
function fromClaims(claims) {
  const opens = claims.opens_at * 1000;
  return { id: claims.consultation, start_at: new Date(opens + 15 * 60000).toISOString(), running_late_minutes: 0, guest: true };
}

/** The token of a guest's invitation (`/guest#<token>`): kept for this tab (a reload still works)
 * and taken out of the address bar; its claims, or null when it is not one. */
function guestToken() {
  if (location.hash.length > 1) {
    sessionStorage.setItem('telehealth.guest', location.hash.slice(1));
    history.replaceState(null, '', '/guest');
  }
  const token = sessionStorage.getItem('telehealth.guest');
  try {
    const [version, body] = token.split('.');
    if (version !== 'j1') return null;
    const bytes = Uint8Array.from(atob(body.replace(/-/g, '+').replace(/_/g, '/')), (ch) => ch.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims.role === 'guest' ? { token, claims } : null;
  } catch { return null; }
}

/** A guest (an interpreter, a family member) invited by the clinician: no account, the call only. */
export async function guestView(main) {
  const guest = guestToken();
  if (!guest) { mount(main, h('h1', {}, t('call.title')), h('p', { class: 'error', role: 'alert' }, t('guest.invalid'))); return undefined; }
  if (Date.now() / 1000 > guest.claims.closes_at) { mount(main, h('h1', {}, t('call.title')), h('p', { role: 'status' }, t('guest.over'))); return undefined; }
  return callView(main, { id: guest.claims.consultation }, guest);
}

export async function callView(main, { id }, guest = null) {
  let c;
  if (guest) c = fromClaims(guest.claims);
  else {
    try { c = await get(`/consultations/${encodeURIComponent(id)}`); } catch (e) { mount(main, h('h1', {}, t('call.title')), errorBox(e)); return undefined; }
  }
  const zone = guest ? 'Asia/Ho_Chi_Minh' : await zoneOf(c);
  const back = guest ? null : h('a', { href: `/consultations/${c.id}`, 'data-nav': true, class: 'button' }, t('common.back'));
  let stream = null;
  let stopMeter = () => {};
  let room = null;
  let qualityTimer = null;
  const cleanup = () => {
    clearInterval(qualityTimer); stopMeter(); if (room) room.leave(); stopStream(stream);
    document.body.classList.remove('in-call');
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  };

  // --- device check ------------------------------------------------------------------------
  const preview = h('video', { autoplay: true, muted: true, playsinline: true, class: 'preview', 'aria-label': t('device.preview') });
  const level = h('meter', { min: 0, max: 1, value: 0, 'aria-label': t('device.mic_level') });
  const problem = h('p', { class: 'error', role: 'alert' });
  const micSel = select({ name: 'mic' }, []);
  const camSel = select({ name: 'camera' }, []);
  const joinBtn = h('button', { type: 'button', class: 'primary', disabled: true, onclick: () => startCall() }, t('device.join'));

  async function check() {
    stopMeter();
    stopStream(stream);
    const r = await acquire({ audioId: micSel.value || undefined, videoId: camSel.value || undefined });
    stream = r.stream;
    problem.textContent = r.problem ? t(`device.${r.problem}`) : '';
    preview.srcObject = stream;
    preview.hidden = !stream || !stream.getVideoTracks().length;
    stopMeter = meter(stream, (v) => { level.value = v; });
    joinBtn.disabled = !stream && r.problem === 'insecure';
    if (stream) {
      try {
        const d = await listDevices();
        const fill = (sel, devs, cur, key) => mount(sel, devs.map((x, i) => h('option', { value: x.deviceId, selected: x.deviceId === cur }, x.label || t(key, { n: i + 1 }))));
        fill(micSel, d.audio, stream.getAudioTracks()[0] && stream.getAudioTracks()[0].getSettings().deviceId, 'device.mic_n');
        fill(camSel, d.video, stream.getVideoTracks()[0] && stream.getVideoTracks()[0].getSettings().deviceId, 'device.camera_n');
      } catch { /* device names are a convenience */ }
    }
    // Without camera and microphone one can still join to chat and listen.
    joinBtn.disabled = false;
  }
  micSel.addEventListener('change', check);
  camSel.addEventListener('change', check);

  mount(main, h('h1', {}, t('device.title')),
    h('p', { class: 'lead' }, t('device.lead', { time: fmtTime(c.start_at, zone) })),
    // Join comes right under the preview, above the fold of a small phone; the device choices
    // follow for whoever needs them.
    h('section', { class: 'card device' }, preview, problem, h('div', { class: 'row' }, joinBtn, back),
      field(t('device.mic_level'), level), field(t('device.microphone'), micSel), field(t('device.camera'), camSel)));
  await check();

  // --- the call ----------------------------------------------------------------------------
  async function startCall() {
    stopMeter();
    const clinician = !guest && s.isClinician();
    const banner = h('p', { class: 'banner', role: 'status', hidden: true });
    const offer = h('div', { class: 'banner warn', role: 'alert', hidden: true },
      h('span', {}, t('call.poor_offer')), ' ',
      h('button', { type: 'button', onclick: () => { setAudioOnly(true); offer.hidden = true; } }, t('call.switch_audio')));
    const stage = h('div', { class: 'stage' });
    const self = h('video', { autoplay: true, muted: true, playsinline: true, class: 'self', 'aria-label': t('call.self_view') });
    self.srcObject = stream;
    const qualityEl = h('span', { class: 'quality q-unknown', role: 'status', 'data-quality': 'unknown' }, t('quality.unknown'));
    const waitingList = h('ul', { class: 'list admit' });
    const nobody = h('p', { class: 'empty' }, t('call.nobody_waiting'));
    const waitingBox = h('section', { class: 'card', hidden: true, 'aria-labelledby': 'wait-h' }, h('h2', { id: 'wait-h' }, t('call.waiting_list')), waitingList, nobody);
    const countWaiting = () => { nobody.hidden = waitingList.children.length > 0; };
    const chatLog = h('ol', { class: 'chat-log', 'aria-live': 'polite' });
    const chatIn = h('input', { name: 'chat', maxlength: 2000, autocomplete: 'off' });
    // Each toggle says in its label what pressing it does now, and its state in aria-pressed.
    const toggle = (key) => h('button', { type: 'button', 'aria-pressed': 'false', 'data-control': key }, t(`call.${key}`));
    const setToggle = (btn, key, on) => { btn.setAttribute('aria-pressed', String(on)); btn.textContent = t(on ? `call.${key}_undo` : `call.${key}`); };
    const muteBtn = toggle('mute');
    const camBtn = toggle('camera_off');
    const audioBtn = toggle('audio_only');
    const fullBtn = toggle('fullscreen');
    // Another microphone or camera during the call (a headset plugged in, the back camera).
    const inMic = select({ name: 'call_mic' }, []);
    const inCam = select({ name: 'call_camera' }, []);
    const devices = h('details', { class: 'devices' }, h('summary', {}, t('call.devices')), field(t('device.microphone'), inMic), field(t('device.camera'), inCam));
    const fillDevices = async () => {
      try {
        const d = await listDevices();
        const cur = (kind) => { const tr = room && room.local && room.local.getTracks().find((x) => x.kind === kind); return tr && tr.getSettings().deviceId; };
        mount(inMic, d.audio.map((x, i) => h('option', { value: x.deviceId, selected: x.deviceId === cur('audio') }, x.label || t('device.mic_n', { n: i + 1 }))));
        mount(inCam, d.video.map((x, i) => h('option', { value: x.deviceId, selected: x.deviceId === cur('video') }, x.label || t('device.camera_n', { n: i + 1 }))));
      } catch { /* device names are a convenience */ }
    };
    const switchTo = async (kind, deviceId) => {
      try {
        const constraint = { deviceId: { exact: deviceId } };
        const got = await navigator.mediaDevices.getUserMedia(kind === 'audio' ? { audio: constraint } : { video: { ...VIDEO, ...constraint } });
        const track = kind === 'audio' ? got.getAudioTracks()[0] : got.getVideoTracks()[0];
        room.replaceTrack(track);
        stream = room.local;
        self.srcObject = stream;
        toast(t('call.device_switched'));
      } catch { toast(t('call.device_failed')); fillDevices(); }
    };
    inMic.addEventListener('change', () => switchTo('audio', inMic.value));
    inCam.addEventListener('change', () => switchTo('video', inCam.value));
    const myId = s.session.me && s.session.me.clinician_id;
    const runs = clinician && (s.isScheduler() || (myId && (c.clinician_id === myId || c.referring_clinician_id === myId)));
    // Leaving is one tap away from the controls: ask first, since coming back means waiting to
    // be admitted again. Whoever runs the visit is then offered to complete it.
    const leaveBtn = h('button', { type: 'button', class: 'danger', onclick: () => {
      if (!confirm(t(clinician ? 'call.leave_confirm_clinician' : 'call.leave_confirm'))) return;
      cleanup();
      if (guest) { mount(main, h('h1', {}, t('call.left')), h('p', { role: 'status' }, t('guest.left'))); return; }
      if (!runs) { navigate(`/consultations/${c.id}`); return; }
      mount(main, h('h1', {}, t('call.left')), lifeCycle({ ...c, status: 'in_progress' }, { after: () => navigate(`/consultations/${c.id}`, true) }),
        h('p', {}, h('a', { href: `/consultations/${c.id}`, 'data-nav': true, class: 'button' }, t('visit.not_yet'))));
    } }, t('call.leave'));
    const late = h('p', { class: 'late', 'data-late': c.running_late_minutes || 0, hidden: !c.running_late_minutes });
    const showLate = (m) => {
      late.dataset.late = m;
      late.hidden = !m;
      late.textContent = m ? t('late.waiting', { n: m, time: fmtTime(new Date(new Date(c.start_at).getTime() + m * 60000).toISOString(), zone) }) : '';
    };
    showLate(c.running_late_minutes || 0);
    const lobby = h('section', { class: 'card waiting-room', role: 'status' }, h('h2', {}, t('call.waiting_title')), h('p', {}, t('call.waiting_text')), late);
    const callBox = h('div', { class: 'call', hidden: true },
      h('div', { class: 'videos' }, stage, self),
      h('div', { class: 'controls', role: 'toolbar', 'aria-label': t('call.controls') }, muteBtn, camBtn, audioBtn, fullBtn, qualityEl, leaveBtn), devices);
    fullBtn.hidden = !(callBox.requestFullscreen && document.fullscreenEnabled);
    fullBtn.onclick = async () => {
      try {
        if (document.fullscreenElement) await document.exitFullscreen();
        else await callBox.requestFullscreen();
      } catch { /* refused by the browser: the call goes on as it was */ }
    };
    document.addEventListener('fullscreenchange', () => setToggle(fullBtn, 'fullscreen', document.fullscreenElement === callBox));
    const chatBox = h('section', { class: 'card chat', 'aria-labelledby': 'chat-h', hidden: true }, h('h2', { id: 'chat-h' }, t('call.chat')), chatLog,
      h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); const v = chatIn.value.trim(); if (v) { room.chat(v); chatIn.value = ''; } } },
        field(t('call.message'), chatIn), h('button', { type: 'submit' }, t('call.send'))));
    const side = h('aside', { class: 'side' }, waitingBox, chatBox);
    if (clinician && myId && (c.clinician_id === myId || c.referring_clinician_id === myId)) side.append(notePanel(c, zone, { compact: true }));
    // Below the note: inviting someone is rarer than writing.
    if (runs && !s.isScheduler()) side.append(inviteCard(c));
    mount(main, h('h1', {}, t('call.title')), banner, offer, lobby, h('div', { class: 'call-layout' }, callBox, side));

    room = new Room(c.id, stream, { token: guest ? guest.token : null });
    // Browser tests only (navigator.webdriver is true only in a browser under automation): read
    // the decoded video per peer and drop the signaling socket as a network failure would, which
    // the network emulation cannot do to an open WebSocket. Nothing here reaches another user.
    if (navigator.webdriver) {
      window.__e2e = {
        stats: () => room.videoStats(),
        dropSocket: () => { if (room.ws) room.ws.close(4999, 'test drop'); },
        resumes: () => room.resumes || 0,
      };
    }
    const names = new Map();
    const tiles = new Map();
    const tile = (pid) => {
      if (!tiles.has(pid)) {
        const v = h('video', { autoplay: true, playsinline: true, 'data-participant': pid });
        const label = h('span', { class: 'label' }, names.get(pid) || pid);
        const state = h('span', { class: 'state' });
        const el = h('figure', { class: 'tile' }, v, h('figcaption', {}, label, ' ', state));
        tiles.set(pid, { el, v, label, state });
        stage.append(el);
      }
      return tiles.get(pid);
    };
    const setAudioOnly = (on) => { room.setAudioOnly(on); setToggle(audioBtn, 'audio_only', on); };
    muteBtn.onclick = () => { const on = muteBtn.getAttribute('aria-pressed') !== 'true'; room.setMuted(on); setToggle(muteBtn, 'mute', on); };
    camBtn.onclick = () => { const on = camBtn.getAttribute('aria-pressed') !== 'true'; room.setCameraOff(on); setToggle(camBtn, 'camera_off', on); };
    audioBtn.onclick = () => setAudioOnly(audioBtn.getAttribute('aria-pressed') !== 'true');

    room.addEventListener('reconnecting', () => { banner.hidden = false; banner.textContent = t('call.reconnecting'); banner.dataset.state = 'reconnecting'; });
    room.addEventListener('waiting', () => { banner.hidden = true; lobby.hidden = false; callBox.hidden = true; chatBox.hidden = true; });
    // The server lost the room (a restart): back to the waiting room, said in words.
    room.addEventListener('reset', () => { banner.hidden = false; banner.dataset.state = 'reset'; banner.textContent = t('call.reset'); });
    room.addEventListener('running-late', (e) => showLate(e.detail.minutes));
    room.addEventListener('too-early', (e) => {
      banner.hidden = false;
      banner.dataset.state = 'too-early';
      // Not in any waiting room yet: nobody can let them in before the call opens.
      lobby.hidden = true;
      const sameDay = localDate(new Date(e.detail.opens_at), zone) === localDate(new Date(), zone);
      banner.textContent = t('call.opens_at', { time: sameDay ? fmtTime(e.detail.opens_at, zone) : fmtDateTime(e.detail.opens_at, zone) });
    });
    room.addEventListener('joined', (e) => {
      banner.hidden = true;
      banner.dataset.state = 'connected';
      lobby.hidden = true;
      showLate(0);
      callBox.hidden = false;
      // In the call, signing out is not a button away (it would end the call unasked).
      document.body.classList.add('in-call');
      fillDevices();
      chatBox.hidden = false;
      if (clinician) waitingBox.hidden = false;
      if (e.detail.resumed) toast(t('call.resumed'));
    });
    room.addEventListener('participant', (e) => { names.set(e.detail.id, e.detail.name); tile(e.detail.id).label.textContent = e.detail.name; });
    room.addEventListener('remote-stream', (e) => { const tl = tile(e.detail.id); if (tl.v.srcObject !== e.detail.stream) tl.v.srcObject = e.detail.stream; });
    room.addEventListener('peer-state', (e) => { const tl = tiles.get(e.detail.id); if (tl) tl.state.textContent = e.detail.state === 'reconnecting' ? t('call.peer_reconnecting') : ''; });
    room.addEventListener('left', (e) => { const tl = tiles.get(e.detail.participant); if (tl) { tl.el.remove(); tiles.delete(e.detail.participant); } });
    room.addEventListener('media-state', (e) => {
      const tl = tiles.get(e.detail.from);
      if (tl) tl.state.textContent = [e.detail.muted && t('call.muted'), e.detail.camera_off && t('call.camera_is_off'), e.detail.audio_only && t('call.audio_only_on')].filter(Boolean).join(' · ');
    });
    room.addEventListener('waiting-add', (e) => {
      const p = e.detail;
      if (waitingList.querySelector(`[data-waiting="${CSS.escape(p.id)}"]`)) return;
      waitingList.append(h('li', { class: 'item', 'data-waiting': p.id, 'data-role': p.role }, h('span', {}, p.name, p.role === 'guest' ? h('span', { class: 'badge st-waiting' }, ` ${t('guest.badge')}`) : null),
        h('span', { class: 'row' },
          h('button', { type: 'button', class: 'primary', 'data-admit': p.id, onclick: () => room.admit(p.id) }, t('call.admit')),
          h('button', { type: 'button', onclick: () => room.deny(p.id) }, t('call.deny')))));
      countWaiting();
      toast(t('call.someone_waiting', { name: p.name }));
    });
    room.addEventListener('waiting-remove', (e) => { const li = waitingList.querySelector(`[data-waiting="${CSS.escape(e.detail.participant)}"]`); if (li) li.remove(); countWaiting(); });
    room.addEventListener('chat', (e) => {
      const m = e.detail;
      const who = m.from === room.you ? t('call.you') : (names.get(m.from) || m.from);
      chatLog.append(h('li', {}, h('time', {}, fmtTime(m.at, zone)), ' ', h('strong', {}, who), ': ', h('span', { class: 'text' }, m.text)));
      chatLog.scrollTop = chatLog.scrollHeight;
    });
    const end = (text) => { cleanup(); mount(main, h('h1', {}, t('call.ended')), h('p', { role: 'status' }, text), guest ? null : h('a', { href: `/consultations/${c.id}`, 'data-nav': true, class: 'button' }, t('common.details'))); };
    room.addEventListener('ended', (e) => end(t(`call.end_${e.detail.why}`)));
    room.addEventListener('fatal', (e) => end(t(`call.fatal_${e.detail.code}`) === `call.fatal_${e.detail.code}` ? errorText(e.detail) : t(`call.fatal_${e.detail.code}`)));

    // Quality: the worst peer decides; poor for a few samples in a row offers audio only.
    let poor = 0;
    qualityTimer = setInterval(async () => {
      if (!room.peers.size) return;
      const q = await room.quality();
      const worst = q.reduce((a, b) => (b.loss > a.loss || (b.rtt || 0) > (a.rtt || 0) ? b : a), q[0]);
      const lvl = worst.loss > 0.08 || (worst.rtt || 0) > 0.6 ? 'poor' : worst.loss > 0.02 || (worst.rtt || 0) > 0.3 ? 'fair' : 'good';
      qualityEl.className = `quality q-${lvl}`;
      qualityEl.dataset.quality = lvl;
      qualityEl.textContent = `${t(`quality.${lvl}`)}${worst.rtt !== null ? ` · ${Math.round(worst.rtt * 1000)} ms` : ''}`;
      poor = lvl === 'poor' ? poor + 1 : 0;
      if (poor >= POOR_SAMPLES && !room.audioOnly) offer.hidden = false;
    }, 2000);

    await room.connect();
  }

  return cleanup;
}

/** Inviting a guest (an interpreter, a family member) into the call: a link and a QR code that
 * open it without an account, valid until the call's window closes. */
function inviteCard(c) {
  const name = h('input', { name: 'guest_name', maxlength: 80, required: true, autocomplete: 'off' });
  const role = select({ name: 'guest_role' }, [['interpreter', t('guest.interpreter')], ['family', t('guest.family')]], 'interpreter');
  const out = h('div', { class: 'linkout' });
  const msg = h('p', { role: 'status', 'aria-live': 'polite' });
  const form = h('form', { onsubmit: async (e) => {
    e.preventDefault();
    const who = name.value.trim();
    if (!who) { name.focus(); return; }
    try {
      const r = await post(`/consultations/${c.id}/join-token`, { guest_name: `${who} (${t(`guest.${role.value}`)})` });
      const { input, row } = linkBox(r.link, t('guest.link'), msg);
      input.dataset.guestLink = '';
      mount(out, h('p', {}, t('guest.link_hint', { name: who })), row, qrFigure(r.qr_svg, t('guest.qr')));
      msg.textContent = '';
    } catch (x) { msg.textContent = errorText(x); }
  } }, field(t('guest.name'), name), field(t('guest.role'), role), h('button', { type: 'submit' }, t('guest.invite')));
  return h('section', { class: 'card', 'aria-labelledby': 'invite-h', 'data-invite': true }, h('h2', { id: 'invite-h' }, t('guest.title')), form, out, msg);
}
