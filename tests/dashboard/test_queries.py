"""The dashboard's queries (``service.dashboard.queries``): a sweep's trials as columns,
and a few of its curves, on every backend. The trials are made through the REST API."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from hypersweep.service.dashboard.queries import sweep_curves, sweep_points
from hypersweep.service.db import Database
from hypersweep.service.errors import NotFound
from tests.service.api.test_sweeps import API, claim, submit


def report(client: TestClient, trial: dict[str, Any], step: int, metrics: dict[str, Any]) -> None:
    body = {"lease_token": trial["lease_token"], "step": step, "metrics": metrics}
    response = client.post(f"{API}/trials/{trial['id']}/report", json=body)
    assert response.status_code == 200, response.text


def finish(client: TestClient, trial: dict[str, Any], status: str, metrics: dict[str, Any], **extra: Any) -> None:
    body = {"lease_token": trial["lease_token"], "status": status, "metrics": metrics, **extra}
    response = client.post(f"{API}/trials/{trial['id']}/finish", json=body)
    assert response.status_code == 200, response.text


def database(client: TestClient) -> Database:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    return db


def test_points_are_every_trial_as_columns_in_number_order(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 5, "epochs": 2}])
    done, diverged, failed, running = claim(client, sweep["id"], count=4)
    finish(client, done, "completed", {"val_accuracy": 0.9, "epochs_run": 2})
    finish(client, diverged, "diverged", {"val_accuracy": 0.1, "epochs_run": 1, "stop_reason": "diverged"})
    finish(client, failed, "failed", {}, error="boom")
    report(client, running, 1, {"val_accuracy": 0.5})

    points = sweep_points(db=database(client), sweep_id=sweep["id"])
    trials = client.get(f"{API}/sweeps/{sweep['id']}/trials", params={"sort": "number"}).json()
    assert points.sweep_id == sweep["id"]
    assert points.id == [t["id"] for t in trials]
    assert points.number == [0, 1, 2, 3]
    assert points.stage == [0, 0, 0, 0]
    assert points.status == ["completed", "diverged", "failed", "running"]
    assert points.value == [0.9, 0.1, None, None]
    assert points.attempt == [1, 1, 1, 1]
    assert points.epochs_run == [2, 1, None, None]
    assert [s is not None and s >= 0 for s in points.seconds] == [True, True, True, False]
    assert list(points.params) == ["lr", "dropout"]
    for name in ("lr", "dropout"):
        assert points.params[name] == [t["params"][name] for t in trials]


def test_points_of_a_sweep_without_trials_are_empty_columns(client: TestClient) -> None:
    sweep = submit(client)
    points = sweep_points(db=database(client), sweep_id=sweep["id"])
    assert points.id == points.value == points.seconds == []
    assert points.params == {"lr": [], "dropout": []}


def test_epochs_run_that_is_not_a_number_is_null(client: TestClient) -> None:
    sweep = submit(client)
    (trial,) = claim(client, sweep["id"])
    finish(client, trial, "completed", {"val_accuracy": 0.5, "epochs_run": "three"})
    assert sweep_points(db=database(client), sweep_id=sweep["id"]).epochs_run == [None]


def test_curves_are_columns_per_trial_in_the_order_asked(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 3, "epochs": 3}])
    first, second, third = claim(client, sweep["id"], count=3)
    report(client, first, 1, {"train_loss": 2.0, "val_accuracy": 0.5, "note": "warm-up"})
    report(client, first, 2, {"train_loss": "NaN", "val_accuracy": 0.7})
    report(client, first, 3, {"val_accuracy": 0.8})
    finish(client, first, "completed", {"val_accuracy": 0.8, "epochs_run": 3, "stop_reason": "completed"})
    report(client, second, 1, {"train_loss": 2.2, "val_accuracy": 0.3})
    finish(client, second, "diverged", {"train_loss": 9.9, "val_accuracy": 0.1, "epochs_run": 2})

    ids = [second["id"], third["id"], first["id"]]
    body = sweep_curves(db=database(client), sweep_id=sweep["id"], trial_ids=ids)
    assert body.sweep_id == sweep["id"]
    diverged, unstarted, completed = body.trials
    assert (diverged.id, unstarted.id, completed.id) == (second["id"], third["id"], first["id"])
    assert completed.status == "completed" and completed.number == first["number"]
    assert completed.step == [1, 2, 3]
    # NaN is stored as the string "NaN"; a step that did not report a metric has null there.
    assert completed.metrics == {"train_loss": [2.0, None, None], "val_accuracy": [0.5, 0.7, 0.8]}
    # The last report's "NaN" is a string, not a number: no final train_loss.
    assert completed.final == {"val_accuracy": 0.8, "epochs_run": 3.0}
    assert diverged.status == "diverged"
    assert diverged.step == [1]
    assert diverged.final["train_loss"] == 9.9
    assert (unstarted.step, unstarted.metrics) == ([], {})


def test_curves_leave_out_trials_of_other_sweeps(client: TestClient) -> None:
    mine, other = submit(client, name="mine"), submit(client, name="other")
    (my_trial,) = claim(client, mine["id"])
    (their_trial,) = claim(client, other["id"])
    ids = [their_trial["id"], my_trial["id"], 9999999999]
    body = sweep_curves(db=database(client), sweep_id=mine["id"], trial_ids=ids)
    assert [t.id for t in body.trials] == [my_trial["id"]]


def test_an_unknown_sweep_is_not_found(client: TestClient) -> None:
    with pytest.raises(NotFound):
        sweep_points(db=database(client), sweep_id=999)
    with pytest.raises(NotFound):
        sweep_curves(db=database(client), sweep_id=999, trial_ids=[1])
