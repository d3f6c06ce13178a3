// Where the editor's text comes from and goes to: a document source. The editor asks its
// source for everything that differs between a plain file and a shared document: the
// initial text, whether it may be edited, the undo history and its keys, and saving.
//
// A source has this shape (the editor relies on nothing else):
//   kind                 "file" or "shared"
//   open()               → {text, readOnly, notice}: the initial text; `notice` (or null)
//                        says why a read-only document cannot be edited
//   extensions()         CodeMirror extensions: history + undo keymap, binding, saving
//   onStatus(fn)         calls fn({kind, text, error}) now and whenever the save state
//                        changes; kind: loading | saved | dirty | saving | offline |
//                        error | readonly; returns a function that stops the calls
//   onPeers(fn)          calls fn([{account_id, name, clients}]) with who has the
//                        document open, now and on each change; returns a stop function
//   flush()              saves pending edits now (Ctrl-S, leaving the tab)
//   pending()            whether some local edit is not yet safe (warn before unload)
//   close()              lets go of the document
//
// This module is the plain file: GET to open, PUT to save (autosaved after a pause),
// CodeMirror's own history. collab-source.js is the shared document.
import * as cm from "./vendor/codemirror-6.43.15.js";
import { ApiError, csrfToken, encodePath } from "./api.js";

export const MAX_EDITABLE_BYTES = 5_000_000;
/** A read-only file is shown up to this size (the editor stays responsive). */
export const MAX_SHOWN_BYTES = 32_000_000;
const AUTOSAVE_MS = 800;

/** A status reporter: remembers the last status and tells the listeners. */
export function statusBox(initial = { kind: "loading", text: "Loading…" }) {
  const listeners = new Set();
  let last = initial;
  return {
    set(status) {
      last = status;
      for (const fn of listeners) fn(status);
    },
    get: () => last,
    on(fn) {
      listeners.add(fn);
      fn(last);
      return () => listeners.delete(fn);
    },
  };
}

/** A plain file as a document source. `readOnly` opens it for reading only, with
 * `notice` as the reason shown (used for files the shared channel refuses: a binary file
 * shows no text, a large one its text up to MAX_SHOWN_BYTES). */
export function fileSource(project, path, { readOnly = false, notice = null, binary = false } = {}) {
  const url = `${project.api}/files/${encodePath(path)}`;
  const status = statusBox();
  let view = null;
  let dirty = false;
  let saving = null;
  let timer = null;
  let closed = false;

  async function save() {
    clearTimeout(timer);
    if (!view || closed) return;
    if (saving) {
      await saving;
      if (!dirty) return;
    }
    const text = view.state.doc.toString();
    dirty = false;
    status.set({ kind: "saving", text: "Saving…" });
    saving = put(url, text).then(
      () => { if (!dirty) status.set({ kind: "saved", text: "Saved" }); },
      (err) => {
        dirty = true;
        status.set({
          kind: "error", text: "Not saved",
          error: `Could not save: ${err.message}. Your changes are still here; try Save again.`,
        });
      },
    );
    await saving;
    saving = null;
  }

  return {
    kind: "file",
    path,
    /** The file's text; a missing file opens as empty (it is created by the first save). */
    async open() {
      if (readOnly) {
        const shown = await show(url, binary);
        status.set({ kind: "readonly", text: "Read-only" });
        return { text: shown.text, readOnly, notice: [notice, shown.why].filter(Boolean).join(" ") };
      }
      const text = await load(url);
      status.set({ kind: "saved", text: "Saved" });
      return { text, readOnly, notice };
    },
    extensions() {
      return [
        cm.history(),
        cm.keymap.of(cm.historyKeymap),
        cm.EditorView.updateListener.of((update) => {
          view = update.view;
          if (!update.docChanged || readOnly) return;
          dirty = true;
          status.set({ kind: "dirty", text: "Unsaved changes" });
          clearTimeout(timer);
          timer = setTimeout(save, AUTOSAVE_MS);
        }),
      ];
    },
    onStatus: (fn) => status.on(fn),
    onPeers: () => () => {}, // a plain file does not know who else has it open
    flush: () => save(),
    pending: () => dirty || Boolean(saving),
    close() {
      if (dirty) save(); // the last edits still reach the file
      closed = true;
    },
  };
}

async function load(url) {
  const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (response.status === 404) return "";
  if (!response.ok) throw new ApiError(response.status, await errorText(response));
  const size = Number(response.headers.get("Content-Length") || 0);
  if (size > MAX_EDITABLE_BYTES) {
    throw new ApiError(413, `the file is too large to edit here (${size} bytes); download it instead`);
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (bytes.includes(0)) throw new ApiError(415, "this looks like a binary file; download it instead");
  return new TextDecoder().decode(bytes);
}

/** The text of a small text file, for a first look: null when it is not one (too large,
 * binary, not UTF-8) or cannot be read; "" when it does not exist yet. */
export async function peek(project, path, maxBytes) {
  try {
    const response = await fetch(`${project.api}/files/${encodePath(path)}`, { credentials: "same-origin", cache: "no-store" });
    if (response.status === 404) return "";
    const size = Number(response.headers.get("Content-Length") || Infinity);
    if (!response.ok || size > maxBytes) {
      response.body?.cancel();
      return null;
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    return bytes.includes(0) ? null : new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

/** A read-only file's text, or none with the reason (binary, too large to show). */
async function show(url, binary) {
  const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) throw new ApiError(response.status, await errorText(response));
  const size = Number(response.headers.get("Content-Length") || 0);
  const why = "Download it from the Files tab to work on it.";
  if (binary || size > MAX_SHOWN_BYTES) {
    response.body?.cancel();
    return { text: "", why };
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (bytes.includes(0)) return { text: "", why };
  return { text: new TextDecoder().decode(bytes), why: "" };
}

async function put(url, text) {
  const response = await fetch(url, {
    method: "PUT",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": csrfToken(), "Content-Type": "application/octet-stream" },
    body: text,
  });
  if (!response.ok) throw new ApiError(response.status, await errorText(response));
}

async function errorText(response) {
  try {
    return (await response.json()).error;
  } catch {
    return `request failed (${response.status})`;
  }
}
