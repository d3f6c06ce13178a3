// Where the editor's text comes from and goes to. Today: the file itself, loaded with
// GET and saved with PUT (the editor autosaves). The collaborative editing step swaps
// in a source with the same shape whose `extensions()` binds the editor to a shared
// document (Yjs) and whose `save` is a no-op, without touching the editor module.
import { ApiError, csrfToken, encodePath } from "./api.js";

export const MAX_EDITABLE_BYTES = 5_000_000;

/** A plain file as a document source: `{open(), save(text), extensions(), close()}`. */
export function fileSource(project, path) {
  const url = `${project.api}/files/${encodePath(path)}`;
  return {
    kind: "file",
    path,
    /** The file's text; a missing file opens as empty (it is created by the first save). */
    async open() {
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
    },
    async save(text) {
      const response = await fetch(url, {
        method: "PUT",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrfToken(), "Content-Type": "application/octet-stream" },
        body: text,
      });
      if (!response.ok) throw new ApiError(response.status, await errorText(response));
    },
    /** Extra CodeMirror extensions a source needs (a collaborative binding); none here. */
    extensions() {
      return [];
    },
    close() {},
    autosave: true,
  };
}

async function errorText(response) {
  try {
    return (await response.json()).error;
  } catch {
    return `request failed (${response.status})`;
  }
}
