// The hub scheduler's calendar: clinicians × time, for a day (hour columns) or a week (day
// columns), filtered by specialty, clinician and status, with previous and next. A booking is
// found by name, national id or phone across dates (the server searches), opened, or moved by
// choosing a free cell of any clinician of its specialty on any date. The grid only offers what
// it was told was free; the server checks the move itself (slot free, clinician bookable) and a
// refusal is shown and the grid redrawn, never assumed away.

import { h, mount, field, select, toast } from '../dom.js';
import { t, fmtTime, fmtDate, localDate, lang } from '../i18n.js';
import { get, post, query, cached } from '../api.js';
import { loading, errorBox, errorText, statusBadge, specialtyName } from './common.js';
import { tabs, facilityPicker, guard, hospitalClinicians } from './desk.js';

/** Statuses a booking can be moved from (the server's reschedule transition). */
const MOVABLE = new Set(['held', 'booked']);
const STATES = ['free', 'booked', 'held', 'in_progress', 'completed', 'no_show'];

const addDays = (date, n) => {
  const d = new Date(`${date}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
};
const dayLabel = (date) => new Intl.DateTimeFormat(lang === 'vi' ? 'vi-VN' : 'en-GB', { timeZone: 'UTC', weekday: 'short', day: 'numeric', month: 'numeric' })
  .format(new Date(`${date}T12:00:00Z`));
/** The part of a Vietnamese name people are called by: the given name, last. */
const givenName = (full) => full.trim().split(/\s+/).pop();
const hourOf = (localStart) => Number(localStart.slice(11, 13));

/** The booking being moved, kept while the scheduler pages through dates to find a new time. */
let moving = null;

export async function calendarView(main) {
  await guard(main, '/schedule', async () => {
    const { id, picker, facility } = await facilityPicker(() => calendarView(main));
    const zone = facility.time_zone;
    const [specialties, staff] = await Promise.all([cached('/specialties'), hospitalClinicians(id)]);
    const spName = (code) => { const sp = specialties.find((x) => x.code === code); return sp ? specialtyName(sp, lang) : code; };
    const here = new Set(staff.flatMap((c) => c.specialties));
    const dateIn = h('input', { type: 'date', name: 'date', value: sessionStorage.getItem('telehealth.day') || localDate(new Date(), zone) });
    const viewSel = select({ name: 'view' }, [['day', t('schedule.day')], ['week', t('schedule.week')]], sessionStorage.getItem('telehealth.view') || 'day');
    const spSel = select({ name: 'specialty' }, [['', t('hub.all_specialties')], ...specialties.filter((x) => here.has(x.code)).map((x) => [x.code, specialtyName(x, lang)])],
      sessionStorage.getItem('telehealth.specialty') || '');
    const docSel = select({ name: 'clinician_filter' }, [['', t('hub.all_clinicians')], ...staff.map((c) => [c.id, `${c.title} ${c.full_name}`])], '');
    const out = h('div', { 'aria-live': 'polite' });
    const panel = h('div', { class: 'no-print', 'data-booking-panel': true });
    const moveBar = h('div', { class: 'no-print', 'data-move-bar': true });
    const found = h('div', { class: 'no-print', 'data-found': true });
    let cal = null;
    let loads = 0;

    async function load(focusId) {
      // Filters change quickly: only the last request asked for may draw the grid.
      const mine = ++loads;
      sessionStorage.setItem('telehealth.day', dateIn.value);
      sessionStorage.setItem('telehealth.view', viewSel.value);
      sessionStorage.setItem('telehealth.specialty', spSel.value);
      mount(out, loading());
      mount(panel);
      drawMoveBar();
      try {
        const got = await get(`/facilities/${id}/calendar${query({ date: dateIn.value, view: viewSel.value, specialty: spSel.value, clinician_id: docSel.value })}`);
        if (mine !== loads) return;
        cal = got;
        mount(out, dayListTools(cal, out, `${facility.name} ${dateIn.value}`), grid(cal));
        if (focusId) {
          const chip = out.querySelector(`[data-consultation="${focusId}"]`);
          if (chip) { chip.classList.add('found'); chip.scrollIntoView({ block: 'center', inline: 'center' }); chip.focus(); }
        }
      } catch (x) { if (mine === loads) mount(out, errorBox(x)); }
    }
    const shift = (days) => { dateIn.value = addDays(dateIn.value, days); load(); };
    const step = () => (viewSel.value === 'week' ? 7 : 1);

    /** The grid: a row per clinician; columns are the day's hours or the week's days. */
    function grid(c) {
      const week = viewSel.value === 'week';
      const dates = c.clinicians.length ? c.clinicians[0].days.map((d) => d.date) : [];
      const entries = c.clinicians.flatMap((x) => x.days.flatMap((d) => d.entries));
      let cols;
      if (week) {
        // Days on which nobody works (a hospital's weekend) take no column.
        const worked = dates.filter((d) => c.clinicians.some((x) => x.days.some((day) => day.date === d && day.entries.length)));
        cols = (worked.length ? worked : dates).map((d) => ({ key: d, label: dayLabel(d), holds: (e, day) => day.date === d }));
      } else {
        const first = entries.length ? Math.min(...entries.map((e) => hourOf(e.local_start))) : 7;
        const last = entries.length ? Math.max(...entries.map((e) => hourOf(e.local_start))) : 16;
        cols = [];
        for (let hr = first; hr <= last; hr++) cols.push({ key: hr, label: `${String(hr).padStart(2, '0')}:00`, holds: (e) => hourOf(e.local_start) === hr });
      }
      if (!c.clinicians.length) return h('p', { class: 'empty card' }, t('hub.no_clinicians'));
      const rows = c.clinicians.map((doc) => h('tr', { 'data-clinician': doc.clinician_id },
        h('th', { scope: 'row' }, h('span', { class: 'who' }, doc.full_name), h('small', {}, doc.specialties.map(spName).join(', '))),
        cols.map((col) => {
          const mine = doc.days.flatMap((day) => day.entries.filter((e) => col.holds(e, day)));
          // A week's cell is a strip of squares; what a screen reader hears is its count, then
          // the squares that do something (bookings, and targets while moving).
          const summary = week && mine.length ? h('span', { class: 'sr-only' }, t('hub.cell', { booked: mine.filter((e) => e.booking).length, n: mine.length })) : null;
          return h('td', {}, summary, mine.map((e) => chip(doc, e, week)));
        })));
      const legend = week ? h('p', { class: 'legend', 'aria-hidden': 'true' }, ['booked', 'held', 'in_progress', 'completed', 'no_show', 'free'].map((st) => h('span', {}, h('span', { class: `chip dot st-${st}` }), ` ${t(`status.${st}`)}`)),
        moving ? h('span', {}, h('span', { class: 'chip dot st-free target' }), ` ${t('hub.move_here')}`) : null) : null;
      return [legend, h('div', { class: 'grid-wrap', tabindex: 0, role: 'region', 'aria-label': t('hub.grid', { n: c.clinicians.length }) },
        h('table', { class: `grid ${week ? 'week' : 'day'}` },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('consultation.specialist')), cols.map((col) => h('th', { scope: 'col' }, col.label)))),
          h('tbody', {}, rows)))];
    }

    /** One slot: a booking opens its panel; a free slot is a target only while a booking of a
     * specialty the clinician has is being moved, and only if it is still ahead. */
    function chip(doc, e, week) {
      const time = fmtTime(e.start, cal.time_zone);
      // The week shows squares (the time and name are in the label and the tooltip), the day
      // shows the time and the patient's given name.
      const dot = week ? ' dot' : '';
      if (e.booking) {
        const b = e.booking;
        const shown = week ? '' : `${time} ${givenName(b.patient_name)}`;
        return h('button', {
          type: 'button', class: `chip${dot} st-${e.state}`, 'data-consultation': b.id, 'data-patient': b.patient_name.toLocaleLowerCase(),
          'aria-label': `${shown || time}, ${b.patient_name}, ${t(`status.${e.state}`)}`, title: `${time} ${b.patient_name}`,
          onclick: () => openPanel({ ...b, clinician_name: doc.full_name, specialties: doc.specialties }),
        }, shown);
      }
      const target = moving && new Date(e.start) > new Date() && doc.specialties.some((sp) => moving.specialties.includes(sp))
        && !(doc.clinician_id === moving.clinician_id && e.start === moving.start_at);
      if (!target) return h('span', { class: `chip${dot} st-free`, 'data-patient': '', title: week ? `${time} ${t('schedule.free')}` : null, 'aria-hidden': week ? 'true' : null }, week ? '' : time);
      return h('button', {
        type: 'button', class: `chip${dot} st-free target`, 'data-slot': e.start, 'data-patient': '',
        'aria-label': `${time}, ${doc.full_name}, ${t('hub.move_here')}`, title: `${time} ${t('hub.move_here')}`,
        onclick: () => confirmMove(doc, e),
      }, week ? '' : time);
    }

    function openPanel(b) {
      const when = `${fmtDate(b.start_at, cal.time_zone)} ${fmtTime(b.start_at, cal.time_zone)}`;
      const canMove = MOVABLE.has(b.status) && new Date(b.start_at) > new Date();
      mount(panel, h('section', { class: 'card booking-panel', 'aria-labelledby': 'bp-h' },
        h('h2', { id: 'bp-h' }, b.patient_name),
        h('p', {}, `${when} · ${b.clinician_name} · `, statusBadge(b.status)),
        h('div', { class: 'row' },
          h('a', { class: 'button', href: `/consultations/${b.id}`, 'data-nav': true }, t('hub.open')),
          canMove ? h('button', { type: 'button', class: 'primary', 'data-move': b.id, onclick: () => startMove(b) }, t('hub.move')) : null,
          h('button', { type: 'button', onclick: () => mount(panel) }, t('common.close')))));
      panel.querySelector('h2').tabIndex = -1;
      panel.querySelector('h2').focus();
    }

    /** Move mode: the grid turns the free slots of clinicians of the booking's specialty into
     * targets, on any date the scheduler pages to. */
    function startMove(b) {
      moving = b;
      if (b.specialties.length && !b.specialties.includes(spSel.value)) spSel.value = b.specialties.length === 1 ? b.specialties[0] : '';
      docSel.value = '';
      load();
    }

    function drawMoveBar(message) {
      if (!moving) { mount(moveBar); return; }
      const when = `${fmtDate(moving.start_at, zone)} ${fmtTime(moving.start_at, zone)}`;
      mount(moveBar, h('section', { class: 'card move-bar', role: 'status' },
        h('p', {}, t('hub.moving', { name: moving.patient_name, when, doc: moving.clinician_name, specialty: moving.specialties.map(spName).join(', ') })),
        message ? h('p', { class: 'error', role: 'alert' }, message) : null,
        h('button', { type: 'button', 'data-move-cancel': true, onclick: () => { moving = null; load(); } }, t('hub.stop_moving'))));
    }

    function confirmMove(doc, e) {
      const b = moving;
      const when = `${fmtDate(e.start, cal.time_zone)} ${fmtTime(e.start, cal.time_zone)}`;
      const reason = h('textarea', { name: 'move_reason', rows: 2, maxlength: 1000, required: true, 'data-autofocus': true });
      const err = h('p', { class: 'error', role: 'alert' });
      mount(panel, h('form', {
        class: 'card booking-panel', 'aria-labelledby': 'mv-h',
        onsubmit: async (ev) => {
          ev.preventDefault();
          err.textContent = '';
          try {
            await post(`/consultations/${b.id}/reschedule`, { start: e.start, clinician_id: doc.clinician_id, reason: reason.value.trim() });
            moving = null;
            toast(t('hub.moved', { name: b.patient_name, when, doc: doc.full_name }));
            await load(b.id);
          } catch (x) {
            // Taken meanwhile, or no longer bookable: say so and show the grid as it is now.
            const message = errorText(x);
            await load();
            drawMoveBar(message);
          }
        },
      }, h('h2', { id: 'mv-h' }, t('hub.confirm_move', { name: b.patient_name })),
      h('p', {}, t('hub.move_to', { doc: doc.full_name, when })),
      field(t('consultation.reason'), reason, t('hub.reason_hint')),
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', 'data-move-confirm': true }, t('hub.move_confirm')),
        h('button', { type: 'button', onclick: () => mount(panel) }, t('hub.choose_other'))), err));
      reason.focus();
    }

    /** Bookings of a patient at this hospital, any date: name (without accents is fine), national id or phone. */
    const searchIn = h('input', { type: 'search', name: 'search_bookings', autocomplete: 'off', minlength: 2, maxlength: 100, required: true });
    async function search() {
      const q = searchIn.value.trim();
      if (q.length < 2) return;
      mount(found, loading());
      try {
        const r = await get(`/facilities/${id}/bookings${query({ q })}`);
        const z = r.time_zone;
        mount(found, h('section', { class: 'card', 'aria-labelledby': 'found-h' },
          h('h2', { id: 'found-h' }, t('hub.found', { n: r.bookings.length, q })),
          r.bookings.length ? h('table', { class: 'found' },
            h('thead', {}, h('tr', {}, [t('schedule.date'), t('consultation.patient'), t('consultation.specialist'), t('consultation.status')].map((x) => h('th', { scope: 'col' }, x)),
              h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, t('avail.actions'))))),
            h('tbody', {}, r.bookings.map((b) => h('tr', { 'data-found': b.id },
              h('td', {}, `${fmtDate(b.start_at, z)} ${fmtTime(b.start_at, z)}`), h('td', {}, b.patient_name), h('td', {}, b.clinician_name), h('td', {}, statusBadge(b.status)),
              h('td', { class: 'row' },
                h('button', { type: 'button', class: 'link', 'data-show': b.id, 'aria-label': `${t('hub.show')}: ${b.patient_name} ${fmtDate(b.start_at, z)}`, onclick: () => showOn(b) }, t('hub.show')),
                MOVABLE.has(b.status) && new Date(b.start_at) > new Date()
                  ? h('button', { type: 'button', class: 'link', 'data-move': b.id, 'aria-label': `${t('hub.move')}: ${b.patient_name} ${fmtDate(b.start_at, z)}`, onclick: () => { showOn(b, false); startMove(b); } }, t('hub.move'))
                  : null))))) : h('p', { class: 'empty' }, t('hub.none_found')),
          r.truncated ? h('p', { class: 'hint' }, t('hub.more_found')) : null));
      } catch (x) { mount(found, errorBox(x)); }
    }
    /** The grid on the booking's date, filtered to its clinician's specialty, the booking marked. */
    function showOn(b, reload = true) {
      dateIn.value = localDate(new Date(b.start_at), zone);
      if (b.specialties.length && !b.specialties.includes(spSel.value)) spSel.value = b.specialties[0];
      docSel.value = '';
      if (reload) load(b.id);
    }

    for (const sel of [dateIn, viewSel, spSel, docSel]) sel.addEventListener('change', () => load());
    mount(main, tabs('/schedule'), h('h1', {}, t('schedule.calendar_title')), h('p', { class: 'lead' }, facility.name),
      h('form', { class: 'card row search', role: 'search', onsubmit: (e) => { e.preventDefault(); search(); } },
        field(t('hub.search'), searchIn, t('hub.search_hint')), h('button', { type: 'submit' }, t('hub.search_go'))),
      found,
      h('form', { class: 'card row', 'data-calendar-form': true, onsubmit: (e) => { e.preventDefault(); load(); } }, picker,
        h('button', { type: 'button', 'data-prev': true, 'aria-label': t('hub.prev'), onclick: () => shift(-step()) }, '‹'),
        field(t('schedule.date'), dateIn),
        h('button', { type: 'button', 'data-next': true, 'aria-label': t('hub.next'), onclick: () => shift(step()) }, '›'),
        h('button', { type: 'button', onclick: () => { dateIn.value = localDate(new Date(), zone); load(); } }, t('hub.today')),
        field(t('schedule.view'), viewSel), field(t('hub.specialty'), spSel), field(t('hub.clinician'), docSel),
        h('button', { type: 'submit', class: 'primary' }, t('schedule.show'))),
      moveBar, panel, out);
    await load();
  });
}

/** A CSV field: quoted, inner quotes doubled; a leading =, +, - or @ is neutralised so that a
 * spreadsheet never runs a patient's name as a formula. */
const csvField = (v) => {
  const text = String(v ?? '');
  return `"${(/^[=+\-@]/.test(text) ? `'${text}` : text).replace(/"/g, '""')}"`;
};

