"""Dashboard load time on a big sweep: the sweep page in headless Chromium, and the
endpoint it draws from.

A real ``hypersweep serve`` on a fresh database (a SQLite file, or the local PostgreSQL
with ``--backend postgresql``) holding one sweep of ``--trials`` finished trials (default
10,000), inserted directly with SQLAlchemy Core: five parameters (three on log axes, one
categorical), a mix of completed, diverged and failed trials, and a per-epoch curve for
each. Then it prints

- ``GET /api/v1/sweeps/{id}/points``: the median time and the size of the answer;
- the sweep page (``/#/sweeps/{id}``) in Chromium: the time from navigation start to the
  first full render (every chart drawn, the best trials' curves included), each run in a
  fresh browser context so nothing is cached.

Run: ``python bench/dashboard_load.py`` (``--trials N``, ``--runs N``, ``--backend``).
Needs Chromium at ``/usr/bin/chromium`` (or ``HYPERSWEEP_CHROMIUM``) and Playwright.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from service_throughput import fresh_database, server  # bench/ is on sys.path when run as a script
from sqlalchemy import create_engine, insert, select, text, update

from hypersweep.service.models import CurvePoint, Stage, Sweep, SweepStatus, Trial, utcnow

CHROMIUM = os.environ.get("HYPERSWEEP_CHROMIUM", "/usr/bin/chromium")
EPOCHS = 5
SPACE: dict[str, Any] = {
    "lr": {"type": "float", "low": 1e-6, "high": 1.0, "scale": "log"},
    "reg": {"type": "float", "low": 1e-6, "high": 1e-1, "scale": "log"},
    "dropout": {"type": "float", "low": 0.0, "high": 0.7},
    "hidden": {"type": "int", "low": 32, "high": 512, "scale": "log"},
    "optimizer": {"type": "categorical", "values": ["sgd", "momentum", "adam"]},
}


def submit(base: str, trials: int) -> int:
    doc = {"name": "dashboard-bench", "space": SPACE, "stages": [{"trials": trials, "epochs": EPOCHS}]}
    response = httpx.post(f"{base}/api/v1/sweeps", json=doc)
    response.raise_for_status()
    return int(response.json()["id"])


def made_up_trial(rng: random.Random) -> tuple[dict[str, Any], str, list[dict[str, float]], dict[str, Any]]:
    """Parameters, status, curve and final metrics of one trial: accuracy peaks around
    lr 3e-3 and small reg, large learning rates diverge, one trial in 30 fails."""
    params = {
        "lr": 10 ** rng.uniform(-6, 0),
        "reg": 10 ** rng.uniform(-6, -1),
        "dropout": rng.uniform(0, 0.7),
        "hidden": round(10 ** rng.uniform(math.log10(32), math.log10(512))),
        "optimizer": rng.choice(SPACE["optimizer"]["values"]),
    }
    if rng.random() < 1 / 30:
        return params, "failed", [], {}
    a, b = math.log10(params["lr"]), math.log10(params["reg"])
    peak = max(0.1, 0.97 - 0.045 * (a + 2.5) ** 2 - 0.02 * max(0.0, b + 3.5) ** 2 + rng.gauss(0, 0.01))
    curve = []
    for epoch in range(1, EPOCHS + 1):
        accuracy = 0.1 + (peak - 0.1) * (1 - math.exp(-epoch))
        loss = 2.3 * math.exp(-epoch) + 1 - peak
        if params["lr"] > 0.2 and epoch == 2:
            return params, "diverged", curve, {"train_loss": 9.4, "val_accuracy": 0.1, "epochs_run": epoch}
        curve.append({"train_loss": loss, "val_loss": loss * 1.1, "val_accuracy": accuracy})
    return params, "completed", curve, {**curve[-1], "epochs_run": EPOCHS, "stop_reason": "completed"}


def prepopulate(url: str, sweep_id: int, count: int) -> None:
    """Insert ``count`` finished trials with their curves, and close the sweep as if run."""
    rng = random.Random(0)
    engine = create_engine(url)
    now = utcnow()
    trials: list[dict[str, Any]] = []
    curves: list[list[dict[str, float]]] = []
    for number in range(count):
        params, status, curve, final = made_up_trial(rng)
        value = final.get("val_accuracy")
        started = now - timedelta(seconds=count - number + 30)
        trials.append(
            {
                "sweep_id": sweep_id,
                "stage": 0,
                "stage_index": number,
                "number": number,
                "params": params,
                "status": status,
                "attempt": 1,
                "worker_id": f"w{number % 8}",
                "metrics": final,
                "value": value,
                "created_at": started,
                "started_at": started,
                "finished_at": started + timedelta(seconds=rng.uniform(5, 30)),
                "error": "RuntimeError: out of memory" if status == "failed" else None,
            }
        )
        curves.append(curve)
    with engine.begin() as conn:
        for start in range(0, count, 2000):
            conn.execute(insert(Trial), trials[start : start + 2000])
        ids = dict(conn.execute(select(Trial.number, Trial.id).where(Trial.sweep_id == sweep_id)).all())
        points = [
            {"trial_id": ids[number], "step": step, "metrics": metrics, "created_at": now}
            for number, curve in enumerate(curves)
            for step, metrics in enumerate(curve, start=1)
        ]
        for start in range(0, len(points), 5000):
            conn.execute(insert(CurvePoint), points[start : start + 5000])
        conn.execute(update(Stage).where(Stage.sweep_id == sweep_id).values(generated=count, finished_at=now))
        conn.execute(
            update(Sweep)
            .where(Sweep.id == sweep_id)
            .values(trials_created=count, status=SweepStatus.completed, finished_at=now)
        )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def time_endpoint(base: str, path: str, runs: int) -> tuple[float, int]:
    """Median seconds of ``runs`` GETs after one warm-up, and the answer's size in bytes."""
    with httpx.Client(base_url=base, timeout=60) as http:
        size = len(http.get(path).raise_for_status().content)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            http.get(path).raise_for_status()
            times.append(time.perf_counter() - t0)
    return statistics.median(times), size


