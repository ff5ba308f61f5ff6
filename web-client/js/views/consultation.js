// One consultation: when, who, why, its history; joining the call; for schedulers and clinicians
// cancelling or moving it with a reason and issuing the patient's visit link; for everyone
// taking part, the signed note (the visit summary, or the specialist's advice).

import { h, mount, field, toast } from '../dom.js';
import { t, tOr, fmtTime, fmtDate, fmtDateTime } from '../i18n.js';
import { get, post, query } from '../api.js';
import { navigate } from '../router.js';
import * as s from '../session.js';
import { notePanel, patientNote } from './note.js';
import { contactPreferences, deliveryLog } from './messages.js';
import { joinWindow } from './home.js';
import { statusBadge, urgencyBadge, patientName, clinician, facility, zoneOf, loading, errorBox, errorText, qrFigure, linkBox } from './common.js';

export async function consultationView(main, { id }) {
  main.append(loading());
  let c;
  try { c = await get(`/consultations/${encodeURIComponent(id)}`); } catch (e) { mount(main, h('h1', {}, t('consultation.title')), errorBox(e)); return; }
  const zone = await zoneOf(c);
  const [pname, doc, referrer, centre] = await Promise.all([
    patientName(c.patient_id), clinician(c.clinician_id),
    c.referring_clinician_id ? clinician(c.referring_clinician_id) : null,
    c.requesting_facility_id ? facility(c.requesting_facility_id) : null,
  ]);
  const w = joinWindow(c);
  const live = c.status === 'booked' || c.status === 'in_progress' || c.status === 'held';
  const dl = (pairs) => h('dl', { class: 'facts' }, pairs.filter(([, v]) => v).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));

  mount(main,
    h('h1', {}, t('consultation.title')),
    h('section', { class: 'card' },
      dl([
        [t('consultation.when'), `${fmtDateTime(c.start_at, zone)}–${fmtTime(c.end_at, zone)}`],
        [t('consultation.patient'), pname],
        [t('consultation.specialist'), doc && `${doc.title} ${doc.full_name} · ${doc.facility_name}`],
        [t('consultation.referrer'), referrer && `${referrer.title} ${referrer.full_name}${centre ? ` · ${centre.name}` : ''}`],
        [t('consultation.reason'), c.reason],
        [t('consultation.status'), h('span', {}, statusBadge(c.status), ' ', urgencyBadge(c.urgency))],
        [t('consultation.cancel_reason'), c.cancel_reason],
        [t('late.title'), live && c.running_late_minutes ? t('late.badge', { n: c.running_late_minutes }) : null],
      ]),
      w.open ? h('p', {}, h('a', { href: `/call/${c.id}`, 'data-nav': true, class: 'button primary', 'data-join': c.id }, t('visit.join'))) : null));

  const myId = s.session.me && s.session.me.clinician_id;
  if (s.isPatient()) main.append(patientNote(c, zone));
  else if (myId && (c.clinician_id === myId || c.referring_clinician_id === myId)) main.append(notePanel(c, zone));

  const runs = s.isScheduler() || (myId && (c.clinician_id === myId || c.referring_clinician_id === myId));
  if (runs && (c.status === 'booked' || c.status === 'in_progress')) main.append(lifeCycle(c));
  // An in-progress visit is past moving or cancelling: it is completed (or, if it never took
  // place, left to the clinic to record).
  if (!s.isPatient() && (c.status === 'held' || c.status === 'booked')) main.append(manage(c, zone));
  if (!s.isPatient() && (c.status === 'booked' || c.status === 'in_progress')) main.append(visitLink(c, zone));
  // The consulted specialist reads how the patient is told but leaves it to the patient, their
  // care centre and the schedulers (the server refuses them too).
  const consulted = myId && c.clinician_id === myId && !s.isScheduler();
  main.append(contactPreferences(c.patient_id, !consulted, zone));
  if (!s.isPatient()) main.append(deliveryLog(c, zone));
  main.append(h('section', { class: 'card' }, h('h2', {}, t('consultation.history')),
    h('ol', { class: 'history' }, historyFor(c.events).map((e) => h('li', {}, h('time', {}, fmtDateTime(e.occurred_at, zone)), ' ', tOr(`event.${e.action}`, e.action), eventDetail(e))))));
}

