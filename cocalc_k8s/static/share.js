// Share pages: typeset the math the server left as escaped TeX (see share/math.py).
// KaTeX builds DOM nodes (styles set through the CSSOM, which the CSP allows) and runs
// with trust: false, so \href, \includegraphics and \htmlData are refused. Errors are
// shown by us (KaTeX's own error span sets a style attribute, which the CSP refuses).
"use strict";

function typeset() {
  if (typeof window.katex === "undefined") return;
  for (const el of document.querySelectorAll(".math-inline, .math-display")) {
    const tex = el.textContent;
    try {
      window.katex.render(tex, el, {
        displayMode: el.classList.contains("math-display"),
        throwOnError: true,
        trust: false,
        strict: "ignore",
        maxSize: 50,
        maxExpand: 1000,
      });
    } catch (err) {
      el.textContent = tex; // leave the source readable
      el.classList.add("math-error");
      el.title = String(err && err.message ? err.message : err);
    }
  }
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", typeset);
} else {
  typeset();
}
