"""The dashboard's pruning: the sweep page's panel per rung, pruned trials drawn apart, and
a pruned trial's page saying why it stopped (a real server, real Chromium)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.sync_api import Page, expect

from tests.conftest import sweep_doc
from tests.dashboard.conftest import chart_series


def test_the_pruning_panel_and_a_pruned_trials_page(page: Page, start_server: Callable[..., str]) -> None:
    url = start_server()
    api = httpx.Client(base_url=f"{url}/api/v1", timeout=30)
    doc = sweep_doc(stages=[{"trials": 4, "epochs": 3, "pruner": {"kind": "asha", "min_epochs": 1, "eta": 2}}])
    sweep = api.post("/sweeps", json=doc).raise_for_status().json()
    trials = api.post("/trials/claim", json={"worker_id": "w", "sweep_id": sweep["id"], "count": 4}).json()["trials"]
    pruned = []
    for trial, value in zip(trials, [0.9, 0.5, 0.95, 0.2], strict=True):
        body = {"lease_token": trial["lease_token"], "step": 1, "metrics": {"val_accuracy": value}}
        answer = api.post(f"/trials/{trial['id']}/report", json=body).raise_for_status().json()
        status = "pruned" if answer["action"] == "stop" else "completed"
        if status == "pruned":
            pruned.append(trial)
        points = [] if status == "pruned" else [{"step": s, "metrics": {"val_accuracy": value}} for s in (2, 3)]
        finish = {"lease_token": trial["lease_token"], "status": status, "metrics": {"epochs_run": 1}, "points": points}
        api.post(f"/trials/{trial['id']}/finish", json=finish).raise_for_status()
    assert len(pruned) == 2

    page.goto(f"{url}/#/sweeps/{sweep['id']}")
    page.wait_for_selector("main[data-ready]")
    rung = page.locator("#pruning tr[data-step='1'] td")
    expect(rung).to_have_text(["1", "4", "2", "0.9", "4"])
    expect(page.locator("#pruning")).to_contain_text("2 pruned, 2 completed")
    series = {s["id"]: s for s in chart_series(page, "objective:lr")}
    assert series["trials:pruned"]["count"] == 2 and series["trials:pruned"]["symbol"] == "rect"
    history = {s["id"]: s for s in chart_series(page, "history")}
    assert history["trials:pruned"]["count"] == 2 and history["trials:other"]["count"] == 0

    page.goto(f"{url}/#/trials/{pruned[-1]['id']}")
    page.wait_for_selector("main[data-ready]")
    expect(page.locator("h1 .badge")).to_have_text("pruned")
    expect(page.locator("#prune-reason")).to_contain_text("pruned at epoch 1")
    expect(page.locator("#prune-reason")).to_contain_text("0.2")
    api.close()
