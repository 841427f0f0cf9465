// One sweep: its stages, border warnings, the plots people tune by, and its trials.
//
// Two requests draw the page: the sweep (stages, counts, best) and its points (every
// trial as columns, without curves). Filters, sorting and picking work on those columns in
// the browser; only the few curves shown are fetched on their own. A running sweep polls
// both and redraws in place.

import { getJSON } from "./api.js";
import { ChartBox, PARALLEL_MAX, chartsLoaded, curves, objectiveScatter, pairScatter, parallel, withStopPoint } from "./charts.js";
import { FINISHED, STATUSES, badge, better, duration, el, num, param, progress, showError, when } from "./format.js";
import { importedPanel } from "./imported.js";
import { Live } from "./live.js";
import { renderSanity } from "./babysit.js";
import { pruningPanel } from "./pruning.js";
import { contourChart } from "./contour.js";
import { optimisationHistory } from "./history.js";
import { importanceBars, importanceFor, importanceNote } from "./importance.js";

/** How many of the best trials the curves chart shows. */
const BEST_CURVES = 5;
/** How many trials one can pick for the curves chart besides the best ones. */
const MAX_PICKED = 8;
const TABLE_PAGE = 25;

export function sweepPage(root, { id }) {
  const state = {
    sweep: null,
    points: null,
    index: new Map(), // trial id -> column index
    statuses: new Set(STATUSES),
    stage: "all",
    sort: { key: "value", reverse: false },
    shown: TABLE_PAGE,
    picked: [], // trial ids
    pair: null, // [x, y] parameter names
    curveMetric: null,
    curveLog: false,
    objectiveLog: false,
    curves: { key: "", data: [] },
    importance: null, // the last answer of /importance
    contour: { key: "", grid: null },
    best: [], // ids of the best trials of the rows shown
    firstRender: true,
  };
  const charts = [];
  const views = layout();
  let disposed = false;

  const live = new Live(
    async () => {
      // Asked at once with the rest; drawn when it comes, without holding up the other plots.
      const importance = getJSON(`/sweeps/${id}/importance`).then(
        (answer) => (state.importance = answer),
        (err) => (state.importance = { error: err.message }),
      );
      // The first time, the contour of the default pair too (the server picks the pair as setUp does).
      if (state.firstRender && !state.contourFirst) state.contourFirst = getJSON(`/sweeps/${id}/contour`).catch(() => null);
      const [sweep, points] = await Promise.all([getJSON(`/sweeps/${id}`), getJSON(`/sweeps/${id}/points`), chartsLoaded()]);
      if (disposed) return false;
      showError(root, null);
      state.sweep = sweep;
      state.points = points;
      state.index = new Map(points.id.map((trialId, i) => [trialId, i]));
      if (!charts.length) setUp();
      await render({ refetchCurves: true, importance });
      if (state.firstRender) {
        state.firstRender = false;
        root.dataset.ready = "1";
        root.dataset.renderMs = String(Math.round(performance.now()));
      }
      root.dataset.refreshes = String(Number(root.dataset.refreshes || 0) + 1);
      return sweep.status === "running" || points.status.some((s) => !FINISHED.has(s));
    },
    { onError: (err) => showError(root, err) },
  ).start();

  /** Build, once, what depends only on the sweep's document: a chart per parameter, selects. */
  function setUp() {
    const { sweep } = state;
    const names = Object.keys(space());
    const numeric = names.filter((n) => space()[n].type !== "categorical");
    state.pair = numeric.length >= 2 ? [numeric[0], numeric[1]] : names.length >= 2 ? [names[0], names[1]] : null;
    state.curveMetric = sweep.objective.metric;
    state.objectiveLog = false;
    state.sort = { key: "value", reverse: false };
    document.title = `${sweep.name} · hypersweep`;
    root.append(...views.all);
    views.warnings.after(importedPanel(sweep) ?? "");

    charts.push({ key: "history", box: new ChartBox(views.history, { onPick: pick }) });
    if (names.length >= 2) charts.push({ key: "importance", box: new ChartBox(views.importance) });
    else views.importanceSection.hidden = true;
    // Every box goes in before any chart is made, so each chart starts at its final size.
    const nodes = names.map((name) => el("div", { class: "chart small", dataset: { chart: `objective:${name}` } }));
    views.scatters.replaceChildren(...nodes.map((node) => el("figure", {}, node)));
    names.forEach((name, n) => charts.push({ key: `objective:${name}`, box: new ChartBox(nodes[n], { onPick: pick }) }));
    if (state.pair) {
      const [x, y] = state.pair;
      views.pairControls.replaceChildren(
        select("pair-x", names, x, (v) => ((state.pair[0] = v), drawCharts(filtered(), (key) => key === "pair" || key === "contour"))),
        el("span", { class: "muted" }, " against "),
        select("pair-y", names, y, (v) => ((state.pair[1] = v), drawCharts(filtered(), (key) => key === "pair" || key === "contour"))),
        el("span", { class: "muted" }, ` coloured by ${sweep.objective.metric}`),
      );
      charts.push({ key: "pair", box: new ChartBox(views.pair, { onPick: pick }) });
      charts.push({ key: "contour", box: new ChartBox(views.contour) });
    } else {
      views.pairSection.hidden = true;
    }
    charts.push({ key: "curves", box: new ChartBox(views.curves) });
    if (names.length >= 2) charts.push({ key: "parallel", box: new ChartBox(views.parallel) });
    else views.parallelSection.hidden = true;
  }

  function space() {
    return state.sweep.spec.space;
  }

  /** Trial column indices that pass the status and stage filters. */
  function filtered() {
    const { points, statuses, stage } = state;
    const rows = [];
    for (let i = 0; i < points.id.length; i++) {
      if (statuses.has(points.status[i]) && (stage === "all" || points.stage[i] === stage)) rows.push(i);
    }
    return rows;
  }

  /** Redraw everything from state.sweep and state.points (after a refresh or a filter change). */
  async function render({ refetchCurves = false, importance = Promise.resolve() } = {}) {
    const rows = filtered();
    // The curves are fetched while the charts below are drawn, not after.
    const curvesReady = loadCurves(rows, refetchCurves);
    renderHeader(views.header, state.sweep);
    renderStages(views.stages, state.sweep);
    renderWarnings(views.warnings, state.sweep.warnings);
    renderSanity(views.sanity, state.sweep);
    await views.pruning.update(state.sweep);
    renderFilters();
    const drawn = drawCharts(rows, () => true);
    renderTable(rows);
    drawn.push(curvesReady.then(drawCurves));
    drawn.push(importance.then(drawImportance));
    await Promise.all(drawn);
  }

  /** Redraw the charts whose key passes `which`; returns their promises of being drawn. */
  function drawCharts(rows, which) {
    const { sweep, points } = state;
    const finished = rows.filter((i) => FINISHED.has(points.status[i]));
    const names = Object.keys(space());
    const picked = state.picked.map((trialId) => state.index.get(trialId)).filter((i) => i !== undefined);
    const common = { points, rows: finished, objective: sweep.objective, names, picked, space: space() };
    const drawn = [];
    for (const { key, box } of charts.filter((c) => which(c.key))) {
      if (key.startsWith("objective:")) {
        const name = key.slice("objective:".length);
        drawn.push(box.set(objectiveScatter({ ...common, name, spec: space()[name], logY: state.objectiveLog })));
      } else if (key === "pair") {
        drawn.push(box.set(pairScatter({ ...common, x: state.pair[0], y: state.pair[1] })));
      } else if (key === "history") {
        drawn.push(box.set(optimisationHistory({ ...common, logY: state.objectiveLog })));
      } else if (key === "contour") {
        drawn.push(drawContour(box, finished));

      } else if (key === "parallel") {
        drawn.push(box.set(parallel(common)));
        const lines = Number(box.node.dataset.marks);
        views.parallelNote.textContent =
          lines < finished.length
            ? `${lines.toLocaleString()} of ${finished.length.toLocaleString()} trials: the ` +
              `${(PARALLEL_MAX / 2).toLocaleString()} best and an even sample of the rest. Drag along an axis to select a range.`
            : "Drag along an axis to select a range.";
      }
    }
    return drawn;
  }

  /** The importance chart for the stage filter, from the last answer (none yet: nothing). */
  async function drawImportance() {
    const box = charts.find((c) => c.key === "importance")?.box;
    const answer = state.importance;
    if (!box || !answer) return;
    if (answer.error) {
      views.importanceNote.textContent = `Could not load: ${answer.error}`;
      return;
    }
    const entry = importanceFor(answer, state.stage);
    views.importanceNote.textContent = importanceNote(answer, entry);
    box.node.dataset.importance = JSON.stringify(entry.importances || {});
    await box.set(importanceBars(entry));
  }

  /**
   * The contour of the two parameters picked, fetched again when they, the stage filter or
   * the number of completed trials change.
   */
  async function drawContour(box, rows) {
    const [x, y] = state.pair;
    const stage = state.stage === "all" ? "" : `&stage=${state.stage}`;
    const completed = rows.filter((i) => state.points.status[i] === "completed").length;
    const key = `${x},${y},${stage},${completed}`;
    if (key !== state.contour.key) {
      let grid = state.contourFirst && !stage ? await state.contourFirst : null;
      state.contourFirst = null;
      if (!grid || grid.x.name !== x || grid.y.name !== y) {
        grid = await getJSON(`/sweeps/${id}/contour?x=${encodeURIComponent(x)}&y=${encodeURIComponent(y)}${stage}`);
      }
      state.contour = { key, grid };
    }
    const { grid } = state.contour;
    if (grid.x.name !== state.pair[0] || grid.y.name !== state.pair[1]) return; // another pair was picked meanwhile
    views.contourNote.textContent = grid.note || `Interpolated over ${grid.trials.toLocaleString()} completed trials; blank where none went.`;
    box.node.dataset.cells = String(grid.z.reduce((n, row) => n + row.filter((z) => z !== null).length, 0));
    await box.set(contourChart({ grid, points: state.points, rows, space: space(), objective: state.sweep.objective }));
  }

  function renderFilters() {
    const { points, sweep } = state;
    const counts = {};
    for (let i = 0; i < points.id.length; i++) {
      if (state.stage === "all" || points.stage[i] === state.stage) counts[points.status[i]] = (counts[points.status[i]] || 0) + 1;
    }
    const chips = STATUSES.filter((s) => counts[s] || !state.statuses.has(s)).map((status) =>
      el(
        "button",
        {
          type: "button",
          class: `chip status-${status}`,
          "aria-pressed": String(state.statuses.has(status)),
          dataset: { status },
          onclick: () => {
            if (state.statuses.has(status)) state.statuses.delete(status);
            else state.statuses.add(status);
            state.shown = TABLE_PAGE;
            render();
          },
        },
        `${status} ${counts[status] || 0}`,
      ),
    );
    const stages = ["all", ...sweep.stages.map((s) => s.index)];
    views.filters.replaceChildren(
      el("span", { class: "label" }, "Show"),
      ...chips,
      el("span", { class: "label" }, "Stage"),
      el(
        "select",
        {
          id: "stage-filter",
          onchange: (e) => {
            state.stage = e.target.value === "all" ? "all" : Number(e.target.value);
            state.shown = TABLE_PAGE;
            render();
          },
        },
        stages.map((s) => el("option", { value: s, selected: s === state.stage }, s === "all" ? "all stages" : `stage ${s}`)),
      ),
      el(
        "label",
        { class: "check" },
        el("input", {
          type: "checkbox",
          id: "objective-log",
          checked: state.objectiveLog,
          onchange: (e) => {
            state.objectiveLog = e.target.checked;
            drawCharts(filtered(), (key) => key.startsWith("objective:") || key === "history");
          },
        }),
        ` log ${sweep.objective.metric}`,
      ),
    );
  }

  /**
   * Make sure state.curves holds the curves of the best few trials of `rows` and of the
   * picked ones (fetching them when that set changed, or when one of them still runs and
   * this is a live refresh), and state.best to the best trials' ids.
   */
  async function loadCurves(rows, refetch) {
    const { points, sweep } = state;
    const ranked = rows.filter((i) => points.value[i] !== null && points.status[i] === "completed");
    ranked.sort((a, b) => compareValues(points.value[a], points.value[b], sweep.objective) || a - b);
    const best = ranked.slice(0, BEST_CURVES).map((i) => points.id[i]);
    const ids = [...new Set([...best, ...state.picked])];
    const key = ids.join(",");
    const anyActive = ids.some((trialId) => !FINISHED.has(points.status[state.index.get(trialId)]));
    if (!ids.length) {
      state.curves = { key: "", data: [] };
    } else if (key !== state.curves.key || (refetch && anyActive)) {
      const answer = await getJSON(`/sweeps/${sweep.id}/curves?trials=${key}`);
      state.curves = { key, data: answer.trials };
    }
    state.best = best;
  }

  async function drawCurves() {
    const { points, sweep, best } = state;
    const box = charts.find((c) => c.key === "curves")?.box;
    if (!box) return;
    const stepMetrics = new Set([sweep.objective.metric, ...state.curves.data.flatMap((c) => Object.keys(c.metrics))]);
    const data = state.curves.data.map((c) => withStopPoint(c, stepMetrics));
    const metrics = [...new Set(data.flatMap((c) => Object.keys(c.metrics)))].sort();
    if (metrics.length && !metrics.includes(state.curveMetric)) state.curveMetric = metrics[0];
    const bestRank = new Map(best.map((trialId, n) => [trialId, n + 1]));
    const epochs = Math.max(0, ...data.map((c) => sweep.stages[c.stage]?.epochs || 0));
    renderCurveControls(metrics, data, bestRank);
    const label = (c) => {
      const value = points.value[state.index.get(c.id)];
      return `#${c.number} · ${c.status === "completed" && value !== null && value !== undefined ? num(value) : c.status}`;
    };
    views.curves.dataset.trials = data.map((c) => c.id).join(",");
    await box.set(curves({ curves: data, metric: state.curveMetric, labels: label, epochs, logY: state.curveLog }));
  }

  function renderCurveControls(metrics, data, bestRank) {
    const pickedChips = state.picked.map((trialId) => {
      const i = state.index.get(trialId);
      return el(
        "button",
        { type: "button", class: "chip picked", title: "Remove from the curves", onclick: () => unpick(trialId) },
        `#${i === undefined ? "?" : state.points.number[i]} ×`,
      );
    });
    views.curveControls.replaceChildren(
      select("curve-metric", metrics, state.curveMetric, (v) => ((state.curveMetric = v), drawCurves())),
      el(
        "label",
        { class: "check" },
        el("input", { type: "checkbox", id: "curve-log", checked: state.curveLog, onchange: (e) => ((state.curveLog = e.target.checked), drawCurves()) }),
        " log y",
      ),
      el("span", { class: "muted" }, data.some((c) => c.step.length) ? ` best ${Math.min(bestRank.size, BEST_CURVES)}` : " no curve points yet"),
      pickedChips.length ? el("span", { class: "muted" }, " + picked ") : el("span", { class: "muted" }, " · click a trial to add it"),
      ...pickedChips,
    );
  }

  function pick(i) {
    const trialId = state.points.id[i];
    if (trialId === undefined) return;
    if (state.picked.includes(trialId)) return unpick(trialId);
    state.picked = [...state.picked, trialId].slice(-MAX_PICKED);
    render();
  }

  function unpick(trialId) {
    state.picked = state.picked.filter((p) => p !== trialId);
    render();
  }

  function renderTable(rows) {
    const { points, sweep, sort } = state;
    const names = Object.keys(space());
    const columns = [
      { key: "number", title: "#", get: (i) => points.number[i] },
      { key: "stage", title: "stage", get: (i) => points.stage[i] },
      { key: "status", title: "status", get: (i) => STATUSES.indexOf(points.status[i]) },
      { key: "value", title: `${sweep.objective.metric} (${sweep.objective.mode})`, get: (i) => points.value[i] },
      ...names.map((n) => ({ key: `param:${n}`, title: n, get: (i) => points.params[n][i] })),
      { key: "epochs_run", title: "epochs", get: (i) => points.epochs_run[i] },
      { key: "attempt", title: "attempt", get: (i) => points.attempt[i] },
      { key: "seconds", title: "time", get: (i) => points.seconds[i] },
    ];
    const column = columns.find((c) => c.key === sort.key) || columns[3];
    const order = rows.slice();
    // A first click sorts the objective best first (whichever its mode) and any other
    // column ascending; a second click reverses. Trials without a value always come last.
    const natural = column.key === "value" && sweep.objective.mode === "max";
    const descending = natural !== sort.reverse;
    order.sort((a, b) => {
      const x = column.get(a);
      const y = column.get(b);
      if (x === null || x === undefined) return y === null || y === undefined ? a - b : 1;
      if (y === null || y === undefined) return -1;
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return (descending ? -c : c) || points.number[a] - points.number[b];
    });
    const head = el(
      "tr",
      {},
      columns.map((c) =>
        el(
          "th",
          {
            class: `sortable${c.key === column.key ? " sorted" : ""}`,
            dataset: { sort: c.key },
            "aria-sort": c.key === column.key ? (descending ? "descending" : "ascending") : "none",
            onclick: () => {
              state.sort = { key: c.key, reverse: c.key === column.key ? !sort.reverse : false };
              renderTable(filtered());
            },
          },
          c.title,
          c.key === column.key ? (descending ? " ▼" : " ▲") : "",
        ),
      ),
    );
    const picked = new Set(state.picked);
    const body = order.slice(0, state.shown).map((i) =>
      el(
        "tr",
        {
          class: picked.has(points.id[i]) ? "picked" : null,
          dataset: { trialId: points.id[i], status: points.status[i] },
          title: "Click to show this trial's curve",
          onclick: (e) => {
            if (!e.target.closest("a")) pick(i);
          },
        },
        el("td", {}, el("a", { href: `#/trials/${points.id[i]}` }, `#${points.number[i]}`)),
        el("td", { class: "num" }, points.stage[i]),
        el("td", {}, badge(points.status[i])),
        el("td", { class: "num strong" }, num(points.value[i])),
        names.map((n) => el("td", { class: "num" }, param(points.params[n][i]))),
        el("td", { class: "num" }, points.epochs_run[i] ?? "—"),
        el("td", { class: "num" }, points.attempt[i]),
        el("td", { class: "num" }, duration(points.seconds[i])),
      ),
    );
    views.table.replaceChildren(el("thead", {}, head), el("tbody", {}, body));
    views.tableNote.replaceChildren(
      el(
        "span",
        {},
        el("span", { class: "muted" }, `${Math.min(state.shown, order.length)} of ${order.length} trials shown `),
        order.length > state.shown
          ? el("button", { type: "button", class: "link", onclick: () => ((state.shown += TABLE_PAGE * 4), renderTable(filtered())) }, "show more")
          : null,
      ),
    );
  }

  return {
    dispose() {
      disposed = true;
      live.dispose();
      for (const { box } of charts) box.dispose();
    },
  };
}

