// y-codemirror.next paints each collaborator's selection and caret with inline style
// attributes, which the hub's Content-Security-Policy (style-src 'self') refuses. The
// build replaces them with a class per colour, whose rule lives in a constructed
// stylesheet adopted by the document (not an inline style under CSP). Colours come from
// other clients' awareness states: anything but a hex colour falls back to the default.
const HEX = /^#(?:[0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$/i;
const FALLBACK = "#30bced";
const classes = new Map();
let sheet = null;

export function cspColorClass(color, property = "background-color") {
  const value = HEX.test(color) ? color : FALLBACK;
  const key = `${property}:${value}`;
  let name = classes.get(key);
  if (!name) {
    name = `cm-yColor-${classes.size}`;
    if (!sheet) {
      sheet = new CSSStyleSheet();
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    }
    const rule = property === "caret"
      ? `.${name} { background-color: ${value}; border-color: ${value}; }`
      : `.${name} { ${property}: ${value}; }`;
    sheet.insertRule(rule, sheet.cssRules.length);
    classes.set(key, name);
  }
  return name;
}
