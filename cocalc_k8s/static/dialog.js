// One small modal <dialog> for questions: a name to enter, or a confirmation.
import { h } from "./api.js";

/**
 * Resolves to the entered text (with `label`), true (confirmation), or null (cancelled).
 */
export function ask({ title, message = "", label = "", value = "", placeholder = "", submit = "OK", danger = false }) {
  return new Promise((resolve) => {
    const input = label
      ? h("input", { id: "dialog-input", name: "value", required: true, autocomplete: "off", value, placeholder })
      : null;
    const form = h("form", { method: "dialog", class: "stack" },
      h("h2", { id: "dialog-title" }, title),
      message ? h("p", {}, message) : null,
      input ? h("div", { class: "field" }, h("label", { for: "dialog-input" }, label), input) : null,
      h("div", { class: "actions dialog-actions" },
        h("button", { type: "submit", value: "ok", class: danger ? "danger-solid" : "" }, submit),
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close("cancel") }, "Cancel"),
      ),
    );
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": "dialog-title" }, form);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      dialog.close("ok");
    });
    dialog.addEventListener("close", () => {
      const ok = dialog.returnValue === "ok";
      dialog.remove();
      if (!ok) resolve(null);
      else resolve(input ? input.value.trim() || null : true);
    });
    document.body.append(dialog);
    dialog.showModal();
    if (input) {
      input.focus();
      const dot = input.value.lastIndexOf(".");
      const slash = input.value.lastIndexOf("/") + 1;
      input.setSelectionRange(slash, dot > slash ? dot : input.value.length);
    }
  });
}
