// The sweep's plots as ECharts options, and a small wrapper around a chart instance.
//
// Every series that draws trials has an id starting "trials:" and a `trials` list: the
// index, into the sweep's columns, of the trial each data item draws, so a click or a
// tooltip finds its trial whatever series it is in. Their total is the chart's
// `data-marks` attribute (one mark per trial drawn), which tests and people can read.

import { STATUS_COLORS, num, param } from "./format.js";

/** Resolves once the chart library, which loads alongside the page's first requests, is ready. */
export function chartsLoaded() {
  // Checks init, not just the name: before the library sets it, window.echarts may be
  // anything that happens to be called so.
  if (typeof window.echarts?.init === "function") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const script = document.getElementById("echarts-script");
    script.addEventListener("load", () => resolve(), { once: true });
    script.addEventListener("error", () => reject(new Error("The chart library did not load.")), { once: true });
  });
}

/** A filled "x": where a diverged trial's curve stops. */
export const CROSS = "path://M2,0L5,3L8,0L10,2L7,5L10,8L8,10L5,7L2,10L0,8L3,5L0,2Z";
/**
 * One colour per stage: the Okabe-Ito qualitative palette, told apart by colour-blind
 * readers too (without its vermilion, which is near the diverged trials' red).
 */
export const STAGE_COLORS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#000000", "#F0E442"];

/** The colour of stage `stage`; the palette repeats after its seventh. */
export function stageColor(stage) {
  return STAGE_COLORS[stage % STAGE_COLORS.length];
}
/** Lines of the curves chart, in the order the trials are listed. */
const LINE_COLORS = ["#2f6fca", "#1a9e77", "#e08a00", "#7a4fc4", "#c2417c", "#3b9cb8", "#6b8e23", "#8c564b"];
/**
 * Above this many points, a chart draws its scatter series in ECharts' large mode: one
 * path per series instead of one element per point, each of which takes time to build.
 */
export const LARGE = 500;

const DRAW_TIMEOUT_MS = 10000;

export class ChartBox {
  /** A chart in `node`, resized with it. */
  constructor(node, { onPick } = {}) {
    this.node = node;
    this.chart = window.echarts.init(node, null, { renderer: "canvas" });
    this.size = [node.clientWidth, node.clientHeight];
    // Redraw only when the box really changed size: a redraw of 10,000 points is not free.
    this.observer = new ResizeObserver(() => {
      const size = [node.clientWidth, node.clientHeight];
      if (size[0] === this.size[0] && size[1] === this.size[1]) return;
      this.size = size;
      this.chart.resize();
    });
    this.observer.observe(node);
    this.series = [];
    if (onPick) {
      this.chart.on("click", (event) => {
        // By id: after a replacing update, series indices in the chart may have gaps.
        const trial = this.series.find((s) => s.id === event.seriesId)?.trials?.[event.dataIndex];
        if (trial !== undefined) onPick(trial);
      });
    }
  }

  /**
   * Replace the chart's option; resolves once ECharts has drawn it, or after
   * DRAW_TIMEOUT_MS should it never say so (the page must not stop updating for that).
   * Charts are not animated: a live update redraws at once, and "drawn" means drawn.
   */
  set(option) {
    this.series = option.series || [];
    const marks = this.series
      .filter((s) => String(s.id || "").startsWith("trials:"))
      .reduce((n, s) => n + s.trials.length, 0);
    this.node.dataset.marks = String(marks);
    this.node.dataset.series = String(this.series.length);
    const drawn = new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.chart.off("finished", done);
        resolve();
      };
      const timer = setTimeout(done, DRAW_TIMEOUT_MS);
      this.chart.on("finished", done);
    });
    this.chart.setOption(option, { notMerge: false, replaceMerge: ["series", "xAxis", "yAxis", "parallelAxis", "visualMap"] });
    return drawn;
  }

  dispose() {
    this.observer.disconnect();
    this.chart.dispose();
  }
}

