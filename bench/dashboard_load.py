"""Dashboard load time on a big sweep: the sweep page in headless Chromium, and the
endpoint it draws from.

A real ``hypersweep serve`` on a fresh database (a SQLite file, or the local PostgreSQL
with ``--backend postgresql``) holding one sweep of ``--trials`` finished trials (default
10,000), inserted directly with SQLAlchemy Core: five parameters (three on log axes, one
categorical), a mix of completed, diverged and failed trials, and a per-epoch curve for
each. Then it prints

- ``GET /api/v1/sweeps/{id}/points``: the median time and the size of the answer;
- the sweep page (``/#/sweeps/{id}``) in Chromium: the time from navigation start to the
  first full render (every chart drawn, the best trials' curves and the importance bars
  included), each run in a fresh browser context so nothing is cached in the browser;
- parameter importance (what ``GET /api/v1/sweeps/{id}/importance`` answers, fANOVA): its
  first computation and an answer from the cache.

Side by side with today: the same page and endpoints served by the code of ``--baseline``
(a git revision, by default where this branch left main; its tree is extracted with
``git archive`` into a temporary directory and served from there, on the same database),
the page loads of the two taking turns so that both see the same machine. Today's page has
no optimisation history, importance or contour, and no importance endpoint.

Run: ``python bench/dashboard_load.py`` (``--trials N``, ``--runs N``, ``--backend``,
``--baseline REV``, ``--no-baseline``; ``--quick`` for 2,000 trials and 2 runs).
Needs Chromium at ``/usr/bin/chromium`` (or ``HYPERSWEEP_CHROMIUM``) and Playwright.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from service_throughput import free_port, fresh_database, server  # bench/ is on sys.path when run as a script
from sqlalchemy import create_engine, insert, select, text, update

from hypersweep.service.dashboard.analyses import Analyses
from hypersweep.service.db import Database
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


def time_pages(bases: dict[str, str], sweep_id: int, runs: int) -> dict[str, list[float]]:
    """Seconds from navigation start to the sweep page's first full render, per run, for
    each server in ``bases`` (by label), their runs taking turns."""
    from playwright.sync_api import sync_playwright

    results: dict[str, list[float]] = {label: [] for label in bases}
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            for _ in range(runs):
                for label, base in bases.items():
                    context = browser.new_context(viewport={"width": 1400, "height": 1000})
                    page = context.new_page()
                    page.on("pageerror", lambda error: errors.append(str(error)))
                    page.goto(f"{base}/#/sweeps/{sweep_id}")
                    page.wait_for_selector("main[data-render-ms]", timeout=60_000)
                    assert not errors, f"JavaScript errors on the page: {errors}"
                    results[label].append(float(page.get_attribute("main", "data-render-ms") or "nan") / 1000)
                    marks = page.get_attribute("[data-chart='objective:lr']", "data-marks")
                    assert marks is not None and int(marks) > 0, "the scatter drew nothing"
                    if label == "now":
                        # The new plots are part of the first full render.
                        assert int(page.get_attribute("[data-chart='history']", "data-marks") or 0) > 0
                        assert page.get_attribute("[data-chart='importance']", "data-importance") not in (None, "{}")
                        assert int(page.get_attribute("[data-chart='contour']", "data-cells") or 0) > 0
                    context.close()
        finally:
            browser.close()
    return results


def time_importance(url: str, sweep_id: int, runs: int) -> tuple[float, float, float]:
    """Seconds to import what the evaluator needs (once per server process), of the first
    importance answer (computed, as once a trial completes) and the median of ``runs``
    answers from the cache, in this process."""
    t0 = time.perf_counter()
    import optuna.importance  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    imports = time.perf_counter() - t0
    db = Database(url)
    try:
        analyses = Analyses(db)
        t0 = time.perf_counter()
        analyses.importance(sweep_id=sweep_id, evaluator="fanova")
        first = time.perf_counter() - t0
        cached = []
        for _ in range(runs):
            t0 = time.perf_counter()
            analyses.importance(sweep_id=sweep_id, evaluator="fanova")
            cached.append(time.perf_counter() - t0)
        assert analyses.computed == 1
    finally:
        db.dispose()
    return imports, first, statistics.median(cached)


def baseline_tree(revision: str, workdir: Path) -> Path:
    """The repository's tree at ``revision``, extracted into ``workdir``."""
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "-C", str(repo), "archive", revision], capture_output=True, check=True).stdout
    tree = workdir / "baseline"
    tree.mkdir()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="tar")
    return tree


