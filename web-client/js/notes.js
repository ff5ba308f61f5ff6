// The encounter note of a consultation, through the notes API (routes under
// /api/v1/consultations/{id}/note; writes carry the `version` read last, so two editors cannot
// overwrite each other). Every call to that API is here, so its exact shape is adjusted in one place.

import { api, ApiError } from './api.js';

export const SECTIONS = ['subjective', 'objective', 'assessment', 'plan'];

/** The note, or null when none has been written yet. */
export async function getNote(consultationId) {
  try {
    return await api('GET', `/consultations/${consultationId}/note`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404 && e.code !== 'not_found_consultation') return null;
    throw e;
  }
}

/** Saves a draft: `soap` holds the four sections; `version` is null for a first save. */
export function saveNote(consultationId, soap, version) {
  const body = { ...soap };
  if (version !== null && version !== undefined) body.version = version;
  return api('PUT', `/consultations/${consultationId}/note`, body);
}

/** Signs the draft at `version`; a signed note is never changed again, only amended. */
export function signNote(consultationId, version) {
  return api('POST', `/consultations/${consultationId}/note/sign`, { version });
}

export const isSigned = (note) => !!(note && (note.signed_at || note.status === 'signed'));
