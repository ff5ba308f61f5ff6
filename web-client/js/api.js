// The JSON API, same origin. Browsers authenticate with the HttpOnly session cookie, which this
// code never sees; errors come back in the API's one shape.

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** A fresh Idempotency-Key: one per user action, kept across that action's retries. */
function newKey() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// A write that may or may not have reached the server (the network dropped, or the server
// answered that it is briefly unavailable) is sent again with the same key: the server then
// answers its first answer instead of making the change twice.
const RETRY_DELAYS_MS = [1000, 3000];
const RETRYABLE = new Set([502, 503, 504]);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const writes = method !== 'GET' && method !== 'HEAD';
  if (writes) init.headers['idempotency-key'] = newKey();
  let res;
  for (let attempt = 0; ; attempt++) {
    try {
      res = await fetch(`/api/v1${path}`, init);
    } catch {
      res = null;
    }
    const again = writes && attempt < RETRY_DELAYS_MS.length && (!res || RETRYABLE.has(res.status));
    if (!again) break;
    await sleep(RETRY_DELAYS_MS[attempt]);
  }
  if (!res) throw new ApiError(0, 'offline', 'network');
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(res.status, e.code || 'error', e.message || res.statusText, e.details);
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body = {}) => api('POST', path, body);
export const put = (path, body = {}) => api('PUT', path, body);
export const del = (path) => api('DELETE', path);

/** `?a=1&b=2` from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

// Small caches for records every screen names (clinicians, patients, facilities).
const cache = new Map();
export function cached(path) {
  if (!cache.has(path)) cache.set(path, get(path).catch((e) => { cache.delete(path); throw e; }));
  return cache.get(path);
}
export function clearCache() { cache.clear(); }
