"""A sweep whose search cannot produce trials (its designer raises, or the narrowing that
derives a stage's space does) ends ``failed`` with the error in its warnings, and never
fails a claim: the other sweeps are served, claims without ``sweep_id`` included.

Designers that raise are put in place of a real one (``DESIGNERS``, ``narrow``): the inputs
known to make Optuna or the narrowing raise are handled now (see ``test_bayes`` and
``test_stages``), and what is tested here is that any other failure stays inside its sweep.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hypersweep.service.search import policy
from hypersweep.service.search.base import Params
from hypersweep.service.search.random import RandomDesigner
from hypersweep.service.search.registry import DESIGNERS
from hypersweep.service.search.space import Space
from hypersweep.service.search.stages import Narrowed
from tests.service.api.test_sweeps import API, claim, finish, submit
from tests.service.api.test_trials import expire_lease, post

ALLOCATION = "Unable to allocate 8.00 TiB for an array with shape (1099511627777,)"


class _ExhaustedDesigner(RandomDesigner):
    """A designer that fails as Optuna's GP did over an int axis of 2**40 values."""

    learns = True

    def suggest(self, start: int, count: int) -> list[Params]:
        raise MemoryError(ALLOCATION)


@pytest.fixture
def exhausted_bayes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(DESIGNERS, "bayes", _ExhaustedDesigner)


@pytest.fixture
def narrowing_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(space: Space, **kwargs: Any) -> Narrowed:
        raise ValueError("low (0.5) must be less than high (0.5)")

    monkeypatch.setattr(policy, "narrow", fails)


def sweep(client: TestClient, sweep_id: int) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"{API}/sweeps/{sweep_id}").json()
    return body


@pytest.mark.usefixtures("exhausted_bayes")
def test_a_sweep_whose_designer_raises_fails_and_claims_without_a_sweep_serve_the_others(client: TestClient) -> None:
    broken = submit(client, search={"kind": "bayes"}, stages=[{"trials": 5, "epochs": 1}])
    healthy = submit(client, stages=[{"trials": 3, "epochs": 1}])
    # The broken sweep is the oldest: a claim for any sweep tries it first.
    trials = claim(client, count=2)
    assert [t["sweep_id"] for t in trials] == [healthy["id"]] * 2
    failed = sweep(client, broken["id"])
    assert failed["status"] == "failed" and failed["finished_at"] is not None
    assert [s["status"] for s in failed["stages"]] == ["failed"]
    [warning] = failed["warnings"]
    assert warning.startswith("stage 0: the search could not produce trials")
    assert f"MemoryError: {ALLOCATION}" in warning
    # Asked for by its id, the failed sweep has nothing to give, and says so calmly.
    assert client.post(f"{API}/trials/claim", json={"worker_id": "w", "sweep_id": broken["id"]}).status_code == 204
    assert client.post(f"{API}/sweeps/{broken['id']}/cancel").status_code == 409
    assert sweep(client, healthy["id"])["status"] == "running"
    assert [s["status"] for s in client.get(f"{API}/sweeps").json()] == ["running", "failed"]


@pytest.mark.usefixtures("exhausted_bayes")
def test_a_claim_for_the_failing_sweep_answers_the_results_it_carries(client: TestClient) -> None:
    # Stage 0 is random; the designer of stage 1 raises once the claim moves to it.
    broken = submit(
        client,
        stages=[{"trials": 2, "epochs": 1}, {"trials": 3, "epochs": 1, "top_k": 1, "search": {"kind": "bayes"}}],
    )
    a, b = claim(client, broken["id"], count=2)
    finished = [
        {"trial_id": t["id"], "lease_token": t["lease_token"], "status": "completed", "metrics": {"val_accuracy": v}}
        for t, v in ((a, 0.4), (b, 0.6))
    ]
    response = client.post(
        f"{API}/trials/claim", json={"worker_id": "w", "sweep_id": broken["id"], "count": 2, "finished": finished}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "trials": [],
        "finished": [
            {"trial_id": a["id"], "code": 200, "status": "completed", "detail": None},
            {"trial_id": b["id"], "code": 200, "status": "completed", "detail": None},
        ],
    }
    failed = sweep(client, broken["id"])
    assert failed["status"] == "failed"
    assert [s["status"] for s in failed["stages"]] == ["completed", "failed"]
    assert failed["counts"] == {"completed": 2}
    assert "stage 1: the search could not produce trials" in failed["warnings"][-1]


