// Weekly templates: the same weekly sessions given to many clinicians in one request, built from
// sessions and the days they run, or copied from one clinician's week. The server adds them in
// one transaction: a session that would overlap one a clinician already has refuses the whole
// template, naming that clinician, and nothing is added.

import { h, mount, field, select, toast } from '../dom.js';
import { t, lang } from '../i18n.js';
import { get, post, cached } from '../api.js';
import { errorText, specialtyName, markFieldErrors } from './common.js';
import { tabs, facilityPicker, guard, hospitalClinicians } from './desk.js';

const WEEKDAYS = [1, 2, 3, 4, 5, 6, 7];
const hm = (x) => (x ? x.slice(0, 5) : '');

export async function templatesView(main) {
  await guard(main, '/schedule/templates', async () => {
    const { id, picker, facility } = await facilityPicker(() => templatesView(main));
    const [specialties, staff] = await Promise.all([cached('/specialties'), hospitalClinicians(id)]);
    const spName = (code) => { const sp = specialties.find((x) => x.code === code); return sp ? specialtyName(sp, lang) : code; };
    const err = h('p', { class: 'error', role: 'alert' });
    const done = h('p', { role: 'status', 'aria-live': 'polite' });

    // Where the sessions come from: built here, or one clinician's week.
    const source = select({ name: 'template_source' }, [['build', t('tpl.build')], ...staff.map((c) => [c.id, t('tpl.copy_from', { name: `${c.title} ${c.full_name}` })])], 'build');
    const sessions = h('tbody');
    const addSession = (start, end, slot = 30, buffer = 0) => {
      const n = sessions.children.length + 1;
      const input = (name, attrs, label) => h('input', { name, 'aria-label': `${label} ${n}`, ...attrs });
      const row = h('tr', { 'data-session': true },
        h('td', {}, input('tpl_start', { type: 'time', step: 300, value: start, required: true }, t('avail.start'))),
        h('td', {}, input('tpl_end', { type: 'time', step: 300, value: end, required: true }, t('avail.end'))),
        h('td', {}, input('tpl_slot', { type: 'number', min: 5, max: 240, step: 5, value: slot, required: true }, t('avail.slot'))),
        h('td', {}, input('tpl_buffer', { type: 'number', min: 0, max: 120, step: 5, value: buffer }, t('avail.buffer'))),
        h('td', {}, h('button', { type: 'button', class: 'link danger', 'aria-label': t('tpl.remove_session', { n }), onclick: () => { row.remove(); count(); } }, t('common.delete'))));
      sessions.append(row);
      count();
    };
    const days = h('fieldset', { class: 'days' }, h('legend', {}, t('tpl.days')),
      WEEKDAYS.map((d) => h('label', { class: 'choice' }, h('input', { type: 'checkbox', name: 'tpl_day', value: d, checked: d <= 5, onchange: () => count() }), ` ${t(`weekday.${d}`)}`)));
    const built = h('div', { 'data-built': true },
      h('table', { class: 'sessions' }, h('thead', {}, h('tr', {}, [t('avail.start'), t('avail.end'), t('avail.slot'), t('avail.buffer')].map((x) => h('th', { scope: 'col' }, x)),
        h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, t('avail.actions'))))), sessions),
      h('button', { type: 'button', 'data-add-session': true, onclick: () => addSession('13:30', '16:30') }, t('tpl.add_session')), days);
    const copied = h('div', { 'data-copied': true, hidden: true });
    let copiedRules = [];
    source.addEventListener('change', async () => {
      const from = source.value;
      built.hidden = from !== 'build';
      copied.hidden = from === 'build';
      copiedRules = [];
      if (from !== 'build') {
        try {
          copiedRules = await get(`/clinicians/${from}/availability/rules`);
          mount(copied, copiedRules.length ? h('ul', { class: 'list' }, [...copiedRules].sort((a, b) => a.weekday - b.weekday || a.start_time.localeCompare(b.start_time))
            .map((r) => h('li', {}, `${t(`weekday.${r.weekday}`)} ${hm(r.start_time)}–${hm(r.end_time)} · ${t('avail.minutes', { n: r.slot_minutes })}`))) : h('p', { class: 'empty' }, t('avail.no_rules')));
        } catch (x) { mount(copied, h('p', { class: 'error' }, errorText(x))); }
      }
      count();
    });
    // Who gets them: every clinician of the hospital, narrowed by specialty.
    const spFilter = select({ name: 'tpl_specialty' }, [['', t('hub.all_specialties')], ...[...new Set(staff.flatMap((c) => c.specialties))].map((c) => [c, spName(c)])], '');
    const all = h('input', { type: 'checkbox', name: 'tpl_all' });
    const people = h('ul', { class: 'list people' }, staff.map((c) => h('li', { 'data-clinician': c.id, 'data-specialties': c.specialties.join(',') },
      h('label', { class: 'choice' }, h('input', { type: 'checkbox', name: 'tpl_clinician', value: c.id, onchange: () => count() }), ` ${c.title} ${c.full_name}`, h('small', {}, ` · ${c.specialties.map(spName).join(', ')}`)))));
    const visible = () => [...people.children].filter((li) => !li.hidden);
    spFilter.addEventListener('change', () => {
      for (const li of people.children) li.hidden = !!spFilter.value && !li.dataset.specialties.split(',').includes(spFilter.value);
      all.checked = false;
      count();
    });
    all.addEventListener('change', () => {
      for (const li of visible()) li.querySelector('input').checked = all.checked;
      count();
    });

    const apply = h('button', { type: 'submit', class: 'primary', 'data-apply-template': true });
    /** The rules the template stands for, as the API takes them. */
    function rules() {
      if (source.value !== 'build') {
        return copiedRules.map((r) => ({ weekday: r.weekday, start_time: hm(r.start_time), end_time: hm(r.end_time), slot_minutes: r.slot_minutes, buffer_minutes: r.buffer_minutes }));
      }
      const ticked = [...days.querySelectorAll('input:checked')].map((x) => Number(x.value));
      return ticked.flatMap((weekday) => [...sessions.children].map((row) => ({
        weekday,
        start_time: row.querySelector('[name=tpl_start]').value,
        end_time: row.querySelector('[name=tpl_end]').value,
        slot_minutes: Number(row.querySelector('[name=tpl_slot]').value),
        buffer_minutes: Number(row.querySelector('[name=tpl_buffer]').value || 0),
      })));
    }
    const chosen = () => [...people.querySelectorAll('li:not([hidden]) input:checked')].map((x) => Number(x.value));
    function count() {
      const r = rules().length;
      const c = chosen().length;
      apply.textContent = t('tpl.apply', { r, c });
      apply.disabled = !r || !c;
    }

    const form = h('form', {
      class: 'template', 'aria-labelledby': 'tpl-h',
      onsubmit: async (e) => {
        e.preventDefault();
        err.textContent = '';
        done.textContent = '';
        for (const li of people.querySelectorAll('.clash')) li.classList.remove('clash');
        const clinicians = chosen();
        try {
          const r = await post(`/facilities/${id}/availability/rules`, { clinician_ids: clinicians, rules: rules() });
          done.textContent = t('tpl.done', { r: r.created, c: r.clinicians });
          toast(done.textContent);
        } catch (x) {
          const clash = x.details && x.details.clash && x.details.clash.clinician_id;
          const li = clash && people.querySelector(`li[data-clinician="${clash}"]`);
          if (li) { li.classList.add('clash'); li.scrollIntoView({ block: 'center' }); }
          err.textContent = li ? `${t('tpl.clash', { name: li.textContent.split(' · ')[0].trim() })} ${errorText(x)}` : errorText(x);
          markFieldErrors(form, x, (name) => {
            // rules[i].start_time → the i-th session's start (the same session on each day).
            const m = /^rules\[(\d+)\]\.(start_time|end_time|slot_minutes|buffer_minutes)$/.exec(name);
            if (!m || source.value !== 'build') return null;
            const row = sessions.children[Number(m[1]) % sessions.children.length];
            return row && row.querySelector(`[name=tpl_${{ start_time: 'start', end_time: 'end', slot_minutes: 'slot', buffer_minutes: 'buffer' }[m[2]]}]`);
          });
        }
      },
    },
    h('section', { class: 'card', 'aria-labelledby': 'tpl-s' }, h('h2', { id: 'tpl-s' }, t('tpl.sessions')), field(t('tpl.source'), source), built, copied),
    h('section', { class: 'card', 'aria-labelledby': 'tpl-c' }, h('h2', { id: 'tpl-c' }, t('tpl.clinicians')),
      h('div', { class: 'row' }, field(t('hub.specialty'), spFilter), h('label', { class: 'choice' }, all, ` ${t('tpl.all_shown')}`)), people),
    h('div', { class: 'card row sticky-apply' }, apply, err, done));
    // A hospital's usual day, a morning and an afternoon; each is changed or removed in place.
    addSession('07:30', '11:30');
    addSession('13:30', '16:30');
    mount(main, tabs('/schedule/templates'), h('h1', { id: 'tpl-h' }, t('tpl.title')), h('p', { class: 'lead' }, `${facility.name} · ${t('tpl.lead')}`),
      picker ? h('div', { class: 'card row' }, picker) : null, form);
  });
}
