"""How soon does a search reach a good model, with and without pruning, next to Optuna?

The built-in trainer (its MLP) on two data sets: MNIST-1D (generated offline by the
``mnist1d`` package's ``make_dataset`` with its default arguments, 5000 signals, stored as
an npz and read through the trainer's ``npz:`` data sets) and scikit-learn's digits. Every
side searches the same space with the same trainer settings, two trainings at a time, and
may spend the same budget of epochs: ``--trials`` (default 18) trials of ``--epochs``
(default 9) epochs. Sides:

* ``hs-random``: hypersweep, random search, no pruning: one stage of ``--trials`` trials;
* ``hs-asha``: the same random draws (same seed) with ``pruner: {kind: asha, min_epochs: 1,
  eta: 3}``, as many trials as the budget pays for;
* ``hs-c2f-asha``: coarse to fine: ``--trials`` one-epoch trials, then a fine stage around
  their best 3 with ASHA, as many trials as the rest of the budget pays for;
* ``optuna-sha``: Optuna's ``TPESampler`` with ``SuccessiveHalvingPruner(min_resource=1,
  reduction_factor=3)``; ``optuna-median``: ``TPESampler`` with ``MedianPruner(
  n_startup_trials=5, n_warmup_steps=1)``. ``study.optimize(n_jobs=2)``, the trainer
  called in-process with one PyTorch thread per job, the budget enforced by a callback.

hypersweep runs a real ``hypersweep serve`` (SQLite) and one ``hypersweep worker
--concurrency 2 --report-every 0`` (two training processes of one thread each) that serves
every run in turn. Before the runs, both sides train once on each data set, unmeasured, so
that neither pays for loading data or warming PyTorch up inside a run.
A side stops at its budget (hypersweep: the sweep is cancelled once its trials' recorded
epochs reach it; Optuna: no new trial starts).

Reported per data set and side, medians over ``--seeds``: the best validation accuracy
of a trial that ran all its epochs (the one a user would pick), the test accuracy of that
trial, the epochs spent, and the seconds from the first trial's start until some trial
first reported a validation accuracy at or above the data set's target (the time a user
watching would know a good enough model exists), with how many seeds got there. Last,
the ratios the targets are about: hs-random's time over hs-asha's (target: at least 2),
and hs-asha's time over the best Optuna pruned side's (target: at most 1). A seed that
never reaches the target counts as the side's whole run time in the medians, and is
shown.

    flock /tmp/hypersweep-bench.lock .venv/bin/python bench/time_to_accuracy.py [--quick]
        [--seeds 3] [--datasets mnist1d,digits] [--trials 18] [--epochs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

HYPERSWEEP = [sys.executable, "-m", "hypersweep"]
#: The validation accuracy a side must reach, per data set.
TARGETS = {"digits": 0.96, "mnist1d": 0.55}
SPACE: dict[str, Any] = {
    "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
    "reg": {"type": "float", "low": 1e-6, "high": 1e-1, "scale": "log"},
    "dropout": {"type": "float", "low": 0.0, "high": 0.6},
    "hidden": {"type": "int", "low": 16, "high": 256, "scale": "log"},
}
TRAINER: dict[str, Any] = {"optimizer": "momentum", "batch_size": 64, "layers": 2, "divergence_factor": 3.0}
ASHA = {"kind": "asha", "min_epochs": 1, "eta": 3}
SIDES = ("hs-random", "hs-asha", "hs-c2f-asha", "optuna-sha", "optuna-median")


@dataclass
class Run:
    """One side on one data set with one seed."""

    best_val: float | None
    test_of_best: float | None
    #: Seconds from the first trial's start to the first report at or above the target.
    to_target: float | None
    seconds: float
    epochs: int
    trials: int
    pruned: int


def dataset_name(dataset: str) -> str:
    return "digits" if dataset == "digits" else "npz:mnist1d.npz"


def make_mnist1d(folder: Path) -> None:
    """MNIST-1D as its generator makes it (no download), train and test together: the
    trainer splits it its own way."""
    import mnist1d.data

    data = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    np.savez(folder / "mnist1d.npz", x=x, y=y)


# -- hypersweep -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sweep_doc(side: str, dataset: str, seed: int, trials: int, epochs: int) -> dict[str, Any]:
    budget = trials * epochs
    if side == "hs-random":
        stages: list[dict[str, Any]] = [{"trials": trials, "epochs": epochs}]
    elif side == "hs-asha":
        stages = [{"trials": budget, "epochs": epochs, "pruner": ASHA}]
    else:
        stages = [{"trials": trials, "epochs": 1}, {"trials": budget, "epochs": epochs, "top_k": 3, "pruner": ASHA}]
    return {
        "name": f"{side}-{dataset}-{seed}",
        "objective": {"metric": "val_accuracy", "mode": "max"},
        "space": SPACE,
        "search": {"kind": "random", "seed": seed},
        "stages": stages,
        "trainer": {**TRAINER, "dataset": dataset_name(dataset)},
        "parallelism": 2,
    }


def _time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def run_hypersweep(url: str, db: Path, side: str, dataset: str, seed: int, trials: int, epochs: int) -> Run:
    """Submit the side's sweep to the bench's worker and follow it to its end (or cancel it
    at its budget); then wait until its last trials' holders have finished them."""
    target = TARGETS[dataset]
    budget = trials * epochs
    answer = httpx.post(f"{url}/api/v1/sweeps", json=sweep_doc(side, dataset, seed, trials, epochs), timeout=30)
    answer.raise_for_status()
    sweep_id = answer.json()["id"]
    spent_sql = "SELECT count(*) FROM curve_points c JOIN trials t ON t.id = c.trial_id WHERE t.sweep_id = ?"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        while conn.execute("SELECT status FROM sweeps WHERE id = ?", (sweep_id,)).fetchone()[0] == "running":
            time.sleep(0.05)
            # The coarse stage's one-epoch trials count too.
            if conn.execute(spent_sql, (sweep_id,)).fetchone()[0] >= budget:
                httpx.post(f"{url}/api/v1/sweeps/{sweep_id}/cancel", timeout=30)
                break
        held = "SELECT count(*) FROM trials WHERE sweep_id = ? AND lease_expires_at IS NOT NULL"
        deadline = time.monotonic() + 60
        while conn.execute(held, (sweep_id,)).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = conn.execute(
            "SELECT t.status, t.started_at, t.finished_at, t.value, t.metrics, s.epochs FROM trials t "
            'JOIN stages s ON s.sweep_id = t.sweep_id AND s."index" = t.stage WHERE t.sweep_id = ?',
            (sweep_id,),
        ).fetchall()
        points = conn.execute(
            "SELECT c.created_at, c.metrics FROM curve_points c JOIN trials t ON t.id = c.trial_id "
            "WHERE t.sweep_id = ? ORDER BY c.created_at",
            (sweep_id,),
        ).fetchall()
        spent = conn.execute(spent_sql, (sweep_id,)).fetchone()[0]
    started = [_time(r[1]) for r in rows if r[1] is not None]
    ended = [_time(r[2]) for r in rows if r[2] is not None]
    start = min(started)
    to_target = None
    for created, metrics in points:
        value = json.loads(metrics).get("val_accuracy")
        if isinstance(value, float) and value >= target:
            to_target = _time(created) - start
            break
    full = [r for r in rows if r[0] == "completed" and r[5] == epochs and r[3] is not None]
    best = max(full, key=lambda r: r[3], default=None)
    return Run(
        best_val=best[3] if best else None,
        test_of_best=json.loads(best[4]).get("test_accuracy") if best else None,
        to_target=to_target,
        seconds=max(ended) - start,
        epochs=spent,
        trials=len(started),
        pruned=sum(r[0] == "pruned" for r in rows),
    )