/** The axis of a parameter from its space entry: log axes for log parameters. */
export function paramAxis(name, spec) {
  const base = { name, nameLocation: "middle", nameGap: 28, splitLine: { show: false } };
  if (!spec || spec.type === "categorical") {
    return { ...base, type: "category", data: (spec?.values || []).map(String) };
  }
  if (spec.scale === "log") {
    return {
      ...base,
      type: "log",
      logBase: 10,
      min: spec.low,
      max: spec.high,
      // Powers of ten as 1e-4; an axis of numbers from 1 up (hidden: 32 to 512) reads plainly.
      axisLabel: { formatter: spec.low >= 1 ? (v) => String(v) : (v) => Number(v).toExponential(0).replace("e+", "e") },
    };
  }
  return { ...base, type: "value", min: spec.low, max: spec.high };
}

/** Where a parameter value sits on its axis: itself, or a category's index (which also fits a typed array). */
export function xValue(spec, value) {
  return spec && spec.type === "categorical" ? spec.values.findIndex((v) => String(v) === String(value)) : value;
}

/**
 * Where to draw trials that have no objective value (failed, or diverged before any
 * evaluation): just beyond the worst value shown, so they stay visible and apart.
 */
export function noValueLevel(values, objective, logY = false) {
  if (logY) {
    // On a log axis only positive values show, and the step beyond them is a factor.
    const [lo, hi] = extent(values.filter((v) => v > 0));
    if (lo === null) return 1;
    return objective.mode === "min" ? hi * 1.5 : lo / 1.5;
  }
  const [lo, hi] = extent(values);
  if (lo === null) return 0;
  const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 0.05;
  return objective.mode === "min" ? hi + pad : lo - pad;
}

/** [smallest, largest] of the finite numbers in `values`, or [null, null]; no spread, so any length works. */
export function extent(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v === null || !Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [null, null];
}

/** The objective's colours from its lowest value to its highest: the best darkest either way. */
export function scaleColors(objective) {
  const worstToBest = ["#f3e79b", "#7fb2f0", "#173f80"];
  return objective.mode === "min" ? [...worstToBest].reverse() : worstToBest;
}

/**
 * A continuous colour scale for the objective over `values`. With `dimension`, it colours
 * the first series by that data dimension (and one can drag its handles to filter);
 * without, it only shows the scale that series coloured by hand use.
 */
export function objectiveColors(values, objective, dimension) {
  const [lo, hi] = extent(values);
  return {
    type: "continuous",
    seriesIndex: dimension === undefined ? [] : 0,
    dimension,
    min: lo ?? 0,
    max: hi ?? 1,
    inRange: { color: scaleColors(objective) },
    right: 0,
    top: "middle",
    itemHeight: 120,
    calculable: dimension !== undefined,
    // Handles show their values; a scale without handles is labelled at its ends.
    text: dimension === undefined && lo !== null ? [num(hi, 3), num(lo, 3)] : undefined,
    formatter: (v) => num(v, 3),
    textStyle: { fontSize: 11 },
  };
}

/** The colour at `t` (0 to 1) along the hex colour `stops`. */
export function colorAt(stops, t) {
  const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
  const k = Math.min(Math.floor(x), stops.length - 2);
  const [a, b] = [stops[k], stops[k + 1]].map((hex) => [1, 3, 5].map((p) => parseInt(hex.slice(p, p + 2), 16)));
  const mix = a.map((v, n) => Math.round(v + (b[n] - v) * (x - k)));
  return `rgb(${mix.join(",")})`;
}

/**
 * How outcomes other than a completed run are drawn: shapes ECharts can draw in large
 * mode too (it draws no path symbol there, so no crosses), in their status colours.
 */
const OUTCOME_SYMBOLS = { diverged: "triangle", failed: "diamond", pruned: "rect", other: "circle" };

export function outcomeSeries(key, name, data, large) {
  const color = STATUS_COLORS[key === "other" ? "cancelled" : key];
  const size = key === "other" ? 6 : 8;
  return trialScatter({ id: `trials:${key}`, name, points: data, color, large, symbol: OUTCOME_SYMBOLS[key], size, opacity: 0.85 });
}

/** Which series a finished trial goes in. */
export function kind(status) {
  if (status === "completed") return "completed";
  if (status === "diverged" || status === "failed" || status === "pruned") return status;
  return "other";
}

