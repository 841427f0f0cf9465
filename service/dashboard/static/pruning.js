// Pruning on the dashboard: on a sweep's page, a panel per stage with a pruner showing,
// per rung (or epoch of the median rule), how many trials reached it, how many were
// pruned there and the cutoff; on a trial's page, why it was stopped and every decision
// taken about it.

import { getJSON } from "./api.js";
import { el, num } from "./format.js";

/** The sweep page's pruning panel: empty (and hidden) when no stage has a pruner. */
export function pruningPanel() {
  const node = el("section", { id: "pruning", class: "panel", hidden: true });
  return {
    node,
    async update(sweep) {
      if (!sweep.stages.some((_, index) => hasPruner(sweep, index))) return;
      const pruning = await getJSON(`/sweeps/${sweep.id}/pruning`);
      const stages = pruning.stages.filter((stage) => stage.pruner && stage.pruner.kind !== "none");
      node.hidden = false;
      node.replaceChildren(el("h2", {}, "Pruning"), ...stages.map((stage) => stageTable(stage, sweep)));
    },
  };
}

function hasPruner(sweep, index) {
  const pruner = sweep.spec.stages?.[index]?.pruner;
  return Boolean(pruner && pruner.kind !== "none");
}

function describe(pruner) {
  if (pruner.kind === "asha") return `ASHA: rungs at ${pruner.min_epochs} × ${pruner.eta}^k epochs, the top 1/${pruner.eta} go on`;
  return `median rule: after ${pruner.warmup_epochs} warm-up epochs, over at least ${pruner.min_trials} completed trials`;
}

function stageTable(stage, sweep) {
  const counts = sweep.stages[stage.index]?.counts || {};
  const rows = stage.rungs.map((rung) =>
    el(
      "tr",
      { dataset: { step: rung.step } },
      el("td", { class: "num" }, String(rung.step)),
      el("td", { class: "num" }, String(rung.reached)),
      el("td", { class: "num" }, String(rung.pruned)),
      el("td", { class: "num" }, rung.cutoff === null ? "—" : num(rung.cutoff)),
      el("td", { class: "num" }, String(rung.compared)),
    ),
  );
  return el(
    "div",
    { class: "pruning-stage", dataset: { stage: stage.index } },
    el("p", { class: "note" }, `stage ${stage.index}: ${describe(stage.pruner)} · ${counts.pruned || 0} pruned, ${counts.completed || 0} completed`),
    rows.length
      ? el(
          "table",
          { class: "table pruning-rungs" },
          el("thead", {}, el("tr", {}, ...["epoch", "reached", "pruned", `latest cutoff (${sweep.objective.metric})`, "over trials"].map((t) => el("th", {}, t)))),
          el("tbody", {}, rows),
        )
      : el("p", { class: "muted" }, "no trial has reached a rung yet"),
  );
}

/** The trial page's panel: why the trial was stopped, and the decisions taken about it. */
export async function trialPruning(node, trial, sweep) {
  const reason = trial.metrics.prune_reason;
  let decisions = [];
  if (hasPruner(sweep, trial.stage)) {
    try {
      decisions = (await getJSON(`/sweeps/${trial.sweep_id}/pruning?trial=${trial.id}`)).decisions;
    } catch {
      decisions = [];
    }
  }
  if (!reason && !decisions.length) {
    node.replaceChildren();
    return;
  }
  node.replaceChildren(
    el(
      "section",
      { class: "panel", id: "trial-pruning" },
      el("h2", {}, "Pruning"),
      reason ? el("p", { id: "prune-reason" }, el("b", {}, "Why it stopped: "), reason) : null,
      decisions.length
        ? el(
            "ul",
            { class: "decisions" },
            decisions.map((d) => el("li", { class: d.pruned ? "error" : "" }, d.reason)),
          )
        : null,
    ),
  );
}
