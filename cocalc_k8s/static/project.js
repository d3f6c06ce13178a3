// A project's page: title/description editing, state with start/stop/restart and live
// progress, and the tabs. Each tab is a module loaded the first time it is shown; it
// exports `mount(panel, project)` returning `{show(path), hide()}`.
import { api, encodePath } from "./api.js";

document.documentElement.classList.add("js");
const root = document.getElementById("project");
const boot = JSON.parse(root.dataset.boot);
const base = `/projects/${boot.project_id}`;
const TAB_MODULES = {
  files: "./project-files.js",
  edit: "./project-editor.js",
  terminal: "./project-terminal.js",
  settings: "./project-settings.js",
};

// --- state and progress ------------------------------------------------------------

const badge = document.getElementById("state-badge");
const progressBox = document.getElementById("progress-box");
const progressBar = document.getElementById("progress-bar");
const progressMessage = document.getElementById("progress-message");
const stateError = document.getElementById("state-error");
const buttons = Object.fromEntries(
  [...document.querySelectorAll("[data-action]")].map((b) => [b.dataset.action, b]),
);
const stateListeners = new Set();
const changeListeners = new Set();

const project = {
  id: boot.project_id,
  base,
  api: `/api/v2/projects/${boot.project_id}`,
  accountId: boot.account_id,
  role: boot.role,
  state: boot.state,
  /** Calls fn(state) now and whenever the project's state changes. */
  onState(fn) {
    stateListeners.add(fn);
    fn(project.state);
    return () => stateListeners.delete(fn);
  },
  /** Calls fn() after this page changed the project's details (title, description). */
  onChange(fn) {
    changeListeners.add(fn);
    return () => changeListeners.delete(fn);
  },
  navigate,
};

function setState(event) {
  const state = event.state;
  project.state = state;
  badge.textContent = state;
  badge.className = `state state-${state}`;
  const busy = state === "starting" || state === "stopping";
  buttons.start.hidden = state === "running" || state === "starting";
  buttons.stop.hidden = state === "stopped" || state === "failed";
  buttons.restart.hidden = state !== "running";
  for (const b of Object.values(buttons)) b.disabled = busy;
  if (state === "starting") {
    progressBox.hidden = false;
    if (typeof event.percent === "number") progressBar.value = event.percent;
    else progressBar.removeAttribute("value");
    progressMessage.textContent = event.message || "Starting…";
  } else if (state === "stopping") {
    progressBox.hidden = false;
    progressBar.removeAttribute("value");
    progressMessage.textContent = event.message || "Stopping…";
  } else {
    progressBox.hidden = true;
  }
  stateError.hidden = !(state === "failed" && event.error);
  if (state === "failed" && event.error) stateError.textContent = `Could not start: ${event.error}`;
  for (const fn of stateListeners) fn(state);
}

// One stream for the page's life: a collaborator's start or stop shows here too.
// EventSource reconnects by itself after a network drop.
function followProgress() {
  const source = new EventSource(`${project.api}/progress?follow=1`);
  source.onmessage = (e) => setState(JSON.parse(e.data));
  return source;
}

async function act(action) {
  const button = buttons[action];
  button.disabled = true;
  stateError.hidden = true;
  try {
    const answer = await api("POST", `${project.api}/${action}`);
    if (answer?.state && answer.state !== project.state) setState(answer);
  } catch (err) {
    stateError.hidden = false;
    stateError.textContent = `Could not ${action} the project: ${err.message}`;
    button.disabled = false;
  }
}

for (const [action, button] of Object.entries(buttons)) {
  button.addEventListener("click", () => act(action));
}
setState({ state: boot.state });
followProgress();

// --- title and description -----------------------------------------------------------

const detailsForm = document.getElementById("details-form");
const editButton = document.getElementById("edit-details");
const titleEl = document.getElementById("project-title");
const descEl = document.getElementById("project-description");
const detailsError = document.getElementById("details-error");

function editDetails(open) {
  detailsForm.hidden = !open;
  editButton.setAttribute("aria-expanded", String(open));
  editButton.hidden = open;
  titleEl.hidden = open;
  descEl.hidden = open || !descEl.textContent;
  detailsError.hidden = true;
  if (open) {
    detailsForm.elements.title.value = titleEl.textContent;
    detailsForm.elements.description.value = descEl.textContent;
    detailsForm.elements.title.focus();
  } else {
    editButton.focus();
  }
}