/**
 * A scatter series of trials from `points` ([x, y, trial index] each). Its `trials` lists
 * the trial of each data item, for tooltips, clicks and counting marks. Drawn in one go
 * rather than progressively: a big series in large mode (one path) is drawn at once,
 * while ECharts' default spreads it over many frames. A chart of many
 * trials draws all its series in large mode, from a flat typed array of x, y pairs,
 * which ECharts reads faster than an array of arrays.
 */
export function trialScatter({ id, name, points, color, large, symbol = "circle", size = 6, opacity = 0.8 }) {
  // ECharts 5.6 fails to paint an empty series in large mode.
  const inLargeMode = large && points.length > 0;
  let data;
  if (inLargeMode) {
    data = new Float64Array(2 * points.length);
    points.forEach(([x, y], k) => {
      data[2 * k] = x;
      data[2 * k + 1] = y;
    });
  } else {
    data = points.map(([x, y]) => [x, y]);
  }
  return {
    id,
    name,
    type: "scatter",
    data,
    dimensions: ["x", "y"],
    trials: points.map((p) => p[2]),
    symbol,
    symbolSize: size,
    large: inLargeMode,
    largeThreshold: 0,
    progressive: 0,
    itemStyle: color ? { color, opacity } : { opacity },
  };
}

/** The tooltip of a trial under the pointer, found through its series' `trials`. */
export function tooltip(points, objective, names, series) {
  return {
    trigger: "item",
    confine: true,
    formatter: (event) => {
      const i = series.find((s) => s.id === event.seriesId)?.trials?.[event.dataIndex];
      if (i === undefined) return "";
      const value = points.value[i];
      const lines = [
        `<b>trial #${points.number[i]}</b> · stage ${points.stage[i]} · ${points.status[i]}`,
        `${objective.metric}: ${value === null ? "no value" : num(value)}`,
        ...names.map((n) => `${n}: ${param(points.params[n][i])}`),
      ];
      return lines.map(escapeHtml).join("<br>").replace(/&lt;(\/?)b&gt;/g, "<$1b>");
    },
  };
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

/**
 * The objective against one parameter: completed trials by stage, diverged and failed
 * trials in shapes of their own (at their value, or on the "no value" line beyond the worst one).
 */
export function objectiveScatter({ points, rows, name, spec, objective, names, picked, logY }) {
  const level = noValueLevel(rows.map((i) => points.value[i]), objective, logY);
  const groups = new Map();
  for (const i of rows) {
    const k = kind(points.status[i]);
    const key = k === "completed" ? `stage ${points.stage[i]}` : k;
    const value = points.value[i];
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push([xValue(spec, points.params[name][i]), value === null ? level : value, i]);
  }
  const large = rows.length > LARGE;
  const series = [];
  for (const [key, data] of [...groups].sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))) {
    if (key.startsWith("stage ")) {
      const color = stageColor(Number(key.slice(6)));
      series.push(trialScatter({ id: `trials:${key}`, name: key, points: data, color, large }));
    } else {
      series.push(outcomeSeries(key, key === "other" ? "cancelled" : key, data, large));
    }
  }
  const hasNoValue = rows.some((i) => points.value[i] === null);
  if (hasNoValue && series.length) {
    series[0].markLine = {
      silent: true,
      symbol: "none",
      lineStyle: { type: "dotted", color: "#9aa5b1" },
      label: { formatter: "no value", position: "insideStartTop", color: "#5b6470" },
      data: [{ yAxis: level }],
    };
  }
  series.push(pickedSeries(points, picked, (i) => [xValue(spec, points.params[name][i]), points.value[i] ?? level, i]));
  return {
    animation: false,
    grid: { left: 56, right: 16, top: 30, bottom: 44 },
    legend: { top: 0, right: 0, itemWidth: 10, itemHeight: 10, textStyle: { fontSize: 11 }, data: series.filter((s) => s.id.startsWith("trials:")).map((s) => s.name) },
    tooltip: tooltip(points, objective, names, series),
    xAxis: paramAxis(name, spec),
    yAxis: yAxis(objective, logY),
    series,
  };
}

function yAxis(objective, logY) {
  return {
    type: logY ? "log" : "value",
    scale: true,
    name: objective.metric,
    nameLocation: "middle",
    nameGap: 42,
    splitLine: { lineStyle: { color: "#eef1f4" } },
    axisLabel: { formatter: (v) => num(v, 3) },
  };
}

