// The hospital scheduler's screens: each clinician's weekly availability and dated exceptions,
// and utilisation per clinician as a chart. The calendar grid is in hub.js, weekly templates for
// many clinicians in templates.js.

import { h, mount, field, select, svg, toast } from '../dom.js';
import { t, fmtDate, localDate, lang } from '../i18n.js';
import { get, post, put, del, query, cached } from '../api.js';
import { loading, errorBox, errorText, markFieldErrors } from './common.js';
import { tabs, facilityPicker, guard, hospitalClinicians } from './desk.js';
import { strandedPanel, removedBy, overlapText } from './stranded.js';

const WEEKDAYS = [1, 2, 3, 4, 5, 6, 7];

export async function availabilityView(main) {
  await guard(main, '/schedule/availability', async () => {
    const { id, picker } = await facilityPicker(() => availabilityView(main));
    const clinicians = await hospitalClinicians(id);
    const saved = Number(sessionStorage.getItem('telehealth.clinician'));
    const docSel = select({ name: 'clinician' }, clinicians.map((c) => [c.id, `${c.title} ${c.full_name}`]), clinicians.some((c) => c.id === saved) ? saved : clinicians[0] && clinicians[0].id);
    const out = h('div');
    async function load() {
      sessionStorage.setItem('telehealth.clinician', docSel.value);
      const cid = docSel.value;
      mount(out, loading());
      try {
        const doc = clinicians.find((c) => String(c.id) === cid);
        const today = localDate(new Date(), doc.time_zone);
        const [rules, exceptions] = await Promise.all([get(`/clinicians/${cid}/availability/rules`), get(`/clinicians/${cid}/availability/exceptions${query({ from: today })}`)]);
        // A change refused for the patients it would strand opens the panel above the cards.
        const stranded = h('div', { 'data-stranded-panel': true });
        const attempt = availabilityAttempt(doc, stranded, load);
        mount(out, stranded, rulesCard(cid, rules, load, attempt), exceptionsCard(cid, exceptions, today, load, attempt));
      } catch (x) { mount(out, errorBox(x)); }
    }
    docSel.addEventListener('change', load);
    mount(main, tabs('/schedule/availability'), h('h1', {}, t('avail.title')), h('div', { class: 'card row' }, picker, field(t('avail.clinician'), docSel)), out);
    await load();
  });
}

const hm = (x) => (x ? x.slice(0, 5) : '');
const weekday = (n) => t(`weekday.${n}`);

/** Runs a change to `doc`'s availability: on success it reloads; refused for the booked patients
 * it would strand, it opens the panel that moves or cancels them and then tries again; refused
 * for an overlap, it says which session is in the way. `removed(slot)` tells the panel which
 * slots the change takes away. Returns the message to show, or '' on success. */
function availabilityAttempt(doc, panel, reload) {
  return async (change, removed, doneText, form) => {
    mount(panel);
    if (form) markFieldErrors(form, null);
    try {
      await change();
      toast(doneText);
      reload();
      return '';
    } catch (x) {
      if (x.code === 'bookings_affected') {
        // The full record: the panel looks for slots of the clinician's specialty.
        const full = await cached(`/clinicians/${doc.id}`).catch(() => doc);
        mount(panel, strandedPanel({ refusal: x, doc: full, removed, retry: change, done: reload }));
        panel.scrollIntoView({ block: 'start' });
        return t('stranded.refused');
      }
      if (form) markFieldErrors(form, x, (name) => form.querySelector(`[name=${AVAILABILITY_FIELDS[name] || name}]`));
      return overlapText(x) || errorText(x);
    }
  };
}

/** The API's field names and the form controls that hold them. */
const AVAILABILITY_FIELDS = { start_time: 'start', end_time: 'end', slot_minutes: 'slot', buffer_minutes: 'buffer', valid_until: 'end' };

