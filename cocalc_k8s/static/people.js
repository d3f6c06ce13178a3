// Who has a file open, as the pages show it: each collaborator's name with a dot in their
// colour. The colour comes from the account id, so a person has the same colour in every
// page and for everyone: in the "who is here" lists and for their cursor in the text.
import { h } from "./api.js";

export const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b"];

export function colorIndex(accountId) {
  let hash = 0;
  for (const ch of String(accountId)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return hash % COLORS.length;
}

export const colorOf = (accountId) => COLORS[colorIndex(accountId)];

/** The `<li>` items of a "who is here" list: everyone in `people` but `selfId`. */
export function personItems(people, selfId) {
  return people
    .filter((person) => person.account_id !== selfId)
    .map((person) => h("li", {
      class: `person peer-c${colorIndex(person.account_id)}`,
      title: person.clients > 1 ? `${person.name} (${person.clients} tabs)` : person.name,
      "data-testid": "person",
    }, h("span", { class: "person-dot", "aria-hidden": "true" }), person.name));
}
