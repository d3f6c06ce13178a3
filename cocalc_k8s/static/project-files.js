// The Files tab: listing with breadcrumbs, new file/folder, upload (button and
// drag-and-drop, chunked and resumable, a progress bar per file), download (a folder as a
// zip), rename/move, copy, delete; images and PDFs open in a viewer.
import { api, encodePath, h, humanSize, relativeTime } from "./api.js";
import { copyToProject } from "./copy-to-project.js";
import { ask } from "./dialog.js";
import { personItems } from "./people.js";
import { openDeletedFiles, openTimeTravel } from "./timetravel.js";
import { viewer, viewerKind } from "./file-viewer.js";
import { cancelUpload, unfinished, uploadFile } from "./uploads.js";

const TEXT_EXTENSIONS = new Set(
  ("txt md markdown py js mjs ts tsx jsx json ipynb css html htm yaml yml toml ini cfg conf " +
    "sh bash zsh r tex bib c h cpp hpp cc java go rs rb pl php sql csv tsv xml log env " +
    "gitignore dockerfile makefile rst org jl m lua scala kt swift").split(" "),
);

export { encodePath }; // where other modules have long found it
const join = (dir, name) => (dir ? `${dir}/${name}` : name);
const parentOf = (path) => path.split("/").slice(0, -1).join("/");
const baseName = (path) => path.split("/").pop();

/** Whether a file opens in the editor (by extension; extensionless small files too). */
export function isText(name, size = 0) {
  const lower = name.toLowerCase();
  const ext = lower.includes(".") ? lower.split(".").pop() : lower;
  return TEXT_EXTENSIONS.has(ext) || (!lower.includes(".") && size < 1_000_000);
}

