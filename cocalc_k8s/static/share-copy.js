// "Copy to my project" on a published item's page, for signed-in readers who are not its
// collaborators (they get Edit): the item, or the file or folder shown, is copied by the
// hub into the projects they pick (see copy-to-project.js).
import { copyToProject } from "./copy-to-project.js";

for (const button of document.querySelectorAll("[data-copy-item]")) {
  button.addEventListener("click", () =>
    copyToProject({
      publicPathId: button.dataset.copyItem,
      path: button.dataset.copyPath,
      name: button.dataset.copyName,
      isDir: button.dataset.copyDir === "1",
    }));
}