function rulesCard(cid, rules, reload, attempt) {
  const err = h('p', { class: 'error', role: 'alert' });
  const id = Number(cid);
  let editing = null;
  const f = {
    weekday: select({ name: 'weekday' }, WEEKDAYS.map((d) => [d, weekday(d)]), 1),
    start: h('input', { type: 'time', name: 'start', step: 300, value: '08:00', required: true }),
    end: h('input', { type: 'time', name: 'end', step: 300, value: '11:00', required: true }),
    slot: h('input', { type: 'number', name: 'slot', min: 5, max: 240, step: 5, value: 30, required: true }),
    buffer: h('input', { type: 'number', name: 'buffer', min: 0, max: 120, step: 5, value: 0 }),
  };
  const sorted = [...rules].sort((a, b) => a.weekday - b.weekday || a.start_time.localeCompare(b.start_time));
  const submit = h('button', { type: 'submit', class: 'primary' }, t('avail.add_rule'));
  const cancelEdit = h('button', { type: 'button', hidden: true, onclick: () => reload() }, t('avail.cancel_edit'));
  const form = h('form', {
    class: 'row', 'aria-label': t('avail.add_rule'),
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { weekday: Number(f.weekday.value), start_time: f.start.value, end_time: f.end.value, slot_minutes: Number(f.slot.value), buffer_minutes: Number(f.buffer.value || 0) };
      const was = editing;
      err.textContent = was
        ? await attempt(() => put(`/clinicians/${cid}/availability/rules/${was.id}`, body),
          removedBy(id, { weekday: was.weekday, from: hm(was.start_time), to: hm(was.end_time) }), t('avail.saved'), form)
        : await attempt(() => post(`/clinicians/${cid}/availability/rules`, body), () => false, t('avail.added'), form);
    },
  }, field(t('avail.weekday'), f.weekday), field(t('avail.start'), f.start), field(t('avail.end'), f.end), field(t('avail.slot'), f.slot), field(t('avail.buffer'), f.buffer),
  submit, cancelEdit);
  return h('section', { class: 'card', 'aria-labelledby': 'rules-h' },
    h('h2', { id: 'rules-h' }, t('avail.weekly')),
    sorted.length ? h('table', {}, h('thead', {}, h('tr', {}, [t('avail.weekday'), t('avail.hours'), t('avail.slot')].map((x) => h('th', { scope: 'col' }, x)),
      h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, t('avail.actions'))))),
      h('tbody', {}, sorted.map((r) => h('tr', { 'data-rule': r.id },
        h('td', {}, weekday(r.weekday)), h('td', {}, `${hm(r.start_time)}–${hm(r.end_time)}`), h('td', {}, t('avail.minutes', { n: r.slot_minutes })),
        h('td', { class: 'row' }, h('button', {
          type: 'button', class: 'link', 'data-edit-rule': r.id, 'aria-label': t('avail.edit_rule', { day: weekday(r.weekday), hours: `${hm(r.start_time)}–${hm(r.end_time)}` }),
          onclick: () => edit(r),
        }, t('avail.edit')), h('button', {
          type: 'button', class: 'link danger', 'aria-label': t('avail.delete_rule', { day: weekday(r.weekday), hours: `${hm(r.start_time)}–${hm(r.end_time)}` }),
          onclick: async () => {
            err.textContent = await attempt(() => del(`/clinicians/${cid}/availability/rules/${r.id}`),
              removedBy(id, { weekday: r.weekday, from: hm(r.start_time), to: hm(r.end_time) }), t('avail.deleted'));
          },
        }, t('common.delete'))))))) : h('p', { class: 'empty' }, t('avail.no_rules')),
    form, err);

  /** Fills the form with rule `r`; saving then changes it instead of adding one. */
  function edit(r) {
    editing = r;
    f.weekday.value = String(r.weekday);
    f.start.value = hm(r.start_time);
    f.end.value = hm(r.end_time);
    f.slot.value = r.slot_minutes;
    f.buffer.value = r.buffer_minutes;
    submit.textContent = t('avail.save_rule');
    cancelEdit.hidden = false;
    form.setAttribute('aria-label', t('avail.edit_rule', { day: weekday(r.weekday), hours: `${hm(r.start_time)}–${hm(r.end_time)}` }));
    f.weekday.focus();
  }
}