export function mount(panel, project) {
  let dir = "";
  let entries = [];
  let published = new Map(); // path -> public path id (the share server)
  let presence = {}; // path → who has it open (from the hub's realtime channel)
  const fileUrl = (path) => `${project.api}/files/${encodePath(path)}`;
  const zipUrl = (path) => `${project.api}/zip?path=${encodeURIComponent(path)}`;

  const crumbs = h("nav", { class: "breadcrumbs", "aria-label": "Folder" });
  const fileInput = h("input", {
    type: "file", multiple: true, class: "visually-hidden", id: "upload-input", tabindex: "-1",
    "aria-hidden": "true",
  });
  const status = h("p", { class: "alert", hidden: true, "data-testid": "files-status" });
  const body = h("tbody");
  const table = h("table", { class: "table files-table", "data-testid": "file-list" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Name"),
      h("th", { scope: "col", class: "num" }, "Size"),
      h("th", { scope: "col", class: "wide" }, "Modified"),
      h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")),
    )),
    body,
  );
  const empty = h("p", { class: "muted empty", hidden: true }, "This folder is empty. Create a file or drop files here to upload them.");
  const uploads = h("ul", { class: "uploads", "aria-label": "Uploads", "data-testid": "uploads" });
  const dropHint = h("div", { class: "drop-hint", "aria-hidden": "true" }, "Drop files to upload them here");

  const zipLink = h("a", { class: "button small secondary", "data-testid": "zip-folder", href: zipUrl("") }, "Download folder (zip)");
  const toolbar = h("div", { class: "files-toolbar" },
    crumbs,
    h("div", { class: "toolbar-actions" },
      h("button", { type: "button", class: "small secondary", onclick: newFile }, "New file"),
      h("button", { type: "button", class: "small secondary", onclick: newFolder }, "New folder"),
      h("button", { type: "button", class: "small", onclick: () => fileInput.click() }, "Upload"),
      zipLink,
      h("a", { class: "button small secondary", href: `/share/project/${project.id}`, "data-testid": "published-link" }, "Published"),
      h("button", { type: "button", class: "small secondary", "data-testid": "deleted-files-button", onclick: () => openDeletedFiles(project, dir, { onRestored: () => load() }) }, "Deleted files"),
      fileInput,
    ),
  );
  const resumable = h("p", { class: "alert", hidden: true, "data-testid": "resumable" });
  const listingView = h("div", {}, h("div", { class: "table-wrap" }, table), empty);
  const viewerSlot = h("div", { hidden: true });
  panel.replaceChildren(toolbar, status, resumable, uploads, listingView, viewerSlot, dropHint);

  function showStatus(message, error = false) {
    status.textContent = message;
    status.hidden = !message;
    status.className = `alert ${error ? "error" : "ok"}`;
    status.setAttribute("role", error ? "alert" : "status");
  }

  async function attempt(what, fn) {
    try {
      await fn();
      showStatus("");
      return true;
    } catch (err) {
      showStatus(`Could not ${what}: ${err.message}`, true);
      return false;
    }
  }

  function renderCrumbs() {
    const parts = dir ? dir.split("/") : [];
    const items = [h("a", { href: `${project.base}/files/`, "data-path": "" }, "Home")];
    parts.forEach((part, i) => {
      const path = parts.slice(0, i + 1).join("/");
      items.push(h("span", { class: "sep", "aria-hidden": "true" }, "/"));
      items.push(i === parts.length - 1
        ? h("span", { "aria-current": "location" }, part)
        : h("a", { href: `${project.base}/files/${encodePath(path)}/`, "data-path": path }, part));
    });
    crumbs.replaceChildren(...items);
  }

  // Notebooks open in the project's JupyterLab (on its content origin), with real-time
  // collaboration; other text files in our editor.
  const content = document.getElementById("port-form")?.dataset.content;
  const notebooks = content ? `${content}/port/jupyterlab/lab/tree` : null;

  function row(entry) {
    const path = join(dir, entry.name);
    const link = entry.is_dir
      ? h("a", { href: `${project.base}/files/${encodePath(path)}/`, class: "entry dir", "data-path": path }, `${entry.name}/`)
      : notebooks && entry.name.endsWith(".ipynb")
        ? h("a", { href: `${notebooks}/${encodePath(path)}`, class: "entry file", target: "_blank", rel: "noopener", "data-notebook": path }, entry.name)
      : isText(entry.name, entry.size)
        ? h("a", { href: `${project.base}/edit/${encodePath(path)}`, class: "entry file", "data-edit": path }, entry.name)
        : viewerKind(entry.name)
          ? h("a", { href: fileUrl(path), class: "entry file", "data-view": path }, entry.name)
          : h("a", { href: fileUrl(path), class: "entry file", download: entry.name }, entry.name);
    const menu = h("details", { class: "menu" },
      h("summary", { "aria-label": `Actions for ${entry.name}`, title: "Actions" }, "⋯"),
      h("div", { class: "menu-items" },
        entry.is_dir
          ? h("a", { href: zipUrl(path), download: `${entry.name}.zip` }, "Download as zip")
          : h("a", { href: fileUrl(path), download: entry.name }, "Download"),
        entry.is_dir ? null : h("button", { type: "button", onclick: () => openTimeTravel(project, path, { onRestored: () => load() }) }, "TimeTravel…"),
        h("button", { type: "button", onclick: () => rename(entry) }, "Rename or move"),
        h("button", { type: "button", onclick: () => copy(entry) }, "Copy"),
        h("button", { type: "button", onclick: () => copyToProject({ projectId: project.id, path, name: entry.name, isDir: entry.is_dir }) }, "Copy to project…"),
        published.has(path)
          ? h("a", { href: `/share/project/${project.id}` }, "Published: change or unpublish")
          : h("button", { type: "button", onclick: () => publish(entry) }, "Publish…"),
        h("button", { type: "button", class: "danger-text", onclick: () => remove(entry) }, "Delete"),
      ),
    );
    const mark = published.has(path)
      ? h("a", { class: "badge published", href: `/share/${published.get(path)}`, "data-testid": "published-badge", title: "Open the published page" }, "published")
      : "";
    // A chosen action closes the menu (its dialog may outlive it).
    menu.addEventListener("click", (e) => {
      if (e.target.closest(".menu-items button, .menu-items a")) menu.open = false;
    });
    return h("tr", { dataset: { name: entry.name } },
      h("td", {}, link, " ", mark, entry.is_dir ? null : whoIsHere(path)),
      h("td", { class: "num", "data-testid": "size" }, entry.is_dir ? "—" : humanSize(entry.size)),
      h("td", { class: "wide muted" }, h("time", { datetime: new Date(entry.mtime * 1000).toISOString() }, relativeTime(entry.mtime))),
      h("td", { class: "actions-cell" }, menu),
    );
  }

  function whoIsHere(path) {
    const items = personItems(presence[path] || [], project.accountId);
    return h("ul", { class: "people inline", "aria-label": `Who has ${baseName(path)} open`, "data-testid": "file-people", "data-path": path, hidden: !items.length }, items);
  }

  function showPresence(files) {
    presence = files;
    for (const list of body.querySelectorAll("ul[data-path]")) list.replaceWith(whoIsHere(list.dataset.path));
  }

  // Presence is a nicety: the listing shows first, the realtime channel is loaded after.
  let presenceStarted = false;
  function followPresence() {
    if (presenceStarted) return;
    presenceStarted = true;
    import("./realtime.js").then(
      (channel) => channel.watchPresence(project.id, showPresence),
      () => {}, // no presence is better than no listing
    );
  }

  function showViewer(path) {
    const view = viewer({ name: baseName(path), url: fileUrl(path), onClose: closeViewer });
    viewerSlot.replaceChildren(view.element);
    viewerSlot.hidden = false;
    listingView.hidden = true;
    view.focus();
  }

  function closeViewer() {
    viewerSlot.replaceChildren();
    viewerSlot.hidden = true;
    listingView.hidden = false;
  }

  function showResumable() {
    const paths = unfinished(project.id);
    resumable.hidden = !paths.length;
    resumable.className = "alert";
    resumable.textContent = paths.length
      ? `Unfinished upload${paths.length > 1 ? "s" : ""}: ${paths.join(", ")}. Upload the same file again to continue where it stopped.`
      : "";
  }

  async function load() {
    renderCrumbs();
    showResumable();
    zipLink.href = zipUrl(dir);
    const [data, shares] = await Promise.all([
      api("GET", `${project.api}/listing?path=${encodeURIComponent(dir)}`),
      api("GET", `${project.api}/public-paths`).catch(() => ({ public_paths: [] })),
    ]);
    published = new Map(shares.public_paths.map((p) => [p.path, p.id]));
    entries = data.entries;
    body.replaceChildren(...entries.map(row));
    empty.hidden = entries.length > 0;
  }

  const exists = (name) => entries.some((e) => e.name === name);

  async function newFile() {
    const name = await ask({ title: "New file", label: "File name", placeholder: "notes.md", submit: "Create" });
    if (!name) return;
    const path = join(dir, name);
    if (exists(name)) return showStatus(`${name} already exists`, true);
    if (await attempt("create the file", () => api("PUT", fileUrl(path), "", { raw: true }))) {
      if (isText(name)) project.navigate("edit", path);
      else await load();
    }
  }

  async function newFolder() {
    const name = await ask({ title: "New folder", label: "Folder name", submit: "Create" });
    if (!name) return;
    await attempt("create the folder", () => api("POST", `${project.api}/files-ops`, { op: "mkdir", path: join(dir, name) }));
    await load();
  }

  async function rename(entry) {
    const src = join(dir, entry.name);
    const dst = await ask({ title: `Rename or move ${entry.name}`, label: "New path (from the home folder)", value: src, submit: "Move" });
    if (!dst || dst === src) return;
    await attempt("move it", () => api("POST", `${project.api}/files-ops`, { op: "move", src, dst }));
    await load();
  }

  async function copy(entry) {
    const src = join(dir, entry.name);
    const dot = entry.is_dir ? -1 : entry.name.lastIndexOf(".");
    const suggestion = dot > 0 ? `${entry.name.slice(0, dot)} copy${entry.name.slice(dot)}` : `${entry.name} copy`;
    const dst = await ask({ title: `Copy ${entry.name}`, label: "Path of the copy", value: join(dir, suggestion), submit: "Copy" });
    if (!dst) return;
    await attempt("copy it", () => api("POST", `${project.api}/files-ops`, { op: "copy", src, dst }));
    await load();
  }

  async function publish(entry) {
    const slug = entry.name.toLowerCase().replace(/[^a-z0-9.]+/g, "-").replace(/^[-.]+|[-.]+$/g, "") || "item";
    const name = await ask({
      title: `Publish ${entry.name}`,
      message: "It becomes unlisted: readable by anyone with its link, and not in the public index. Change that under Published.",
      label: "Name in URLs",
      value: slug,
      submit: "Publish",
    });
    if (name === null) return;
    const path = join(dir, entry.name);
    let item = null;
    const done = await attempt("publish it", async () => {
      item = await api("POST", `${project.api}/public-paths`, { path, name, visibility: "unlisted" });
    });
    if (done) {
      await load();
      showStatus(`Published at ${location.origin}${item.url}`);
    }
  }

  async function remove(entry) {
    const what = entry.is_dir ? `the folder ${entry.name} and everything in it` : entry.name;
    const ok = await ask({ title: "Delete?", message: `Delete ${what}? Text files can be restored from Deleted files (TimeTravel); anything else cannot be brought back.`, submit: "Delete", danger: true });
    if (!ok) return;
    await attempt("delete it", () => api("DELETE", fileUrl(join(dir, entry.name))));
    await load();
  }

  // --- uploads: chunked and resumable (uploads.js), a progress bar each ---------------
  function upload(file) {
    const target = dir;
    const path = join(target, file.name);
    const bar = h("progress", { max: String(file.size || 1), value: "0", "aria-label": `Upload of ${file.name}` });
    const text = h("span", { class: "muted upload-text" }, `0 of ${humanSize(file.size)}`);
    const cancel = h("button", { type: "button", class: "link small" }, "Cancel");
    const item = h("li", { class: "upload", "data-testid": "upload" }, h("span", { class: "upload-name" }, file.name), bar, text, cancel);
    uploads.append(item);
    const controller = new AbortController();
    const finish = (message, error) => {
      cancel.remove();
      text.textContent = message;
      item.classList.add(error ? "failed" : "done");
      if (!error) setTimeout(() => item.remove(), 4000);
    };
    cancel.addEventListener("click", () => {
      controller.abort();
      cancelUpload({ api: project.api, projectId: project.id, path, file }).then(showResumable);
    });
    const onProgress = (done) => {
      bar.value = done;
      text.textContent = `${humanSize(done)} of ${humanSize(file.size)}`;
    };
    uploadFile({ api: project.api, projectId: project.id, path, file, onProgress, signal: controller.signal })
      .then(() => {
        bar.value = bar.max;
        finish(`uploaded, ${humanSize(file.size)}`, false);
        if (target === dir && viewerSlot.hidden) load();
        else showResumable();
      })
      .catch((err) => {
        finish(err.name === "AbortError" ? "cancelled" : `failed: ${err.message}`, true);
        showResumable();
      });
  }

  fileInput.addEventListener("change", () => {
    for (const file of fileInput.files) upload(file);
    fileInput.value = "";
  });
  let depth = 0;
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
  panel.addEventListener("dragenter", (e) => { if (hasFiles(e)) { depth += 1; panel.classList.add("dragging"); } });
  panel.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) panel.classList.remove("dragging"); });
  panel.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
  panel.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    panel.classList.remove("dragging");
    for (const file of e.dataTransfer.files) upload(file);
  });

  // Links navigate inside the page; modified clicks open new tabs as usual.
  panel.addEventListener("click", (e) => {
    const link = e.target.closest("a[data-path], a[data-edit], a[data-view]");
    if (!link || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    if (link.dataset.view !== undefined) showViewer(link.dataset.view);
    else if (link.dataset.edit !== undefined) project.navigate("edit", link.dataset.edit);
    else project.navigate("files", link.dataset.path);
  });
  // One open action menu at a time; Escape closes it.
  panel.addEventListener("toggle", (e) => {
    if (e.target.open) for (const d of panel.querySelectorAll("details.menu[open]")) if (d !== e.target) d.open = false;
  }, true);
  panel.addEventListener("keydown", (e) => {
    const open = e.target.closest?.("details.menu[open]");
    if (e.key === "Escape" && open) { open.open = false; open.querySelector("summary").focus(); }
  });

  return {
    async show(path) {
      dir = path || "";
      closeViewer();
      await attempt("list the folder", load);
      followPresence();
    },
    hide() {},
  };
}

export { baseName, parentOf };
