// A rural clinician books a specialist at a hub: search a specialty's free slots, pick one, name
// the patient, the reason and the urgency, hold the slot (the API keeps it a few minutes), then
// confirm. A slot taken meanwhile is a clear message and a fresh search, never a double booking.

import { h, mount, field, select, toast } from '../dom.js';
import { t, lang, fmtTime, fmtDate, fmtDateTime, localDate } from '../i18n.js';
import { get, post, query, cached } from '../api.js';
import { navigate } from '../router.js';
import * as s from '../session.js';
import { errorText, errorBox, loading, specialtyName, markFieldErrors } from './common.js';

export async function bookView(main) {
  const me = s.session.clinician;
  if (!s.isRuralClinician()) { mount(main, h('h1', {}, t('book.title')), errorBox({ status: 403 })); return undefined; }
  main.append(loading());
  const [specialties, patients] = await Promise.all([cached('/specialties'), get(`/patients${query({ home_facility_id: me.facility_id })}`)]);
  const zone = me.time_zone;
  const spSel = select({ name: 'specialty', required: true, 'data-autofocus': true }, [['', t('book.choose_specialty')], ...specialties.map((sp) => [sp.code, specialtyName(sp, lang)])]);
  const fromIn = h('input', { type: 'date', name: 'from', value: localDate(new Date(), zone) });
  const provinceIn = h('input', { name: 'province', autocomplete: 'off' });
  const results = h('div', { class: 'results', 'aria-live': 'polite' });
  const holder = h('div');
  let timer = null;

  async function search(e) {
    if (e) e.preventDefault();
    if (!spSel.value) { spSel.focus(); return; }
    mount(results, loading());
    mount(holder);
    try {
      const r = await get(`/slots${query({ specialty: spSel.value, from: fromIn.value, province: provinceIn.value.trim(), limit: 60 })}`);
      if (!r.slots.length) { mount(results, h('p', { class: 'empty' }, t('book.no_slots'))); return; }
      const byDay = new Map();
      for (const sl of r.slots) {
        const d = sl.local_start.slice(0, 10);
        if (!byDay.has(d)) byDay.set(d, []);
        byDay.get(d).push(sl);
      }
      mount(results, h('h2', {}, t('book.free_slots')), [...byDay].map(([, slots]) => h('section', { class: 'day' },
        h('h3', {}, fmtDate(slots[0].start, slots[0].time_zone)),
        h('ul', { class: 'slots' }, slots.map((sl) => h('li', {}, h('button', {
          // Its name is what it shows (time, doctor, place), so a voice user can say what they see.
          type: 'button', class: 'slot', 'data-slot': sl.start,
          onclick: () => pick(sl),
        }, h('strong', {}, fmtTime(sl.start, sl.time_zone)), h('span', {}, sl.clinician_name), h('small', {}, `${sl.facility_name} · ${sl.province}`))))))));
    } catch (x) { mount(results, errorBox(x)); }
  }

  function pick(slot) {
    clearInterval(timer);
    const patient = select({ name: 'patient', required: true }, [['', t('book.choose_patient')], ...patients.map((p) => [p.id, `${p.full_name} (${p.date_of_birth.slice(0, 4)})`])]);
    const reason = h('textarea', { name: 'reason', required: true, maxlength: 1000, rows: 3 });
    const urgency = select({ name: 'urgency' }, ['routine', 'soon', 'urgent'].map((u) => [u, t(`urgency.${u}`)]), 'routine');
    const err = h('p', { class: 'error', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'primary' }, t('book.hold'));
    const form = h('form', {
      class: 'card', 'aria-labelledby': 'book-h',
      onsubmit: async (e) => {
        e.preventDefault();
        err.textContent = '';
        markFieldErrors(form, null);
        submit.disabled = true;
        try {
          const held = await post('/consultations', {
            kind: 'teleconsultation', clinician_id: slot.clinician_id, patient_id: Number(patient.value),
            requesting_facility_id: me.facility_id, referring_clinician_id: me.id,
            reason: reason.value.trim(), urgency: urgency.value, start: slot.start, hold: true,
          });
          confirmStep(held, slot);
        } catch (x) {
          err.textContent = errorText(x);
          markFieldErrors(form, x, (name) => (name === 'patient_id' ? patient : null));
          submit.disabled = false;
          if (x.code === 'slot_taken') search();
        }
      },
    },
    h('h2', { id: 'book-h' }, t('book.selected')),
    h('p', { class: 'lead' }, `${fmtDateTime(slot.start, slot.time_zone)} · ${slot.clinician_name} · ${slot.facility_name}`),
    field(t('book.patient'), patient), field(t('book.reason'), reason, t('book.reason_hint')), field(t('book.urgency'), urgency),
    err, h('div', { class: 'row' }, submit, h('button', { type: 'button', onclick: () => mount(holder) }, t('common.cancel'))));
    mount(holder, form);
    holder.scrollIntoView({ block: 'start' });
    patient.focus();
  }

  function confirmStep(held, slot) {
    const left = h('strong', { 'aria-live': 'off' });
    const err = h('p', { class: 'error', role: 'alert' });
    const tick = () => {
      const ms = new Date(held.hold_expires_at).getTime() - Date.now();
      if (ms <= 0) { clearInterval(timer); left.textContent = '0:00'; err.textContent = t('book.hold_expired'); return; }
      left.textContent = `${Math.floor(ms / 60000)}:${String(Math.floor(ms / 1000) % 60).padStart(2, '0')}`;
    };
    const confirm = h('button', {
      type: 'button', class: 'primary',
      onclick: async () => {
        confirm.disabled = true;
        try {
          const booked = await post(`/consultations/${held.id}/confirm`);
          clearInterval(timer);
          toast(t('book.booked'));
          navigate(`/consultations/${booked.id}`);
        } catch (x) { err.textContent = errorText(x); confirm.disabled = false; }
      },
    }, t('book.confirm'));
    const release = h('button', {
      type: 'button',
      onclick: async () => {
        clearInterval(timer);
        try { await post(`/consultations/${held.id}/cancel`, { reason: t('book.released_reason') }); } catch { /* it expires by itself */ }
        mount(holder);
      },
    }, t('book.release'));
    mount(holder, h('section', { class: 'card', role: 'region', 'aria-labelledby': 'hold-h' },
      h('h2', { id: 'hold-h' }, t('book.held_title')),
      h('p', {}, `${fmtDateTime(slot.start, slot.time_zone)} · ${slot.clinician_name}`),
      h('p', {}, t('book.held_for'), ' ', left),
      err, h('div', { class: 'row' }, confirm, release)));
    tick();
    timer = setInterval(tick, 1000);
    confirm.focus();
  }

  mount(main,
    h('h1', {}, t('book.title')),
    h('p', { class: 'lead' }, t('book.lead')),
    h('form', { class: 'card search', onsubmit: search, role: 'search' },
      field(t('book.specialty'), spSel), field(t('book.from'), fromIn), field(t('book.province'), provinceIn, t('book.province_hint')),
      h('button', { type: 'submit', class: 'primary' }, t('book.search'))),
    results, holder);
  spSel.focus();
  return () => clearInterval(timer);
}
