// Parameter importance: which axes matter, as the server's Optuna evaluator found over the
// completed trials (GET /sweeps/{id}/importance), one bar per parameter.

import { num } from "./format.js";

const NAMES = { fanova: "fANOVA", ped_anova: "PED-ANOVA", mean_decrease_impurity: "mean decrease in impurity" };

/** The answer's entry for the page's stage filter: the overall one, or that stage's. */
export function importanceFor(answer, stage) {
  if (stage === "all") return answer.overall;
  return (
    answer.stages.find((s) => s.stage === stage) || {
      stage,
      trials: 0,
      used: 0,
      importances: null,
      note: `Stage ${stage} has no completed trial yet.`,
    }
  );
}

/** One line under the chart's title: how the shares were found, or why there are none. */
export function importanceNote(answer, entry) {
  if (!entry.importances) return entry.note || "Nothing to evaluate yet.";
  const logs = Object.entries(answer.scales).filter(([, s]) => s === "log10").map(([n]) => n);
  const sampled = entry.used < entry.trials ? ` (an even sample of ${entry.used.toLocaleString()})` : "";
  return (
    `${NAMES[answer.evaluator] || answer.evaluator} over ${entry.trials.toLocaleString()} completed trials${sampled}` +
    (logs.length ? `; ${logs.join(", ")} in log10` : "") +
    ". Each bar is the parameter's share of how much the objective varies."
  );
}

/** Horizontal bars, the most important parameter on top. */
export function importanceBars(entry) {
  const shares = Object.entries(entry.importances || {}).sort(([, a], [, b]) => a - b);
  return {
    animation: false,
    grid: { left: 8, right: 56, top: 8, bottom: 24, containLabel: true },
    tooltip: { trigger: "item", formatter: (p) => `${p.name}: ${num(100 * p.value, 3)}%` },
    xAxis: { type: "value", min: 0, max: shares.length ? Math.min(1, Math.max(...shares.map(([, v]) => v)) * 1.1) : 1, axisLabel: { formatter: (v) => `${Math.round(100 * v)}%` }, splitLine: { lineStyle: { color: "#eef1f4" } } },
    yAxis: { type: "category", data: shares.map(([n]) => n), axisTick: { show: false } },
    series: [
      {
        id: "importance",
        name: "importance",
        type: "bar",
        data: shares.map(([, v]) => v),
        barMaxWidth: 22,
        itemStyle: { color: "#0072B2" },
        label: { show: true, position: "right", formatter: (p) => `${num(100 * p.value, 2)}%`, fontSize: 11 },
      },
    ],
  };
}
