// The TimeTravel panel: every version of a file (services/history, /api/v2/.../history),
// in a modal dialog opened from the editor or from a file's menu in the listing. A slider
// and a list over the versions (author and time), the chosen version read-only with
// highlighting, a diff against another version (inline or side by side), restore (a new
// version: nothing is lost) and download. Keyboard: the slider takes the arrow keys, the
// list is buttons, Escape closes.
import * as cm from "./vendor/codemirror-6.43.15.js";
import { api, h, relativeTime } from "./api.js";
import { ask } from "./dialog.js";

const PAGE = 100;
const KIND_LABELS = { edit: "edited", disk: "changed on disk", api: "saved", upload: "uploaded", restore: "restored", jupyter: "saved in Jupyter" };

function authorsOf(version) {
  return version.authors.length ? version.authors.map((a) => a.name).join(", ") : "disk";
}

function describe(version) {
  const what = version.kind === "restore" && version.restored_from
    ? `restored version ${version.restored_from}`
    : KIND_LABELS[version.kind] || version.kind;
  return `Version ${version.version} · ${what} by ${authorsOf(version)}`;
}

/** Opens the panel for `path`; resolves when it is closed. `onRestored(version)` is told. */
export function openTimeTravel(project, path, { onRestored } = {}) {
  const base = `/api/v2/projects/${project.id}/history`;
  const q = `path=${encodeURIComponent(path)}`;
  let versions = [];  // newest first
  let more = false;
  let index = 0;  // into `versions`
  let view = null;
  let loadToken = 0;

  const status = h("p", { class: "alert", role: "status", hidden: true, "data-testid": "tt-status" });
  const slider = h("input", { type: "range", min: "0", max: "0", step: "1", value: "0", id: "tt-slider", "aria-label": "Version (oldest to newest)", "data-testid": "tt-slider" });
  const sliderLabel = h("span", { class: "tt-slider-label", "aria-hidden": "true" });
  const list = h("ol", { class: "tt-list", "aria-label": "Versions, newest first", "data-testid": "tt-list" });
  const moreButton = h("button", { type: "button", class: "small secondary", hidden: true, "data-testid": "tt-load-all", onclick: () => loadAll() }, "Load the whole history");
  const heading = h("h3", { class: "tt-heading", id: "tt-version-heading", "data-testid": "tt-version" });
  const compareSelect = h("select", { id: "tt-compare", "data-testid": "tt-compare", onchange: () => show() }, h("option", { value: "" }, "Nothing (show the version)"));
  const layoutSelect = h("select", { id: "tt-layout", "data-testid": "tt-layout", onchange: () => show() },
    h("option", { value: "inline" }, "Inline"), h("option", { value: "split" }, "Side by side"));
  const download = h("a", { class: "button small secondary", "data-testid": "tt-download" }, "Download");
  const restoreButton = h("button", { type: "button", class: "small", "data-testid": "tt-restore", onclick: () => restore() }, "Restore this version");
  const host = h("div", { class: "tt-view", "data-testid": "tt-view", "aria-labelledby": "tt-version-heading" });
  const diffHost = h("div", { class: "tt-diff", hidden: true, "data-testid": "tt-diff", tabindex: "0", "aria-label": "Differences" });
  const close = h("button", { type: "button", class: "secondary small", "data-testid": "tt-close", onclick: () => dialog.close() }, "Close");

  const dialog = h("dialog", { class: "dialog timetravel", "aria-labelledby": "tt-title", "data-testid": "timetravel" },
    h("div", { class: "tt-head" }, h("h2", { id: "tt-title" }, "TimeTravel: ", h("code", {}, path)), close),
    status,
    h("div", { class: "tt-slider-row" }, h("label", { for: "tt-slider" }, "Older"), slider, h("span", {}, "Newer"), sliderLabel),
    h("div", { class: "tt-body" },
      h("div", { class: "tt-side" }, list, moreButton),
      h("div", { class: "tt-main" },
        heading,
        h("div", { class: "tt-tools" },
          h("label", { for: "tt-compare" }, "Compare with"), compareSelect,
          h("label", { for: "tt-layout", class: "visually-hidden" }, "Diff layout"), layoutSelect,
          h("span", { class: "spacer" }), download, restoreButton),
        host, diffHost)));

  function say(message, error = false) {
    status.hidden = !message;
    status.textContent = message || "";
    status.className = `alert ${error ? "error" : "ok"}`;
    status.setAttribute("role", error ? "alert" : "status");
  }

  async function load({ all = false } = {}) {
    let found = [];
    let before = null;
    do {
      const page = await api("GET", `${base}?${q}&limit=${all ? 1000 : PAGE}${before ? `&before=${before}` : ""}`);
      found = found.concat(page.versions);
      more = page.more;
      before = found.length ? found[found.length - 1].version : null;
      if (page.deleted) say("This file was deleted; restore a version to bring it back.");
    } while (all && more);
    return found;
  }

  function render() {
    slider.max = String(Math.max(0, versions.length - 1));
    slider.value = String(versions.length - 1 - index);
    slider.disabled = versions.length < 2;
    moreButton.hidden = !more;
    list.replaceChildren(...versions.map((v, i) => h("li", {},
      h("button", {
        type: "button", class: `tt-item${i === index ? " selected" : ""}`, "aria-current": i === index ? "true" : null,
        "data-version": String(v.version), onclick: () => select(i),
      }, h("span", { class: "tt-item-title" }, describe(v)), h("time", { datetime: v.time, class: "muted" }, relativeTime(v.time))))));
    const chosen = compareSelect.value;
    compareSelect.replaceChildren(h("option", { value: "" }, "Nothing (show the version)"),
      ...versions.map((v) => h("option", { value: String(v.version) }, `Version ${v.version} (${authorsOf(v)})`)));
    compareSelect.value = versions.some((v) => String(v.version) === chosen) ? chosen : "";
  }

  function select(i) {
    index = Math.max(0, Math.min(versions.length - 1, i));
    render();
    show();
  }

  async function show() {
    const version = versions[index];
    if (!version) {
      heading.textContent = "No versions yet";
      host.replaceChildren();
      restoreButton.disabled = true;
      download.removeAttribute("href");
      return;
    }
    const token = ++loadToken;
    heading.textContent = `${describe(version)}, ${new Date(version.time).toLocaleString()}`;
    sliderLabel.textContent = `v${version.version}`;
    slider.setAttribute("aria-valuetext", describe(version));
    restoreButton.disabled = false;
    download.href = `${base}/versions/${version.version}?${q}&download=1`;
    const other = compareSelect.value ? Number(compareSelect.value) : null;
    try {
      if (other !== null && other !== version.version) {
        const [older, newer] = other < version.version ? [other, version.version] : [version.version, other];
        const body = await api("GET", `${base}/diff?${q}&from=${older}&to=${newer}`);
        if (token !== loadToken) return;
        showDiff(body.ops, older, newer);
      } else {
        const text = await api("GET", `${base}/versions/${version.version}?${q}`);
        if (token !== loadToken) return;
        showText(text);
      }
    } catch (err) {
      if (token === loadToken) say(`Could not show version ${version.version}: ${err.message}`, true);
    }
  }

  function showText(text) {
    diffHost.hidden = true;
    host.hidden = false;
    if (!view) {
      const language = new cm.Compartment();
      view = new cm.EditorView({
        parent: host,
        state: cm.EditorState.create({
          doc: text,
          extensions: [
            cm.lineNumbers(), cm.highlightSpecialChars(), cm.foldGutter(),
            cm.syntaxHighlighting(cm.defaultHighlightStyle, { fallback: true }),
            cm.EditorState.readOnly.of(true), cm.EditorView.editable.of(false),
            cm.EditorView.lineWrapping, language.of([]),
            matchMedia("(prefers-color-scheme: dark)").matches ? cm.oneDark : [],
            cm.EditorView.contentAttributes.of({ "aria-label": `Version of ${path}`, "data-testid": "tt-text" }),
          ],
        }),
      });
      cm.languageFor(path).then((ext) => { if (ext) view.dispatch({ effects: language.reconfigure(ext) }); }, () => {});
    } else {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    }
  }

  function showDiff(ops, older, newer) {
    host.hidden = true;
    diffHost.hidden = false;
    const piece = (op, run) => op === "=" ? document.createTextNode(run)
      : h(op === "+" ? "ins" : "del", {}, run);
    const caption = h("p", { class: "muted" }, `From version ${older} (removed, struck through) to version ${newer} (added, underlined)`);
    if (layoutSelect.value === "split") {
      const left = h("pre", { class: "tt-pane", "aria-label": `Version ${older}` }, ...ops.filter(([op]) => op !== "+").map(([op, run]) => piece(op, run)));
      const right = h("pre", { class: "tt-pane", "aria-label": `Version ${newer}` }, ...ops.filter(([op]) => op !== "-").map(([op, run]) => piece(op, run)));
      diffHost.replaceChildren(caption, h("div", { class: "tt-split" }, left, right));
    } else {
      diffHost.replaceChildren(caption, h("pre", { class: "tt-pane" }, ...ops.map(([op, run]) => piece(op, run))));
    }
  }

  async function restore() {
    const version = versions[index];
    if (!version) return;
    const ok = await ask({ title: `Restore version ${version.version}?`, message: `${path} gets the text of version ${version.version} as a new version; every version stays.`, submit: "Restore" });
    if (!ok) return;
    try {
      const body = await api("POST", `${base}/restore`, { path, version: version.version });
      say(`Restored version ${version.version} as version ${body.version}.`);
      versions = await load();
      select(0);
      onRestored?.(body.version);
    } catch (err) {
      say(`Could not restore: ${err.message}`, true);
    }
  }

  async function loadAll() {
    try {
      const current = versions[index]?.version;
      versions = await load({ all: true });
      select(Math.max(0, versions.findIndex((v) => v.version === current)));
    } catch (err) {
      say(`Could not load the history: ${err.message}`, true);
    }
  }

  slider.addEventListener("input", () => select(versions.length - 1 - Number(slider.value)));

  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      view?.destroy();
      dialog.remove();
      resolve();
    });
    document.body.append(dialog);
    dialog.showModal();
    slider.focus();
    load().then((found) => {
      versions = found;
      if (!versions.length) say("This file has no versions yet.");
      select(0);
      slider.focus();
    }, (err) => say(`Could not load the history: ${err.message}`, true));
  });
}

