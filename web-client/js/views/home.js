// The home screen of each role: the patient's visits, the rural clinician's requests, the
// specialist's day list, the scheduler's calendar.

import { h, mount, field } from '../dom.js';
import { t, fmtTime, fmtDate, localDate, zoneMidnight } from '../i18n.js';
import { get, post, query } from '../api.js';
import * as s from '../session.js';
import { statusBadge, urgencyBadge, patientName, clinician, zoneOf, loading, errorBox, errorText } from './common.js';
import { passkeysSupported, listPasskeys, enrolPasskey } from '../passkeys.js';
import { calendarFeedCard, myContactsCard } from './messages.js';

const JOIN_EARLY_MS = 15 * 60 * 1000;
const JOIN_LATE_MS = 30 * 60 * 1000;
const LIVE = new Set(['booked', 'in_progress']);

/** Minutes after its start when a visit nobody has joined is offered as "did not attend". */
export const NO_SHOW_AFTER_MIN = 10;
/** How often the specialist's day list looks at the rooms. */
const ROOMS_EVERY_MS = 10 * 1000;

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
      h('span', {}, statusBadge(c.status), ' ', urgencyBadge(c.urgency)),
      c.running_late_minutes && LIVE.has(c.status) ? h('span', { class: 'late', 'data-late': c.running_late_minutes }, t('late.badge', { n: c.running_late_minutes })) : null,
      h('span', { class: 'room', 'data-room': c.id, 'aria-live': 'polite' })),
    h('div', { class: 'actions' }, actions));
}

/** Keeps the room line of each listed consultation true (who waits, since when; who is in the
 * call), every few seconds while the list is on screen; offers "did not attend" for a visit
 * nobody joined some minutes after its start. Returns the function that stops it. */
