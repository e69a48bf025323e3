// The HTTP API, with the signed-in key on every call and errors in plain words.

const KEY_STORAGE = "pausepoint.apiKey";

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function storeKey(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

/** An API reply that was not a success, with a sentence a person can act on. */
export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.name = "ApiError";
    this.status = status;
    this.body = body;
    /** For 422: each problem with the field path after "body" (e.g. ["inputs", "approved"]). */
    this.fieldErrors = status === 422 && Array.isArray(body?.detail)
      ? body.detail.map((error) => ({
        path: (error.loc ?? []).filter((part) => part !== "body").map(String),
        message: error.msg,
      }))
      : [];
  }
}

function detailText(body) {
  if (!body) return "";
  if (typeof body.detail === "string") return body.detail;
  if (Array.isArray(body.detail)) {
    return body.detail
      .map((e) => `${(e.loc ?? []).filter((p) => p !== "body").join(".")}: ${e.msg}`)
      .join("; ");
  }
  return body.message ?? "";
}

function describe(status, body) {
  const detail = detailText(body);
  switch (status) {
    case 0: return "Cannot reach the pausepoint server. Check that it is running, then try again.";
    case 401: return "Your API key was not accepted (it may have been revoked). Sign in again.";
    case 403: return `Your role does not allow this. ${detail}`;
    case 404:
      return `Not found (it may have been deleted, or belong to another organization). ${detail}`;
    case 409: return `Not possible right now: ${detail}.`;
    case 413: return "That is too large for the server to accept. Shorten it and try again.";
    case 422: return `Some values are not valid: ${detail}`;
    default: return `The server answered ${status}. ${detail}`;
  }
}

let onUnauthorized = () => {};

/** Called when any request answers 401 (the key is no longer good). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

export async function api(path, { method = "GET", body, key = storedKey(), signal } = {}) {
  const headers = { Accept: "application/json" };
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, null);
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { detail: text };
  }
  if (!response.ok) {
    if (response.status === 401) onUnauthorized();
    throw new ApiError(response.status, parsed);
  }
  return parsed;
}

export const executionPath = (id) => `/executions/${encodeURIComponent(id)}`;
export const flowPath = (namespace, id) =>
  `/flows/${encodeURIComponent(namespace)}/${encodeURIComponent(id)}`;
