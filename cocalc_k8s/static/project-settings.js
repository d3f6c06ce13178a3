// The Settings tab: collaborators (add by email, remove, leave), the quota, SSH keys, the
// project log, and deleting the project (owner).
import { api, debounce, h } from "./api.js";
import { ask } from "./dialog.js";
import { projectLog } from "./project-log.js";
import { sshKeys } from "./project-ssh-keys.js";

const QUOTA_LABELS = {
  memory_mb: ["Memory", (v) => `${v} MB`],
  cpu: ["CPU", (v) => `${v} core${v === 1 ? "" : "s"}`],
  disk_mb: ["Disk", (v) => `${v} MB`],
  idle_timeout: ["Stops when idle for", (v) => (v % 3600 === 0 ? `${v / 3600} h` : `${Math.round(v / 60)} min`)],
  always_running: ["Always running", (v) => (v ? "yes" : "no")],
  network: ["Internet access", (v) => (v ? "yes" : "no")],
};

export function mount(panel, project) {
  const message = h("p", { class: "alert", hidden: true });
  const people = h("ul", { class: "people", "data-testid": "collaborators" });
  const quota = h("dl", { class: "quota", "data-testid": "quota" });
  const canManage = project.role === "owner" || project.role === "admin";
  const log = projectLog(project);
  const ssh = sshKeys(project);
  let visible = false;
  // A start, stop or rename (by anyone: the state stream is shared) shows in the log.
  const refreshLog = debounce(() => { if (visible) log.refresh(); }, 250);
  let lastState = project.state;
  project.onState((state) => {
    if (state !== lastState) refreshLog();
    lastState = state;
  });
  project.onChange(refreshLog);
  const addForm = h("form", { class: "row", "data-testid": "add-collaborator" },
    h("div", { class: "field grow" },
      h("label", { for: "collaborator-email" }, "Add a collaborator by email"),
      h("input", { id: "collaborator-email", name: "email", type: "email", required: true, autocomplete: "off", placeholder: "name@example.org" }),
    ),
    h("button", { type: "submit" }, "Add"),
  );
  const danger = h("section", { class: "panel", "aria-labelledby": "danger-heading" },
    h("h2", { id: "danger-heading" }, "Delete project"),
    h("p", { class: "muted" }, "The project disappears for every collaborator and is stopped. Its files are kept until an admin purges deleted projects."),
    h("button", { type: "button", class: "danger", onclick: deleteProject }, "Delete this project"),
  );
  panel.replaceChildren(
    message,
    h("section", { class: "panel", "aria-labelledby": "people-heading" },
      h("h2", { id: "people-heading" }, "Collaborators"),
      people,
      canManage ? addForm : h("p", { class: "muted" }, "Only the owner can add or remove collaborators."),
    ),
    h("section", { class: "panel", "aria-labelledby": "quota-heading" },
      h("h2", { id: "quota-heading" }, "Quota"),
      quota,
      h("p", { class: "muted hint" }, "Admins can change a project's quota."),
    ),
    ssh.section,
    log.section,
    project.role === "owner" ? danger : null,
  );

  function say(text, error = false) {
    message.textContent = text;
    message.hidden = !text;
    message.className = `alert ${error ? "error" : "ok"}`;
    message.setAttribute("role", error ? "alert" : "status");
  }

  function person(user) {
    const me = user.account_id === project.accountId;
    let action = null;
    if (me && user.role === "collaborator") {
      action = h("button", { type: "button", class: "danger small", onclick: () => removeUser(user, true) }, "Leave project");
    } else if (canManage && user.role !== "owner") {
      action = h("button", { type: "button", class: "danger small", "aria-label": `Remove ${user.name}`, onclick: () => removeUser(user, false) }, "Remove");
    }
    return h("li", { class: "person" },
      h("span", { class: "person-name" }, user.name, me ? h("span", { class: "muted" }, " (you)") : null),
      user.email ? h("span", { class: "muted email" }, user.email) : null,
      h("span", { class: `role role-${user.role}` }, user.role),
      action,
    );
  }

  async function load() {
    const data = await api("GET", project.api);
    people.replaceChildren(...data.collaborators.map(person));
    quota.replaceChildren(
      ...Object.entries(QUOTA_LABELS)
        .filter(([key]) => key in data.quota)
        .flatMap(([key, [label, format]]) => [h("dt", {}, label), h("dd", {}, format(data.quota[key]))]),
    );
  }

  addForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const email = addForm.elements.email.value.trim();
    try {
      await api("POST", `${project.api}/collaborators`, { email });
      addForm.reset();
      say(`${email} was added. They will see the project in their list.`);
      await load();
      refreshLog();
    } catch (err) {
      say(`Could not add ${email}: ${err.message}`, true);
    }
  });

  async function removeUser(user, leaving) {
    const ok = await ask({
      title: leaving ? "Leave the project?" : `Remove ${user.name}?`,
      message: leaving
        ? "You will lose access to the project until the owner adds you again."
        : `${user.name} will lose access to the project at once.`,
      submit: leaving ? "Leave" : "Remove",
      danger: true,
    });
    if (!ok) return;
    try {
      await api("DELETE", `${project.api}/collaborators/${user.account_id}`);
    } catch (err) {
      say(`Could not remove ${user.name}: ${err.message}`, true);
      return;
    }
    if (leaving) location.assign("/projects");
    else {
      await load();
      refreshLog();
    }
  }

  async function deleteProject() {
    const ok = await ask({ title: "Delete this project?", message: "It disappears for every collaborator and is stopped.", submit: "Delete project", danger: true });
    if (!ok) return;
    try {
      await api("DELETE", project.api);
      location.assign("/projects");
    } catch (err) {
      say(`Could not delete the project: ${err.message}`, true);
    }
  }

  return {
    async show() {
      visible = true;
      try { await load(); } catch (err) { say(`Could not load the settings: ${err.message}`, true); }
      try { await ssh.refresh(); } catch (err) { say(`Could not load the SSH keys: ${err.message}`, true); }
      await log.refresh();
    },
    hide() { visible = false; },
  };
}
