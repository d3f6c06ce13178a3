// The projects list: live search, "show hidden", hide/unhide; the page works without it.
import { api, debounce, h, keepTimesFresh, relativeTime } from "./api.js";

document.documentElement.classList.add("js");
const form = document.querySelector('[data-testid="project-filters"]');
const list = document.querySelector('[data-testid="project-list"]');
const empty = document.querySelector('[data-testid="no-projects"]');
const count = document.getElementById("project-count");
const search = form.elements.search;
const showHidden = form.elements.hidden;
let pending = null;

function item(p) {
  const meta = [`edited `, h("time", { datetime: p.last_edited || "" }, relativeTime(p.last_edited))];
  if (p.role !== "owner") meta.push(" · shared with you");
  if (p.hidden) meta.push(" · hidden");
  return h("li", { class: `project-item${p.hidden ? " is-hidden" : ""}`, dataset: { projectId: p.project_id } },
    h("a", { class: "project-title", href: `/projects/${p.project_id}` }, p.title),
    h("span", { class: `state state-${p.state}`, "data-testid": "state" }, p.state),
    p.description ? h("span", { class: "project-desc muted" }, p.description) : null,
    h("span", { class: "project-meta muted" }, meta),
    h("button", {
      type: "button", class: "link small toggle-hidden", "data-hidden": String(p.hidden),
      "aria-label": `${p.hidden ? "Unhide" : "Hide"} ${p.title}`,
    }, p.hidden ? "Unhide" : "Hide"),
  );
}

async function refresh() {
  pending?.abort();
  pending = new AbortController();
  const query = new URLSearchParams({ search: search.value, hidden: showHidden.checked ? "all" : "false" });
  let data;
  try {
    data = await api("GET", `/api/v2/projects?${query}`, undefined, { signal: pending.signal });
  } catch (err) {
    if (err.name === "AbortError") return;
    empty.hidden = false;
    empty.textContent = `Could not load your projects: ${err.message}`;
    return;
  }
  list.replaceChildren(...data.projects.map(item));
  empty.hidden = data.projects.length > 0;
  empty.textContent = search.value ? `No project matches “${search.value}”.` : "No projects yet: create one above.";
  const n = data.projects.length;
  count.textContent = `${n} project${n === 1 ? "" : "s"}`;
  const url = new URL(location.href);
  url.search = "";
  if (search.value) url.searchParams.set("search", search.value);
  if (showHidden.checked) url.searchParams.set("hidden", "all");
  history.replaceState(null, "", url);
}

form.addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
search.addEventListener("input", debounce(refresh, 200));
showHidden.addEventListener("change", refresh);
list.addEventListener("click", async (e) => {
  const button = e.target.closest(".toggle-hidden");
  if (!button) return;
  const id = button.closest("[data-project-id]").dataset.projectId;
  button.disabled = true;
  try {
    await api("PATCH", `/api/v2/projects/${id}`, { hidden: button.dataset.hidden !== "true" });
  } catch (err) {
    button.disabled = false;
    alert(`Could not change the project: ${err.message}`);
    return;
  }
  await refresh();
});
keepTimesFresh(list);
