// /share/project/{id}: change an item's visibility, unpublish it, set the URL names.
import { api } from "./api.js";

const root = document.getElementById("share-manage");
const projectId = root.dataset.project;
const errorBox = document.getElementById("manage-error");
const base = `/api/v2/projects/${projectId}`;

async function attempt(fn) {
  errorBox.hidden = true;
  try {
    await fn();
    return true;
  } catch (err) {
    errorBox.textContent = err.message;
    errorBox.hidden = false;
    return false;
  }
}

root.addEventListener("change", async (event) => {
  const select = event.target.closest("select[data-action=visibility]");
  if (!select) return;
  const id = select.closest("tr").dataset.id;
  await attempt(() => api("PATCH", `${base}/public-paths/${id}`, { visibility: select.value }));
});

root.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action=unpublish]");
  if (!button) return;
  const row = button.closest("tr");
  if (await attempt(() => api("DELETE", `${base}/public-paths/${row.dataset.id}`))) row.remove();
});

function nameForm(id, url, field) {
  const form = document.getElementById(id);
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = form.elements[field].value.trim();
    await attempt(() => api("PUT", url, { [field]: value || null }));
  });
}

nameForm("username-form", "/api/v2/account/username", "username");
nameForm("project-name-form", `${base}/url-name`, "name");
