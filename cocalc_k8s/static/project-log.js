// The project log in the Settings tab: who started, stopped, edited what, and when,
// newest first, one page at a time (GET …/events?before=<id>). Every text is set with
// textContent (through `h`), never as HTML.
import { api, h, keepTimesFresh, relativeTime } from "./api.js";

const PAGE = 50;

const actorName = (event) => event.account?.name || (event.account ? "Someone" : null);

/** The event as a sentence: "Ana started the project", "Ben uploaded data/x.csv". */
export function describe(event) {
  const who = actorName(event);
  const d = event.data || {};
  const by = (verb) => (who ? `${who} ${verb}` : capitalise(`${verb}`));
  switch (event.kind) {
    case "project.created": return by("created the project");
    case "project.deleted": return by("deleted the project");
    case "project.title_changed": return by(`renamed the project to “${d.title}”`);
    case "project.description_changed": return by("changed the description");
    case "project.collaborator_added": return by(`added ${d.name || "a collaborator"}`);
    case "project.collaborator_removed": return by(`removed ${d.name || "a collaborator"}`);
    case "project.collaborator_left": return `${d.name || who || "A collaborator"} left the project`;
    case "project.quota_changed": return by(`changed the quota (${quotaText(d.quota)})`);
    case "project.start_requested": return requested(who, "started", d.reason);
    case "project.stop_requested": return requested(who, "stopped", d.reason);
    case "project.restart_requested": return requested(who, "restarted", d.reason);
    case "project.stopped":
      return typeof d.idle_minutes === "number"
        ? `Stopped after ${d.idle_minutes} minute${d.idle_minutes === 1 ? "" : "s"} idle`
        : `Stopped: ${d.reason || "by the hub"}`;
    case "project.failed": return `The project failed: ${d.error || "unknown error"}`;
    case "file.uploaded": return by(`uploaded ${d.path}`);
    case "file.created": return by(`created ${d.path}`);
    case "file.saved": return by(`edited ${d.path}`);
    case "file.deleted": return by(`deleted ${d.path}`);
    case "file.moved": return by(`moved ${d.path} to ${d.to}`);
    case "file.copied": return by(`copied ${d.path} to ${d.to}`);
    default: return `${who || "The hub"}: ${event.kind}`;
  }
}

function requested(who, verb, reason) {
  if (who) return `${who} ${verb} the project${reason ? ` (${reason})` : ""}`;
  return `The project was ${verb}${reason ? ` (${reason})` : " by the hub"}`;
}

const capitalise = (text) => text.charAt(0).toUpperCase() + text.slice(1);

function quotaText(quota) {
  return Object.entries(quota || {}).map(([key, value]) => `${key.replaceAll("_", " ")} ${value}`).join(", ");
}

function entry(event) {
  const when = new Date(event.time);
  return h("li", { class: "log-entry", dataset: { id: String(event.id), kind: event.kind } },
    h("span", { class: "log-text" }, describe(event)),
    h("time", { class: "log-time muted", datetime: event.time, title: when.toLocaleString() }, relativeTime(event.time)),
  );
}

/** Builds the log section; returns {section, refresh()} (refresh: fetch the newest). */
export function projectLog(project) {
  const list = h("ol", { class: "log", "data-testid": "project-log", "aria-live": "polite" });
  const empty = h("p", { class: "muted", hidden: true }, "Nothing has happened in this project yet.");
  const error = h("p", { class: "alert error", role: "alert", hidden: true });
  const older = h("button", { type: "button", class: "secondary small", hidden: true, onclick: loadOlder }, "Load older");
  const section = h("section", { class: "panel", "aria-labelledby": "log-heading" },
    h("h2", { id: "log-heading" }, "Project log"), error, empty, list, older,
  );
  keepTimesFresh(list);
  let newest = 0;
  let oldest = null;
  let busy = null;

  async function fetchPage(before) {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (before) query.set("before", String(before));
    try {
      const page = await api("GET", `${project.api}/events?${query}`);
      error.hidden = true;
      return page;
    } catch (err) {
      error.textContent = `Could not load the project log: ${err.message}`;
      error.hidden = false;
      return null;
    }
  }

  async function refreshNow() {
    const page = await fetchPage(null);
    if (!page) return;
    const fresh = page.events.filter((e) => e.id > newest);
    if (oldest === null || fresh.length >= PAGE) {
      // First load, or more new entries than a page: start over from the newest page.
      list.replaceChildren(...page.events.map(entry));
      oldest = page.events.at(-1)?.id ?? null;
      older.hidden = !page.more;
    } else {
      list.prepend(...fresh.map(entry));
    }
    if (page.events.length) newest = Math.max(newest, page.events[0].id);
    empty.hidden = list.children.length > 0;
  }

  /** One refresh at a time; a call during one runs once more after it. */
  function refresh() {
    if (busy) {
      busy.again = true;
      return busy.promise;
    }
    busy = { again: false };
    busy.promise = (async () => {
      do {
        busy.again = false;
        await refreshNow();
      } while (busy.again);
      busy = null;
    })();
    return busy.promise;
  }

  async function loadOlder() {
    older.disabled = true;
    const page = await fetchPage(oldest);
    older.disabled = false;
    if (!page) return;
    list.append(...page.events.map(entry));
    oldest = page.events.at(-1)?.id ?? oldest;
    older.hidden = !page.more;
  }

  return { section, refresh };
}
