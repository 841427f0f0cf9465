// Babysitting a sweep: the sanity checks run before its first stage, measured against
// what was expected. The diagnoses after each stage are among the sweep's warnings.

import { el, num } from "./format.js";

const VERDICT = { passed: "completed", failed: "failed", pending: "queued" };

/** Fill `node` with the sweep's sanity checks, or empty it when the sweep runs none. */
export function renderSanity(node, sweep) {
  const sanity = sweep.sanity;
  if (!sanity) {
    node.replaceChildren();
    node.hidden = true;
    return;
  }
  node.hidden = false;
  const mode = sanity.mode === "warn" ? "warn" : "true";
  const state = sanity.status;
  const what =
    state === "pending"
      ? "Waiting for a worker to run them; the first stage starts once they pass."
      : state === "passed"
        ? "All passed: the first stage started."
        : mode === "warn"
          ? "A check failed; the sweep started anyway (sanity: warn)."
          : "A check failed: the sweep stays queued.";
  node.replaceChildren(
    el("h2", {}, "Sanity checks ", el("span", { class: `badge status-${VERDICT[state] || "queued"}`, dataset: { sanity: state } }, state)),
    el(
      "p",
      { class: "muted" },
      `sanity: ${mode}. ${what}`,
      sanity.trial_id ? [" ", el("a", { href: `#/trials/${sanity.trial_id}` }, "The sanity trial.")] : "",
    ),
    sanity.checks.length
      ? el(
          "table",
          { class: "table sanity-checks" },
          el("thead", {}, el("tr", {}, ["check", "measured", "expected", "result", ""].map((h) => el("th", {}, h)))),
          el(
            "tbody",
            {},
            sanity.checks.map((check) =>
              el(
                "tr",
                { dataset: { check: check.name, passed: String(check.passed) } },
                el("th", {}, check.name),
                el("td", { class: "num" }, num(check.measured)),
                el("td", {}, check.expected),
                el("td", {}, el("span", { class: `badge status-${check.passed ? "completed" : "failed"}` }, check.passed ? "pass" : "fail")),
                el("td", { class: "muted", style: "white-space: normal" }, check.detail),
              ),
            ),
          ),
        )
      : "",
    sanity.error ? el("p", { class: "error" }, `The checks could not run: ${sanity.error}`) : "",
  );
}
