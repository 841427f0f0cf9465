"""The sweeps endpoints: submit, list, read, cancel, and a sweep's trial listing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import sweep_doc

API = "/api/v1"


def submit(client: TestClient, **overrides: Any) -> dict[str, Any]:
    response = client.post(f"{API}/sweeps", json=sweep_doc(**overrides))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def claim(client: TestClient, sweep_id: int | None = None, count: int = 1, worker: str = "w") -> list[dict[str, Any]]:
    body: dict[str, Any] = {"worker_id": worker, "count": count}
    if sweep_id is not None:
        body["sweep_id"] = sweep_id
    response = client.post(f"{API}/trials/claim", json=body)
    if response.status_code == 204:
        return []
    assert response.status_code == 200, response.text
    trials: list[dict[str, Any]] = response.json()["trials"]
    return trials


def finish(client: TestClient, trial: dict[str, Any], value: float, status: str = "completed") -> dict[str, Any]:
    response = client.post(
        f"{API}/trials/{trial['id']}/finish",
        json={"lease_token": trial["lease_token"], "status": status, "metrics": {"val_accuracy": value}},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_submit_returns_the_stored_sweep(client: TestClient) -> None:
    sweep = submit(client)
    assert sweep["status"] == "running"
    assert sweep["counts"] == {}
    assert sweep["best"] is None
    assert [s["index"] for s in sweep["stages"]] == [0]
    assert sweep["stages"][0]["space"]["lr"] == {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}
    assert sweep["stages"][0]["status"] == "running"
    assert client.get(f"{API}/sweeps/{sweep['id']}").json() == sweep


def test_later_stages_are_pending_until_the_first_is_done(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 3, "epochs": 1}, {"trials": 2, "epochs": 4, "top_k": 2}])
    first, second = sweep["stages"]
    assert (first["status"], second["status"]) == ("running", "pending")
    assert second["space"] is None
    assert (second["trials"], second["epochs"], second["top_k"]) == (2, 4, 2)


def test_list_is_newest_first_with_limit_and_offset(client: TestClient) -> None:
    ids = [submit(client, name=f"s{i}")["id"] for i in range(3)]
    response = client.get(f"{API}/sweeps")
    assert [s["id"] for s in response.json()] == ids[::-1]
    assert response.headers["X-Total-Count"] == "3"
    page = client.get(f"{API}/sweeps", params={"limit": 1, "offset": 1}).json()
    assert [s["id"] for s in page] == [ids[1]]


def test_unknown_sweep_is_404(client: TestClient) -> None:
    assert client.get(f"{API}/sweeps/999").status_code == 404
    assert client.post(f"{API}/sweeps/999/cancel").status_code == 404
    assert client.get(f"{API}/sweeps/999/trials").status_code == 404


def test_cancel_stops_queued_and_running_trials(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 5, "epochs": 1}], max_attempts=1)
    running = claim(client, sweep["id"], count=2)
    cancelled = client.post(f"{API}/sweeps/{sweep['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["counts"] == {"cancelled": 2}
    # Running trials are told to stop; no new work is handed out.
    beat = client.post(f"{API}/trials/{running[0]['id']}/heartbeat", json={"lease_token": running[0]["lease_token"]})
    assert beat.json()["action"] == "stop"
    report = client.post(
        f"{API}/trials/{running[1]['id']}/report",
        json={"lease_token": running[1]["lease_token"], "step": 1, "metrics": {"val_accuracy": 0.5}},
    )
    assert report.json()["action"] == "stop"
    assert claim(client, sweep["id"]) == []
    # The worker's final word is kept, and the trial stays cancelled.
    done = finish(client, running[0], 0.7)
    assert done["status"] == "cancelled"
    assert done["metrics"]["val_accuracy"] == 0.7
    # Cancelling twice changes nothing.
    assert client.post(f"{API}/sweeps/{sweep['id']}/cancel").json()["counts"] == {"cancelled": 2}


def test_a_completed_sweep_cannot_be_cancelled(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 1, "epochs": 1}])
    finish(client, claim(client, sweep["id"])[0], 0.5)
    response = client.post(f"{API}/sweeps/{sweep['id']}/cancel")
    assert response.status_code == 409
    assert "completed" in response.json()["detail"]


def test_trials_filter_by_status_and_stage_and_sort_by_metric(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 4, "epochs": 1}])
    trials = claim(client, sweep["id"], count=4)
    for trial, value in zip(trials[:3], [0.2, 0.9, 0.5], strict=True):
        finish(client, trial, value)
    url = f"{API}/sweeps/{sweep['id']}/trials"
    best_first = client.get(url, params={"sort": "-metric"}).json()
    assert [t["value"] for t in best_first] == [0.9, 0.5, 0.2, None]
    worst_first = client.get(url, params={"sort": "metric"}).json()
    assert [t["value"] for t in worst_first] == [0.2, 0.5, 0.9, None]
    running = client.get(url, params={"status": "running"})
    assert [t["id"] for t in running.json()] == [trials[3]["id"]]
    assert running.headers["X-Total-Count"] == "1"
    both = client.get(url, params=[("status", "running"), ("status", "completed")]).json()
    assert len(both) == 4
    assert client.get(url, params={"stage": 1}).json() == []
    assert len(client.get(url, params={"limit": 2, "offset": 3}).json()) == 1


def test_bad_trial_listing_parameters_are_422(client: TestClient) -> None:
    sweep = submit(client)
    url = f"{API}/sweeps/{sweep['id']}/trials"
    bad = client.get(url, params={"sort": "params; drop table trials"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["query", "sort"]
    assert client.get(url, params={"status": "exploded"}).status_code == 422
    assert client.get(url, params={"limit": 0}).status_code == 422


def test_best_is_the_best_completed_trial_for_the_mode(client: TestClient) -> None:
    sweep = submit(client, objective={"metric": "val_loss", "mode": "min"}, stages=[{"trials": 3, "epochs": 1}])
    trials = claim(client, sweep["id"], count=3)
    for trial, loss in zip(trials, [0.4, 0.1, 0.3], strict=True):
        response = client.post(
            f"{API}/trials/{trial['id']}/finish",
            json={"lease_token": trial["lease_token"], "status": "completed", "metrics": {"val_loss": loss}},
        )
        assert response.status_code == 200
    body = client.get(f"{API}/sweeps/{sweep['id']}").json()
    assert body["best"]["id"] == trials[1]["id"]
    assert body["best"]["value"] == 0.1
    assert body["status"] == "completed"


def test_a_status_filter_takes_comma_separated_statuses(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 4, "epochs": 1}])
    trials = claim(client, sweep["id"], count=4)
    finish(client, trials[0], 0.5)
    finish(client, trials[1], 0.6, status="failed")
    url = f"{API}/sweeps/{sweep['id']}/trials"
    both = client.get(url, params={"status": "completed,failed"})
    assert both.status_code == 200, both.text
    assert sorted(t["status"] for t in both.json()) == ["completed", "failed"]
    mixed = client.get(url, params=[("status", "completed, failed"), ("status", "running")]).json()
    assert len(mixed) == 4
    unknown = client.get(url, params={"status": "completed,exploded"})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"][:2] == ["query", "status"]


def test_each_stage_shows_its_own_best_value(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 3, "epochs": 1}, {"trials": 2, "epochs": 1, "top_k": 2}])
    for trial, value in zip(claim(client, sweep["id"], count=3), [0.5, 0.9, 0.7], strict=True):
        finish(client, trial, value)
    [first] = claim(client, sweep["id"])
    finish(client, first, 0.6)
    now = client.get(f"{API}/sweeps/{sweep['id']}").json()
    assert [stage["best_value"] for stage in now["stages"]] == [0.9, 0.6]
    assert now["best"]["value"] == 0.9

    low = submit(client, objective={"metric": "val_accuracy", "mode": "min"}, stages=[{"trials": 2, "epochs": 1}])
    for trial, value in zip(claim(client, low["id"], count=2), [0.5, 0.2], strict=True):
        finish(client, trial, value)
    assert client.get(f"{API}/sweeps/{low['id']}").json()["stages"][0]["best_value"] == 0.2


def test_after_a_cancel_no_stage_it_stopped_shows_completed(client: TestClient) -> None:
    three = [{"trials": 2, "epochs": 1}, {"trials": 2, "epochs": 1, "top_k": 1}, {"trials": 2, "epochs": 1}]
    sweep = submit(client, stages=three)
    for trial, value in zip(claim(client, sweep["id"], count=2), [0.5, 0.9], strict=True):
        finish(client, trial, value)
    claim(client, sweep["id"])  # stage 1 runs
    cancelled = client.post(f"{API}/sweeps/{sweep['id']}/cancel").json()
    # Stage 0 ran to its end; the cancel stopped stage 1 and kept stage 2 from starting.
    assert [stage["status"] for stage in cancelled["stages"]] == ["completed", "cancelled", "cancelled"]
    assert [stage["status"] for stage in client.get(f"{API}/sweeps/{sweep['id']}").json()["stages"]] == [
        "completed",
        "cancelled",
        "cancelled",
    ]

    # A stage cancelled before any of its trials ran is cancelled too, not completed.
    early = submit(client, stages=[{"trials": 2, "epochs": 1}])
    stopped = client.post(f"{API}/sweeps/{early['id']}/cancel").json()
    assert [stage["status"] for stage in stopped["stages"]] == ["cancelled"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/sweeps", {"limit": 2**70}),
        ("/sweeps", {"offset": 2**31}),
        ("/sweeps", {"offset": -1}),
        ("/sweeps/1/trials", {"stage": 2**31}),
        ("/sweeps/1/trials", {"stage": 2**70}),
        ("/sweeps/1/trials", {"stage": 1.5}),
        ("/sweeps/1/trials", {"limit": 10**30}),
        ("/sweeps/1/trials", {"offset": 2**64}),
        (f"/sweeps/{2**70}", {}),
        (f"/sweeps/{2**31}/trials", {}),
        (f"/trials/{2**64}", {}),
    ],
)
def test_numbers_in_the_query_past_what_the_database_holds_are_422(
    client: TestClient, path: str, params: dict[str, Any]
) -> None:
    submit(client)
    response = client.get(f"{API}{path}", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["path"] == (next(iter(params)) if params else path.split("/")[1][:-1] + "_id")