/** Negative when `a` is the better value. */
function compareValues(a, b, objective) {
  if (a === b) return 0;
  return better(objective, a, b) ? -1 : 1;
}

function select(id, options, value, onChange) {
  return el(
    "select",
    { id, onchange: (e) => onChange(e.target.value) },
    options.map((o) => el("option", { value: o, selected: o === value }, o)),
  );
}

/** The page's parts, not yet on the page: they go in once the sweep has loaded. */
function layout() {
  const views = {
    header: el("section", { id: "sweep-header", class: "sweep-header" }),
    stages: el("section", { id: "stages", class: "stages" }),
    warnings: el("section", { id: "warnings" }),
    sanity: el("section", { id: "sanity", class: "panel", hidden: true }),
    filters: el("div", { id: "filters", class: "filters" }),
    scatters: el("div", { class: "grid", id: "objective-charts" }),
    pairControls: el("div", { class: "controls" }),
    pair: el("div", { class: "chart", dataset: { chart: "pair" } }),
    contour: el("div", { class: "chart", dataset: { chart: "contour" } }),
    contourNote: el("p", { class: "note muted", id: "contour-note" }),
    history: el("div", { class: "chart", dataset: { chart: "history" } }),
    importance: el("div", { class: "chart", dataset: { chart: "importance" } }),
    importanceNote: el("p", { class: "note muted", id: "importance-note" }),
    curveControls: el("div", { class: "controls", id: "curve-controls" }),
    curves: el("div", { class: "chart", dataset: { chart: "curves" } }),
    parallel: el("div", { class: "chart tall", dataset: { chart: "parallel" } }),
    table: el("table", { class: "table trials", id: "trials-table" }),
    tableNote: el("p", { class: "table-note" }),
    pruning: pruningPanel(),
  };
  views.pairSection = el(
    "section",
    { class: "panel" },
    el("h2", {}, "Two parameters"),
    views.pairControls,
    el("div", { class: "grid" }, el("figure", {}, views.pair), el("figure", {}, views.contourNote, views.contour)),
  );
  views.importanceSection = el("section", { class: "panel" }, el("h2", {}, "Parameter importance"), views.importanceNote, views.importance);
  views.parallelNote = el("p", { class: "note muted", id: "parallel-note" });
  views.parallelSection = el("section", { class: "panel" }, el("h2", {}, "Parallel coordinates"), views.parallelNote, views.parallel);
  views.all = [
    views.header,
    views.stages,
    views.warnings,
    views.sanity,
    views.pruning.node,
    views.filters,
    el(
      "div",
      { class: "grid" },
      el("section", { class: "panel" }, el("h2", {}, "Optimisation history"), views.history),
      views.importanceSection,
    ),
    el("section", { class: "panel" }, el("h2", {}, "Objective by parameter"), views.scatters),
    views.pairSection,
    el("section", { class: "panel" }, el("h2", {}, "Learning curves"), views.curveControls, views.curves),
    views.parallelSection,
    el("section", { class: "panel" }, el("h2", {}, "Trials"), el("div", { class: "scroll" }, views.table), views.tableNote),
  ];
  return views;
}

