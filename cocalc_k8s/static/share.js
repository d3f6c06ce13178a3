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

// Admins: unpublish any item, turn sharing off or on for the whole site.
async function adminCall(method, url, body) {
  const token = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const response = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", "X-CSRF-Token": token, Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    window.alert(data.error || `request failed (${response.status})`);
    return false;
  }
  return true;
}

function wireAdmin() {
  for (const button of document.querySelectorAll("[data-admin-unpublish]")) {
    button.addEventListener("click", async () => {
      if (!window.confirm("Unpublish this item for everyone?")) return;
      if (await adminCall("DELETE", `/api/v2/admin/public-paths/${button.dataset.adminUnpublish}`)) {
        window.location.assign("/share");
      }
    });
  }
  for (const button of document.querySelectorAll("[data-admin-sharing]")) {
    button.addEventListener("click", async () => {
      const enabled = button.dataset.adminSharing === "on";
      if (await adminCall("PATCH", "/api/v2/admin/share", { enabled })) window.location.reload();
    });
  }
}

function start() {
  typeset();
  wireAdmin();
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