/** The history as its reader needs it: a patient does not see the clinic's booking steps (a
 * slot held, then confirmed, reads as booked; a lapsed hold or a manual start not at all). */
function historyFor(events) {
  if (!s.isPatient()) return events;
  return events.filter((e) => !['held', 'expire', 'start'].includes(e.action))
    .map((e) => (e.action === 'confirm' ? { ...e, action: 'booked' } : e));
}

/** An event's detail; the call's duration comes as `duration <seconds> s` and is shown in words. */
function eventDetail(e) {
  if (!e.detail) return '';
  const d = /^duration (\d+) s$/.exec(e.detail);
  if (d) return ` — ${t('event.duration', { m: Math.floor(d[1] / 60), s: d[1] % 60 })}`;
  // A delay announced (`15 min`) or withdrawn (`on time`).
  const late = e.action === 'running_late' && /^(\d+) min$/.exec(e.detail);
  if (late) return ` — ${t('late.minutes', { n: late[1] })}`;
  if (e.action === 'running_late' && e.detail === 'on time') return ` — ${t('late.on_time')}`;
  return ` — ${e.detail}`;
}

/** Ending the visit: "completed" (after the call, or without one once its time has come) or
 * "did not attend" (once its start has passed), each confirmed first. */
export function lifeCycle(c, { after } = {}) {
  const msg = h('p', { role: 'status', 'aria-live': 'polite' });
  const now = Date.now();
  const start = new Date(c.start_at).getTime();
  const act = (path, question, done) => async (e) => {
    if (!confirm(question)) return;
    e.target.disabled = true;
    try {
      await post(`/consultations/${c.id}/${path}`);
      toast(done);
      if (after) after(); else navigate(`/consultations/${c.id}`, true);
    } catch (x) { e.target.disabled = false; msg.textContent = errorText(x); }
  };
  const buttons = [];
  if (c.status === 'in_progress' || (c.status === 'booked' && now >= start - 30 * 60000)) {
    buttons.push(h('button', { type: 'button', class: 'primary', 'data-complete': c.id, onclick: act('complete', t('visit.complete_confirm'), t('visit.completed')) }, t('visit.complete')));
  }
  if (c.status === 'booked' && now >= start) {
    buttons.push(h('button', { type: 'button', 'data-no-show': c.id, onclick: act('no-show', t('visit.no_show_confirm'), t('visit.no_show_done')) }, t('visit.no_show')));
  }
  const box = h('section', { class: 'card', 'aria-labelledby': 'life-h', 'data-life-cycle': true }, h('h2', { id: 'life-h' }, t('visit.end_title')));
  if (!buttons.length) box.append(h('p', { class: 'hint' }, t('visit.end_later')));
  else box.append(h('p', { class: 'hint' }, t('visit.end_lead')), h('div', { class: 'row' }, buttons));
  box.append(msg);
  return box;
}

