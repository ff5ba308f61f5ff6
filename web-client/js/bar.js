// The top bar: the name, the screens of the signed-in roles, the language switch, sign-out.

import { h, mount } from './dom.js';
import { t, lang, setLang } from './i18n.js';
import { render, navigate } from './router.js';
import * as s from './session.js';

export function drawBar() {
  const bar = document.getElementById('bar');
  const links = [];
  if (s.session.me) {
    links.push(['/', t('nav.home')]);
    if (s.isRuralClinician()) links.push(['/book', t('nav.book')]);
    if (s.isScheduler()) {
      links.push(['/schedule', t('nav.calendar')], ['/schedule/availability', t('nav.availability')], ['/schedule/templates', t('nav.templates')], ['/schedule/utilisation', t('nav.utilisation')]);
    }
  }
  const langSelect = h('select', { id: 'lang', 'aria-label': t('lang.label'), onchange: (e) => { setLang(e.target.value); drawBar(); render(); } },
    h('option', { value: 'vi', selected: lang === 'vi' }, 'Tiếng Việt'),
    h('option', { value: 'en', selected: lang === 'en' }, 'English'));
  mount(bar,
    h('a', { href: '/', 'data-nav': true, class: 'brand' }, t('app.name')),
    links.length ? h('nav', { 'aria-label': t('nav.label') }, h('ul', {}, links.map(([href, label]) => h('li', {}, h('a', { href, 'data-nav': true }, label))))) : null,
    h('div', { class: 'who' },
      langSelect,
      s.session.me ? h('span', { class: 'name' }, s.session.name) : null,
      s.session.me ? h('button', { type: 'button', class: 'link signout', onclick: async () => { await s.signOut(); drawBar(); navigate('/signin'); } }, t('nav.signout')) : null));
  document.title = t('app.name');
}
