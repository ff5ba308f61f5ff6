// The client's entry: loads the session, draws the top bar, and routes.

import { drawBar } from './bar.js';
import { route, render, navigate } from './router.js';
import * as s from './session.js';
import { signinView, visitView } from './views/signin.js';
import { homeView } from './views/home.js';
import { bookView } from './views/book.js';
import { availabilityView, utilisationView } from './views/schedule.js';
import { calendarView } from './views/hub.js';
import { templatesView } from './views/templates.js';
import { consultationView } from './views/consultation.js';
import { callView, guestView } from './views/call.js';

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