function manage(c, zone) {
  const box = h('section', { class: 'card', 'aria-labelledby': 'manage-h' }, h('h2', { id: 'manage-h' }, t('manage.title')));
  const err = h('p', { class: 'error', role: 'alert' });
  const reason = h('textarea', { name: 'reason', rows: 2, maxlength: 1000, required: true });
  const slots = h('div', { class: 'results' });
  let chosen = null;
  const moveBtn = h('button', { type: 'button', disabled: true, onclick: () => act('reschedule') }, t('manage.reschedule'));
  async function act(kind) {
    err.textContent = '';
    if (!reason.value.trim()) { err.textContent = t('manage.reason_needed'); reason.focus(); return; }
    try {
      if (kind === 'cancel') await post(`/consultations/${c.id}/cancel`, { reason: reason.value.trim() });
      else await post(`/consultations/${c.id}/reschedule`, { start: chosen, reason: reason.value.trim() });
      toast(kind === 'cancel' ? t('manage.cancelled') : t('manage.moved'));
      navigate(`/consultations/${c.id}`, true);
    } catch (x) { err.textContent = errorText(x); }
  }
  const find = h('button', {
    type: 'button',
    onclick: async () => {
      mount(slots, loading());
      try {
        const r = await get(`/slots${query({ clinician_id: c.clinician_id, limit: 24 })}`);
        mount(slots, h('fieldset', {}, h('legend', {}, t('manage.pick_slot')),
          r.slots.length ? r.slots.map((sl) => h('label', { class: 'choice' },
            h('input', { type: 'radio', name: 'newslot', value: sl.start, onchange: () => { chosen = sl.start; moveBtn.disabled = false; } }),
            ` ${fmtDate(sl.start, zone)} ${fmtTime(sl.start, zone)}`)) : h('p', { class: 'empty' }, t('book.no_slots'))));
      } catch (x) { mount(slots, errorBox(x)); }
    },
  }, t('manage.find_slots'));
  box.append(field(t('manage.reason'), reason, t('manage.reason_hint')), h('div', { class: 'row' },
    h('button', { type: 'button', class: 'danger', onclick: () => act('cancel') }, t('manage.cancel')), find), slots, moveBtn, err);
  return box;
}

/** The visit links of `c`: send one (with its expiry, a copy button and a QR code), see how
 * the ones sent were used (a locked one is flagged), withdraw them. */
function visitLink(c, zone) {
  const out = h('div', { class: 'linkout' });
  const sent = h('ul', { class: 'links-sent' });
  const msg = h('p', { role: 'status', 'aria-live': 'polite' });
  const refresh = async () => {
    let links = [];
    try { links = await get(`/consultations/${c.id}/visit-links`); } catch (x) { mount(sent, h('li', {}, errorText(x))); return; }
    mount(sent, ...links.map((l) => h('li', { 'data-link': l.id, 'data-state': l.revoked_at ? 'revoked' : l.locked_at ? 'locked' : 'live' },
      t('link.sent', { when: fmtDateTime(l.issued_at, zone) }), ' · ',
      l.revoked_at ? t('link.revoked') : l.locked_at ? h('strong', { class: 'error' }, t('link.locked')) : t('link.uses', { n: l.uses }))));
    revoke.hidden = !links.some((l) => !l.revoked_at && new Date(l.expires_at) > new Date());
  };
  const show = (l) => {
    const { input, row } = linkBox(`${location.origin}${l.path}`, t('link.title'), msg);
    input.dataset.visitLink = '';
    mount(out, h('p', {}, t('link.expires', { when: fmtDateTime(l.expires_at, zone) })), row, qrFigure(l.qr_svg, t('link.qr')));
  };
  const revoke = h('button', { type: 'button', class: 'danger', hidden: true, onclick: async () => {
    if (!confirm(t('link.revoke_confirm'))) return;
    try { await post(`/consultations/${c.id}/visit-links/revoke`); mount(out); msg.textContent = t('link.revoked_all'); } catch (x) { msg.textContent = errorText(x); }
    refresh();
  } }, t('link.revoke'));
  refresh();
  return h('section', { class: 'card', 'data-visit-links': true }, h('h2', {}, t('link.title')), h('p', { class: 'hint' }, t('link.hint')),
    h('div', { class: 'row' }, h('button', {
      type: 'button',
      onclick: async () => {
        try {
          show(await post(`/consultations/${c.id}/visit-link`));
          msg.textContent = '';
          refresh();
        } catch (x) { mount(out, errorBox(x)); }
      },
    }, t('link.issue')), revoke), out, msg, sent);
}
