"""Babysitting on the dashboard (``static/babysit.js``): a sweep's sanity checks, each
with what it measured and its verdict, and the diagnoses of a stage among its warnings,
in a real headless Chromium against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from hypersweep.sanity import judge_initial_loss, judge_overfit, judge_regularization, to_metrics
from tests.conftest import BACKENDS
from tests.dashboard.conftest import fresh_database, open_sweep, serve

PROGRAM = "prog"


@pytest.fixture(scope="module")
def base(_templates: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # What is shown comes from the API alone: one backend is enough.
    backend = BACKENDS[0]
    workdir = tmp_path_factory.mktemp("babysit")
    with fresh_database(backend, _templates[backend], workdir) as url, serve(url, workdir) as served:
        yield served


def claim(api: httpx.Client, count: int) -> list[dict[str, Any]]:
    answer = api.post("/trials/claim", json={"worker_id": "w", "program": PROGRAM, "count": count})
    return [] if answer.status_code == 204 else list(answer.raise_for_status().json()["trials"])


def finish(api: httpx.Client, trial: dict[str, Any], status: str, metrics: dict[str, Any]) -> None:
    body = {"lease_token": trial["lease_token"], "status": status, "metrics": metrics}
    api.post(f"/trials/{trial['id']}/finish", json=body).raise_for_status()


def test_the_sanity_checks_and_the_diagnoses_are_shown(page: Page, base: str) -> None:
    with httpx.Client(base_url=f"{base}/api/v1", timeout=30) as api:
        held = (
            api.post(
                "/sweeps",
                json={
                    "name": "held-by-its-checks",
                    "program": PROGRAM,
                    "sanity": True,
                    "space": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}},
                    "stages": [{"trials": 4}],
                },
            )
            .raise_for_status()
            .json()
        )
        [checks] = claim(api, 8)
        results = [judge_initial_loss(2.3, 10), judge_regularization(2.3, 2.3), judge_overfit(0.4, lr=1e-3)]
        finish(api, checks, "completed", to_metrics(results))

        grid = (
            api.post(
                "/sweeps",
                json={
                    "name": "too-high",
                    "program": PROGRAM,
                    "space": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}},
                    "search": {"kind": "grid", "grid_points": 5},
                    "stages": [{"epochs": 2}],
                },
            )
            .raise_for_status()
            .json()
        )
        trials = sorted(claim(api, 5), key=lambda t: t["params"]["lr"])
        for rank, trial in enumerate(trials):
            if rank >= 2:
                finish(api, trial, "diverged", {"initial_loss": 2.3, "train_loss": 20.0, "val_accuracy": 0.1})
            else:
                finish(api, trial, "completed", {"initial_loss": 2.3, "train_loss": 0.5, "val_accuracy": 0.9})
        diagnosed = api.get(f"/sweeps/{grid['id']}").raise_for_status().json()

    open_sweep(page, base, held["id"])
    panel = page.locator("#sanity")
    expect(panel).to_be_visible()
    expect(panel.locator("[data-sanity]")).to_have_text("failed")
    expect(panel.locator("tbody tr")).to_have_count(3)
    expect(panel.locator("tr[data-check='initial_loss'] .badge")).to_have_text("pass")
    for name in ("regularization", "overfit"):
        expect(panel.locator(f"tr[data-check='{name}']")).to_have_attribute("data-passed", "false")
    expect(panel.locator("tr[data-check='overfit'] td.num")).to_have_text("0.4")
    expect(panel).to_contain_text("the sweep stays queued")
    expect(page.locator("#sweep-header .badge")).to_have_text("queued")
    expect(page.locator("#warnings li")).to_contain_text(["sanity checks failed: regularization"])

    open_sweep(page, base, diagnosed["id"])
    expect(page.locator("#sanity")).to_be_hidden()
    [too_high] = [w for w in diagnosed["warnings"] if "too high" in w]
    assert f"lr ≥ {trials[2]['params']['lr']:.2g}: 3 of 3 diverged" in too_high
    expect(page.locator("#warnings li").filter(has_text="too high")).to_have_text(too_high)
