// The CodeMirror 6 pieces the hub's editor uses, as one ES module. Languages and the
// markdown renderer are dynamic imports, so esbuild puts each in a chunk of its own that
// is fetched only when a file of that type is opened.
export { EditorState, Compartment } from "@codemirror/state";
export {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  drawSelection, dropCursor, highlightSpecialChars, rectangularSelection, crosshairCursor,
  ViewPlugin,
} from "@codemirror/view";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export {
  search, searchKeymap, highlightSelectionMatches, openSearchPanel,
} from "@codemirror/search";
export {
  syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching, foldGutter,
  foldKeymap,
} from "@codemirror/language";
export { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
export { oneDark } from "@codemirror/theme-one-dark";

const legacy = async (load) => {
  const [{ StreamLanguage }, mode] = await Promise.all([import("@codemirror/language"), load()]);
  return StreamLanguage.define(mode);
};

const LANGUAGES = {
  md: async () => (await import("@codemirror/lang-markdown")).markdown(),
  markdown: async () => (await import("@codemirror/lang-markdown")).markdown(),
  py: async () => (await import("@codemirror/lang-python")).python(),
  js: async () => (await import("@codemirror/lang-javascript")).javascript(),
  mjs: async () => (await import("@codemirror/lang-javascript")).javascript(),
  jsx: async () => (await import("@codemirror/lang-javascript")).javascript({ jsx: true }),
  ts: async () => (await import("@codemirror/lang-javascript")).javascript({ typescript: true }),
  tsx: async () =>
    (await import("@codemirror/lang-javascript")).javascript({ typescript: true, jsx: true }),
  json: async () => (await import("@codemirror/lang-json")).json(),
  ipynb: async () => (await import("@codemirror/lang-json")).json(),
  css: async () => (await import("@codemirror/lang-css")).css(),
  html: async () => (await import("@codemirror/lang-html")).html(),
  htm: async () => (await import("@codemirror/lang-html")).html(),
  yaml: async () => (await import("@codemirror/lang-yaml")).yaml(),
  yml: async () => (await import("@codemirror/lang-yaml")).yaml(),
  sh: () => legacy(async () => (await import("@codemirror/legacy-modes/mode/shell")).shell),
  bash: () => legacy(async () => (await import("@codemirror/legacy-modes/mode/shell")).shell),
  r: () => legacy(async () => (await import("@codemirror/legacy-modes/mode/r")).r),
  tex: () => legacy(async () => (await import("@codemirror/legacy-modes/mode/stex")).stex),
  toml: () => legacy(async () => (await import("@codemirror/legacy-modes/mode/toml")).toml),
};

/** The language extension for a file name, or null for plain text. */
export async function languageFor(filename) {
  const base = filename.split("/").pop().toLowerCase();
  if (base === "dockerfile" || base === "makefile") return null;
  const ext = base.includes(".") ? base.split(".").pop() : "";
  const load = LANGUAGES[ext];
  return load ? load() : null;
}

/** Markdown to sanitised HTML (marked + DOMPurify), for the live preview. */
export async function renderMarkdown(text) {
  const [{ marked }, { default: DOMPurify }] = await Promise.all([
    import("marked"), import("dompurify"),
  ]);
  return DOMPurify.sanitize(marked.parse(text, { async: false }));
}
