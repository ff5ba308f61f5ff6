// When a change to a clinician's availability would leave booked patients outside every session,
// the server refuses it and names them (409 bookings_affected). This panel shows them and asks
// for a choice: move them to the next free slots (the same clinician's, or any clinician's of
// the specialty), with a preview first, or cancel them with a reason. Then it makes the change
// that was asked for. Each move or cancellation is its own request: if one fails (the slot was
// just taken), the panel says which, and the change waits until nobody is left stranded.

import { h, mount, field, toast } from '../dom.js';
import { t, fmtDate, fmtTime, localDate } from '../i18n.js';
import { get, post, query } from '../api.js';
import { patientName, clinician as clinicianOf, errorText } from './common.js';

/** How far ahead the preview looks for free slots, in days (the slot search's range). */
const SEARCH_DAYS = 28;

const minutesOf = (hhmm) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** ISO weekday (1 = Monday) of a `YYYY-MM-DD` date. */
const isoWeekday = (date) => new Date(`${date}T12:00:00Z`).getUTCDay() || 7;

/** The local date, start and end (minutes of the day) of a slot from the slot search. */
function localSpan(slot) {
  const date = slot.local_start.slice(0, 10);
  const start = minutesOf(slot.local_start.slice(11, 16));
  return { date, start, end: start + (new Date(slot.end) - new Date(slot.start)) / 60000 };
}

/** Slots of clinician `id` on `date` (or on `weekday`) overlapping `[from, to)` (HH:MM; the
 * whole day when absent): what a change removes, never offered as a new time. */
export function removedBy(id, { date, weekday, from, to }) {
  return (slot) => {
    if (slot.clinician_id !== id) return false;
    const s = localSpan(slot);
    if (date && s.date !== date) return false;
    if (weekday && isoWeekday(s.date) !== weekday) return false;
    return !from || (s.start < minutesOf(to) && minutesOf(from) < s.end);
  };
}

/**
 * The panel. `refusal`: the 409's error; `doc`: the clinician (as /clinicians/{id} gives it);
 * `removed(slot)`: whether the change takes that slot away; `retry()`: makes the change again;
 * `done()`: once it is made.
 */
