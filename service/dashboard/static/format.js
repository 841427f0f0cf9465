// Formatting and DOM helpers shared by the pages.

/** One colour per trial status; the charts and the badges use the same ones. */
export const STATUS_COLORS = {
  queued: "#9aa5b1",
  running: "#e0a100",
  completed: "#2f6fca",
  diverged: "#d43d3d",
  pruned: "#8b5cc4",
  failed: "#5b6470",
  cancelled: "#b8bfc7",
};

/** Statuses in the order the filters and legends list them. */
export const STATUSES = Object.keys(STATUS_COLORS);

/** Statuses a trial never leaves. */
export const FINISHED = new Set(["completed", "diverged", "pruned", "failed", "cancelled"]);

/**
 * Build an element. Text children become text nodes, never HTML, so names, parameters and
 * error messages from the API cannot inject markup.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function badge(status) {
  return el("span", { class: `badge status-${status}`, dataset: { status } }, status);
}

/** A number to about four significant digits; exponents for very small or large ones. */
export function num(value, digits = 4) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e5)) return value.toExponential(Math.max(0, digits - 2));
  return String(Number(value.toPrecision(digits)));
}

/** A parameter value: numbers compactly (3.2e-4), anything else as text. */
export function param(value) {
  return typeof value === "number" ? num(value, 3) : value === null || value === undefined ? "—" : String(value);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

/** A timestamp as "5 min ago", with the full local time as its tooltip. */
export function when(iso) {
  if (!iso) return el("span", { class: "muted" }, "—");
  const date = new Date(iso);
  const seconds = Math.max(0, (Date.now() - date.getTime()) / 1000);
  let text;
  if (seconds < 60) text = "just now";
  else if (seconds < 3600) text = `${Math.floor(seconds / 60)} min ago`;
  else if (seconds < 86400) text = `${Math.floor(seconds / 3600)} h ago`;
  else text = date.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
  return el("time", { datetime: iso, title: date.toLocaleString() }, text);
}

/** Seconds between two timestamps, or null. */
export function between(start, end) {
  if (!start || !end) return null;
  return (new Date(end).getTime() - new Date(start).getTime()) / 1000;
}

/**
 * A progress bar of a stage's trials by status, over the trials the stage asks for, with
 * "done/total" beside it.
 */
export function progress(counts, total) {
  const bar = el("span", { class: "bar" });
  let done = 0;
  for (const status of STATUSES) {
    const n = counts[status] || 0;
    if (!n) continue;
    if (FINISHED.has(status)) done += n;
    bar.append(
      el("span", {
        class: `seg status-bg-${status}`,
        style: `width:${(100 * n) / Math.max(total, 1)}%`,
        title: `${n} ${status}`,
      }),
    );
  }
  return el("span", { class: "progress" }, bar, el("span", { class: "count" }, `${done}/${total}`));
}

/** Whether ``a`` is a better objective value than ``b`` for this objective. */
export function better(objective, a, b) {
  return objective.mode === "min" ? a < b : a > b;
}

/** Show an error at the top of a page, replacing the one shown before. */
export function showError(root, err) {
  root.querySelector(":scope > .error-box")?.remove();
  if (err) root.prepend(el("p", { class: "error-box", role: "alert" }, err.message || String(err)));
}
