// The client's entry: loads the session, draws the top bar, and routes.

import { drawBar } from './bar.js';
import { route, render, navigate } from './router.js';
import * as s from './session.js';
import { signinView, visitView } from './views/signin.js';
import { homeView } from './views/home.js';
import { h, mount } from './dom.js';
import { t } from './i18n.js';

/** A screen whose module is fetched the first time it is opened: a patient opening a visit
 * link on a slow phone loads the sign-in and home screens, not the scheduler's or the call's. */
const lazy = (load, name) => async (main, params) => {
  let module;
  try {
    module = await load();
  } catch {
    mount(main, h('p', { class: 'error', role: 'alert' }, t('error.offline')));
    return undefined;
  }
  return module[name](main, params);
};
const bookView = lazy(() => import('./views/book.js'), 'bookView');
const calendarView = lazy(() => import('./views/hub.js'), 'calendarView');
const availabilityView = lazy(() => import('./views/schedule.js'), 'availabilityView');
const templatesView = lazy(() => import('./views/templates.js'), 'templatesView');
const utilisationView = lazy(() => import('./views/schedule.js'), 'utilisationView');
const consultationView = lazy(() => import('./views/consultation.js'), 'consultationView');
const callView = lazy(() => import('./views/call.js'), 'callView');
const guestView = lazy(() => import('./views/call.js'), 'guestView');

/** Views that need a session send the visitor to sign in first. */
const guarded = (view) => async (main, params) => {
  if (!s.session.me) { navigate('/signin', true); return undefined; }
  return view(main, params);
};

// The server serves the page for these paths' first segments only (CLIENT_ROUTES in
// server/src/web_client.rs): a new first segment must be added there too.
route('/signin', signinView);
route('/visit', visitView);
route('/guest', guestView);
route('/', guarded(homeView));
route('/book', guarded(bookView));
route('/schedule', guarded(calendarView));
route('/schedule/availability', guarded(availabilityView));
route('/schedule/templates', guarded(templatesView));
route('/schedule/utilisation', guarded(utilisationView));
route('/consultations/:id', guarded(consultationView));
route('/call/:id', guarded(callView));

async function boot() {
  try {
    await s.load();
  } catch {
    // Offline or the server is down: the sign-in screen says so when it is used.
  }
  drawBar();
  await render();
}

boot();