@pytest.mark.usefixtures("narrowing_fails")
def test_a_finish_that_ends_a_stage_whose_successor_cannot_start_answers_200(client: TestClient) -> None:
    broken = submit(client, stages=[{"trials": 1, "epochs": 1}, {"trials": 2, "epochs": 1, "top_k": 1}])
    [trial] = claim(client, broken["id"])
    assert finish(client, trial, 0.5)["status"] == "completed"
    failed = sweep(client, broken["id"])
    assert failed["status"] == "failed"
    assert [(s["status"], s["space"] is None) for s in failed["stages"]] == [("completed", False), ("failed", True)]
    assert failed["current_stage"] == 1
    assert "ValueError: low (0.5) must be less than high (0.5)" in failed["warnings"][-1]


def test_running_trials_of_a_sweep_that_fails_are_told_to_stop(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = submit(client, parallelism=3, stages=[{"trials": 5, "epochs": 1}])
    healthy = submit(client, search={"kind": "grid", "grid_points": 2}, stages=[{"trials": 4, "epochs": 1}])
    a, b = claim(client, broken["id"], count=2)
    monkeypatch.setattr(RandomDesigner, "suggest", _ExhaustedDesigner.suggest)
    assert claim(client, broken["id"]) == []
    told = {"action": "stop", "lease_expires_at": None, "reason": None, "detail": None}
    assert post(client, a, "heartbeat").json() == told
    # Its holder finishes it as told; the trial keeps the status the failure gave it.
    assert finish(client, b, 0.5)["status"] == "cancelled"
    failed = sweep(client, broken["id"])
    assert (failed["status"], failed["counts"]) == ("failed", {"cancelled": 2})
    assert [t["sweep_id"] for t in claim(client, count=4)] == [healthy["id"]] * 4


@pytest.mark.usefixtures("narrowing_fails")
def test_lease_expiry_in_a_sweep_that_fails_does_not_stop_the_others_expiring(
    client: TestClient, database_url: str
) -> None:
    broken = submit(client, max_attempts=1, stages=[{"trials": 1, "epochs": 1}, {"trials": 2, "epochs": 1, "top_k": 1}])
    healthy = submit(client, stages=[{"trials": 2, "epochs": 1}])
    [lost] = claim(client, broken["id"])
    [waiting] = claim(client, healthy["id"])
    expire_lease(database_url, lost["id"])
    expire_lease(database_url, waiting["id"])
    store = client.app.state.store  # type: ignore[attr-defined]
    # The broken sweep's expiry ends its stage, whose successor cannot start: that sweep
    # fails, and the healthy one's trial is queued again all the same.
    assert store.expire_leases() == 1
    assert sweep(client, broken["id"])["status"] == "failed"
    trial = client.get(f"{API}/trials/{waiting['id']}").json()
    assert (trial["status"], trial["attempt"]) == ("queued", 2)


def test_an_axis_narrowing_would_close_is_kept_and_the_next_stage_is_served(client: TestClient) -> None:
    # An axis one float wide: narrowed around either end, both bounds round to one number.
    momentum = {"type": "float", "low": 0.5, "high": math.nextafter(0.5, 1.0), "scale": "linear"}
    space = {"lr": {"type": "float", "low": 0.01, "high": 0.1, "scale": "log"}, "momentum": momentum}
    narrow_one = submit(client, space=space, stages=[{"trials": 2, "epochs": 1}, {"trials": 2, "top_k": 1}])
    for trial in claim(client, narrow_one["id"], count=2):
        finish(client, trial, 0.5)
    second = claim(client, narrow_one["id"], count=2)
    assert [t["stage"] for t in second] == [1, 1]
    body = sweep(client, narrow_one["id"])
    assert body["status"] == "running"
    assert body["stages"][1]["space"]["momentum"] == momentum
