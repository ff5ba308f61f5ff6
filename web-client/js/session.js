// Who is signed in, and what they are: the roles decide the home screen.

import { get, post, cached, clearCache, ApiError } from './api.js';

export const session = { me: null, name: '', clinician: null };

const NAME_KEY = 'telehealth.name';

export async function load() {
  try {
    session.me = await get('/auth/me');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) { session.me = null; return null; }
    throw e;
  }
  session.name = sessionStorage.getItem(NAME_KEY) || session.me.username;
  if (session.me.clinician_id) session.clinician = await cached(`/clinicians/${session.me.clinician_id}`);
  return session.me;
}

export async function signIn(username, password) {
  const s = await post('/auth/login', { username, password });
  sessionStorage.setItem(NAME_KEY, s.account.display_name);
  return load();
}

/** Opens the visit of link `token`; a device with no session of the patient's sends their date
 * of birth too (`YYYY-MM-DD`), else the server answers `date_of_birth_required`. */
export async function signInWithVisitLink(token, dateOfBirth) {
  const s = await post('/auth/visit', dateOfBirth ? { token, date_of_birth: dateOfBirth } : { token });
  sessionStorage.setItem(NAME_KEY, s.account.display_name);
  return load();
}

export async function signOut() {
  try { await post('/auth/logout'); } catch { /* the session is gone either way */ }
  sessionStorage.removeItem(NAME_KEY);
  session.me = null;
  session.clinician = null;
  clearCache();
}

const has = (role) => !!session.me && session.me.grants.some((g) => g.role === role);
export const isPatient = () => has('patient');
export const isScheduler = () => has('scheduler');
export const isClinician = () => has('clinician');
/** A clinician at a care centre books specialists; one at a hub runs a day list. */
export const isRuralClinician = () => isClinician() && session.clinician && session.clinician.facility_kind === 'care_centre';
export const isSpecialist = () => isClinician() && !isRuralClinician();
/** The hospital a scheduler manages, or null for a network-wide scheduler. */
export const schedulerFacility = () => {
  const g = session.me && session.me.grants.find((x) => x.role === 'scheduler');
  return g ? g.facility_id : null;
};