# -- Optuna ---------------------------------------------------------------------------------------


def run_optuna(side: str, dataset: str, seed: int, trials: int, epochs: int, data_dir: Path) -> Run:
    import optuna
    import torch

    from hypersweep.trainer import train
    from hypersweep.trainer.config import TrainerConfig

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    target = TARGETS[dataset]
    budget = trials * epochs
    pruner: optuna.pruners.BasePruner
    if side == "optuna-sha":
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    else:
        pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
    lock = threading.Lock()
    state: dict[str, Any] = {"spent": 0, "reached": None, "start": None}

    def objective(trial: optuna.Trial) -> float:
        with lock:
            if state["spent"] >= budget:
                study.stop()
                raise optuna.TrialPruned("over budget")
            state["start"] = state["start"] or time.monotonic()
        params = {
            "lr": trial.suggest_float("lr", 1e-4, 1.0, log=True),
            "reg": trial.suggest_float("reg", 1e-6, 1e-1, log=True),
            "dropout": trial.suggest_float("dropout", 0.0, 0.6),
            "hidden": trial.suggest_int("hidden", 16, 256, log=True),
        }
        config = TrainerConfig.from_settings({**TRAINER, "dataset": dataset_name(dataset), "epochs": epochs, **params})
        pruned = False

        def on_epoch(epoch: int, metrics: dict[str, float]) -> bool:
            nonlocal pruned
            value = metrics["val_accuracy"]
            with lock:
                state["spent"] += 1
                if value >= target and state["reached"] is None:
                    state["reached"] = time.monotonic()
            trial.report(value, epoch)
            # No decision at the last epoch: the trial has nothing left to save (as ours).
            if epoch < epochs and trial.should_prune():
                pruned = True
                return False
            return True

        result = train(config, on_epoch=on_epoch, data_dir=data_dir)
        if pruned:
            raise optuna.TrialPruned()
        trial.set_user_attr("test_accuracy", result.metrics["test_accuracy"])
        trial.set_user_attr("full", result.metrics["epochs_run"] == epochs and result.status == "completed")
        return float(result.metrics["val_accuracy"])

    def over_budget(study: optuna.Study, _trial: Any) -> None:
        if state["spent"] >= budget:
            study.stop()

    study.optimize(objective, n_trials=budget, n_jobs=2, callbacks=[over_budget])
    end = time.monotonic()
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    full = [t for t in done if t.user_attrs.get("full")]
    best = max(full, key=lambda t: t.value or 0.0, default=None)
    pruned = study.get_trials(states=(optuna.trial.TrialState.PRUNED,))
    return Run(
        best_val=best.value if best else None,
        test_of_best=best.user_attrs["test_accuracy"] if best else None,
        to_target=None if state["reached"] is None else state["reached"] - state["start"],
        seconds=end - state["start"],
        epochs=state["spent"],
        trials=len([t for t in study.trials if t.params]),
        pruned=len([t for t in pruned if t.params]),
    )