function watchRooms(ul, consultations) {
  const live = consultations.filter((c) => LIVE.has(c.status) && joinWindow(c).open);
  if (!live.length) return () => {};
  const byId = new Map(live.map((c) => [c.id, c]));
  let timer = null;
  let stopped = false;
  const mins = (iso) => Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 60000));
  const names = (people) => people.map((p) => (p.role === 'guest' ? t('room.guest', { name: p.name }) : p.name)).join(', ');
  const tick = async () => {
    try {
      const { rooms } = await get(`/rooms${query({ consultation_ids: [...byId.keys()].join(',') })}`);
      for (const r of rooms) {
        const line = ul.querySelector(`[data-room="${r.consultation_id}"]`);
        const row = ul.querySelector(`[data-consultation="${r.consultation_id}"]`);
        if (!line || !row) continue;
        const c = byId.get(r.consultation_id);
        const waiting = r.waiting.filter((p) => p.role !== 'clinician');
        const state = r.in_call.length ? 'in_call' : waiting.length ? 'waiting' : 'empty';
        row.dataset.roomState = state;
        if (state === 'in_call') mount(line, h('span', { class: 'badge st-in_progress' }, t('room.in_call', { names: names(r.in_call) })), waiting.length ? ` · ${t('room.also_waiting', { names: names(waiting) })}` : '');
        else if (state === 'waiting') mount(line, h('strong', { class: 'badge st-waiting' }, t('room.waiting', { names: names(waiting), m: mins(waiting[0].since) })));
        else mount(line);
        const suggest = row.querySelector('[data-no-show]');
        const due = c.status === 'booked' && state === 'empty' && Date.now() > new Date(c.start_at).getTime() + NO_SHOW_AFTER_MIN * 60000;
        if (due && !suggest) {
          row.querySelector('.actions').append(h('button', {
            type: 'button', 'data-no-show': c.id,
            onclick: async (e) => {
              if (!confirm(t('visit.no_show_confirm'))) return;
              e.target.disabled = true;
              try { await post(`/consultations/${c.id}/no-show`); c.status = 'no_show'; mount(line, statusBadge('no_show')); e.target.remove(); byId.delete(c.id); } catch (x) { e.target.disabled = false; mount(line, h('span', { class: 'error' }, errorText(x))); }
            },
          }, t('visit.no_show_suggest', { m: mins(c.start_at) })));
        } else if (!due && suggest) suggest.remove();
      }
    } catch { /* the next look tries again; the list itself stays usable */ }
    if (!stopped && byId.size) timer = setTimeout(tick, ROOMS_EVERY_MS);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

/** "Running late": one delay told to the patients of every visit of the day not yet begun. */
function lateCard(day) {
  const ahead = () => day.filter((c) => c.status === 'booked' && new Date(c.end_at).getTime() > Date.now());
  const current = Math.max(0, ...ahead().map((c) => c.running_late_minutes || 0));
  const minutes = h('select', { name: 'late_minutes' }, [0, 5, 10, 15, 20, 30, 45, 60, 90].map((m) => h('option', { value: m, selected: m === current }, m ? t('late.minutes', { n: m }) : t('late.on_time'))));
  const msg = h('p', { role: 'status', 'aria-live': 'polite' });
  const send = h('button', { type: 'submit' }, t('late.tell'));
  const form = h('form', { class: 'row', onsubmit: async (e) => {
    e.preventDefault();
    const list = ahead();
    if (!list.length) { msg.textContent = t('late.nobody'); return; }
    send.disabled = true;
    let told = 0;
    let failed = null;
    for (const c of list) {
      try { const r = await post(`/consultations/${c.id}/running-late`, { minutes: Number(minutes.value) }); c.running_late_minutes = r.running_late_minutes; told += 1; } catch (x) { failed = x; }
    }
    send.disabled = false;
    msg.textContent = failed ? `${t('late.told', { n: told })} ${errorText(failed)}` : Number(minutes.value) ? t('late.told', { n: told }) : t('late.cleared', { n: told });
  } }, field(t('late.label'), minutes), send);
  return h('section', { class: 'card late-card', 'aria-labelledby': 'late-h' }, h('h2', { id: 'late-h' }, t('late.title')), h('p', { class: 'hint' }, t('late.lead')), form, msg);
}

async function list(main, title, lead, consultations, opts, emptyKey, extra) {
  const ul = h('ul', { class: 'list' });
  mount(main, h('h1', {}, title), lead ? h('p', { class: 'lead' }, lead) : null, extra || null, ul);
  if (!consultations.length) ul.append(h('li', { class: 'empty' }, t(emptyKey)));
  for (const c of consultations) ul.append(await consultationItem(c, opts));
  return ul;
}

/** Visits whose time is over, newest first: completed, not attended, or still open on the
 * clinic's side (the summary comes once the specialist signs it). */
export function pastVisits(all, now = Date.now()) {
  return all.filter((c) => c.status === 'completed' || c.status === 'no_show'
    || (LIVE.has(c.status) && new Date(c.end_at).getTime() + JOIN_LATE_MS <= now))
    .sort((a, b) => b.start_at.localeCompare(a.start_at));
}

async function patientHome(main) {
  const all = await get('/consultations');
  const now = Date.now();
  const upcoming = all.filter((c) => LIVE.has(c.status) && new Date(c.end_at).getTime() + JOIN_LATE_MS > now);
  const past = pastVisits(all, now);
  await list(main, t('patient.title'), t('patient.lead'), upcoming, { showPatient: false }, 'patient.none');
  if (past.length) {
    const ul = h('ul', { class: 'list', 'data-past': true });
    main.append(h('h2', {}, t('patient.past')), ul);
    for (const c of past.slice(0, 20)) {
      const li = await consultationItem(c, { showPatient: false });
      // The way to the visit's summary, in words a patient uses.
      const details = li.querySelector('.actions a');
      if (details && c.status === 'completed') details.textContent = t('patient.summary');
      ul.append(li);
    }
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
  main.append(passkeyCard(), myContactsCard(), calendarFeedCard());
}

async function specialistHome(main) {
  const me = s.session.clinician;
  const zone = me.time_zone;
  const today = localDate(new Date(), zone);
  const from = zoneMidnight(today, zone);
  const to = new Date(from.getTime() + 24 * 3600 * 1000);
  const all = await get(`/consultations${query({ clinician_id: me.id, from: from.toISOString(), to: to.toISOString(), limit: 100 })}`);
  const day = all.filter((c) => c.status !== 'cancelled' && c.status !== 'expired');
  // The delay card first: it is what a specialist behind schedule reaches for between visits.
  const late = day.some((c) => c.status === 'booked') ? lateCard(day) : null;
  const ul = await list(main, t('today.title'), `${me.title} ${me.full_name} · ${fmtDate(from.toISOString(), zone)}`, day, { showClinician: false }, 'today.none', late);
  const stop = watchRooms(ul, day);
  main.append(passkeyCard(), myContactsCard(), calendarFeedCard());
  return stop;
}

export async function homeView(main) {
  main.append(loading());
  try {
    if (s.isPatient()) return await patientHome(main);
    if (s.isRuralClinician()) return await ruralHome(main);
    if (s.isSpecialist()) return await specialistHome(main);
    // The scheduler's home is the calendar, fetched only for them.
    if (s.isScheduler()) return await (await import('./hub.js')).calendarView(main);
    mount(main, h('h1', {}, t('admin.title')), h('p', {}, t('admin.lead')),
      h('p', {}, h('a', { href: '/api/v1/openapi.json' }, t('admin.api'))));
  } catch (e) {
    mount(main, h('h1', {}, t('common.error')), errorBox(e));
  }
  return undefined;
}
