// The Editor tab: CodeMirror 6 with highlighting by file type, line numbers,
// search/replace (Ctrl-F), a visible save state, and a live preview for markdown. The
// text, its undo history and its saving come from a document source (document-source.js:
// a plain file; collab-source.js: a document shared with the collaborators).
import * as cm from "./vendor/codemirror-6.43.15.js";
import { encodePath, h } from "./api.js";
import { openSource } from "./collab-source.js";
import { personItems } from "./people.js";
import { openTimeTravel } from "./timetravel.js";

const dark = matchMedia("(prefers-color-scheme: dark)");

export function mount(panel, project) {
  let view = null;
  let source = null;
  let stopListening = [];
  let path = null;
  let previewOn = false;
  let previewTimer = null;
  const theme = new cm.Compartment();
  const language = new cm.Compartment();

  const fileLabel = h("a", { class: "editor-path", href: project.base + "/files/" });
  const state = h("span", { class: "save-state", role: "status", "aria-live": "polite", "data-testid": "save-state" });
  const previewButton = h("button", { type: "button", class: "small secondary", hidden: true, "aria-pressed": "false", onclick: () => togglePreview() }, "Preview");
  const findButton = h("button", { type: "button", class: "small secondary", onclick: () => { if (view) { cm.openSearchPanel(view); } } }, "Find");
  const saveButton = h("button", { type: "button", class: "small", onclick: () => source?.flush() }, "Save");
  const historyButton = h("button", { type: "button", class: "small secondary", "data-testid": "timetravel-button", onclick: () => { if (path) { source?.flush(); openTimeTravel(project, path); } } }, "TimeTravel");
  const error = h("p", { class: "alert error", role: "alert", hidden: true });
  const notice = h("p", { class: "alert", role: "status", hidden: true, "data-testid": "editor-notice" });
  const people = h("ul", { class: "people", "aria-label": "Who is here", "data-testid": "editor-people", hidden: true });
  const host = h("div", { class: "editor-host", "data-testid": "editor" });
  const keysHint = h("p", { class: "visually-hidden", id: "editor-keys-hint" }, "Tab indents. To leave the editor by keyboard, press Escape, then Tab.");
  const preview = h("div", { class: "markdown-preview", hidden: true, "aria-label": "Preview", "data-testid": "preview" });
  const split = h("div", { class: "editor-split" }, host, preview);
  panel.replaceChildren(
    h("div", { class: "editor-toolbar" }, fileLabel, state, people, h("span", { class: "spacer" }), findButton, previewButton, historyButton, saveButton),
    error,
    notice,
    keysHint,
    split,
  );

  function showStatus(status) {
    state.textContent = status.text;
    state.dataset.kind = status.kind;
    error.hidden = !status.error;
    error.textContent = status.error || "";
  }

  /** The others who have this file open (the source knows; a plain file: nobody). */
  function showPeople(peers) {
    const items = personItems(peers, project.accountId);
    people.hidden = !items.length;
    people.replaceChildren(...items);
  }

  function changed() {
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
    for (const stop of stopListening) stop();
    source?.close();
    view?.destroy();
    view = null;
    path = newPath;
    const mySource = openSource(project, newPath);
    source = mySource;
    stopListening = [source.onStatus(showStatus), source.onPeers(showPeople)];
    notice.hidden = true;
    fileLabel.textContent = newPath;
    const folder = newPath.split("/").slice(0, -1).join("/");
    fileLabel.href = `${project.base}/files/${folder ? `${encodePath(folder)}/` : ""}`;
    fileLabel.title = "Show the folder";
    host.replaceChildren();
    const isMarkdown = /\.(md|markdown)$/i.test(newPath);
    previewButton.hidden = !isMarkdown;
    togglePreview(false);
    // The text is shown as soon as it arrives; its language (a chunk of its own) follows.
    const languageLoad = cm.languageFor(newPath);
    let opened;
    try {
      opened = await mySource.open();
    } catch (err) {
      if (source === mySource) showStatus({ kind: "error", text: "", error: `Could not open ${newPath}: ${err.message}` });
      return;
    }
    if (source !== mySource) return;
    view = new cm.EditorView({
      parent: host,
      state: cm.EditorState.create({
        doc: opened.text,
        extensions: [
          cm.lineNumbers(), cm.highlightActiveLineGutter(), cm.highlightSpecialChars(),
          cm.foldGutter(), cm.drawSelection(), cm.dropCursor(),
          cm.EditorState.allowMultipleSelections.of(true), cm.indentOnInput(),
          cm.syntaxHighlighting(cm.defaultHighlightStyle, { fallback: true }),
          cm.bracketMatching(), cm.closeBrackets(), cm.rectangularSelection(),
          cm.crosshairCursor(), cm.highlightActiveLine(), cm.highlightSelectionMatches(),
          cm.search({ top: true }),
          cm.keymap.of([
            { key: "Mod-s", preventDefault: true, run: () => { mySource.flush(); return true; } },
            ...cm.closeBracketsKeymap, ...cm.defaultKeymap, ...cm.searchKeymap,
            ...cm.foldKeymap, cm.indentWithTab,
          ]),
          cm.EditorView.lineWrapping,
          cm.EditorView.contentAttributes.of({ "aria-label": `Contents of ${newPath}`, "aria-describedby": keysHint.id }),
          theme.of(dark.matches ? cm.oneDark : []),
          language.of([]),
          // Only when read-only: these facets take their first value, and a source may
          // still make the document read-only later (its access ended).
          opened.readOnly ? [cm.EditorState.readOnly.of(true), cm.EditorView.editable.of(false)] : [],
          mySource.extensions(),
          cm.EditorView.updateListener.of((update) => { if (update.docChanged) changed(); }),
        ],
      }),
    });
    notice.hidden = !opened.notice;
    notice.textContent = opened.notice || "";
    saveButton.hidden = opened.readOnly;
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
    if (source?.pending()) {
      source.flush();
      e.preventDefault();
    }
  });

  return {
    show: (newPath) => open(newPath),
    hide: () => source?.flush(),
  };
}
