// Pieces shared by the screens: status labels, error messages, names of people and places.

import { h } from '../dom.js';
import { t, tOr, fmtTime } from '../i18n.js';
import { cached } from '../api.js';

/** What a person reads for an API error: the code's own message in their language when it
 * has one, the fields to check for invalid input, and when to try again after a refusal for
 * too many requests. The server's English message is for programs and logs, never shown. */
export function errorText(e) {
  if (!e) return t('error.generic');
  if (e.code === 'offline') return t('error.offline');
  const wait = e.details && Number(e.details.retry_after_seconds);
  const retry = wait > 0 ? ` ${t('error.retry_at', { time: fmtTime(new Date(Date.now() + wait * 1000).toISOString(), Intl.DateTimeFormat().resolvedOptions().timeZone) })}` : '';
  const own = tOr(`code.${e.code}`, null);
  if (own) return `${own}${retry}`;
  if (e.status === 403) return t('error.forbidden');
  if (e.status === 404) return t('error.not_found');
  if (e.status === 422 || e.status === 400) {
    const names = ((e.details && e.details.fields) || []).map((f) => tOr(`field.${f.field}`, null)).filter(Boolean);
    return names.length ? t('error.check_fields', { fields: [...new Set(names)].join(', ') }) : t('error.invalid');
  }
  if (e.status === 503) return t('error.unavailable');
  return `${t('error.generic')}${retry}`;
}

/** Marks beside each control the fields a 422 names (`aria-invalid`, and a note the control is
 * described by), clearing the marks of the last attempt first; `e` null only clears.
 * `find(name)` gives the control of an API field name, when it is not `[name=…]` itself. */
export function markFieldErrors(form, e, find) {
  for (const old of form.querySelectorAll('.field-error')) old.remove();
  for (const el of form.querySelectorAll('[aria-invalid]')) {
    el.removeAttribute('aria-invalid');
    if (el.dataset.describedby !== undefined) {
      if (el.dataset.describedby) el.setAttribute('aria-describedby', el.dataset.describedby); else el.removeAttribute('aria-describedby');
      delete el.dataset.describedby;
    }
  }
  for (const f of (e && e.details && e.details.fields) || []) {
    const el = (find && find(f.field)) || form.querySelector(`[name="${CSS.escape(f.field)}"]`);
    if (!el || el.getAttribute('aria-invalid')) continue;
    const id = `${el.id || (el.id = `c${Math.random().toString(36).slice(2, 9)}`)}-error`;
    el.dataset.describedby = el.getAttribute('aria-describedby') || '';
    el.setAttribute('aria-invalid', 'true');
    el.setAttribute('aria-describedby', `${el.dataset.describedby} ${id}`.trim());
    el.insertAdjacentElement('afterend', h('small', { class: 'error field-error', id }, tOr(`fielderror.${f.field}`, t('error.check_this'))));
  }
}

export const statusBadge = (status) => h('span', { class: `badge st-${status}` }, t(`status.${status}`));
export const urgencyBadge = (u) => h('span', { class: `badge urg-${u}` }, t(`urgency.${u}`));

export async function clinician(id) {
  try { return await cached(`/clinicians/${id}`); } catch { return null; }
}
export async function patientName(id) {
  try { return (await cached(`/patients/${id}`)).full_name; } catch { return `#${id}`; }
}
export async function facility(id) {
  try { return await cached(`/facilities/${id}`); } catch { return null; }
}

/** The zone a consultation's times are shown in: its clinician's facility's. */
export async function zoneOf(consultation) {
  const c = await clinician(consultation.clinician_id);
  return (c && c.time_zone) || 'Asia/Ho_Chi_Minh';
}

export const loading = () => h('p', { class: 'loading', role: 'status' }, t('common.loading'));
export const errorBox = (e) => h('p', { class: 'error', role: 'alert' }, errorText(e));

/** Specialty name in the interface language. */
export function specialtyName(sp, lang) {
  return lang === 'vi' ? sp.name_vi : sp.name_en;
}

/** A QR code the server drew (SVG with no script or style), parsed as SVG, never as HTML. */
export function qrFigure(svgText, label) {
  const fig = h('figure', { class: 'qr', 'data-qr': true });
  const svg = new DOMParser().parseFromString(svgText, 'image/svg+xml').documentElement;
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  fig.append(document.importNode(svg, true), h('figcaption', {}, label));
  return fig;
}

/** A link to hand on: the address (selected on focus), a copy button, and what copying did. */
export function linkBox(url, label, status) {
  const input = h('input', { readonly: true, value: url, 'aria-label': label, onfocus: (e) => e.target.select() });
  const copy = h('button', { type: 'button', onclick: async () => {
    try { await navigator.clipboard.writeText(url); status.textContent = t('link.copied'); } catch { input.select(); status.textContent = t('link.copy_by_hand'); }
  } }, t('link.copy'));
  return { input, row: h('div', { class: 'row' }, input, copy) };
}
