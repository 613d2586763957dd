// Calls to this server's API: adds the API key and the person's name, and turns failures into ApiError
// with a message a person can act on (OpenAI's error envelope, rate-limit headers, network failures).

import { settings } from './settings.js';

export class ApiError extends Error {
  constructor(message, { status = 0, code = null, detail = '', retryAfter = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter; // seconds, for 429
  }
}

/** `path` with the person's name as the `user` query parameter, when one is set. */
export function withUser(path) {
  const user = settings.user;
  if (!user) return path;
  return `${path}${path.includes('?') ? '&' : '?'}user=${encodeURIComponent(user)}`;
}

function headers(hasBody) {
  const out = {};
  if (hasBody) out['Content-Type'] = 'application/json';
  if (settings.apiKey) out.Authorization = `Bearer ${settings.apiKey}`;
  return out;
}

/** Seconds until a limit resets: Retry-After, else the longest x-ratelimit-reset-* ("1m30s", "250ms"). */
export function retrySeconds(responseHeaders) {
  const after = Number.parseFloat(responseHeaders.get('retry-after') ?? '');
  if (Number.isFinite(after)) return Math.ceil(after);
  const resets = ['requests', 'tokens']
    .map((kind) => parseDuration(responseHeaders.get(`x-ratelimit-reset-${kind}`)))
    .filter((s) => s !== null);
  return resets.length ? Math.ceil(Math.max(...resets)) : null;
}

function parseDuration(text) {
  if (!text) return null;
  const match = /^(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$/.exec(text.trim());
  if (!match || !match[0]) return null;
  const [, m = '0', s = '0', ms = '0'] = match;
  return Number(m) * 60 + Number(s) + Number(ms) / 1000;
}

/** An ApiError for a failed response, read from its error envelope and headers. */
export async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  let code = null;
  try {
    const body = await response.json();
    if (body?.error?.message) ({ message, code = null } = body.error);
  } catch {
    // not JSON (a proxy's page): keep the status line
  }
  const status = response.status;
  if (status === 429) {
    const retryAfter = retrySeconds(response.headers);
    const when = retryAfter === null ? 'in a moment' : `in ${retryAfter} s`;
    return new ApiError(`Rate limit reached: you can send again ${when}.`, { status, code, detail: message, retryAfter });
  }
  if (status === 401) {
    return new ApiError('This server needs a valid API key: add it in Settings.', { status, code, detail: message });
  }
  if (status === 403) return new ApiError(`Not allowed: ${message}`, { status, code });
  return new ApiError(message, { status, code });
}

/** fetch() on this server; resolves to the Response if it is OK, else throws ApiError. */
export async function call(path, { method = 'GET', body, signal } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError('Could not reach the Ember server. Is it running?', { detail: String(err) });
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

/** The JSON body of a successful call. */
export async function getJson(path, options) {
  const response = await call(path, options);
  return response.json();
}
