// Shared helpers for the hub's page scripts: JSON API calls with the CSRF token,
// building elements, human-readable sizes and times.

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the JSON API; resolves to the parsed body (null for 204), rejects with ApiError. */
export async function api(method, url, body, { raw = false, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  let payload = body;
  if (body !== undefined && !raw) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: payload, signal, credentials: "same-origin" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "the hub cannot be reached; check your connection");
  }
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || `request failed (${response.status})`);
  }
  return data;
}

export const csrfToken = csrf;

/** h("button", {class: "small", onclick}, "Save") → an element; children may be nodes or text. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const UNITS = ["B", "KB", "MB", "GB", "TB"];

/** 1536 → "1.5 KB"; decimal units, as file managers show them. */
/** A project path for a URL: each segment encoded, the slashes kept. */
export const encodePath = (path) => path.split("/").map(encodeURIComponent).join("/");

export function humanSize(bytes) {
  if (bytes < 1000) return `${bytes} B`;
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${UNITS[unit]}`;
}

/** A Date or seconds/ISO string → "just now", "5 minutes ago", or the date. */
export function relativeTime(when, now = Date.now()) {
  if (when === null || when === undefined || when === "") return "never";
  const t = typeof when === "number" ? when * 1000 : new Date(when).getTime();
  const seconds = (now - t) / 1000;
  if (seconds < 45) return "just now";
  for (const [limit, unit, size] of [[3600, "minute", 60], [86400, "hour", 3600], [2592000, "day", 86400]]) {
    if (seconds < limit) {
      const n = Math.max(1, Math.round(seconds / size));
      return `${n} ${unit}${n === 1 ? "" : "s"} ago`;
    }
  }
  return new Date(t).toISOString().slice(0, 10);
}

/** Keeps every <time datetime> under root showing a relative time, refreshed each minute. */
export function keepTimesFresh(root = document) {
  const refresh = () => {
    for (const el of root.querySelectorAll("time[datetime]")) {
      if (el.dateTime) el.textContent = relativeTime(el.dateTime);
    }
  };
  refresh();
  setInterval(refresh, 60_000);
}

/** Shows a message in the page's live region (role=status or alert). */
export function announce(el, message, { error = false } = {}) {
  el.textContent = message;
  el.hidden = !message;
  el.classList.toggle("error", error);
  el.classList.toggle("ok", !error);
  el.setAttribute("role", error ? "alert" : "status");
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
