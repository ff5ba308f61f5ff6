// The home screen of each role: the patient's visits, the rural clinician's requests, the
// specialist's day list, the scheduler's calendar.

import { h, mount } from '../dom.js';
import { t, fmtTime, fmtDate, localDate, zoneMidnight } from '../i18n.js';
import { get, query } from '../api.js';
import * as s from '../session.js';
import { calendarView } from './schedule.js';
import { statusBadge, urgencyBadge, patientName, clinician, zoneOf, loading, errorBox, errorText } from './common.js';
import { passkeysSupported, listPasskeys, enrolPasskey } from '../passkeys.js';

const JOIN_EARLY_MS = 15 * 60 * 1000;
const JOIN_LATE_MS = 30 * 60 * 1000;
const LIVE = new Set(['booked', 'in_progress']);

export function joinWindow(c, now = Date.now()) {
  const opens = new Date(c.start_at).getTime() - JOIN_EARLY_MS;
  const closes = new Date(c.end_at).getTime() + JOIN_LATE_MS;
  return { open: LIVE.has(c.status) && now >= opens && now <= closes, opens: new Date(opens).toISOString(), closed: now > closes };
}

/** One consultation as a list item, with whom and when, and what can be done now. */
export async function consultationItem(c, { showPatient = true, showClinician = true } = {}) {
  const zone = await zoneOf(c);
  const [pname, doc] = await Promise.all([showPatient ? patientName(c.patient_id) : null, showClinician ? clinician(c.clinician_id) : null]);
  const w = joinWindow(c);
  const actions = [h('a', { href: `/consultations/${c.id}`, 'data-nav': true, class: 'button' }, t('common.details'))];
  if (w.open) actions.push(h('a', { href: `/call/${c.id}`, 'data-nav': true, class: 'button primary', 'data-join': c.id }, t('visit.join')));
  else if (LIVE.has(c.status) && !w.closed) actions.push(h('span', { class: 'hint' }, t('visit.opens_at', { time: fmtTime(w.opens, zone) })));
  return h('li', { class: 'item', 'data-consultation': c.id },
    h('div', { class: 'when' }, h('strong', {}, fmtTime(c.start_at, zone)), h('span', {}, fmtDate(c.start_at, zone))),
    h('div', { class: 'what' },
      pname ? h('strong', {}, pname) : null,
      doc ? h('span', {}, `${doc.title} ${doc.full_name} · ${doc.facility_name}`) : null,
      h('span', { class: 'reason' }, c.reason),
      h('span', {}, statusBadge(c.status), ' ', urgencyBadge(c.urgency))),
    h('div', { class: 'actions' }, actions));
}

async function list(main, title, lead, consultations, opts, emptyKey, extra) {
  const ul = h('ul', { class: 'list' });
  mount(main, h('h1', {}, title), lead ? h('p', { class: 'lead' }, lead) : null, extra || null, ul);
  if (!consultations.length) ul.append(h('li', { class: 'empty' }, t(emptyKey)));
  for (const c of consultations) ul.append(await consultationItem(c, opts));
}

async function patientHome(main) {
  const all = await get('/consultations');
  const now = Date.now();
  const upcoming = all.filter((c) => LIVE.has(c.status) && new Date(c.end_at).getTime() + JOIN_LATE_MS > now);
  const past = all.filter((c) => c.status === 'completed').reverse();
  await list(main, t('patient.title'), t('patient.lead'), upcoming, { showPatient: false }, 'patient.none');
  if (past.length) {
    const ul = h('ul', { class: 'list' });
    main.append(h('h2', {}, t('patient.past')), ul);
    for (const c of past.slice(0, 10)) ul.append(await consultationItem(c, { showPatient: false }));
  }
}

/** A clinician's passkeys: with one, their notes are signed on their own device, so the server
 * cannot sign for them. */
function passkeyCard() {
  const list = h('ul', { class: 'passkeys' });
  const msg = h('p', { role: 'status', 'aria-live': 'polite' });
  const name = h('input', { name: 'passkey_name', maxlength: 60, required: true, value: t('passkey.default_name'), autocomplete: 'off' });
  const show = (keys) => {
    mount(list, ...keys.map((k) => h('li', { 'data-passkey': k.id }, `${k.name} · ${fmtDate(k.created_at)}`)));
    msg.textContent = keys.length ? t('passkey.active') : t('passkey.none');
  };
  const add = h('button', { type: 'submit' }, t('passkey.add'));
  const form = h('form', { class: 'row', onsubmit: async (e) => {
    e.preventDefault();
    add.disabled = true;
    try {
      await enrolPasskey(name.value.trim() || t('passkey.default_name'));
      show(await listPasskeys());
      msg.textContent = t('passkey.added');
    } catch (x) {
      const cancelled = x && (x.name === 'NotAllowedError' || x.name === 'AbortError');
      // SecurityError: this address is not the one passkeys are bound to (an IP address, say).
      msg.textContent = cancelled ? t('passkey.cancelled') : x && x.name === 'SecurityError' ? t('passkey.unsupported') : errorText(x);
    } finally { add.disabled = false; }
  } }, h('label', {}, t('passkey.name'), ' ', name), add);
  const card = h('section', { class: 'card passkey-card', 'aria-labelledby': 'passkey-h' },
    h('h2', { id: 'passkey-h' }, t('passkey.title')), h('p', { class: 'hint' }, t('passkey.lead')), list, msg);
  if (!passkeysSupported()) card.append(h('p', { class: 'hint' }, t('passkey.unsupported')));
  else card.append(form);
  listPasskeys().then(show, (x) => { msg.textContent = errorText(x); });
  return card;
}

async function ruralHome(main) {
  const zone = s.session.clinician.time_zone;
  const from = zoneMidnight(localDate(new Date(), zone), zone).toISOString();
  const all = await get(`/consultations${query({ requesting_facility_id: s.session.clinician.facility_id, from, limit: 100 })}`);
  await list(main, t('rural.title'), s.session.clinician.facility_name, all.filter((c) => c.status !== 'cancelled' && c.status !== 'expired'), {}, 'rural.none',
    h('p', {}, h('a', { href: '/book', 'data-nav': true, class: 'button primary' }, t('rural.book'))));
  main.append(passkeyCard());
}

async function specialistHome(main) {
  const me = s.session.clinician;
  const zone = me.time_zone;
  const today = localDate(new Date(), zone);
  const from = zoneMidnight(today, zone);
  const to = new Date(from.getTime() + 24 * 3600 * 1000);
  const all = await get(`/consultations${query({ clinician_id: me.id, from: from.toISOString(), to: to.toISOString(), limit: 100 })}`);
  const day = all.filter((c) => c.status !== 'cancelled' && c.status !== 'expired');
  await list(main, t('today.title'), `${me.title} ${me.full_name} · ${fmtDate(from.toISOString(), zone)}`, day, { showClinician: false }, 'today.none');
  main.append(passkeyCard());
}

export async function homeView(main) {
  main.append(loading());
  try {
    if (s.isPatient()) return await patientHome(main);
    if (s.isRuralClinician()) return await ruralHome(main);
    if (s.isSpecialist()) return await specialistHome(main);
    if (s.isScheduler()) return await calendarView(main);
    mount(main, h('h1', {}, t('admin.title')), h('p', {}, t('admin.lead')),
      h('p', {}, h('a', { href: '/api/v1/openapi.json' }, t('admin.api'))));
  } catch (e) {
    mount(main, h('h1', {}, t('common.error')), errorBox(e));
  }
  return undefined;
}