/** Rings around the picked trials, drawn over the other marks. */
function pickedSeries(points, picked, at) {
  return {
    id: "overlay:picked",
    name: "picked",
    type: "scatter",
    data: [...picked].filter((i) => i !== undefined).map(at),
    symbol: "circle",
    symbolSize: 14,
    itemStyle: { color: "rgba(0,0,0,0)", borderColor: "#111", borderWidth: 2 },
    z: 10,
    silent: true,
    tooltip: { show: false },
  };
}

/** How many shades the pair scatter colours completed trials in. */
const SHADES = 10;

/**
 * Two parameters against each other, completed trials coloured by the objective. The
 * colours are one series per shade rather than a visual map on one series: ECharts
 * ignores a visual map's colours in large mode.
 */
export function pairScatter({ points, rows, x, y, space, objective, names, picked }) {
  const values = rows.map((i) => (points.status[i] === "completed" ? points.value[i] : null));
  const [lo, hi] = extent(values);
  const shades = Array.from({ length: SHADES }, () => []);
  const others = { diverged: [], failed: [], pruned: [], other: [] };
  for (const i of rows) {
    const at = [xValue(space[x], points.params[x][i]), xValue(space[y], points.params[y][i]), i];
    const k = kind(points.status[i]);
    if (k === "completed" && points.value[i] !== null) {
      const t = hi > lo ? (points.value[i] - lo) / (hi - lo) : 1;
      shades[Math.min(SHADES - 1, Math.floor(t * SHADES))].push(at);
    } else {
      others[k === "completed" ? "other" : k].push(at);
    }
  }
  const large = rows.length > LARGE;
  const stops = scaleColors(objective);
  const series = [
    ...shades.map((data, k) =>
      trialScatter({ id: `trials:shade${k}`, name: "completed", points: data, large, size: 8, opacity: 0.9, color: colorAt(stops, (k + 0.5) / SHADES) }),
    ),
    outcomeSeries("diverged", "diverged", others.diverged, large),
    outcomeSeries("failed", "failed", others.failed, large),
    outcomeSeries("pruned", "pruned", others.pruned, large),
    outcomeSeries("other", "no value", others.other, large),
    pickedSeries(points, picked, (i) => [xValue(space[x], points.params[x][i]), xValue(space[y], points.params[y][i]), i]),
  ];
  const yAx = paramAxis(y, space[y]);
  yAx.nameGap = 48;
  return {
    animation: false,
    grid: { left: 64, right: 90, top: 30, bottom: 44 },
    legend: { top: 0, left: 0, itemWidth: 10, itemHeight: 10, data: ["diverged", "failed", "pruned"], textStyle: { fontSize: 11 } },
    tooltip: tooltip(points, objective, names, series),
    xAxis: paramAxis(x, space[x]),
    yAxis: yAx,
    visualMap: [objectiveColors(values, objective)],
    series,
  };
}

/** Tick labels of parallel axes: on a light backing, over the lines rather than under them. */
const AXIS_LABEL = { backgroundColor: "rgba(255,255,255,0.85)", padding: [1, 3], borderRadius: 2, color: "#1d2430", fontSize: 11 };

/** The most lines parallel coordinates draw; each line is an element of its own. */
export const PARALLEL_MAX = 2000;

/**
 * The trials parallel coordinates draw: all of them up to PARALLEL_MAX; beyond that the
 * best half of PARALLEL_MAX, and an even sample of the others (so diverged and failed
 * trials keep their share), in their original order.
 */
export function parallelRows(points, rows, objective) {
  if (rows.length <= PARALLEL_MAX) return rows;
  const ranked = rows.filter((i) => points.status[i] === "completed" && points.value[i] !== null);
  const sign = objective.mode === "min" ? 1 : -1;
  ranked.sort((a, b) => sign * (points.value[a] - points.value[b]) || a - b);
  const best = new Set(ranked.slice(0, PARALLEL_MAX / 2));
  const rest = rows.filter((i) => !best.has(i));
  const sampled = PARALLEL_MAX - best.size;
  const step = rest.length / sampled;
  const shown = new Set(best);
  for (let k = 0; k < sampled; k++) shown.add(rest[Math.floor(k * step)]);
  return rows.filter((i) => shown.has(i));
}