/** The calendar's tools: find a patient among the bookings shown, show only one status, print
 * the day list, or download it as CSV (UTF-8 with a BOM, so spreadsheets read Vietnamese). */
function dayListTools(cal, out, name) {
  const find = h('input', { type: 'search', name: 'find_patient', autocomplete: 'off' });
  const status = select({ name: 'show_status' }, [['', t('schedule.all_states')], ...STATES.map((x) => [x, t(`status.${x}`)])], '');
  const shown = h('p', { role: 'status', 'aria-live': 'polite', class: 'hint' });
  const apply = () => {
    const q = find.value.trim().toLocaleLowerCase();
    let n = 0;
    for (const c of out.querySelectorAll('.chip[data-patient]')) {
      const hit = (!q || c.dataset.patient.includes(q)) && (!status.value || c.classList.contains(`st-${status.value}`));
      c.hidden = !hit;
      if (hit && c.dataset.patient) n += 1;
    }
    shown.textContent = q || status.value ? t('schedule.found', { n }) : '';
  };
  find.addEventListener('input', apply);
  status.addEventListener('change', apply);
  const csv = () => {
    const rows = [[t('schedule.date'), t('schedule.time'), t('consultation.specialist'), t('consultation.patient'), t('consultation.status'), t('schedule.urgency'), t('schedule.consultation_id')]];
    for (const c of cal.clinicians) {
      for (const d of c.days) {
        for (const e of d.entries) {
          if (!e.booking) continue;
          rows.push([d.date, fmtTime(e.start, cal.time_zone), c.full_name, e.booking.patient_name, t(`status.${e.state}`), t(`urgency.${e.booking.urgency}`), e.booking.id]);
        }
      }
    }
    const text = `\uFEFF${rows.map((r) => r.map(csvField).join(',')).join('\r\n')}\r\n`;
    const a = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' })), download: `${name.replace(/[^\p{L}\p{N}]+/gu, '-')}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  };
  return h('div', { class: 'card row day-tools no-print' },
    field(t('schedule.find_patient'), find), field(t('schedule.show_status'), status),
    h('button', { type: 'button', 'data-csv': true, onclick: csv }, t('schedule.csv')),
    h('button', { type: 'button', onclick: () => window.print() }, t('schedule.print')), shown);
}
