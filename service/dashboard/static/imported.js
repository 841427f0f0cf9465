// A warm-started sweep's imported trials: the finished trials of earlier sweeps that
// inform its search. They are shown apart from the sweep's own trials, as they are not
// its trials and took none of its budget.

import { getJSON } from "./api.js";
import { badge, el, num, param } from "./format.js";

/** How many imported trials the table lists, best first. */
const SHOWN = 20;

/** A panel for the sweep's warm start, filled once its imported trials load; null when the
 *  sweep has no warm start. Imported trials never change, so they load once. */
export function importedPanel(sweep) {
  const sources = sweep.spec.warm_start?.sweeps;
  if (!sources?.length) return null;
  const summary = el("p", { class: "note muted" }, "Loading imported trials…");
  const table = el("table", { class: "table imported", id: "imported-table" });
  const panel = el(
    "section",
    { class: "panel", id: "imported" },
    el(
      "h2",
      {},
      "Imported (warm start from ",
      sources.map((id, n) => [n ? ", " : "", el("a", { href: `#/sweeps/${id}` }, `sweep #${id}`)]),
      ")",
    ),
    summary,
    el("div", { class: "scroll" }, table),
  );
  getJSON(`/sweeps/${sweep.id}/imported`).then(
    (rows) => fill(summary, table, rows, sweep),
    (err) => summary.replaceChildren(`Could not load the imported trials: ${err.message}`),
  );
  return panel;
}

function fill(summary, table, rows, sweep) {
  const used = rows.filter((r) => r.inside);
  summary.replaceChildren(
    `${rows.length} finished trials imported, ${used.length} inside this sweep's space. `,
    "Those inside inform its search and its first stage's narrowing; they are not this sweep's trials ",
    "and are not counted in its trials, budget or best.",
  );
  summary.dataset.imported = String(rows.length);
  summary.dataset.used = String(used.length);
  const sign = sweep.objective.mode === "max" ? -1 : 1;
  const order = rows.slice().sort((a, b) => {
    if (a.value === null) return b.value === null ? 0 : 1;
    if (b.value === null) return -1;
    return sign * (a.value - b.value);
  });
  const names = Object.keys(sweep.spec.space);
  table.replaceChildren(
    el(
      "thead",
      {},
      el("tr", {}, el("th", {}, "trial"), el("th", {}, "status"), el("th", {}, sweep.objective.metric), names.map((n) => el("th", {}, n)), el("th", {}, "")),
    ),
    el(
      "tbody",
      {},
      order.slice(0, SHOWN).map((r) =>
        el(
          "tr",
          { dataset: { trialId: r.trial_id, inside: r.inside ? "1" : "0" }, class: r.inside ? null : "muted" },
          el("td", {}, el("a", { href: `#/trials/${r.trial_id}` }, `#${r.sweep_id}.${r.number}`)),
          el("td", {}, badge(r.status)),
          el("td", { class: "num strong" }, num(r.value)),
          names.map((n) => el("td", { class: "num" }, n in r.params ? param(r.params[n]) : "—")),
          el("td", { class: "muted" }, r.inside ? "imported" : "outside the space: not used"),
        ),
      ),
    ),
  );
}
