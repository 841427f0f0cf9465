// The sweeps page: every sweep, newest first, with its progress per stage and best value.

import { getPage } from "./api.js";
import { badge, el, num, progress, showError, when } from "./format.js";
import { Live } from "./live.js";

const PAGE = 50;

export function sweepsPage(root, { offset }) {
  const body = el("tbody");
  const pager = el("p", { class: "pager" });
  root.append(
    el("h1", {}, "Sweeps"),
    el(
      "table",
      { class: "table", id: "sweeps-table" },
      el(
        "thead",
        {},
        el("tr", {}, ["Sweep", "Status", "Progress per stage", "Best", "Trials", "Created"].map((h) => el("th", {}, h))),
      ),
      body,
    ),
    pager,
  );

  const live = new Live(
    async () => {
      const { items, total } = await getPage(`/sweeps?limit=${PAGE}&offset=${offset}`);
      showError(root, null);
      body.replaceChildren(...items.map(row));
      if (!items.length) {
        body.append(
          el(
            "tr",
            {},
            el(
              "td",
              { colspan: 6, class: "empty" },
              offset ? "No sweeps on this page." : "No sweeps yet. Submit one: ",
              offset ? null : el("code", {}, "hypersweep submit examples/digits-coarse-to-fine.yaml"),
            ),
          ),
        );
      }
      pager.replaceChildren(
        ...[
          offset > 0 ? el("a", { href: `#/?offset=${Math.max(0, offset - PAGE)}` }, "← newer") : null,
          el("span", { class: "muted" }, ` ${total ? offset + 1 : 0}–${offset + items.length} of ${total} `),
          offset + PAGE < total ? el("a", { href: `#/?offset=${offset + PAGE}` }, "older →") : null,
        ].filter(Boolean),
      );
      root.dataset.ready = "1";
      return items.some((sweep) => sweep.status === "running");
    },
    { onError: (err) => showError(root, err) },
  ).start();
  return { dispose: () => live.dispose() };
}

function row(sweep) {
  const trials = Object.values(sweep.counts).reduce((a, b) => a + b, 0);
  const best = sweep.best;
  return el(
    "tr",
    { dataset: { sweepId: sweep.id } },
    el("td", {}, el("a", { href: `#/sweeps/${sweep.id}`, class: "name" }, sweep.name), el("span", { class: "muted" }, ` #${sweep.id}`)),
    el("td", {}, badge(sweep.status)),
    el(
      "td",
      { class: "stage-progress" },
      sweep.stages.map((stage) =>
        el("div", { class: "stage-line" }, el("span", { class: "stage-label" }, `S${stage.index}`), progress(stage.counts, stage.trials)),
      ),
    ),
    el(
      "td",
      { class: "best" },
      best
        ? [
            el("b", { class: "num" }, num(best.value)),
            " ",
            el("span", { class: "muted" }, `${sweep.objective.metric} (${sweep.objective.mode}) `),
            el("a", { href: `#/trials/${best.id}` }, `#${best.number}`),
          ]
        : el("span", { class: "muted" }, "—"),
    ),
    el("td", { class: "num" }, trials),
    el("td", {}, when(sweep.created_at)),
  );
}