function renderHeader(node, sweep) {
  const total = Object.values(sweep.counts).reduce((a, b) => a + b, 0);
  const best = sweep.best;
  node.replaceChildren(
    el("h1", {}, sweep.name, el("span", { class: "muted" }, ` #${sweep.id}`), " ", badge(sweep.status)),
    el(
      "p",
      { class: "facts" },
      el("span", {}, "objective ", el("b", {}, sweep.objective.metric), ` (${sweep.objective.mode})`),
      el(
        "span",
        { id: "best" },
        "best ",
        best ? [el("b", { class: "num" }, num(best.value)), " ", el("a", { href: `#/trials/${best.id}` }, `trial #${best.number}`)] : "—",
      ),
      el(
        "span",
        {},
        `${total} trials: `,
        STATUSES.filter((s) => sweep.counts[s]).map((s, n) => [n ? ", " : "", `${sweep.counts[s]} ${s}`]),
      ),
      el("span", {}, "created ", when(sweep.created_at)),
      sweep.finished_at ? el("span", {}, "finished ", when(sweep.finished_at)) : null,
    ),
  );
}

function renderStages(node, sweep) {
  node.replaceChildren(
    ...sweep.stages.map((stage) => {
      const search = stage.search || {};
      return el(
        "article",
        { class: `stage-card ${stage.status}`, dataset: { stage: stage.index } },
        el(
          "header",
          {},
          el("b", {}, `Stage ${stage.index}`),
          " ",
          el("span", { class: `badge stage-${stage.status}` }, stage.status),
          el(
            "span",
            { class: "muted" },
            ` ${search.kind || ""} · ${stage.trials} trials × ${stage.epochs} epoch${stage.epochs === 1 ? "" : "s"}`,
            stage.top_k ? ` · around stage ${stage.index - 1}'s top ${stage.top_k}` : "",
            stage.enqueued ? ` · ${stage.enqueued} enqueued${stage.waiting?.length ? ` (${stage.waiting.length} waiting)` : ""}` : "",
          ),
        ),
        progress(stage.counts, stage.trials),
        stage.space
          ? el(
              "table",
              { class: "space" },
              el(
                "tbody",
                {},
                Object.entries(stage.space).map(([name, axis]) =>
                  el(
                    "tr",
                    {},
                    el("th", {}, name),
                    el(
                      "td",
                      {},
                      axis.type === "categorical" ? axis.values.map(String).join(", ") : `${param(axis.low)} – ${param(axis.high)}`,
                    ),
                    el("td", { class: "muted" }, axis.type === "categorical" ? "categorical" : `${axis.type}, ${axis.scale || "linear"}`),
                  ),
                ),
              ),
            )
          : el(
              "p",
              { class: "muted" },
              stage.status === "failed"
                ? "Could not start: the search failed (see the warnings)."
                : `Narrowed from stage ${stage.index - 1}'s best trials when it ends.`,
            ),
      );
    }),
  );
}

function renderWarnings(node, warnings) {
  node.replaceChildren(
    warnings.length
      ? el("ul", { class: "warnings" }, warnings.map((w) => el("li", {}, w)))
      : "",
  );
}
