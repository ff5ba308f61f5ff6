// Two complete dictionaries, Vietnamese and English. The language defaults to the browser's
// (Vietnamese when it prefers Vietnamese, English otherwise); a choice is kept in localStorage.
// Dates and times are always shown in the facility's IANA zone, never the device's.

import en from './i18n/en.js';
import vi from './i18n/vi.js';

const dicts = { en, vi };
const KEY = 'telehealth.lang';

function initial() {
  const saved = localStorage.getItem(KEY);
  if (saved && dicts[saved]) return saved;
  for (const l of navigator.languages || [navigator.language || 'en']) {
    const base = l.toLowerCase().split('-')[0];
    if (base === 'vi') return 'vi';
    if (base === 'en') return 'en';
  }
  return 'en';
}

export let lang = initial();
document.documentElement.lang = lang;
/** Keys asked for but missing from the current dictionary (the browser tests read it). */
export const missing = new Set();
window.__i18nMissing = missing;

export function setLang(l) {
  if (!dicts[l]) return;
  lang = l;
  localStorage.setItem(KEY, l);
  document.documentElement.lang = l;
}

/** t('book.title'), t('visit.opens_at', {time: '08:30'}) */
export function t(key, params) {
  let s = dicts[lang][key];
  if (s === undefined) {
    missing.add(key);
    s = key;
  }
  if (params) s = s.replace(/\{(\w+)\}/g, (_, k) => (params[k] ?? ''));
  return s;
}

/** A translation when there is one (server-side names such as event actions may be new). */
export const tOr = (key, fallback) => (dicts[lang][key] === undefined ? fallback : dicts[lang][key]);

const locale = () => (lang === 'vi' ? 'vi-VN' : 'en-GB');
const fmt = (opts, zone) => new Intl.DateTimeFormat(locale(), { ...opts, timeZone: zone || 'Asia/Ho_Chi_Minh' });

export const fmtTime = (iso, zone) => fmt({ hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }, zone).format(new Date(iso));
export const fmtDate = (iso, zone) => fmt({ weekday: 'short', day: 'numeric', month: 'numeric', year: 'numeric' }, zone).format(new Date(iso));
export const fmtDateTime = (iso, zone) => `${fmtDate(iso, zone)} ${fmtTime(iso, zone)}`;
/** A local date `YYYY-MM-DD` (as the API takes it) for an instant, in a zone. */
export function localDate(instant, zone) {
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-CA', { timeZone: zone || 'Asia/Ho_Chi_Minh', year: 'numeric', month: '2-digit', day: '2-digit' })
    .formatToParts(instant).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day}`;
}
/** The UTC instant of local midnight starting `date` (YYYY-MM-DD) in `zone`. */
export function zoneMidnight(date, zone) {
  const guess = new Date(`${date}T00:00:00Z`);
  const p = Object.fromEntries(new Intl.DateTimeFormat('en-GB', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' })
    .formatToParts(guess).map((x) => [x.type, x.value]));
  const asLocal = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute);
  return new Date(guess.getTime() - (asLocal - guess.getTime()));
}