export function strandedPanel({ refusal, doc, removed, retry, done }) {
  const zone = doc.time_zone;
  const stranded = [...((refusal.details && refusal.details.consultations) || [])].sort((a, b) => a.start_at.localeCompare(b.start_at));
  const total = (refusal.details && refusal.details.count) || stranded.length;
  const list = h('ul', { class: 'list stranded' });
  for (const c of stranded) {
    const li = h('li', { 'data-stranded': c.id }, `${fmtDate(c.start_at, zone)} ${fmtTime(c.start_at, zone)} · `);
    patientName(c.patient_id).then((n) => li.append(n));
    list.append(li);
  }
  const status = h('p', { role: 'status', 'aria-live': 'polite' });
  const reason = h('textarea', { name: 'stranded_reason', rows: 2, maxlength: 1000, required: true });
  const choice = (value, label, checked) => h('label', { class: 'choice' }, h('input', { type: 'radio', name: 'stranded_choice', value, checked }), ` ${label}`);
  const choices = h('fieldset', {}, h('legend', {}, t('stranded.choose')),
    choice('same', t('stranded.move_same', { name: `${doc.title} ${doc.full_name}` }), true),
    choice('any', t('stranded.move_any')),
    choice('cancel', t('stranded.cancel')));
  const preview = h('div', { class: 'preview-moves' });
  const go = h('button', { type: 'button', class: 'primary', 'data-stranded-go': true }, t('stranded.preview'));
  let plan = null;

  const picked = () => choices.querySelector('input:checked').value;
  choices.addEventListener('change', () => { plan = null; mount(preview); go.textContent = picked() === 'cancel' ? t('stranded.cancel_go', { n: stranded.length }) : t('stranded.preview'); go.className = picked() === 'cancel' ? 'danger' : 'primary'; });

  /** The first free slot at or after each stranded visit's time (else the earliest), never one
   * the change removes, never one given twice. */
  async function propose(kind) {
    const from = localDate(new Date(), zone);
    const to = localDate(new Date(Date.now() + (SEARCH_DAYS - 1) * 86400000), zone);
    const specialty = (doc.specialties || [])[0];
    const where = kind === 'same' || !specialty ? { clinician_id: doc.id } : { specialty };
    const { slots } = await get(`/slots${query({ ...where, from, to, limit: 1000 })}`);
    const free = slots.filter((sl) => !removed(sl) && new Date(sl.start).getTime() > Date.now());
    const used = new Set();
    return stranded.map((c) => {
      const after = free.find((sl) => !used.has(sl) && sl.start >= c.start_at) || free.find((sl) => !used.has(sl));
      if (after) used.add(after);
      return { c, slot: after || null };
    });
  }

  async function showPlan(kind) {
    status.textContent = t('common.loading');
    plan = await propose(kind);
    const rows = await Promise.all(plan.map(async ({ c, slot }) => {
      const who = slot && slot.clinician_id !== doc.id ? await clinicianOf(slot.clinician_id) : null;
      return h('tr', { 'data-move': c.id },
        h('td', {}, await patientName(c.patient_id)),
        h('td', {}, `${fmtDate(c.start_at, zone)} ${fmtTime(c.start_at, zone)}`),
        h('td', {}, slot ? `${fmtDate(slot.start, slot.time_zone)} ${fmtTime(slot.start, slot.time_zone)}` : h('strong', { class: 'error' }, t('stranded.no_slot'))),
        h('td', {}, slot ? (who ? `${who.title} ${who.full_name}` : `${doc.title} ${doc.full_name}`) : ''));
    }));
    mount(preview, h('table', {}, h('caption', {}, t('stranded.preview_caption')),
      h('thead', {}, h('tr', {}, [t('consultation.patient'), t('stranded.from'), t('stranded.to'), t('consultation.specialist')].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows)));
    const movable = plan.filter((p) => p.slot).length;
    status.textContent = movable < plan.length ? t('stranded.some_without', { n: plan.length - movable }) : '';
    go.textContent = t('stranded.move_go', { n: movable });
  }

  go.addEventListener('click', async () => {
    const why = reason.value.trim();
    if (!why) { status.textContent = t('manage.reason_needed'); reason.focus(); return; }
    const kind = picked();
    go.disabled = true;
    try {
      if (kind !== 'cancel' && !plan) { await showPlan(kind); return; }
      if (kind === 'cancel' && !confirm(t('stranded.cancel_confirm', { n: stranded.length }))) return;
      const failed = [];
      const steps = kind === 'cancel' ? stranded.map((c) => ({ c, slot: null })) : plan.filter((p) => p.slot);
      for (const { c, slot } of steps) {
        try {
          if (kind === 'cancel') await post(`/consultations/${c.id}/cancel`, { reason: why });
          else await post(`/consultations/${c.id}/reschedule`, { start: slot.start, reason: why, ...(slot.clinician_id !== doc.id ? { clinician_id: slot.clinician_id } : {}) });
          const li = list.querySelector(`[data-stranded="${c.id}"]`);
          if (li) li.dataset.done = kind;
        } catch (x) { failed.push(`${fmtTime(c.start_at, zone)}: ${errorText(x)}`); }
      }
      if (failed.length) { status.textContent = `${t('stranded.failed')} ${failed.join(' · ')}`; plan = null; return; }
      try {
        await retry();
        toast(t('stranded.saved'));
        done();
      } catch (x) {
        // Someone booked into the change meanwhile, or a visit had no free slot: the refusal
        // names who is still in the way.
        status.textContent = x.code === 'bookings_affected' ? t('stranded.still', { n: (x.details && x.details.count) || 0 }) : errorText(x);
      }
    } finally { go.disabled = false; }
  });

  return h('section', { class: 'card stranded-card', role: 'alert', 'aria-labelledby': 'stranded-h' },
    h('h2', { id: 'stranded-h' }, t('stranded.title', { n: total })),
    h('p', {}, t('stranded.lead')), list,
    total > stranded.length ? h('p', { class: 'hint' }, t('stranded.more', { n: total - stranded.length })) : null,
    choices, field(t('manage.reason'), reason, t('manage.reason_hint')), preview, h('div', { class: 'row' }, go), status);
}

/** A person's message for a `sessions_overlap` refusal: which session is in the way. */
export function overlapText(x) {
  const c = x && x.code === 'sessions_overlap' && x.details && x.details.clash;
  if (!c) return null;
  const hours = `${c.start_time.slice(0, 5)}–${c.end_time.slice(0, 5)}`;
  return c.rule_id ? t('avail.overlap_rule', { day: t(`weekday.${c.weekday}`), hours }) : t('avail.overlap_extra', { date: fmtDate(`${c.date}T12:00:00Z`, 'UTC'), hours });
}
