// Chunked, resumable uploads (the API is described in web/api_uploads.py).
// A file goes up in CHUNK-sized PUTs at explicit offsets. A failed chunk is retried with
// backoff, after asking the hub where the upload stands; the upload id is remembered in
// localStorage under (project, path, size, lastModified), so choosing the same file again
// after a reload or a network drop continues where it stopped. Each chunk carries its
// SHA-256 (Content-Digest) where the browser can compute it (a secure context: https or
// loopback), so the hub keeps it whole or not at all; a damaged chunk (422) is retried.
import { csrfToken } from "./api.js";

export const CHUNK = 8 * 1024 * 1024;
const RETRIES = 6;
const STORE = "cocalc-uploads";

const remembered = () => {
  try { return JSON.parse(localStorage.getItem(STORE) || "{}"); } catch { return {}; }
};
const keyOf = (projectId, path, file) => [projectId, path, file.size, file.lastModified].join("|");
function remember(key, uploadId) {
  const all = remembered();
  if (uploadId) all[key] = uploadId; else delete all[key];
  localStorage.setItem(STORE, JSON.stringify(all));
}

/** Paths of this project with an upload left unfinished in this browser. */
export function unfinished(projectId) {
  return Object.keys(remembered())
    .filter((key) => key.startsWith(`${projectId}|`))
    .map((key) => key.split("|")[1]);
}

/** `{"Content-Digest": "sha-256=:…:"}` for a chunk, or nothing without WebCrypto. */
async function digestHeader(blob) {
  if (!globalThis.crypto?.subtle) return {};
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
  return { "Content-Digest": `sha-256=:${btoa(String.fromCharCode(...hash))}:` };
}

class UploadError extends Error {
  constructor(status, message, offset) {
    super(message);
    this.status = status;
    this.offset = offset;
  }
}

async function call(method, url, { body, headers = {}, signal } = {}) {
  let response;
  try {
    response = await fetch(url, {
      method, body, signal, credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrfToken(), ...headers },
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new UploadError(0, "the connection broke");
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    throw new UploadError(response.status, data?.error || `failed (${response.status})`, data?.offset);
  }
  return data;
}

const wait = (ms, signal) => new Promise((resolve, reject) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener("abort", () => { clearTimeout(timer); reject(new DOMException("cancelled", "AbortError")); }, { once: true });
});

/**
 * Upload `file` to `path` in the project; `onProgress(bytesDone)` as chunks land.
 * Resolves when the file is in place; rejects with the reason (AbortError if cancelled).
 */
export async function uploadFile({ api, projectId, path, file, onProgress, signal }) {
  const key = keyOf(projectId, path, file);
  let state = null;
  const known = remembered()[key];
  if (known) {
    state = await call("GET", `${api}/uploads/${known}`, { signal }).catch(() => null);
    if (!state || state.path !== path || state.size !== file.size) state = null;
  }
  if (!state) {
    state = await call("POST", `${api}/uploads`, {
      body: JSON.stringify({ path, size: file.size }),
      headers: { "Content-Type": "application/json" }, signal,
    });
    remember(key, state.upload_id);
  }
  const url = `${api}/uploads/${state.upload_id}`;
  let offset = state.offset;
  onProgress(offset);
  let failures = 0;
  while (!state.complete) {
    const end = Math.min(offset + CHUNK, file.size);
    try {
      const chunk = file.slice(offset, end);
      const headers = { "Upload-Offset": String(offset), ...(await digestHeader(chunk)) };
      state = await call("PUT", url, { body: chunk, headers, signal });
      offset = state.offset;
      failures = 0;
      onProgress(offset);
    } catch (err) {
      if (err.name === "AbortError") throw err;
      if (err.status === 409 && err.offset !== undefined) { offset = err.offset; continue; }
      if (err.status === 404 || err.status === 413 || err.status === 400 || err.status === 403) {
        remember(key, null);
        throw err;
      }
      failures += 1;
      if (failures > RETRIES) throw err;
      await wait(Math.min(500 * 2 ** (failures - 1), 15000), signal);
      const now = await call("GET", url, { signal }).catch(() => null);
      if (now) { state = now; offset = now.offset; }
    }
  }
  remember(key, null);
  onProgress(file.size);
  return state;
}

/** Cancel an upload on the hub (the staged bytes are deleted) and forget it here. */
export async function cancelUpload({ api, projectId, path, file }) {
  const key = keyOf(projectId, path, file);
  const known = remembered()[key];
  remember(key, null);
  if (known) await call("DELETE", `${api}/uploads/${known}`).catch(() => null);
}
