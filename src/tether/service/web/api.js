// The HTTP API as the page uses it: the key (kept in sessionStorage), requests with it, errors as ApiError,
// and `h`, the one way the page builds DOM nodes (text always goes in as text nodes, never as HTML).

const KEY = "tether.key";
const USER = "tether.user";

export const session = {
  get key() {
    return sessionStorage.getItem(KEY) || "";
  },
  get user() {
    return sessionStorage.getItem(USER) || "";
  },
  save(key, user) {
    sessionStorage.setItem(KEY, key);
    if (user) sessionStorage.setItem(USER, user);
    else sessionStorage.removeItem(USER);
  },
  forget() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(USER);
  },
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  toString() {
    return `${this.message} (${this.status} ${this.code})`;
  }
}

/** Call the API: `body` is sent as JSON, `form` (FormData) as multipart. Resolves to the parsed JSON (null for an
 * empty response); rejects with an ApiError carrying the service's `{"error": {"code", "message"}}`. */
export async function api(method, path, { body, form, key, user } = {}) {
  const headers = { Authorization: `Bearer ${key ?? session.key}` };
  const who = user ?? session.user;
  if (who) headers["X-Tether-User"] = who;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  } else if (form !== undefined) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network", `the service could not be reached: ${e.message}`);
  }
  const raw = await response.text();
  let data = null;
  if (raw) {
    try {
      data = JSON.parse(raw);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const err = data && data.error ? data.error : {};
    const message = err.message || response.statusText || "request failed";
    throw new ApiError(response.status, err.code || "http_error", message);
  }
  return data;
}

/** A text (not JSON) response, e.g. an eval run's HTML report; errors as in `api`. */
export async function apiText(path) {
  const headers = { Authorization: `Bearer ${session.key}` };
  let response;
  try {
    response = await fetch(path, { headers });
  } catch (e) {
    throw new ApiError(0, "network", `the service could not be reached: ${e.message}`);
  }
  const raw = await response.text();
  if (!response.ok) {
    let err = {};
    try {
      err = JSON.parse(raw).error || {};
    } catch {
      err = {};
    }
    throw new ApiError(response.status, err.code || "http_error", err.message || response.statusText);
  }
  return raw;
}

/** An element: `h("p", {class: "x", onclick: f}, "text", child)`. Strings become text nodes; attributes starting
 * with "on" are listeners; `true`/`false` toggle boolean attributes; null and undefined children are skipped. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Offsets into `text` counted in code points (as the service counts them) turned into JavaScript string offsets
 * (UTF-16 code units): they differ after any character outside the Basic Multilingual Plane. */
export function unitOffset(text, codePoints) {
  let units = 0;
  let seen = 0;
  while (seen < codePoints && units < text.length) {
    const c = text.charCodeAt(units);
    units += c >= 0xd800 && c <= 0xdbff && units + 1 < text.length ? 2 : 1;
    seen += 1;
  }
  return units;
}
