// What every scheduler screen shares: the tabs, the hospital whose schedule is shown, and the
// guard that turns a refusal into a message instead of a blank screen.

import { h, mount, field, select } from '../dom.js';
import { t } from '../i18n.js';
import { get, cached, query } from '../api.js';
import * as s from '../session.js';
import { loading, errorBox } from './common.js';

export const tabs = (active) => h('nav', { class: 'tabs', 'aria-label': t('schedule.tabs') }, [
  ['/schedule', 'nav.calendar'], ['/schedule/availability', 'nav.availability'], ['/schedule/templates', 'nav.templates'], ['/schedule/utilisation', 'nav.utilisation'],
].map(([href, key]) => h('a', { href, 'data-nav': true, 'aria-current': href === active ? 'page' : null }, t(key))));

/** The hospital whose schedule is shown: the scheduler's own, or (network schedulers) a chosen hub. */
export async function facilityPicker(onChange) {
  const own = s.schedulerFacility();
  if (own) return { id: own, picker: null, facility: await cached(`/facilities/${own}`) };
  const hubs = await cached('/facilities?kind=hub_hospital');
  const saved = Number(localStorage.getItem('telehealth.hub')) || (hubs[0] && hubs[0].id);
  const sel = select({ onchange: (e) => { localStorage.setItem('telehealth.hub', e.target.value); onChange(); } }, hubs.map((f) => [f.id, f.name]), saved);
  return { id: saved, picker: field(t('schedule.hospital'), sel), facility: hubs.find((f) => f.id === saved) };
}

/** Every clinician of hospital `id` (a hub has tens; the directory pages at 500). */
export const hospitalClinicians = (id) => get(`/clinicians${query({ facility_id: id, limit: 500 })}`);

export async function guard(main, active, body) {
  if (!s.isScheduler()) { mount(main, h('h1', {}, t('nav.calendar')), errorBox({ status: 403 })); return; }
  main.replaceChildren(loading());
  try { await body(); } catch (e) { mount(main, tabs(active), errorBox(e)); }
}
