// The SSH section of the project's Settings tab: how to log in, and the project's own keys
// (any collaborator adds or deletes them; a key stops working when whoever added it is no
// longer a collaborator).
import { api, h } from "./api.js";

export function sshKeys(project) {
  const message = h("p", { class: "alert", hidden: true });
  const howto = h("p", { class: "muted", "data-testid": "ssh-login" });
  const list = h("ul", { class: "people", "data-testid": "project-ssh-keys" });
  const form = h("form", { class: "stack", "data-testid": "add-project-ssh-key" },
    h("div", { class: "field" },
      h("label", { for: "project-ssh-key-name" }, "Name of the SSH key"),
      h("input", { id: "project-ssh-key-name", name: "name", required: true, maxlength: "100", autocomplete: "off", placeholder: "e.g. backup job" }),
    ),
    h("div", { class: "field" },
      h("label", { for: "project-ssh-key-public" }, "Public key"),
      h("textarea", { id: "project-ssh-key-public", name: "public_key", required: true, rows: "3", spellcheck: "false", placeholder: "ssh-ed25519 AAAA… you@laptop" }),
    ),
    h("button", { type: "submit" }, "Add SSH key to this project"),
  );
  const section = h("section", { class: "panel", "aria-labelledby": "project-ssh-heading" },
    h("h2", { id: "project-ssh-heading" }, "SSH keys of this project"),
    howto,
    message,
    list,
    form,
  );

  function say(text, error = false) {
    message.textContent = text;
    message.hidden = !text;
    message.className = `alert ${error ? "error" : "ok"}`;
    message.setAttribute("role", error ? "alert" : "status");
  }

  function item(key) {
    return h("li", { class: "person" },
      h("span", { class: "person-name" }, key.name),
      h("code", { class: "muted" }, key.fingerprint),
      h("span", { class: "muted" }, `added by ${key.added_by.name}`),
      h("button", { type: "button", class: "danger small", "aria-label": `Delete SSH key ${key.name}`, onclick: () => remove(key) }, "Delete"),
    );
  }

  async function refresh() {
    const data = await api("GET", `${project.api}/ssh-keys`);
    const { port, host } = data.ssh;
    howto.textContent = port
      ? `ssh ${project.id.slice(0, 8)}@${host} -p ${port} opens a shell here, with one of these keys or one of your account's.`
      : "The SSH server of this site is turned off.";
    list.replaceChildren(...data.ssh_keys.map(item));
    if (!data.ssh_keys.length) list.append(h("li", { class: "muted empty" }, "No project keys yet."));
  }

  async function remove(key) {
    try {
      await api("DELETE", `${project.api}/ssh-keys/${key.id}`);
      say(`The key ${key.name} was deleted.`);
      await refresh();
    } catch (err) {
      say(`Could not delete the key: ${err.message}`, true);
    }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { name: form.elements.name.value, public_key: form.elements.public_key.value };
    try {
      await api("POST", `${project.api}/ssh-keys`, body);
      form.reset();
      say("The SSH key was added.");
      await refresh();
    } catch (err) {
      say(`Could not add the key: ${err.message}`, true);
    }
  });

  return { section, refresh };
}
