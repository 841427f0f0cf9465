"""Take the documentation's picture of a sweep page (run through ``scripts/screenshot``).

``--out PATH`` writes elsewhere than ``docs/sweep-page.png``; ``--trial`` also takes the
best trial's page (next to it, as ``trial-page.png``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.dashboard.conftest import CHROMIUM, FINISHED_STAGES, serve  # noqa: E402
from tests.dashboard.synthetic import finish_trials, sweep_document  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "sweep-page.png")
    parser.add_argument("--trial", action="store_true", help="also take the best trial's page")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, serve(f"sqlite:///{tmp}/screenshot.db", Path(tmp)) as base:
        with httpx.Client(base_url=f"{base}/api/v1", timeout=30) as api:
            (trials, epochs), (fine_trials, fine_epochs) = FINISHED_STAGES
            document = sweep_document("lr-reg-coarse-to-fine", trials=trials, epochs=epochs)
            document["stages"].append({"trials": fine_trials, "epochs": fine_epochs, "top_k": 5})
            sweep = api.post("/sweeps", json=document).raise_for_status().json()
            finish_trials(api, sweep["id"], trials, epochs=epochs)
            finish_trials(api, sweep["id"], fine_trials, epochs=fine_epochs)
            best = api.get(f"/sweeps/{sweep['id']}").raise_for_status().json()["best"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/#/sweeps/{sweep['id']}")
            page.wait_for_selector("main[data-ready]", timeout=60_000)
            page.screenshot(path=str(args.out), full_page=True)
            print(f"wrote {os.path.relpath(args.out)}")
            if args.trial:
                page.goto(f"{base}/#/trials/{best['id']}")
                page.wait_for_selector("main[data-ready]", timeout=60_000)
                trial_out = args.out.with_name("trial-page.png")
                page.screenshot(path=str(trial_out), full_page=True)
                print(f"wrote {os.path.relpath(trial_out)}")
            browser.close()


if __name__ == "__main__":
    main()