def time_page(base: str, sweep_id: int, runs: int) -> list[float]:
    """Seconds from navigation start to the sweep page's first full render, per run."""
    from playwright.sync_api import sync_playwright

    results = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            for _ in range(runs):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(f"{base}/#/sweeps/{sweep_id}")
                page.wait_for_selector("main[data-render-ms]", timeout=60_000)
                assert not errors, f"JavaScript errors on the page: {errors}"
                results.append(float(page.get_attribute("main", "data-render-ms") or "nan") / 1000)
                marks = page.get_attribute("[data-chart='objective:lr']", "data-marks")
                assert marks is not None and int(marks) > 0, "the scatter drew nothing"
                context.close()
        finally:
            browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    # server() migrates the database, then serves it.
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_database(args.backend, Path(tmp)) as url,
        server(url, Path(tmp)) as base,
    ):
        sweep_id = submit(base, args.trials)
        t0 = time.perf_counter()
        prepopulate(url, sweep_id, args.trials)
        print(f"{args.backend}: {args.trials} finished trials inserted in {time.perf_counter() - t0:.1f} s")
        seconds, size = time_endpoint(base, f"/api/v1/sweeps/{sweep_id}/points", args.runs)
        print(f"GET /sweeps/{sweep_id}/points: {seconds * 1000:.0f} ms median, {size / 1e6:.2f} MB")
        seconds, _ = time_endpoint(base, f"/api/v1/sweeps/{sweep_id}", args.runs)
        print(f"GET /sweeps/{sweep_id}: {seconds * 1000:.0f} ms median")
        loads = time_page(base, sweep_id, args.runs)
        shown = ", ".join(f"{s:.2f}" for s in loads)
        print(f"sweep page, first full render in Chromium: {statistics.median(loads):.2f} s median ({shown})")


if __name__ == "__main__":
    main()
