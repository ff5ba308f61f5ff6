// The encounter note of a consultation, through the notes API (server/src/api/notes.rs). Every
// call to that API is here.
//
// Clinicians of the consultation get `{status: none|draft|signed, version, draft: {version,
// content, ...} | null, entries: [{kind: note|addendum, seq, content, signer_name, signed_at,
// content_hash, ...}]}`; writes carry the `version` read last (0 before the first save), and a
// save over a stale version is `409 version_conflict` with `details.current_version`. The
// patient gets the signed note in plain words: `{status: signed|pending, title, signed_by,
// signed_at, sections: [{key, label, text}], addenda: [{label, text, signed_by, signed_at}]}`.

import { api, ApiError } from './api.js';
import { lang } from './i18n.js';
import { signNoteWithPasskey, addAddendumWithPasskey } from './passkeys.js';

/** A signer with a passkey signs with it: the server says so (409 passkey_required). */
const needsPasskey = (e) => e instanceof ApiError && e.status === 409 && e.code === 'passkey_required';

export const SOAP = ['subjective', 'objective', 'assessment', 'plan'];
export const FOLLOW_UPS = ['none', 'teleconsultation', 'in_person_referral', 'urgent_transfer'];
/** Same shape check as the server's (a letter, two digits, optionally a dot and 1-4 more). */
export const ICD10 = /^[A-Za-z][0-9]{2}(\.[A-Za-z0-9]{1,4})?$/;

/** The note as the caller may see it (clinician view or patient view, see above). */
export function getNote(consultationId) {
  return api('GET', `/consultations/${consultationId}/note?lang=${lang}`);
}

/** True for the clinicians' view (it carries the draft version). */
export const isClinicianView = (note) => !!note && typeof note.version === 'number';

/** Saves `content` as the next draft over `version` (0 when nothing is saved yet). */
export function saveDraft(consultationId, version, content) {
  return api('PUT', `/consultations/${consultationId}/note`, { version, content });
}

/** Signs the draft at `version`, with the clinician's passkey once they have one; a signed note
 * never changes again, it takes addenda. */
export async function signNote(consultationId, version) {
  try {
    return await api('POST', `/consultations/${consultationId}/note/sign`, { version });
  } catch (e) {
    if (needsPasskey(e)) return signNoteWithPasskey(consultationId, version);
    throw e;
  }
}

export async function addAddendum(consultationId, text) {
  try {
    return await api('POST', `/consultations/${consultationId}/note/addenda`, { text });
  } catch (e) {
    if (needsPasskey(e)) return addAddendumWithPasskey(consultationId, text);
    throw e;
  }
}

/** The printable summary (HTML, its own strict CSP), in the interface language. */
export const summaryUrl = (consultationId) => `/api/v1/consultations/${consultationId}/summary?lang=${lang}`;

export const isSigned = (note) => !!note && note.status === 'signed';

/** The signed entry of the note itself (seq 1), if signed. */
export const signedEntry = (note) => (note && note.entries ? note.entries.find((e) => e.kind === 'note') : undefined);
export const addenda = (note) => (note && note.entries ? note.entries.filter((e) => e.kind === 'addendum') : []);

/** The content a clinician sees now: the draft, else the signed note, else empty. */
export function currentContent(note) {
  if (note && note.draft) return note.draft.content;
  const e = signedEntry(note);
  return e ? e.content : {};
}

/** A version conflict: the version now on the server, or null when `e` is not one. */
export function conflictVersion(e) {
  if (!(e instanceof ApiError) || e.status !== 409 || e.code !== 'version_conflict') return null;
  return e.details && typeof e.details.current_version === 'number' ? e.details.current_version : null;
}