# -- the report ------------------------------------------------------------------------------------


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(results: dict[tuple[str, str], list[Run]], datasets: list[str], trials: int, epochs: int) -> None:
    print(f"\nbudget {trials * epochs} epochs per side ({trials} trials x {epochs} epochs); medians over seeds")
    for dataset in datasets:
        print(f"\n{dataset}: target val_accuracy {TARGETS[dataset]}")
        print(
            f"  {'side':<14} {'best val':>8} {'test':>6} {'to target s':>11} {'reached':>7} "
            f"{'run s':>6} {'epochs':>6} {'trials':>6} {'pruned':>6}"
        )
        times: dict[str, float] = {}
        for side in SIDES:
            runs = results.get((dataset, side), [])
            if not runs:
                continue
            # A seed that never got there costs its whole run.
            to_target = statistics.median([r.to_target if r.to_target is not None else r.seconds for r in runs])
            times[side] = to_target
            reached = sum(r.to_target is not None for r in runs)
            print(
                f"  {side:<14} {_fmt(_median([r.best_val for r in runs])):>8} "
                f"{_fmt(_median([r.test_of_best for r in runs])):>6} {to_target:>11.2f} "
                f"{reached:>4}/{len(runs):<2} {_fmt(_median([r.seconds for r in runs]), 1):>6} "
                f"{_median([float(r.epochs) for r in runs]):>6.0f} {_median([float(r.trials) for r in runs]):>6.0f} "
                f"{_median([float(r.pruned) for r in runs]):>6.0f}"
            )
        if "hs-random" in times and "hs-asha" in times:
            print(f"  time to target, hs-random / hs-asha: {times['hs-random'] / times['hs-asha']:.2f} (target >= 2)")
        optunas = [times[s] for s in ("optuna-sha", "optuna-median") if s in times]
        if optunas and "hs-asha" in times:
            print(
                f"  time to target, hs-asha / best Optuna pruned: {times['hs-asha'] / min(optunas):.2f} (target <= 1)"
            )
        if optunas and "hs-c2f-asha" in times:
            print(f"  time to target, hs-c2f-asha / best Optuna pruned: {times['hs-c2f-asha'] / min(optunas):.2f}")
        per_seed = [
            f"{_fmt(r.to_target, 1)}/{_fmt(a.to_target, 1)}"
            for r, a in zip(
                results.get((dataset, "hs-random"), []), results.get((dataset, "hs-asha"), []), strict=False
            )
        ]
        if per_seed:
            print(f"  per seed, hs-random/hs-asha seconds to target: {', '.join(per_seed)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="digits only, 2 seeds, 12 trials of 9 epochs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", default="mnist1d,digits")
    parser.add_argument("--trials", type=int, default=18)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--sides", default=",".join(SIDES))
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.datasets, args.trials = 2, "digits", 12
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]

    folder = Path(tempfile.mkdtemp(prefix="hypersweep-tta-"))
    data_dir = folder / "data"
    data_dir.mkdir()
    if "mnist1d" in datasets:
        make_mnist1d(data_dir)
    db = folder / "bench.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "HYPERSWEEP_DATABASE_URL": f"sqlite:///{db}",
        "HYPERSWEEP_SERVER": url,
        "HYPERSWEEP_DATA_DIR": str(data_dir),
    }
    env.pop("HYPERSWEEP_TOKEN", None)
    server = subprocess.Popen(
        [*HYPERSWEEP, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[tuple[str, str], list[Run]] = {}
    worker: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        worker = subprocess.Popen(
            [*HYPERSWEEP, "worker", "--concurrency", "2", "--report-every", "0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Warm-up, not measured: both sides load each data set and run a first training in
        # the processes that then train every trial (the workers' two, Optuna's own).
        for dataset in datasets:
            run_hypersweep(url, db, "hs-random", dataset, 0, 4, 1)
            run_optuna("optuna-median", dataset, 0, 2, 1, data_dir)
        for seed in range(args.seeds):
            for dataset in datasets:
                for side in sides:
                    if side.startswith("hs-"):
                        run = run_hypersweep(url, db, side, dataset, seed, args.trials, args.epochs)
                    else:
                        run = run_optuna(side, dataset, seed, args.trials, args.epochs, data_dir)
                    results.setdefault((dataset, side), []).append(run)
                    print(
                        f"seed {seed} {dataset:<8} {side:<14} best val {_fmt(run.best_val)} "
                        f"test {_fmt(run.test_of_best)} "
                        f"to target {_fmt(run.to_target, 2)} s, run {run.seconds:.1f} s, {run.epochs} epochs, "
                        f"{run.trials} trials, {run.pruned} pruned",
                        flush=True,
                    )
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=60)
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    report(results, datasets, args.trials, args.epochs)


if __name__ == "__main__":
    main()