@contextlib.contextmanager
def baseline_server(url: str, tree: Path) -> Iterator[str]:
    """``hypersweep serve`` running the code in ``tree`` (imported from there, not from the
    installed package) on the database ``url``, which is already migrated."""
    port = free_port()
    env = {**os.environ, "HYPERSWEEP_DATABASE_URL": url, "PYTHONPATH": str(tree)}
    env.pop("HYPERSWEEP_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hypersweep", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "the baseline server did not start"
                time.sleep(0.1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def merge_base() -> str:
    """Where the checked-out branch left main (HEAD itself on main)."""
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(["git", "-C", str(repo), "merge-base", "HEAD", "main"], capture_output=True, text=True)
    return out.stdout.strip() or "HEAD"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=None, help="default 10,000 (2,000 with --quick)")
    parser.add_argument("--runs", type=int, default=None, help="default 5 (2 with --quick)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--baseline", default=None, help="git revision of today's code (default: merge-base with main)")
    parser.add_argument("--no-baseline", action="store_true", help="measure only the code checked out")
    parser.add_argument("--quick", action="store_true", help="2,000 trials and 2 runs")
    args = parser.parse_args()
    trials = args.trials or (2_000 if args.quick else 10_000)
    runs = args.runs or (2 if args.quick else 5)
    revision = args.baseline or merge_base()
    # server() migrates the database, then serves it.
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_database(args.backend, Path(tmp)) as url,
        server(url, Path(tmp)) as base,
        contextlib.ExitStack() as stack,
    ):
        sweep_id = submit(base, trials)
        t0 = time.perf_counter()
        prepopulate(url, sweep_id, trials)
        print(f"{args.backend}: {trials} finished trials inserted in {time.perf_counter() - t0:.1f} s")
        bases = {"now": base}
        if not args.no_baseline:
            bases = {"today": stack.enter_context(baseline_server(url, baseline_tree(revision, Path(tmp)))), **bases}
            print(f"today: the code of {revision[:12]}; now: the code checked out")
        rows: list[tuple[str, str, str, str]] = []

        def row(what: str, today: float | None, now: float, unit: str, scale: float) -> None:
            ratio = f"{now / today:.2f}x" if today else "—"
            shown = "—" if today is None else f"{today * scale:.2f} {unit}"
            rows.append((what, shown, f"{now * scale:.2f} {unit}", ratio))

        for path in (f"/api/v1/sweeps/{sweep_id}/points", f"/api/v1/sweeps/{sweep_id}"):
            times = {label: time_endpoint(b, path, runs)[0] for label, b in bases.items()}
            row(f"GET {path.removeprefix('/api/v1')} (median)", times.get("today"), times["now"], "ms", 1000)
        imports, first, cached = time_importance(url, sweep_id, runs)
        row("importance: importing scikit-learn (once)", None, imports, "s", 1)
        row("importance, first computation", None, first, "s", 1)
        row("importance, from the cache (median)", None, cached, "ms", 1000)
        loads = time_pages(bases, sweep_id, runs)
        for label, times in loads.items():
            print(f"sweep page, first full render, {label}: " + ", ".join(f"{t:.2f}" for t in times) + " s")
        today = statistics.median(loads["today"]) if "today" in loads else None
        row("sweep page, first full render (median)", today, statistics.median(loads["now"]), "s", 1)
        print(f"\n{trials:,} trials, {args.backend}, {runs} runs")
        print(f"{'':44} {'today':>12} {'now':>12} {'now/today':>10}")
        for what, was, now, ratio in rows:
            print(f"{what:44} {was:>12} {now:>12} {ratio:>10}")


if __name__ == "__main__":
    main()
