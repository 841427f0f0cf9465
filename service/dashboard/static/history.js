// Optimisation history: each finished trial's objective in the order trials finished, in
// its status's colour and shape, with each stage's best-so-far as a step line.

import { LARGE, kind, noValueLevel, outcomeSeries, stageColor, tooltip, trialScatter } from "./charts.js";
import { STATUS_COLORS, better, num } from "./format.js";

/**
 * The chart's option for the trials `rows` (column indices into `points`, finished ones):
 * x is a trial's place in finishing order (1 for the first to finish), y its value, or the
 * "no value" line beyond the worst for a trial without one.
 */
export function optimisationHistory({ points, rows, objective, names, logY }) {
  const order = rows.filter((i) => points.finished?.[i] !== null && points.finished?.[i] !== undefined);
  order.sort((a, b) => points.finished[a] - points.finished[b] || points.number[a] - points.number[b]);
  const level = noValueLevel(order.map((i) => points.value[i]), objective, logY);
  const groups = { completed: [], diverged: [], failed: [], pruned: [], other: [] };
  const best = new Map(); // stage -> { value, line: [[x, best], ...] }
  order.forEach((i, n) => {
    const x = n + 1;
    const value = points.value[i];
    const k = kind(points.status[i]);
    groups[k].push([x, value ?? level, i]);
    if (k !== "completed" || value === null) return;
    const stage = points.stage[i];
    const sofar = best.get(stage);
    if (!sofar) best.set(stage, { value, line: [[x, value]] });
    else {
      if (better(objective, value, sofar.value)) sofar.value = value;
      sofar.line.push([x, sofar.value]);
    }
  });
  const large = order.length > LARGE;
  const series = [
    trialScatter({ id: "trials:completed", name: "completed", points: groups.completed, color: STATUS_COLORS.completed, large, size: 5, opacity: 0.6 }),
    outcomeSeries("diverged", "diverged", groups.diverged, large),
    outcomeSeries("failed", "failed", groups.failed, large),
    outcomeSeries("pruned", "pruned", groups.pruned, large),
    outcomeSeries("other", "cancelled", groups.other, large),
  ];
  for (const [stage, { line }] of [...best].sort(([a], [b]) => a - b)) {
    series.push({
      id: `best:${stage}`,
      name: `best so far, stage ${stage}`,
      type: "line",
      step: "end",
      data: line,
      showSymbol: false,
      silent: true,
      lineStyle: { width: 2.5, color: stageColor(stage) },
      itemStyle: { color: stageColor(stage) },
      z: 5,
    });
  }
  return {
    animation: false,
    grid: { left: 56, right: 16, top: 40, bottom: 40 },
    legend: { top: 0, type: "scroll", itemWidth: 14, itemHeight: 8, textStyle: { fontSize: 11 }, data: series.filter((s) => !s.id.startsWith("trials:") || s.trials.length).map((s) => s.name) },
    tooltip: tooltip(points, objective, names, series),
    xAxis: { type: "value", name: "trials in finishing order", nameLocation: "middle", nameGap: 26, min: 0, max: Math.max(order.length, 1), minInterval: 1 },
    yAxis: {
      type: logY ? "log" : "value",
      scale: true,
      name: objective.metric,
      nameLocation: "middle",
      nameGap: 42,
      splitLine: { lineStyle: { color: "#eef1f4" } },
      axisLabel: { formatter: (v) => num(v, 3) },
    },
    series,
  };
}
