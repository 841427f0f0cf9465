// One trial: parameters, status, attempt, worker, timings, its whole curve, its error.

import { getJSON } from "./api.js";
import { ChartBox, chartsLoaded, metricCurves, withStopPoint } from "./charts.js";
import { FINISHED, badge, between, duration, el, num, showError, when } from "./format.js";
import { Live } from "./live.js";
import { trialPruning } from "./pruning.js";

export function trialPage(root, { id }) {
  const summary = el("section", { id: "trial-summary" });
  const lossChart = el("div", { class: "chart", dataset: { chart: "trial-loss" } });
  const otherChart = el("div", { class: "chart", dataset: { chart: "trial-metrics" } });
  const details = el("div", { class: "grid" });
  const error = el("section", { id: "trial-error" });
  const pruning = el("div", { id: "trial-pruning-box" });
  // On the page once the trial has loaded, so an unknown trial shows only the error.
  const lossPanel = el("section", { class: "panel" }, el("h2", {}, "Losses"), lossChart);
  const otherPanel = el("section", { class: "panel" }, el("h2", {}, "Other metrics"), otherChart);
  const parts = [summary, error, pruning, el("div", { class: "grid" }, lossPanel, otherPanel), details];
  let boxes = [];
  let sweep = null;
  let disposed = false;

  const live = new Live(
    async () => {
      const [trial] = await Promise.all([getJSON(`/trials/${id}`), chartsLoaded()]);
      if (disposed) return false;
      if (!boxes.length) {
        root.append(...parts);
        boxes = [new ChartBox(lossChart), new ChartBox(otherChart)];
      }
      if (!sweep || sweep.id !== trial.sweep_id || sweep.status === "running") sweep = await getJSON(`/sweeps/${trial.sweep_id}`);
      showError(root, null);
      renderSummary(summary, trial, sweep);
      renderError(error, trial);
      renderDetails(details, trial, sweep);
      const curve = withStopPoint(columns(trial), curveMetrics(trial, sweep));
      const names = Object.keys(curve.metrics).filter((n) => curve.metrics[n].some((v) => v !== null));
      const epochs = sweep.stages[trial.stage]?.epochs;
      // Whatever a program calls its metrics: losses in one chart, the rest in the other,
      // and a chart with nothing to draw gives its room to the one that has.
      const losses = names.filter((n) => n.includes("loss"));
      const others = names.filter((n) => !n.includes("loss"));
      lossPanel.hidden = !losses.length && others.length > 0;
      otherPanel.hidden = !others.length && losses.length > 0;
      otherPanel.querySelector("h2").textContent = losses.length ? "Other metrics" : "Metrics";
      await Promise.all([
        boxes[0].set(metricCurves({ curve, metrics: losses, epochs })),
        boxes[1].set(metricCurves({ curve, metrics: others, epochs })),
      ]);
      await trialPruning(pruning, trial, sweep);
      root.dataset.ready = "1";
      root.dataset.status = trial.status;
      return !FINISHED.has(trial.status);
    },
    { onError: (err) => showError(root, err) },
  ).start();

  return {
    dispose() {
      disposed = true;
      live.dispose();
      for (const box of boxes) box.dispose();
    },
  };
}

/**
 * The metrics to draw: those the curve reports; for a trial that diverged before its
 * first report, the objective and the losses it finished with, so its one point shows.
 */
function curveMetrics(trial, sweep) {
  const names = new Set(trial.curve.flatMap((p) => Object.keys(p.metrics)));
  if (!names.size) {
    names.add(sweep.objective.metric);
    for (const name of Object.keys(trial.metrics)) if (name.includes("loss")) names.add(name);
  }
  return names;
}

