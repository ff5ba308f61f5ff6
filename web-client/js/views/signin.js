// Sign-in with a user name and password, and the visit link a patient opens (/visit#<token>).

import { h, field, mount } from '../dom.js';
import { t } from '../i18n.js';
import { navigate } from '../router.js';
import { drawBar } from '../bar.js';
import * as s from '../session.js';
import { errorText } from './common.js';

/** A refused sign-in says when to try again (the server's `retry_after_seconds`). */
function tooMany(x) {
  const wait = Number((x.details && x.details.retry_after_seconds) || 60);
  return wait < 120 ? t('signin.too_many_seconds', { n: wait }) : t('signin.too_many_minutes', { n: Math.ceil(wait / 60) });
}

export function signinView(main) {
  const user = h('input', { name: 'username', autocomplete: 'username', required: true, 'data-autofocus': true, autocapitalize: 'none', spellcheck: 'false' });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const err = h('p', { class: 'error', role: 'alert' });
  const btn = h('button', { type: 'submit', class: 'primary' }, t('signin.submit'));
  const form = h('form', {
    class: 'card narrow',
    onsubmit: async (e) => {
      e.preventDefault();
      btn.disabled = true;
      err.textContent = '';
      try {
        await s.signIn(user.value.trim(), pass.value);
        drawBar();
        navigate('/', true);
      } catch (x) {
        err.textContent = x.status === 401 ? t('signin.wrong') : x.status === 429 ? tooMany(x) : errorText(x);
        pass.select();
      } finally {
        btn.disabled = false;
      }
    },
  },
  h('h1', {}, t('signin.title')),
  h('p', { class: 'lead' }, t('signin.lead')),
  field(t('signin.username'), user),
  field(t('signin.password'), pass),
  err, btn,
  h('p', { class: 'hint' }, t('signin.visit_hint')));
  mount(main, form);
  user.focus();
}

export async function visitView(main) {
  const token = location.hash.slice(1);
  // The token must not stay in the address bar or the history once used.
  history.replaceState(null, '', '/visit');
  const status = h('p', { role: 'status' }, t('visit.opening'));
  mount(main, h('section', { class: 'card narrow' }, h('h1', {}, t('visit.title')), status));
  if (!token) { status.textContent = t('visit.no_token'); return; }
  const card = main.querySelector('section');
  const open = async (dateOfBirth) => {
    await s.signInWithVisitLink(token, dateOfBirth);
    drawBar();
    navigate('/', true);
  };
  const refused = (x) => {
    status.className = 'error';
    status.textContent = visitRefusal(x);
    card.append(h('a', { href: '/signin', 'data-nav': true }, t('visit.signin_instead')));
  };
  try {
    await open();
  } catch (x) {
    // A device the patient has not used for this visit yet: they confirm who they are first.
    if (x.code === 'date_of_birth_required') askBirthDate(card, status, open, refused);
    else refused(x);
  }
}

function visitRefusal(x) {
  if (x.code === 'visit_link_locked') return t('visit.locked');
  return x.status === 401 ? t('visit.invalid') : errorText(x);
}

function askBirthDate(card, status, open, refused) {
  status.textContent = t('visit.dob_prompt');
  const input = h('input', { type: 'date', name: 'date_of_birth', required: true, max: new Date().toISOString().slice(0, 10) });
  const err = h('p', { class: 'error', role: 'alert' });
  const go = h('button', { type: 'submit', class: 'primary' }, t('visit.dob_continue'));
  const form = h('form', { onsubmit: async (e) => {
    e.preventDefault();
    err.textContent = '';
    go.disabled = true;
    try {
      await open(input.value);
    } catch (x) {
      if (x.code === 'wrong_date_of_birth') err.textContent = t('visit.dob_wrong', { n: x.details ? x.details.tries_left : 0 });
      else { form.remove(); refused(x); }
    } finally { go.disabled = false; }
  } }, field(t('visit.dob_label'), input), err, go);
  card.append(form);
  input.focus();
}
