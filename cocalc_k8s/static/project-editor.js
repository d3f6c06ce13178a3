// The Editor tab: CodeMirror 6 with highlighting by file type, line numbers,
// search/replace (Ctrl-F), autosave with a visible saved/unsaved state, and a live
// preview for markdown. The text comes from a document source (document-source.js).
import * as cm from "./vendor/codemirror-6.43.15.js";
import { encodePath, h } from "./api.js";
import { fileSource } from "./document-source.js";

const AUTOSAVE_MS = 800;
const dark = matchMedia("(prefers-color-scheme: dark)");

export function mount(panel, project) {
  let view = null;
  let source = null;
  let path = null;
  let dirty = false;
  let saving = null;
  let saveTimer = null;
  let previewOn = false;
  let previewTimer = null;
  const theme = new cm.Compartment();
  const language = new cm.Compartment();

  const fileLabel = h("a", { class: "editor-path", href: project.base + "/files/" });
  const state = h("span", { class: "save-state", role: "status", "aria-live": "polite", "data-testid": "save-state" });
  const previewButton = h("button", { type: "button", class: "small secondary", hidden: true, "aria-pressed": "false", onclick: () => togglePreview() }, "Preview");
  const findButton = h("button", { type: "button", class: "small secondary", onclick: () => { if (view) { cm.openSearchPanel(view); } } }, "Find");
  const saveButton = h("button", { type: "button", class: "small", onclick: () => saveNow() }, "Save");
  const error = h("p", { class: "alert error", role: "alert", hidden: true });
  const host = h("div", { class: "editor-host", "data-testid": "editor" });
  const keysHint = h("p", { class: "visually-hidden", id: "editor-keys-hint" }, "Tab indents. To leave the editor by keyboard, press Escape, then Tab.");
  const preview = h("div", { class: "markdown-preview", hidden: true, "aria-label": "Preview", "data-testid": "preview" });
  const split = h("div", { class: "editor-split" }, host, preview);
  panel.replaceChildren(
    h("div", { class: "editor-toolbar" }, fileLabel, state, h("span", { class: "spacer" }), findButton, previewButton, saveButton),
    error,
    keysHint,
    split,
  );

  function setSaveState(text, kind) {
    state.textContent = text;
    state.dataset.kind = kind;
  }

  async function saveNow() {
    clearTimeout(saveTimer);
    if (!view || !source) return;
    if (saving) {
      await saving;
      if (!dirty) return;
    }
    const text = view.state.doc.toString();
    const mySource = source;
    dirty = false;
    setSaveState("Saving…", "saving");
    saving = mySource.save(text).then(
      () => {
        if (mySource === source && !dirty) setSaveState("Saved", "saved");
        error.hidden = true;
      },
      (err) => {
        if (mySource === source) {
          dirty = true;
          setSaveState("Not saved", "error");
          error.hidden = false;
          error.textContent = `Could not save: ${err.message}. Your changes are still here; try Save again.`;
        }
      },
    );
    await saving;
    saving = null;
  }

  function changed() {
    dirty = true;
    setSaveState("Unsaved changes", "dirty");
    clearTimeout(saveTimer);
    if (source?.autosave) saveTimer = setTimeout(saveNow, AUTOSAVE_MS);
    if (previewOn) {
      clearTimeout(previewTimer);
      previewTimer = setTimeout(renderPreview, 250);
    }
  }

  async function renderPreview() {
    if (!view) return;
    preview.innerHTML = await cm.renderMarkdown(view.state.doc.toString());
  }

  function togglePreview(on = !previewOn) {
    previewOn = on;
    preview.hidden = !on;
    split.classList.toggle("with-preview", on);
    previewButton.setAttribute("aria-pressed", String(on));
    if (on) renderPreview();
  }

  async function open(newPath) {
    if (path === newPath && view) return;
    if (dirty) await saveNow();
    source?.close();
    view?.destroy();
    view = null;
    path = newPath;
    source = fileSource(project, newPath);
    fileLabel.textContent = newPath;
    const folder = newPath.split("/").slice(0, -1).join("/");
    fileLabel.href = `${project.base}/files/${folder ? `${encodePath(folder)}/` : ""}`;
    fileLabel.title = "Show the folder";
    setSaveState("Loading…", "loading");
    error.hidden = true;
    host.replaceChildren();
    const isMarkdown = /\.(md|markdown)$/i.test(newPath);
    previewButton.hidden = !isMarkdown;
    togglePreview(false);
    // The text is shown as soon as it arrives; its language (a chunk of its own) follows.
    const languageLoad = cm.languageFor(newPath);
    let text;
    try {
      text = await source.open();
    } catch (err) {
      setSaveState("", "error");
      error.hidden = false;
      error.textContent = `Could not open ${newPath}: ${err.message}`;
      return;
    }
    if (path !== newPath) return;
    view = new cm.EditorView({
      parent: host,
      state: cm.EditorState.create({
        doc: text,
        extensions: [
          cm.lineNumbers(), cm.highlightActiveLineGutter(), cm.highlightSpecialChars(),
          cm.history(), cm.foldGutter(), cm.drawSelection(), cm.dropCursor(),
          cm.EditorState.allowMultipleSelections.of(true), cm.indentOnInput(),
          cm.syntaxHighlighting(cm.defaultHighlightStyle, { fallback: true }),
          cm.bracketMatching(), cm.closeBrackets(), cm.rectangularSelection(),
          cm.crosshairCursor(), cm.highlightActiveLine(), cm.highlightSelectionMatches(),
          cm.search({ top: true }),
          cm.keymap.of([
            { key: "Mod-s", preventDefault: true, run: () => { saveNow(); return true; } },
            ...cm.closeBracketsKeymap, ...cm.defaultKeymap, ...cm.searchKeymap,
            ...cm.historyKeymap, ...cm.foldKeymap, cm.indentWithTab,
          ]),
          cm.EditorView.lineWrapping,
          cm.EditorView.contentAttributes.of({ "aria-label": `Contents of ${newPath}`, "aria-describedby": keysHint.id }),
          theme.of(dark.matches ? cm.oneDark : []),
          language.of([]),
          source.extensions(),
          cm.EditorView.updateListener.of((update) => { if (update.docChanged) changed(); }),
        ],
      }),
    });
    dirty = false;
    setSaveState("Saved", "saved");
    const shown = view;
    languageLoad.then(
      (extension) => { if (extension && view === shown) view.dispatch({ effects: language.reconfigure(extension) }); },
      () => {}, // no highlighting is better than no editor
    );
    if (isMarkdown && innerWidth > 900) togglePreview(true);
    view.focus();
  }

  dark.addEventListener("change", () => view?.dispatch({ effects: theme.reconfigure(dark.matches ? cm.oneDark : []) }));
  addEventListener("beforeunload", (e) => {
    if (dirty || saving) {
      saveNow();
      e.preventDefault();
    }
  });

  return {
    show: (newPath) => open(newPath),
    hide: () => { if (dirty) saveNow(); },
  };
}
