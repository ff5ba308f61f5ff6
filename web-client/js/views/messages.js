// What the patient is told and how: their contact preferences and consent (the patient, their
// care centre and the schedulers who book for them record it), and each consultation's delivery
// log (queued, sent, failed, with the channel that carried it) with a resend for those who
// manage the consultation. Neither ever shows a message's content or an address beyond the
// patient's own email.

import { h, mount, field, select } from '../dom.js';
import { t, tOr, fmtDateTime } from '../i18n.js';
import { get, put, post } from '../api.js';
import { errorText, errorBox, loading, markFieldErrors, linkBox } from './common.js';

/** The card of patient `patientId`'s contact preferences, a form when `editable`; times in
 * `zone`. */
export function contactPreferences(patientId, editable, zone) {
  const card = h('section', { class: 'card', 'data-contacts': true }, h('h2', {}, t('contacts.title')), loading());
  (async () => {
    let p;
    try { p = await get(`/patients/${patientId}/contact-preferences`); } catch (x) { mount(card, h('h2', {}, t('contacts.title')), errorBox(x)); return; }
    const consent = h('input', { type: 'checkbox', name: 'consent', checked: p.consent });
    const channel = select({ name: 'channel' }, ['zalo', 'sms', 'email', 'none'].map((c) => [c, t(`contacts.channel.${c}`)]), p.channel);
    const language = select({ name: 'language' }, [['vi', 'Tiếng Việt'], ['en', 'English']], p.language);
    const email = h('input', { type: 'email', name: 'email', value: p.email || '', autocomplete: 'off', maxlength: 254 });
    const quiet = h('input', { type: 'checkbox', name: 'quiet', checked: !!p.quiet_hours });
    const from = h('input', { type: 'time', name: 'quiet_from', value: p.quiet_hours ? p.quiet_hours.from : '21:00' });
    const until = h('input', { type: 'time', name: 'quiet_until', value: p.quiet_hours ? p.quiet_hours.until : '07:00' });
    const status = h('p', { role: 'status', 'aria-live': 'polite', 'data-contacts-status': true },
      p.asked ? t('contacts.recorded', { when: fmtDateTime(p.updated_at, zone) }) : t('contacts.not_asked'));
    const form = h('form', {
      onsubmit: async (ev) => {
        ev.preventDefault();
        const body = { consent: consent.checked, channel: channel.value, language: language.value, email: email.value.trim() || null,
          quiet_hours: quiet.checked ? { from: from.value, until: until.value } : null };
        try {
          const saved = await put(`/patients/${patientId}/contact-preferences`, body);
          markFieldErrors(form, null);
          status.textContent = t('contacts.saved', { channel: t(`contacts.channel.${saved.channel}`) });
        } catch (x) {
          markFieldErrors(form, x, (f) => (f === 'quiet_hours' ? from : null));
          status.textContent = errorText(x);
        }
      },
    },
    h('label', { class: 'choice' }, consent, ` ${t('contacts.consent')}`),
    field(t('contacts.channel'), channel, t('contacts.channel_hint')),
    field(t('contacts.language'), language),
    field(t('contacts.email'), email),
    h('label', { class: 'choice' }, quiet, ` ${t('contacts.quiet')}`),
    h('div', { class: 'row' }, field(t('contacts.quiet_from'), from), field(t('contacts.quiet_until'), until)),
    editable ? h('button', { type: 'submit', class: 'primary' }, t('contacts.save')) : null, status);
    if (!editable) for (const el of form.elements) el.disabled = true;
    mount(card, h('h2', {}, t('contacts.title')), h('p', { class: 'hint' }, t('contacts.hint')), form);
  })();
  return card;
}

/** The delivery log of consultation `c`, with a resend for failed and sent messages. */
export function deliveryLog(c, zone) {
  const list = h('ul', { class: 'delivery-log' });
  const status = h('p', { role: 'status', 'aria-live': 'polite' });
  const card = h('section', { class: 'card', 'data-delivery-log': true }, h('h2', {}, t('log.title')), list, status);
  const refresh = async () => {
    // A list holds list items only, its loading line too.
    mount(list, h('li', { class: 'loading', role: 'status' }, t('common.loading')));
    let log;
    try { log = await get(`/consultations/${c.id}/messages`); } catch (x) { mount(list, h('li', {}, errorText(x))); return; }
    if (!log.length) { mount(list, h('li', { class: 'empty' }, t('log.empty'))); return; }
    mount(list, ...log.map((m) => {
      const via = m.sent_via ? t(`contacts.channel.${m.sent_via}`) : m.channel === 'webhook' ? m.to : t(`contacts.channel.${m.to}`);
      const when = m.sent_at || m.due_at;
      const resend = (m.status === 'dead' || m.status === 'sent') ? h('button', {
        type: 'button', class: 'small', 'data-resend': m.id,
        onclick: async () => {
          try { await post(`/outbox/messages/${m.id}/resend`); status.textContent = t('log.resent'); } catch (x) { status.textContent = errorText(x); }
          refresh();
        },
      }, t('log.resend')) : null;
      return h('li', { 'data-message': m.id, 'data-status': m.status },
        h('strong', {}, tOr(`log.kind.${m.kind}`, m.kind)), m.channel === 'clinician' ? ` (${t('log.to_clinician')})` : null, ' · ', via, ' · ',
        h('span', { class: `badge msg-${m.status}` }, t(`log.status.${m.status}`)), ' ',
        h('time', {}, fmtDateTime(when, zone)),
        m.status === 'dead' && m.last_error ? h('small', { class: 'error' }, ` ${m.last_error}`) : null,
        resend ? ' ' : null, resend);
    }));
  };
  refresh();
  return card;
}