/**
 * Parallel coordinates: one axis per parameter and the objective last. Completed trials
 * are coloured by the objective; diverged and failed ones are faint lines of their own.
 */
export function parallel({ points, rows, names, space, objective }) {
  const level = noValueLevel(rows.map((i) => points.value[i]), objective);
  const groups = { completed: [], diverged: [], failed: [], pruned: [], other: [] };
  for (const i of parallelRows(points, rows, objective)) {
    const row = names.map((n) => xValue(space[n], points.params[n][i]));
    row.push(points.value[i] ?? level, i);
    groups[kind(points.status[i])].push(row);
  }
  const drawn = Object.values(groups).reduce((n, g) => n + g.length, 0);
  const opacity = drawn > 1000 ? 0.15 : drawn > 300 ? 0.3 : 0.6;
  const values = groups.completed.map((r) => r[names.length]).filter((v) => v !== level);
  const axes = names.map((n, dim) => {
    const { name, type, data, min, max, logBase, axisLabel } = paramAxis(n, space[n]);
    // Every category is labelled (ECharts would skip some to avoid overlaps), and
    // boundaryGap puts them between the ends, where lines cross at their values.
    if (type === "category") return { dim, name, type, data, boundaryGap: true, axisLabel: { ...AXIS_LABEL, interval: 0 } };
    return { dim, name, type, data, min, max, logBase, axisLabel: { ...AXIS_LABEL, ...axisLabel } };
  });
  // The objective axis spans every line drawn, those on the "no value" level included.
  const [lo, hi] = extent([...rows.map((i) => points.value[i]), level]);
  axes.push({
    dim: names.length,
    name: objective.metric,
    type: "value",
    min: lo ?? 0,
    max: hi ?? 1,
    axisLabel: { ...AXIS_LABEL, formatter: (v) => num(v, 3) },
  });
  const line = (id, name, data, color) => ({
    id,
    name,
    trials: data.map((row) => row[row.length - 1]),
    type: "parallel",
    data,
    lineStyle: { width: 1, opacity, ...(color ? { color } : {}) },
    progressive: 0,
    smooth: false,
  });
  return {
    animation: false,
    parallel: {
      left: 48,
      right: 130,
      top: 48,
      bottom: 24,
      parallelAxisDefault: { nameTextStyle: { fontSize: 11, fontWeight: 600 }, nameGap: 12, z: 10, axisLine: { lineStyle: { color: "#3d4652" } } },
    },
    parallelAxis: axes,
    legend: { top: 0, right: 0, data: ["diverged", "failed", "pruned"], itemWidth: 14, itemHeight: 3, textStyle: { fontSize: 11 } },
    visualMap: [objectiveColors(values, objective, names.length)],
    series: [
      line("trials:completed", "completed", groups.completed),
      line("trials:diverged", "diverged", groups.diverged, STATUS_COLORS.diverged),
      line("trials:failed", "failed", groups.failed, STATUS_COLORS.failed),
      line("trials:pruned", "pruned", groups.pruned, STATUS_COLORS.pruned),
      line("trials:other", "cancelled", groups.other, STATUS_COLORS.cancelled),
    ],
  };
}

/**
 * Learning curves of a few trials: one line each over the epochs (steps), the x axis
 * reaching the longest stage shown, so a diverged trial visibly stops short; its last
 * point is a red cross.
 */