function exceptionsCard(cid, exceptions, today, reload, attempt) {
  const err = h('p', { class: 'error', role: 'alert' });
  const id = Number(cid);
  const f = {
    date: h('input', { type: 'date', name: 'date', value: today, required: true }),
    kind: select({ name: 'kind' }, [['leave', t('avail.leave')], ['extra', t('avail.extra')]], 'leave'),
    start: h('input', { type: 'time', name: 'start', step: 300 }),
    end: h('input', { type: 'time', name: 'end', step: 300 }),
    slot: h('input', { type: 'number', name: 'slot', min: 5, max: 240, step: 5, value: 30 }),
    note: h('input', { name: 'note', maxlength: 200 }),
  };
  return h('section', { class: 'card', 'aria-labelledby': 'exc-h' },
    h('h2', { id: 'exc-h' }, t('avail.exceptions')),
    exceptions.length ? h('ul', { class: 'list' }, exceptions.map((x) => h('li', { class: 'item', 'data-exception': x.id },
      h('span', {}, `${fmtDate(`${x.on_date}T12:00:00Z`, 'UTC')} · ${t(`avail.${x.kind}`)} · ${x.start_time ? `${hm(x.start_time)}–${hm(x.end_time)}` : t('avail.whole_day')}${x.note ? ` · ${x.note}` : ''}`),
      h('button', {
        type: 'button', class: 'link danger',
        onclick: async () => {
          err.textContent = await attempt(() => del(`/clinicians/${cid}/availability/exceptions/${x.id}`),
            removedBy(id, { date: x.on_date, from: hm(x.start_time), to: hm(x.end_time) }), t('avail.deleted'));
        },
      }, t('common.delete'))))) : h('p', { class: 'empty' }, t('avail.no_exceptions')),
    h('form', {
      class: 'row', 'aria-label': t('avail.add_exception'),
      onsubmit: async (e) => {
        e.preventDefault();
        err.textContent = '';
        const body = { date: f.date.value, kind: f.kind.value };
        if (f.start.value) body.start_time = f.start.value;
        if (f.end.value) body.end_time = f.end.value;
        if (f.kind.value === 'extra') body.slot_minutes = Number(f.slot.value);
        if (f.note.value.trim()) body.note = f.note.value.trim();
        const removed = body.kind === 'leave' ? removedBy(id, { date: body.date, from: body.start_time, to: body.end_time }) : () => false;
        err.textContent = await attempt(() => post(`/clinicians/${cid}/availability/exceptions`, body), removed, t('avail.added'), e.target);
      },
    }, field(t('avail.date'), f.date), field(t('avail.kind'), f.kind), field(t('avail.start'), f.start, t('avail.leave_hint')), field(t('avail.end'), f.end), field(t('avail.slot'), f.slot), field(t('avail.note'), f.note),
    h('button', { type: 'submit', class: 'primary' }, t('avail.add_exception'))), err);
}

export async function utilisationView(main) {
  await guard(main, '/schedule/utilisation', async () => {
    const { id, picker, facility } = await facilityPicker(() => utilisationView(main));
    const today = localDate(new Date(), facility.time_zone);
    const fromIn = h('input', { type: 'date', value: today });
    const toIn = h('input', { type: 'date', value: localDate(new Date(Date.now() + 6 * 86400000), facility.time_zone) });
    const out = h('div', { 'aria-live': 'polite' });
    async function load() {
      mount(out, loading());
      try {
        const u = await get(`/facilities/${id}/utilisation${query({ from: fromIn.value, to: toIn.value })}`);
        mount(out, chart(u.clinicians), table(u.clinicians));
      } catch (x) { mount(out, errorBox(x)); }
    }
    mount(main, tabs('/schedule/utilisation'), h('h1', {}, t('util.title')), h('p', { class: 'lead' }, facility.name),
      h('form', { class: 'card row', onsubmit: (e) => { e.preventDefault(); load(); } }, picker, field(t('util.from'), fromIn), field(t('util.to'), toIn),
        h('button', { type: 'submit', class: 'primary' }, t('schedule.show'))), out);
    await load();
  });
}

