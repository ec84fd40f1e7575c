// The admin API client: the only place that talks to the gateway.
//
// The token lives in sessionStorage (this tab only, gone when it closes) and
// travels as a bearer header, never in a URL or a cookie. Every call answers
// an Answer instead of throwing, because every view shows the API's own
// status and body, errors included.

const TOKEN_KEY = "hookgate.admin_token";

/** The token this tab signed in with, or null. */
export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    // Storage can be disabled; the page then asks again after each reload.
    return null;
  }
}

export function setToken(value) {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* see token() */
  }
}

/** What the app does when the API answers 401 (set by app.js). */
let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/**
 * One answer of the API: the request, its status (0 when the gateway could
 * not be reached) and the parsed JSON body (or the text when it is not JSON).
 */
export class Answer {
  constructor(method, path, status, statusText, body) {
    this.method = method;
    this.path = path;
    this.status = status;
    this.statusText = statusText;
    this.body = body;
  }
  get ok() {
    return this.status >= 200 && this.status < 300;
  }
  /** The API's error code (`not_found`, `not_replayable`, ...), if any. */
  get code() {
    return this.body && typeof this.body === "object" ? this.body.error || null : null;
  }
  get message() {
    if (this.status === 0) return this.statusText;
    return this.body && typeof this.body === "object" ? this.body.message || "" : "";
  }
}

/** `/admin/x?a=1`, leaving out empty parameters. */
export function withQuery(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/**
 * Call the admin API. `path` is absolute on this origin (`/admin/...`).
 * `body`, when given, is sent as it is (a string: the dry run sends the
 * operator's text untouched, so the server judges it).
 */
export async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body,
      // Nothing but the header carries the token; no cookies exist to send.
      credentials: "omit",
      cache: "no-store",
      redirect: "error",
    });
  } catch (e) {
    return new Answer(method, path, 0, `cannot reach the gateway (${e.message || e})`, null);
  }
  const text = await resp.text().catch(() => "");
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: keep the text */
  }
  const answer = new Answer(method, path, resp.status, resp.statusText, parsed);
  if (resp.status === 401) {
    // A token that worked before may have been rotated by a reload: forget it.
    setToken(null);
    onUnauthorized(answer);
  }
  return answer;
}

export const get = (path, query) => call("GET", withQuery(path, query));
export const post = (path, query, body) => call("POST", withQuery(path, query), body);
export const del = (path, query) => call("DELETE", withQuery(path, query));
