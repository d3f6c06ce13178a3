// xterm.js writes its theme and cell-size rules into <style> elements, which a strict
// Content-Security-Policy (style-src 'self') refuses. The build replaces those elements
// with this stand-in: an inert element whose textContent feeds a constructed stylesheet
// adopted by the document (constructed stylesheets are not inline styles under CSP).
export function cspStyle(doc) {
  const element = doc.createElement("xterm-style");
  element.hidden = true;
  const sheet = new (doc.defaultView || window).CSSStyleSheet();
  doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
  let text = "";
  Object.defineProperty(element, "textContent", {
    get: () => text,
    set: (value) => { text = String(value); sheet.replaceSync(text); },
  });
  const remove = element.remove.bind(element);
  element.remove = () => {
    doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet);
    remove();
  };
  return element;
}
