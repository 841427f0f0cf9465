// The dashboard's entry point: hash routes to pages.
//
//   #/                 sweeps, newest first (#/?offset=50 for older ones)
//   #/sweeps/ID        one sweep: stages, plots, trials
//   #/trials/ID        one trial: parameters, timings, curve, error
//
// A page is a function (root, params) returning { dispose() }; moving to another route
// disposes the current one (its charts and its polling).

import { forgetToken } from "./api.js";
import { el } from "./format.js";
import { sweepPage } from "./sweep.js";
import { sweepsPage } from "./sweeps.js";
import { trialPage } from "./trial.js";

const main = document.getElementById("main");
let current = null;

const ROUTES = [
  [/^\/?(?:\?offset=(\d+))?$/, (m) => sweepsPage(main, { offset: Number(m[1] || 0) })],
  [/^\/sweeps\/(\d+)$/, (m) => sweepPage(main, { id: Number(m[1]) })],
  [/^\/trials\/(\d+)$/, (m) => trialPage(main, { id: Number(m[1]) })],
];

function route() {
  current?.dispose();
  current = null;
  main.replaceChildren();
  for (const key of Object.keys(main.dataset)) delete main.dataset[key];
  const path = location.hash.replace(/^#/, "") || "/";
  for (const [pattern, page] of ROUTES) {
    const match = path.match(pattern);
    if (match) {
      current = page(match);
      return;
    }
  }
  main.append(el("h1", {}, "Not found"), el("p", {}, el("a", { href: "#/" }, "Back to the sweeps")));
}

document.getElementById("forget-token").addEventListener("click", () => {
  forgetToken();
  location.reload();
});
window.addEventListener("hashchange", route);
route();
