// The admin page: live stats refreshed every few seconds, and a confirmation before
// forms marked data-confirm (ban, stop, revoke). The page works without it.
import { api } from "./api.js";
import { ask } from "./dialog.js";

const REFRESH_MS = 3000;
const stats = document.querySelector('[data-testid="stats"]');
const updated = document.getElementById("stats-updated");

async function refreshStats() {
  if (document.hidden) return;
  try {
    const data = await api("GET", "/api/v2/admin/stats");
    for (const el of stats.querySelectorAll("[data-stat]")) {
      const value = data[el.dataset.stat];
      if (value !== undefined) el.textContent = String(value);
    }
    updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    updated.textContent = `not updated: ${err.message}`;
  }
}

if (stats) setInterval(refreshStats, REFRESH_MS);

for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector('button[type="submit"]');
    const ok = await ask({
      title: "Are you sure?",
      message: form.dataset.confirm,
      submit: button.firstChild.textContent.trim(),
      danger: true,
    });
    if (ok) form.submit();
  });
}