/** The deleted files of `folder` in a dialog, each with a TimeTravel to restore it. */
export function openDeletedFiles(project, folder, { onRestored } = {}) {
  const list = h("ul", { class: "tt-deleted", "data-testid": "tt-deleted" });
  const status = h("p", { class: "muted", role: "status" }, "Loading…");
  const dialog = h("dialog", { class: "dialog timetravel", "aria-labelledby": "tt-deleted-title", "data-testid": "deleted-files" },
    h("div", { class: "tt-head" },
      h("h2", { id: "tt-deleted-title" }, `Deleted files in ${folder ? `${folder}/` : "the home folder"}`),
      h("button", { type: "button", class: "secondary small", onclick: () => dialog.close() }, "Close")),
    status, list);
  async function refresh() {
    const body = await api("GET", `/api/v2/projects/${project.id}/history/deleted?path=${encodeURIComponent(folder)}`);
    status.textContent = body.files.length ? `${body.files.length} deleted file(s) with a history` : "No deleted files with a history here.";
    list.replaceChildren(...body.files.map((f) => h("li", {},
      h("button", { type: "button", class: "link", "data-path": f.path, onclick: async () => {
        await openTimeTravel(project, f.path, { onRestored });
        await refresh();
      } }, f.path),
      " ", h("span", { class: "muted" }, `deleted ${relativeTime(f.deleted)}, ${f.version} version(s)`))));
  }
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  refresh().catch((err) => { status.textContent = `Could not list deleted files: ${err.message}`; });
}
