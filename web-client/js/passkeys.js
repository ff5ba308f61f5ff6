// Passkeys (WebAuthn) that sign a clinician's notes, through the passkey API
// (server/src/api/passkeys.rs, and the note endpoints' `challenge` routes). Every call to those
// APIs and to navigator.credentials is here.
//
// The server sends WebAuthn options with binary fields in base64url and wants the browser's
// answer the same way; these helpers do that conversion by hand, so they work on browsers
// without PublicKeyCredential.parseCreationOptionsFromJSON / toJSON (older phones).

import { api } from './api.js';

const b64uToBytes = (s) => {
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
};
const bytesToB64u = (buf) => {
  const bytes = new Uint8Array(buf);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};
const withIds = (list) => (list || []).map((c) => ({ ...c, id: b64uToBytes(c.id) }));

/** Whether this browser can use passkeys here (a secure context with WebAuthn). */
export const passkeysSupported = () => !!(window.isSecureContext && window.PublicKeyCredential && navigator.credentials);

export const listPasskeys = () => api('GET', '/me/passkeys');

/** Enrols a new passkey named `name`: the browser asks the user to create and verify it. */
export async function enrolPasskey(name) {
  const start = await api('POST', '/me/passkeys/registration', {});
  const o = start.options.publicKey;
  const publicKey = {
    ...o,
    challenge: b64uToBytes(o.challenge),
    user: { ...o.user, id: b64uToBytes(o.user.id) },
    excludeCredentials: withIds(o.excludeCredentials),
  };
  const cred = await navigator.credentials.create({ publicKey });
  const credential = {
    id: cred.id,
    rawId: bytesToB64u(cred.rawId),
    type: cred.type,
    response: {
      attestationObject: bytesToB64u(cred.response.attestationObject),
      clientDataJSON: bytesToB64u(cred.response.clientDataJSON),
      transports: cred.response.getTransports ? cred.response.getTransports() : undefined,
    },
    extensions: {},
  };
  return api('POST', '/me/passkeys', { ceremony_id: start.ceremony_id, name, credential });
}

/** The passkey's answer to a signing challenge (`{ceremony_id, options, document}`). */
async function answer(challenge) {
  const o = challenge.options.publicKey;
  const publicKey = { ...o, challenge: b64uToBytes(o.challenge), allowCredentials: withIds(o.allowCredentials) };
  const cred = await navigator.credentials.get({ publicKey });
  return {
    ceremony_id: challenge.ceremony_id,
    credential: {
      id: cred.id,
      rawId: bytesToB64u(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: bytesToB64u(cred.response.authenticatorData),
        clientDataJSON: bytesToB64u(cred.response.clientDataJSON),
        signature: bytesToB64u(cred.response.signature),
        userHandle: cred.response.userHandle ? bytesToB64u(cred.response.userHandle) : null,
      },
      extensions: {},
    },
  };
}

/** Signs the draft at `version` with the clinician's passkey. */
export async function signNoteWithPasskey(consultationId, version) {
  const challenge = await api('POST', `/consultations/${consultationId}/note/sign/challenge`, { version });
  const passkey = await answer(challenge);
  return api('POST', `/consultations/${consultationId}/note/sign`, { version, passkey });
}

/** Adds an addendum with `text`, signed with the clinician's passkey. */
export async function addAddendumWithPasskey(consultationId, text) {
  const challenge = await api('POST', `/consultations/${consultationId}/note/addenda/challenge`, { text });
  const passkey = await answer(challenge);
  return api('POST', `/consultations/${consultationId}/note/addenda`, { text, passkey });
}