/** The trial's curve in the columnar shape the charts take (as the curves endpoint gives it). */
function columns(trial) {
  const metrics = {};
  trial.curve.forEach((point, k) => {
    for (const [name, value] of Object.entries(point.metrics)) {
      if (typeof value !== "number") continue;
      (metrics[name] ||= new Array(trial.curve.length).fill(null))[k] = value;
    }
  });
  const final = {};
  for (const [name, value] of Object.entries(trial.metrics)) if (typeof value === "number") final[name] = value;
  return { id: trial.id, number: trial.number, stage: trial.stage, status: trial.status, step: trial.curve.map((p) => p.step), metrics, final };
}

function renderSummary(node, trial, sweep) {
  document.title = `trial #${trial.number} · ${sweep.name} · hypersweep`;
  node.replaceChildren(
    el("p", { class: "crumbs" }, el("a", { href: `#/sweeps/${sweep.id}` }, `← ${sweep.name}`)),
    el("h1", {}, `Trial #${trial.number}`, el("span", { class: "muted" }, ` id ${trial.id}`), " ", badge(trial.status)),
    el(
      "p",
      { class: "facts" },
      el("span", {}, `${sweep.objective.metric} `, el("b", { class: "num", id: "trial-value" }, num(trial.value))),
      el("span", {}, `stage ${trial.stage}`),
      el("span", {}, `attempt ${trial.attempt} of at most ${sweep.max_attempts}`),
      el("span", {}, "worker ", el("code", {}, trial.worker_id || "—")),
      el("span", {}, "created ", when(trial.created_at)),
      el("span", {}, "started ", when(trial.started_at)),
      el("span", {}, "finished ", when(trial.finished_at)),
      el("span", {}, "took ", duration(between(trial.started_at, trial.finished_at))),
      trial.status === "diverged"
        ? el("span", { class: "error", id: "stopped" }, `stopped in epoch ${trial.metrics.epochs_run ?? "?"} of ${sweep.stages[trial.stage]?.epochs ?? "?"}`)
        : null,
    ),
  );
}

function renderError(node, trial) {
  node.replaceChildren(trial.error ? el("div", { class: "panel error-panel" }, el("h2", {}, "Error"), el("pre", { class: "error-text" }, trial.error)) : "");
}

/** A setting's value as text: numbers compactly, anything else as JSON. */
function setting(value) {
  return typeof value === "number" ? num(value, 6) : typeof value === "string" ? value : JSON.stringify(value);
}

function renderDetails(node, trial, sweep) {
  const table = (title, id, entries) =>
    el(
      "section",
      { class: "panel" },
      el("h2", {}, title),
      el("table", { class: "table kv", id }, el("tbody", {}, entries.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "num" }, v))))),
    );
  // Everything the trainer or program was handed; the tuned parameters first, marked.
  const settingsTable = ({ params, settings }, order) => {
    const all = { ...(settings || {}), ...params };
    const tuned = Object.keys(params).sort((a, b) => (order.indexOf(a) + 1 || Infinity) - (order.indexOf(b) + 1 || Infinity));
    const names = [...tuned, ...Object.keys(all).filter((k) => !(k in params)).sort()];
    return el(
      "section",
      { class: "panel" },
      el("h2", {}, "Settings"),
      el("p", { class: "note muted" }, "What the trial was run with: its tuned parameters (marked) and the fixed settings."),
      el(
        "table",
        { class: "table kv", id: "trial-settings" },
        el(
          "tbody",
          {},
          names.map((k) =>
            el(
              "tr",
              { class: k in params ? "tuned" : null, dataset: { setting: k } },
              el("th", {}, k, k in params ? el("span", { class: "tag" }, "tuned") : null),
              el("td", { class: "num" }, setting(all[k])),
            ),
          ),
        ),
      ),
    );
  };
  node.replaceChildren(
    settingsTable(trial, Object.keys(sweep.spec?.space || {})),
    table("Metrics", "trial-metrics", Object.entries(trial.metrics).map(([k, v]) => [k, typeof v === "number" ? num(v) : String(v)])),
  );
}
