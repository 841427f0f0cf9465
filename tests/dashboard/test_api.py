"""The dashboard's aggregate endpoints, a sweep's points and a few of its curves, on every
backend."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from hypersweep.service.dashboard.schemas import MAX_CURVES
from tests.conftest import sweep_doc
from tests.service.api.test_sweeps import API, claim, submit


def report(client: TestClient, trial: dict[str, Any], step: int, metrics: dict[str, Any]) -> None:
    body = {"lease_token": trial["lease_token"], "step": step, "metrics": metrics}
    response = client.post(f"{API}/trials/{trial['id']}/report", json=body)
    assert response.status_code == 200, response.text


def finish(client: TestClient, trial: dict[str, Any], status: str, metrics: dict[str, Any], **extra: Any) -> None:
    body = {"lease_token": trial["lease_token"], "status": status, "metrics": metrics, **extra}
    response = client.post(f"{API}/trials/{trial['id']}/finish", json=body)
    assert response.status_code == 200, response.text


def test_points_are_every_trial_as_columns_in_number_order(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 5, "epochs": 2}])
    done, diverged, failed, running = claim(client, sweep["id"], count=4)
    finish(client, done, "completed", {"val_accuracy": 0.9, "epochs_run": 2})
    finish(client, diverged, "diverged", {"val_accuracy": 0.1, "epochs_run": 1, "stop_reason": "diverged"})
    finish(client, failed, "failed", {}, error="boom")
    report(client, running, 1, {"val_accuracy": 0.5})

    response = client.get(f"{API}/sweeps/{sweep['id']}/points")
    assert response.status_code == 200, response.text
    points = response.json()
    trials = client.get(f"{API}/sweeps/{sweep['id']}/trials", params={"sort": "number"}).json()
    assert points["sweep_id"] == sweep["id"]
    assert points["id"] == [t["id"] for t in trials]
    assert points["number"] == [0, 1, 2, 3]
    assert points["stage"] == [0, 0, 0, 0]
    assert points["status"] == ["completed", "diverged", "failed", "running"]
    assert points["value"] == [0.9, 0.1, None, None]
    assert points["attempt"] == [1, 1, 1, 1]
    assert points["epochs_run"] == [2, 1, None, None]
    assert [s is not None and s >= 0 for s in points["seconds"]] == [True, True, True, False]
    assert list(points["params"]) == ["lr", "dropout"]
    for name in ("lr", "dropout"):
        assert points["params"][name] == [t["params"][name] for t in trials]


def test_points_of_a_sweep_without_trials_are_empty_columns(client: TestClient) -> None:
    sweep = submit(client)
    points = client.get(f"{API}/sweeps/{sweep['id']}/points").json()
    assert points["id"] == points["value"] == points["seconds"] == []
    assert points["params"] == {"lr": [], "dropout": []}


def test_epochs_run_that_is_not_a_number_is_null(client: TestClient) -> None:
    sweep = submit(client)
    (trial,) = claim(client, sweep["id"])
    finish(client, trial, "completed", {"val_accuracy": 0.5, "epochs_run": "three"})
    assert client.get(f"{API}/sweeps/{sweep['id']}/points").json()["epochs_run"] == [None]


def test_curves_are_columns_per_trial_in_the_order_asked(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 3, "epochs": 3}])
    first, second, third = claim(client, sweep["id"], count=3)
    report(client, first, 1, {"train_loss": 2.0, "val_accuracy": 0.5, "note": "warm-up"})
    report(client, first, 2, {"train_loss": "NaN", "val_accuracy": 0.7})
    report(client, first, 3, {"val_accuracy": 0.8})
    finish(client, first, "completed", {"val_accuracy": 0.8, "epochs_run": 3, "stop_reason": "completed"})
    report(client, second, 1, {"train_loss": 2.2, "val_accuracy": 0.3})
    finish(client, second, "diverged", {"train_loss": 9.9, "val_accuracy": 0.1, "epochs_run": 2})

    ids = f"{second['id']},{third['id']},{first['id']}"
    response = client.get(f"{API}/sweeps/{sweep['id']}/curves", params={"trials": ids})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sweep_id"] == sweep["id"]
    diverged, unstarted, completed = body["trials"]
    assert (diverged["id"], unstarted["id"], completed["id"]) == (second["id"], third["id"], first["id"])
    assert completed["status"] == "completed" and completed["number"] == first["number"]
    assert completed["step"] == [1, 2, 3]
    # NaN is stored as the string "NaN"; a step that did not report a metric has null there.
    assert completed["metrics"] == {"train_loss": [2.0, None, None], "val_accuracy": [0.5, 0.7, 0.8]}
    # The last report's "NaN" is a string, not a number: no final train_loss.
    assert completed["final"] == {"val_accuracy": 0.8, "epochs_run": 3.0}
    assert diverged["status"] == "diverged"
    assert diverged["step"] == [1]
    assert diverged["final"]["train_loss"] == 9.9
    assert unstarted == {**unstarted, "step": [], "metrics": {}}


def test_curves_leave_out_trials_of_other_sweeps(client: TestClient) -> None:
    mine, other = submit(client, name="mine"), submit(client, name="other")
    (my_trial,) = claim(client, mine["id"])
    (their_trial,) = claim(client, other["id"])
    body = client.get(
        f"{API}/sweeps/{mine['id']}/curves", params={"trials": f"{their_trial['id']},{my_trial['id']},9999999999"}
    ).json()
    assert [t["id"] for t in body["trials"]] == [my_trial["id"]]


def test_curves_want_a_short_list_of_ids(client: TestClient) -> None:
    sweep = submit(client)
    url = f"{API}/sweeps/{sweep['id']}/curves"
    assert client.get(url, params={"trials": ",".join(["1"] * MAX_CURVES)}).status_code == 200
    for bad in (",".join(["1"] * (MAX_CURVES + 1)), "", "1,,2", "a", "-1", "1;2", "12345678901"):
        response = client.get(url, params={"trials": bad})
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["path"] == "trials"
    assert client.get(url).status_code == 422


def test_unknown_sweep_is_404(client: TestClient) -> None:
    assert client.get(f"{API}/sweeps/999/points").status_code == 404
    assert client.get(f"{API}/sweeps/999/curves", params={"trials": "1"}).status_code == 404


def test_the_endpoints_need_the_token_when_one_is_set(make_client: Any) -> None:
    secured: TestClient = make_client(token="s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    sweep = secured.post(f"{API}/sweeps", json=sweep_doc(), headers=auth).json()
    for path in (f"/sweeps/{sweep['id']}/points", f"/sweeps/{sweep['id']}/curves?trials=1"):
        assert secured.get(f"{API}{path}").status_code == 401
        assert secured.get(f"{API}{path}", headers=auth).status_code == 200
