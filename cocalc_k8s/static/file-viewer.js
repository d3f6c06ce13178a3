// Viewers for files the editor does not open: images as <img> (SVG too: an image never
// runs its scripts), PDFs in an <iframe> of the hub's download, which the hub sends with
// `Content-Security-Policy: sandbox` so the PDF cannot run script on the hub's origin.
import { h } from "./api.js";

const IMAGES = new Set(["png", "jpg", "jpeg", "gif", "webp", "svg", "avif", "bmp", "ico"]);

const extension = (name) => (name.includes(".") ? name.split(".").pop().toLowerCase() : "");

/** "image", "pdf", or null when the file has no viewer. */
export function viewerKind(name) {
  const ext = extension(name);
  if (IMAGES.has(ext)) return "image";
  if (ext === "pdf") return "pdf";
  return null;
}

/** The viewer for `name` at `url` (the hub's download URL), with a close button. */
export function viewer({ name, url, onClose }) {
  const kind = viewerKind(name);
  const content = kind === "image"
    ? h("img", { src: url, alt: name, class: "viewer-image", "data-testid": "viewer-image" })
    : h("iframe", { src: `${url}?view=1`, title: `PDF: ${name}`, class: "viewer-pdf", "data-testid": "viewer-pdf" });
  const close = h("button", { type: "button", class: "small secondary", onclick: onClose }, "Close");
  const section = h("section", { class: "viewer", "aria-label": `Viewing ${name}`, "data-testid": "viewer" },
    h("header", { class: "viewer-bar" },
      h("h2", { class: "viewer-name" }, name),
      h("div", { class: "toolbar-actions" },
        h("a", { href: url, download: name, class: "button small secondary" }, "Download"),
        close,
      ),
    ),
    h("div", { class: "viewer-body" }, content),
  );
  section.addEventListener("keydown", (e) => { if (e.key === "Escape") onClose(); });
  return { element: section, focus: () => close.focus() };
}
