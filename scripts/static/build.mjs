// Bundles the vendored front-end libraries into cocalc_k8s/static/vendor/ (run by
// scripts/build-static.sh after `npm ci`). Output names carry the library versions.
import * as esbuild from "esbuild";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, "../../cocalc_k8s/static/vendor");
const version = (pkg) =>
  JSON.parse(fs.readFileSync(path.join(here, "node_modules", pkg, "package.json"))).version;

// See src/csp-style.js: no inline <style> elements or style attributes under our CSP.
const xtermCsp = {
  name: "xterm-csp",
  setup(build) {
    build.onLoad({ filter: /@xterm[\\/]xterm[\\/]lib[\\/]xterm\.mjs$/ }, async (args) => {
      let code = await fs.promises.readFile(args.path, "utf8");
      const before = code;
      code = code.replace(/([\w$.]+)\.createElement\("style"\)/g, "__cspStyle($1)");
      code = code.replace(
        /_addStyle\((\w),(\w)\)\{\1\.setAttribute\("style",`\$\{\1\.getAttribute\("style"\)\|\|""\}\$\{\2\};`\)\}/,
        "_addStyle($1,$2){$1.style.cssText+=`${$2};`}",
      );
      const styles = (before.match(/createElement\("style"\)/g) || []).length;
      if (styles === 0 || code.includes('createElement("style")') || code.includes('setAttribute("style"')) {
        throw new Error("xterm-csp: the xterm.js source changed; update the patterns");
      }
      const shim = JSON.stringify(path.join(here, "src/csp-style.js"));
      return { contents: `import { cspStyle as __cspStyle } from ${shim};\n${code}`, loader: "js" };
    });
  },
};

// style-mod (CodeMirror's styles) uses a <style> element in documents and adopted
// stylesheets only in shadow roots; under our CSP it must adopt them in documents too.
const styleModCsp = {
  name: "style-mod-csp",
  setup(build) {
    build.onLoad({ filter: /style-mod[\\/]src[\\/]style-mod\.js$/ }, async (args) => {
      const code = await fs.promises.readFile(args.path, "utf8");
      const from = "if (!root.head && root.adoptedStyleSheets && win.CSSStyleSheet) {";
      if (!code.includes(from)) throw new Error("style-mod-csp: style-mod changed; update the pattern");
      return { contents: code.replace(from, "if (root.adoptedStyleSheets && win.CSSStyleSheet) {"), loader: "js" };
    });
  },
};

// y-codemirror.next's remote selections set inline style attributes (refused under our
// CSP); src/csp-color.js gives each colour a class instead.
const yCursorsCsp = {
  name: "y-cursors-csp",
  setup(build) {
    build.onLoad({ filter: /y-codemirror\.next[\\/]src[\\/]y-remote-selections\.js$/ }, async (args) => {
      let code = await fs.promises.readFile(args.path, "utf8");
      const mark = "attributes: { style: `background-color: ${colorLight}` },\n            class: 'cm-ySelection'";
      const line = "attributes: { style: `background-color: ${colorLight}`, class: 'cm-yLineSelection' }";
      const caret = "pair.create('style', `background-color: ${this.color}; border-color: ${this.color}`)";
      const marks = code.split(mark).length - 1;
      if (marks !== 3 || !code.includes(line) || !code.includes(caret)) {
        throw new Error("y-cursors-csp: y-remote-selections.js changed; update the patterns");
      }
      code = code.replaceAll(mark, "class: 'cm-ySelection ' + __cspColorClass(colorLight)");
      code = code.replace(line, "attributes: { class: 'cm-yLineSelection ' + __cspColorClass(colorLight) }");
      code = code.replace(caret, "pair.create('class', 'cm-ySelectionCaret ' + __cspColorClass(this.color, 'caret'))");
      code = code.replace("[pair.create('class', 'cm-ySelectionCaret'), pair.create('class',", "[pair.create('class',");
      if (code.includes("style")) throw new Error("y-cursors-csp: an inline style is left");
      const shim = JSON.stringify(path.join(here, "src/csp-color.js"));
      return { contents: `import { cspColorClass as __cspColorClass } from ${shim};\n${code}`, loader: "js" };
    });
  },
};

const cm = `codemirror-${version("@codemirror/view")}`;
const yjs = `yjs-${version("yjs")}`;
const socketio = `socket.io-client-${version("socket.io-client")}`;
const xterm = `xterm-${version("@xterm/xterm")}`;
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

const common = {
  bundle: true, format: "esm", minify: true, target: "es2020", legalComments: "none",
  metafile: true, logLevel: "warning",
};
const results = [
  await esbuild.build({
    // One build with splitting: the Yjs bundle shares CodeMirror's state and view chunks.
    ...common,
    entryPoints: { [cm]: path.join(here, "src/codemirror.js"), [yjs]: path.join(here, "src/yjs.js") },
    outdir: out, splitting: true, chunkNames: `${cm}-chunks/[name]-[hash]`,
    plugins: [styleModCsp, yCursorsCsp],
  }),
  await esbuild.build({
    ...common, entryPoints: { [socketio]: path.join(here, "src/socket.io-client.js") }, outdir: out,
  }),
  await esbuild.build({
    ...common, entryPoints: { [xterm]: path.join(here, "src/xterm.js") }, outdir: out,
    plugins: [xtermCsp],
  }),
];
fs.copyFileSync(path.join(here, "node_modules/@xterm/xterm/css/xterm.css"), path.join(out, `${xterm}.css`));

// Licences: every npm package that contributed code, beside the bundles.
const packages = new Set();
for (const result of results) {
  for (const input of Object.keys(result.metafile.inputs)) {
    const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
    if (m) packages.add(m[1]);
  }
}
const licences = [...packages].sort().map((pkg) => {
  const dir = path.join(here, "node_modules", pkg);
  const file = fs.readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  const text = file ? fs.readFileSync(path.join(dir, file), "utf8") : "(no licence file)";
  return `== ${pkg} ${version(pkg)} ==\n\n${text.trim()}\n`;
});
fs.writeFileSync(path.join(out, "LICENSES.txt"), licences.join("\n"));
// Gzipped twins of the bundles: the hub's static files handler sends `x.js.gz` for `x.js`
// to browsers that accept gzip (tests/test_static_files.py checks each twin's content).
for (const f of fs.readdirSync(out, { recursive: true })) {
  if (!/\.(js|css)$/.test(f)) continue;
  const p = path.join(out, f);
  fs.writeFileSync(`${p}.gz`, zlib.gzipSync(fs.readFileSync(p), { level: 9 }));
}
for (const f of fs.readdirSync(out, { recursive: true }).sort()) {
  const p = path.join(out, f);
  if (fs.statSync(p).isFile()) console.log(`${String(fs.statSync(p).size).padStart(8)}  vendor/${f}`);
}
