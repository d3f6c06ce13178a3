// "Copy to project…": copy a file or folder into one or more of your other projects
// (POST /api/v2/copies, one copy per destination), then follow each copy's progress until
// it is done, with a link to the copied files, or failed, with the hub's reason. The
// source is a project's path, or a published item ("Copy to my project" on /share).
import { api, encodePath, h, humanSize } from "./api.js";

const POLL_MS = 400;

/**
 * Open the dialog for `path`, a file or folder of the project `projectId`, or with
 * `publicPathId` a path inside that published item.
 */
export async function copyToProject({ projectId = null, publicPathId = null, path, name, isDir }) {
  const { projects } = await api("GET", "/api/v2/projects");
  const others = projects.filter((p) => p.project_id !== projectId);
  const source = publicPathId ? { public_path_id: publicPathId, src_path: path } : { src_project_id: projectId, src_path: path };
  const status = h("div", { class: "stack", "data-testid": "copy-status", "aria-live": "polite" });
  const folder = h("input", { id: "copy-folder", name: "folder", autocomplete: "off", value: "", placeholder: "the home folder" });
  const overwrite = h("input", { type: "checkbox", id: "copy-overwrite", name: "overwrite" });
  const boxes = others.map((p) =>
    h("label", { class: "check" },
      h("input", { type: "checkbox", name: "project", value: p.project_id }),
      " ", p.title,
    ));
  const submit = h("button", { type: "submit", disabled: others.length === 0 }, "Copy");
  const close = h("button", { type: "button", class: "secondary" }, "Close");
  const form = h("form", { class: "stack" },
    h("h2", { id: "copy-title" }, `Copy ${name}${isDir ? "/" : ""} to…`),
    others.length
      ? h("fieldset", { class: "stack copy-targets" }, h("legend", {}, "Projects"), ...boxes)
      : h("p", { class: "muted" }, "You have no other project to copy into: create one first."),
    h("div", { class: "field" },
      h("label", { for: "copy-folder" }, "Into the folder (from the home folder)"), folder),
    h("label", { class: "check" }, overwrite, isDir ? " Merge into a folder of the same name" : " Replace a file of the same name"),
    status,
    h("div", { class: "actions dialog-actions" }, submit, close),
  );
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": "copy-title" }, form);
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const targets = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    if (!targets.length) {
      status.replaceChildren(h("p", { class: "error", role: "alert" }, "Pick at least one project."));
      return;
    }
    const into = folder.value.trim().replace(/^\/+|\/+$/g, "");
    const dstPath = into ? `${into}/${name}` : name;
    submit.disabled = true;
    try {
      const body = { ...source, dst_project_ids: targets, dst_path: dstPath, overwrite: overwrite.checked };
      const { copy_ids: ids } = await api("POST", "/api/v2/copies", body);
      const titles = Object.fromEntries(others.map((p) => [p.project_id, p.title]));
      status.replaceChildren(...ids.map((id, i) => follow(id, titles[targets[i]], targets[i], into)));
    } catch (err) {
      status.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
      submit.disabled = false;
    }
  });
  document.body.append(dialog);
  dialog.showModal();
}

function follow(copyId, title, dstProject, into) {
  const bar = h("progress", { max: 1, value: 0, "aria-label": `Copy to ${title}` });
  const line = h("span", { class: "muted" }, "waiting…");
  const item = h("div", { class: "copy-item", dataset: { copyId } }, h("strong", {}, title), " ", bar, " ", line);
  (async () => {
    for (;;) {
      let copy;
      try {
        copy = await api("GET", `/api/v2/copies/${copyId}`);
      } catch (err) {
        line.replaceChildren(h("span", { class: "error" }, err.message));
        return;
      }
      if (copy.bytes_total) bar.value = copy.bytes_done / copy.bytes_total;
      if (copy.state === "done") {
        bar.value = 1;
        const skipped = copy.skipped.length ? ` (${copy.skipped.length} skipped: links out of the folder or special files)` : "";
        const where = `/projects/${dstProject}/files/${into ? `${encodePath(into)}/` : ""}`;
        line.replaceChildren(h("a", { href: where, "data-testid": "copy-done" }, "Open the copy"), skipped);
        return;
      }
      if (copy.state === "failed") {
        line.replaceChildren(h("span", { class: "error", role: "alert", "data-testid": "copy-failed" }, copy.error));
        return;
      }
      line.textContent = copy.state === "copying"
        ? `${copy.files_done} of ${copy.files_total} files, ${humanSize(copy.bytes_done)}`
        : "waiting…";
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  })();
  return item;
}