export function curves({ curves, metric, labels, epochs, logY }) {
  const series = curves.map((curve, n) => {
    const ys = curve.metrics[metric] || [];
    const data = curve.step.map((step, k) => [step, ys[k] ?? null]).filter(([, v]) => v !== null && (!logY || v > 0));
    const diverged = curve.status === "diverged";
    const pruned = curve.status === "pruned";
    const color = diverged ? STATUS_COLORS.diverged : LINE_COLORS[n % LINE_COLORS.length];
    const last = data[data.length - 1];
    return {
      id: `curve:${curve.id}`,
      name: labels(curve),
      type: "line",
      data,
      showSymbol: data.length <= 30,
      symbolSize: 5,
      lineStyle: { width: 2, type: diverged ? "dashed" : pruned ? "dotted" : "solid" },
      itemStyle: { color },
      emphasis: { focus: "series" },
      markPoint:
        diverged && last
          ? {
              symbol: CROSS,
              symbolSize: 14,
              itemStyle: { color: STATUS_COLORS.diverged },
              label: { show: true, position: "right", formatter: "diverged", color: STATUS_COLORS.diverged, fontSize: 11 },
              data: [{ coord: last }],
            }
          : pruned && last
            ? prunedMark(last)
            : undefined,
    };
  });
  return {
    animation: false,
    grid: { left: 56, right: 24, top: 36, bottom: 40 },
    legend: { top: 0, type: "scroll", textStyle: { fontSize: 11 } },
    tooltip: { trigger: "axis", valueFormatter: (v) => num(v) },
    xAxis: stepAxis(series, epochs),
    yAxis: { type: logY ? "log" : "value", scale: true, name: metric, nameLocation: "middle", nameGap: 42, axisLabel: { formatter: (v) => num(v, 3) } },
    series,
  };
}

/**
 * The x axis of curves: epochs up to the stage's, so a trial that stopped early shows it;
 * a program that reports other steps (batches, say) gets an axis of steps reaching its last.
 */
function stepAxis(series, epochs) {
  let last = 0;
  for (const s of series) for (const [step] of s.data) if (step > last) last = step;
  const steps = last > (epochs || 0);
  return { type: "value", name: steps ? "step" : "epoch", nameLocation: "middle", nameGap: 26, min: 0, max: steps ? null : epochs || null, minInterval: 1 };
}

/**
 * A diverged trial's curve has a point per completed epoch only; add where it stopped
 * (its final values of the metrics `names`, at the epoch it was in) so the chart shows the
 * line cut short there.
 */
export function withStopPoint(curve, names) {
  if (curve.status !== "diverged") return curve;
  const last = curve.step.length ? curve.step[curve.step.length - 1] : 0;
  const metrics = {};
  for (const name of names) {
    const column = curve.metrics[name] || new Array(curve.step.length).fill(null);
    metrics[name] = [...column, curve.final[name] ?? null];
  }
  const stopped = Math.max(last + 1, curve.final.epochs_run ?? 0);
  return { ...curve, step: [...curve.step, stopped], metrics };
}

/** The mark at the end of a pruned trial's curve. */
function prunedMark(last) {
  return {
    symbol: "rect",
    symbolSize: 8,
    itemStyle: { color: STATUS_COLORS.pruned },
    label: { show: true, position: "right", formatter: "pruned", color: STATUS_COLORS.pruned, fontSize: 11 },
    data: [{ coord: last }],
  };
}

/**
 * Every metric of one trial's curve, one line each, over the epochs of its stage; a
 * diverged trial's lines end in red crosses where it stopped.
 */
export function metricCurves({ curve, metrics, epochs, logY }) {
  const diverged = curve.status === "diverged";
  const pruned = curve.status === "pruned";
  const series = metrics.map((metric, n) => {
    const ys = curve.metrics[metric] || [];
    const data = curve.step.map((step, k) => [step, ys[k] ?? null]).filter(([, v]) => v !== null && (!logY || v > 0));
    const last = data[data.length - 1];
    return {
      id: `metric:${metric}`,
      name: metric,
      type: "line",
      data,
      showSymbol: data.length <= 60,
      symbolSize: 5,
      itemStyle: { color: LINE_COLORS[n % LINE_COLORS.length] },
      lineStyle: { width: 2 },
      markPoint:
        diverged && last
          ? { symbol: CROSS, symbolSize: 14, itemStyle: { color: STATUS_COLORS.diverged }, data: [{ coord: last }] }
          : pruned && last
            ? prunedMark(last)
            : undefined,
    };
  });
  return {
    animation: false,
    grid: { left: 56, right: 24, top: 36, bottom: 40 },
    legend: { top: 0, textStyle: { fontSize: 11 } },
    tooltip: { trigger: "axis", valueFormatter: (v) => num(v) },
    xAxis: stepAxis(series, epochs),
    yAxis: { type: logY ? "log" : "value", scale: true, axisLabel: { formatter: (v) => num(v, 3) } },
    series,
  };
}
