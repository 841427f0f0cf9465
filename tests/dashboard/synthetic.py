"""A sweep run by hand over the REST API, with made-up training that behaves like the
CS231n picture: validation accuracy peaks in the middle of log(lr) x log(reg), large
learning rates diverge after an epoch or two, and a few trials fail outright.

Deterministic: a trial's curve depends only on its parameters and number.
"""

from __future__ import annotations

import math
import random
from typing import Any

import httpx
from sqlalchemy import create_engine, insert, update

from hypersweep.service.models import Stage, Sweep, SweepStatus, Trial, utcnow

__all__ = ["SPACE", "finish_trials", "insert_finished_trials", "sweep_document", "training"]

SPACE: dict[str, Any] = {
    "lr": {"type": "float", "low": 1e-6, "high": 1.0, "scale": "log"},
    "reg": {"type": "float", "low": 1e-6, "high": 1e-1, "scale": "log"},
    "dropout": {"type": "float", "low": 0.0, "high": 0.6},
    "optimizer": {"type": "categorical", "values": ["sgd", "momentum", "adam"]},
}
#: Trials whose number is this modulo FAIL_EVERY fail with an error.
FAIL_EVERY, FAIL_AT = 11, 7
#: Learning rates above this diverge.
DIVERGES_ABOVE = 0.2


def sweep_document(name: str, *, trials: int, epochs: int = 4, parallelism: int = 64) -> dict[str, Any]:
    return {
        "name": name,
        "objective": {"metric": "val_accuracy", "mode": "max"},
        "space": SPACE,
        "search": {"kind": "random", "seed": 1},
        "stages": [{"trials": trials, "epochs": epochs}],
        "trainer": {"dataset": "digits"},
        "parallelism": parallelism,
    }


def training(params: dict[str, Any], number: int, epochs: int) -> tuple[str, list[dict[str, float]], dict[str, Any]]:
    """(status, one metrics dict per epoch reported, final metrics) for a trial."""
    a, b = math.log10(params["lr"]), math.log10(params["reg"])
    peak = 0.97 - 0.045 * (a + 2.5) ** 2 - 0.02 * max(0.0, b + 3.5) ** 2 - 0.05 * params["dropout"]
    peak -= 0.02 * (params.get("optimizer") == "sgd")
    peak = min(0.985, max(0.1, peak))
    speed = 0.4 + 1.2 * min(1.0, max(0.0, (a + 6) / 4))
    if number % FAIL_EVERY == FAIL_AT:
        return "failed", [], {}
    diverge_at = (1 if params["lr"] > 0.5 else 2) if params["lr"] > DIVERGES_ABOVE else None
    points = []
    for epoch in range(1, epochs + 1):
        progress = 1 - math.exp(-speed * epoch)
        accuracy = 0.1 + (peak - 0.1) * progress
        train_loss = 2.3 * (1 - progress) + (1 - peak) * 0.8
        if diverge_at is not None and epoch >= diverge_at:
            final = {"train_loss": 2.3 * 4.1, "val_loss": 9.8, "val_accuracy": 0.1, "epochs_run": epoch}
            return "diverged", points, {**final, "stop_reason": "diverged"}
        points.append({"train_loss": train_loss, "val_loss": train_loss * 1.1, "val_accuracy": accuracy})
    final = {**points[-1], "test_accuracy": points[-1]["val_accuracy"] - 0.01, "epochs_run": epochs}
    return "completed", points, {**final, "stop_reason": "completed"}


def finish_trials(api: httpx.Client, sweep_id: int, count: int, *, epochs: int = 4) -> list[dict[str, Any]]:
    """Claim up to ``count`` trials of the sweep and run each to its end with made-up
    training; returns the finished trials."""
    done: list[dict[str, Any]] = []
    while len(done) < count:
        response = api.post(
            "/trials/claim", json={"worker_id": "synthetic", "sweep_id": sweep_id, "count": min(64, count - len(done))}
        )
        if response.status_code == 204:
            break
        response.raise_for_status()
        for trial in response.json()["trials"]:
            status, points, final = training(trial["params"], trial["number"], epochs)
            for step, metrics in enumerate(points, start=1):
                report = {"lease_token": trial["lease_token"], "step": step, "metrics": metrics}
                api.post(f"/trials/{trial['id']}/report", json=report).raise_for_status()
            body: dict[str, Any] = {"lease_token": trial["lease_token"], "status": status, "metrics": final}
            if status == "failed":
                body["error"] = "Traceback (most recent call last):\n  ...\nRuntimeError: out of memory"
            finished = api.post(f"/trials/{trial['id']}/finish", json=body)
            finished.raise_for_status()
            done.append(finished.json())
    return done


def insert_finished_trials(database_url: str, sweep_id: int, count: int, *, seed: int = 0) -> None:
    """Store ``count`` finished trials (no curves) in the sweep's first stage directly, as if
    run, and complete the sweep: a big sweep in a second instead of minutes over the API."""
    rng = random.Random(seed)
    now = utcnow()
    rows = []
    for number in range(count):
        params = {
            "lr": 10 ** rng.uniform(-6, 0),
            "reg": 10 ** rng.uniform(-6, -1),
            "dropout": rng.uniform(0, 0.6),
            "optimizer": rng.choice(SPACE["optimizer"]["values"]),
        }
        status, _, final = training(params, number, 1)
        rows.append(
            {
                "sweep_id": sweep_id,
                "stage": 0,
                "stage_index": number,
                "number": number,
                "params": params,
                "status": status,
                "attempt": 1,
                "metrics": final,
                "value": final.get("val_accuracy"),
                "created_at": now,
                "started_at": now,
                "finished_at": now,
            }
        )
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(Trial), rows)
            conn.execute(update(Stage).where(Stage.sweep_id == sweep_id).values(generated=count, finished_at=now))
            conn.execute(
                update(Sweep)
                .where(Sweep.id == sweep_id)
                .values(trials_created=count, status=SweepStatus.completed, finished_at=now)
            )
    finally:
        engine.dispose()
