"""A warm-started sweep's page in a real Chromium: its imported trials in a panel of their
own, apart from its trials, and a stage's enqueued trials in its card."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.dashboard.conftest import fresh_database, open_sweep, serve, submit
from tests.dashboard.synthetic import SPACE, finish_trials, sweep_document


def test_imported_trials_show_apart_from_the_sweeps_own(
    page: Page, backend: str, _templates: dict[str, str], tmp_path: Path
) -> None:
    with (
        fresh_database(backend, _templates[backend], tmp_path) as url,
        serve(url, tmp_path) as base,
        httpx.Client(base_url=f"{base}/api/v1", timeout=30) as api,
    ):
        # The source searched a wider lr axis: its trials above 0.1 lie outside the new space.
        source = submit(api, {**sweep_document("source", trials=8), "space": {**SPACE}})
        done = finish_trials(api, source["id"], 8)
        space = {**SPACE, "lr": {"type": "float", "low": 1e-6, "high": 0.1, "scale": "log"}}
        document = sweep_document("warm", trials=4)
        document.update(space=space, warm_start={"sweeps": [source["id"]]})
        document["stages"][0]["enqueue"] = [{"lr": 0.01, "reg": 1e-4, "dropout": 0.1, "optimizer": "adam"}]
        sweep = submit(api, document)
        finished = [t for t in done if t["status"] in ("completed", "diverged")]
        inside = [t for t in finished if t["params"]["lr"] <= 0.1]

        open_sweep(page, base, sweep["id"])
        summary = page.locator("#imported .note")
        expect(summary).to_have_attribute("data-imported", str(len(finished)))
        expect(summary).to_have_attribute("data-used", str(len(inside)))
        rows = page.locator("#imported-table tbody tr")
        expect(rows).to_have_count(len(finished))
        expect(page.locator("#imported-table tbody tr[data-inside='1']")).to_have_count(len(inside))
        expect(page.locator("#imported h2 a")).to_have_attribute("href", f"#/sweeps/{source['id']}")
        # Not the sweep's trials: it counts only its one enqueued trial, queued.
        expect(page.locator("#sweep-header")).to_contain_text("1 trials: 1 queued")
        expect(page.locator(".stage-card[data-stage='0'] header")).to_contain_text("1 enqueued")