/** Horizontal bars, booked share of offered time per clinician; the table below says the same in text. */
function chart(rows) {
  const barH = 22;
  const gap = 8;
  const labelW = 150;
  const width = 480;
  const plotW = width - labelW - 50;
  const height = rows.length * (barH + gap) + 24;
  const pct = (r) => Math.max(0, Math.min(1, r.utilisation || 0));
  return h('figure', { class: 'card chart' },
    svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': 'util-cap', class: 'bars' },
      [0, 0.5, 1].map((x) => svg('g', {},
        svg('line', { x1: labelW + x * plotW, x2: labelW + x * plotW, y1: 0, y2: height - 18, class: 'grid' }),
        svg('text', { x: labelW + x * plotW, y: height - 4, 'text-anchor': 'middle', class: 'axis' }, `${x * 100}%`))),
      rows.map((r, i) => {
        const y = i * (barH + gap);
        return svg('g', { 'data-clinician': r.clinician_id },
          svg('text', { x: labelW - 6, y: y + barH / 2 + 4, 'text-anchor': 'end', class: 'label' }, r.full_name.length > 22 ? `${r.full_name.slice(0, 21)}…` : r.full_name),
          svg('rect', { x: labelW, y, width: plotW, height: barH, class: 'track' }),
          svg('rect', { x: labelW, y, width: Math.round(pct(r) * plotW), height: barH, class: pct(r) > 0.85 ? 'bar hot' : 'bar' }),
          svg('text', { x: labelW + plotW + 4, y: y + barH / 2 + 4, class: 'value' }, `${Math.round(pct(r) * 100)}%`));
      })),
    h('figcaption', { id: 'util-cap' }, t('util.caption')));
}

/** Hours, as a scheduler reads them: `26 h`, `7,5 h`. */
const hours = (minutes) => t('util.hours', { n: new Intl.NumberFormat(lang === 'vi' ? 'vi-VN' : 'en-GB', { maximumFractionDigits: 1 }).format(minutes / 60) });

/** The same figures as the chart, in text; a column's header sorts by it (again: the other way). */
function table(rows) {
  const columns = [
    ['full_name', t('util.clinician'), (r) => r.full_name],
    ['offered_minutes', t('util.offered'), (r) => hours(r.offered_minutes)],
    ['booked_minutes', t('util.booked'), (r) => hours(r.booked_minutes)],
    ['completed', t('util.completed'), (r) => r.completed],
    ['no_show', t('util.no_show'), (r) => r.no_show],
    ['cancelled', t('util.cancelled'), (r) => r.cancelled],
    ['utilisation', t('util.share'), (r) => `${Math.round((r.utilisation || 0) * 100)}%`],
  ];
  let by = 'utilisation';
  let down = true;
  const body = h('tbody');
  const heads = columns.map(([key, label]) => h('th', { scope: 'col', 'aria-sort': 'none' },
    h('button', { type: 'button', class: 'link sort', 'data-sort': key, onclick: () => { down = by === key ? !down : key !== 'full_name'; by = key; draw(); } }, label)));
  function draw() {
    const sorted = [...rows].sort((a, b) => {
      const x = a[by] ?? 0;
      const y = b[by] ?? 0;
      const c = typeof x === 'string' ? x.localeCompare(y) : x - y;
      return down ? -c : c;
    });
    heads.forEach((th, i) => th.setAttribute('aria-sort', columns[i][0] === by ? (down ? 'descending' : 'ascending') : 'none'));
    mount(body, sorted.map((r) => h('tr', { 'data-clinician': r.clinician_id }, columns.map(([key, , show], i) => (i === 0 ? h('th', { scope: 'row' }, show(r)) : h('td', { 'data-col': key }, show(r)))))));
  }
  draw();
  return h('table', { class: 'card util-table' }, h('thead', {}, h('tr', {}, heads)), body);
}