/** The clinician's calendar feed: make a secret link for their phone's calendar (shown once),
 * with or without patients' names, and stop it. */
export function calendarFeedCard() {
  const out = h('div', { class: 'linkout' });
  const msg = h('p', { role: 'status', 'aria-live': 'polite', 'data-feed-status': true });
  const names = h('input', { type: 'checkbox', name: 'with_patient_names' });
  const stop = h('button', { type: 'button', class: 'danger', hidden: true, onclick: async () => {
    try { await post('/me/calendar-feed/revoke'); mount(out); msg.textContent = t('feed.revoked'); stop.hidden = true; } catch (x) { msg.textContent = errorText(x); }
  } }, t('feed.revoke'));
  const make = h('button', { type: 'button', onclick: async () => {
    try {
      const f = await post('/me/calendar-feed', { with_patient_names: names.checked });
      const { input, row } = linkBox(f.url, t('feed.link'), msg);
      input.dataset.feedUrl = '';
      mount(out, h('p', {}, t('feed.once')), row);
      msg.textContent = '';
      stop.hidden = false;
    } catch (x) { msg.textContent = errorText(x); }
  } }, t('feed.make'));
  get('/me/calendar-feed').then((r) => {
    if (r.live) { stop.hidden = false; msg.textContent = t('feed.live'); }
  }, (x) => { msg.textContent = errorText(x); });
  return h('section', { class: 'card', 'data-calendar-feed': true }, h('h2', {}, t('feed.title')), h('p', { class: 'hint' }, t('feed.hint')),
    h('label', { class: 'choice' }, names, ` ${t('feed.names')}`), h('div', { class: 'row' }, make, stop), out, msg);
}

/** How the signed-in clinician is told of a patient waiting and of the visits they referred. */
export function myContactsCard() {
  const card = h('section', { class: 'card', 'data-my-contacts': true }, h('h2', {}, t('mycontacts.title')), loading());
  (async () => {
    let p;
    try { p = await get('/me/contact-preferences'); } catch (x) { mount(card, h('h2', {}, t('mycontacts.title')), errorBox(x)); return; }
    const channel = select({ name: 'channel' }, ['zalo', 'sms', 'email', 'none'].map((c) => [c, t(`contacts.channel.${c}`)]), p.channel);
    const language = select({ name: 'language' }, [['vi', 'Tiếng Việt'], ['en', 'English']], p.language);
    const phone = h('input', { type: 'tel', name: 'phone', value: p.phone ? `+${p.phone}` : '', autocomplete: 'tel', maxlength: 32 });
    const email = h('input', { type: 'email', name: 'email', value: p.email || '', autocomplete: 'email', maxlength: 254 });
    const status = h('p', { role: 'status', 'aria-live': 'polite', 'data-my-contacts-status': true }, p.asked ? '' : t('mycontacts.not_set'));
    const form = h('form', {
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          const saved = await put('/me/contact-preferences', { channel: channel.value, language: language.value, phone: phone.value.trim() || null, email: email.value.trim() || null });
          markFieldErrors(form, null);
          status.textContent = t('contacts.saved', { channel: t(`contacts.channel.${saved.channel}`) });
        } catch (x) {
          markFieldErrors(form, x);
          status.textContent = errorText(x);
        }
      },
    }, field(t('contacts.channel'), channel, t('contacts.channel_hint')), field(t('contacts.language'), language),
    field(t('mycontacts.phone'), phone), field(t('contacts.email'), email),
    h('button', { type: 'submit', class: 'primary' }, t('contacts.save')), status);
    mount(card, h('h2', {}, t('mycontacts.title')), h('p', { class: 'hint' }, t('mycontacts.hint')), form);
  })();
  return card;
}