editButton.addEventListener("click", () => editDetails(true));
titleEl.addEventListener("dblclick", () => editDetails(true));
document.getElementById("details-cancel").addEventListener("click", () => editDetails(false));
detailsForm.addEventListener("keydown", (e) => { if (e.key === "Escape") editDetails(false); });
detailsForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = {
    title: detailsForm.elements.title.value,
    description: detailsForm.elements.description.value,
  };
  try {
    const saved = await api("PATCH", project.api, body);
    titleEl.textContent = saved.title;
    descEl.textContent = saved.description;
    document.title = `${saved.title} · CoCalc`;
    editDetails(false);
    for (const fn of changeListeners) fn();
  } catch (err) {
    detailsError.hidden = false;
    detailsError.textContent = err.message;
  }
});

// --- the named servers the project can run (its agent says which) ---------------------

const serverLinks = [...document.querySelectorAll("[data-server]")];

async function refreshServers() {
  let answer;
  try {
    answer = await api("GET", `${project.api}/servers`);
  } catch {
    return; // keep what the page showed
  }
  for (const entry of answer.servers) {
    const link = serverLinks.find((a) => a.dataset.server === entry.name);
    if (link) link.hidden = !entry.available;
  }
}

project.onState((state) => {
  if (state === "running") refreshServers();
});

// --- a server on a port of the user's choice, on the content origin ---------------------

const portForm = document.getElementById("port-form");
const portError = document.getElementById("port-error");

/** "8000" → the URL of that port's server, or null when it is not a port number. */
export function portUrl(content, kind, text) {
  if (!/^\d{1,5}$/.test(text.trim())) return null;
  const port = Number(text);
  if (port < 1 || port > 65535) return null;
  return `${content}/${kind === "server" ? "server" : "port"}/${port}/`;
}

portForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const url = portUrl(portForm.dataset.content, portForm.elements.kind.value, portForm.elements.port.value);
  portError.hidden = url !== null;
  portForm.elements.port.setAttribute("aria-invalid", String(url === null));
  if (url === null) {
    portError.textContent = "Enter a port number from 1 to 65535.";
    portForm.elements.port.focus();
    return;
  }
  window.open(url, "_blank", "noopener");
});

// --- tabs ------------------------------------------------------------------------------

const tabLinks = Object.fromEntries(
  [...document.querySelectorAll("#tabs [data-tab]")].map((a) => [a.dataset.tab, a]),
);
const panels = Object.fromEntries(
  Object.keys(TAB_MODULES).map((name) => [name, document.getElementById(`panel-${name}`)]),
);
const mounted = {};
let current = null;

function parseLocation() {
  const rest = decodeURIComponent(location.pathname.slice(base.length)).replace(/^\/+/, "");
  const [tab, ...parts] = rest.split("/");
  return { tab: TAB_MODULES[tab] ? tab : "files", path: parts.join("/").replace(/\/+$/, "") };
}


export function tabUrl(tab, path = "") {
  if (tab === "files") return `${base}/files/${path ? `${encodePath(path)}/` : ""}`;
  if (tab === "edit") return `${base}/edit/${encodePath(path)}`;
  return `${base}/${tab}`;
}

/** Shows a tab (and a path in it), adding a history entry unless `replace`. */
async function navigate(tab, path = "", { replace = false, push = true } = {}) {
  const url = tabUrl(tab, path);
  if (push && url !== location.pathname) history[replace ? "replaceState" : "pushState"](null, "", url);
  for (const [name, link] of Object.entries(tabLinks)) {
    if (name === tab) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (tab === "edit") {
    tabLinks.edit.hidden = false;
    tabLinks.edit.href = url;
  }
  for (const [name, panel] of Object.entries(panels)) panel.hidden = name !== tab;
  if (current && current !== tab) mounted[current]?.then((m) => m.hide?.());
  current = tab;
  if (!mounted[tab]) {
    mounted[tab] = import(TAB_MODULES[tab]).then((module) => module.mount(panels[tab], project));
  }
  try {
    const view = await mounted[tab];
    if (current === tab) await view.show(path);
  } catch (err) {
    console.warn(err);
    panels[tab].replaceChildren(document.createTextNode(`This tab could not load: ${err.message}`));
  }
}

for (const [tab, link] of Object.entries(tabLinks)) {
  link.addEventListener("click", (e) => {
    if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    const path = tab === "edit" ? decodeURIComponent(link.pathname.slice(`${base}/edit/`.length)) : "";
    navigate(tab, path);
  });
}
addEventListener("popstate", () => {
  const { tab, path } = parseLocation();
  navigate(tab, path, { push: false });
});

const start = parseLocation();
// "cocalc-ready": the first tab has shown its content (bench/page_tti.py reads it).
navigate(start.tab, start.path, { push: false }).then(() => performance.mark("cocalc-ready"));
