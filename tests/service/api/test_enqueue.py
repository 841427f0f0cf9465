"""Guess and check: ``POST /sweeps/{id}/trials`` and a stage's ``enqueue``. Enqueued trials
are validated against the stage's space, run ahead of the strategy's, count within the
stage's trials, and a client's key makes the call idempotent."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from hypersweep.service.schemas import EnqueueIn, SweepSpec
from hypersweep.service.store import Store
from hypersweep.service.validation import SpecError, check_spec
from tests.conftest import sweep_doc
from tests.service.api.test_sweeps import claim, finish, submit
from tests.service.test_claims import run_workers

API = "/api/v1"
GOOD = {"lr": 0.01, "dropout": 0.1}


def enqueue(client: TestClient, sweep_id: int, expect: int = 201, **body: Any) -> dict[str, Any]:
    response = client.post(f"{API}/sweeps/{sweep_id}/trials", json=body)
    assert response.status_code == expect, response.text
    answer: dict[str, Any] = response.json()
    return answer


def errors(answer: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    return {tuple(e["loc"]): e["msg"] for e in answer["detail"]}


def test_enqueued_trials_run_ahead_of_the_strategys_and_count_within_the_stage(client: TestClient) -> None:
    plain = submit(client, name="plain")
    plain_params = [t["params"] for t in claim(client, plain["id"], count=2)]
    sweep = submit(client)
    first = claim(client, sweep["id"])  # the strategy's first trial is already out
    made = enqueue(client, sweep["id"], params=[GOOD, {"lr": 0.1, "dropout": 0.2}])
    assert [t["status"] for t in made["trials"]] == ["queued", "queued"]
    assert [t["params"] for t in made["trials"]] == [GOOD, {"lr": 0.1, "dropout": 0.2}]
    assert all(t["enqueued"] for t in made["trials"]) and made["stage"] == 0

    later = claim(client, sweep["id"], count=4)
    # The enqueued ones first, then the strategy's, numbered as if none had been enqueued.
    assert [t["params"] for t in later[:2]] == [GOOD, {"lr": 0.1, "dropout": 0.2}]
    assert [t["enqueued"] for t in later] == [True, True, False]
    assert [first[0]["params"], later[2]["params"]] == plain_params
    # Four trials in all: two of the strategy's and the two enqueued.
    assert claim(client, sweep["id"]) == []
    stage = client.get(f"{API}/sweeps/{sweep['id']}").json()["stages"][0]
    assert (stage["trials"], stage["enqueued"], stage["counts"]) == (4, 2, {"running": 4})


def test_params_are_checked_against_the_stage_space_with_their_path(client: TestClient) -> None:
    sweep = submit(client, space={**sweep_doc()["space"], "hidden": {"type": "int", "low": 8, "high": 64}})
    answer = enqueue(client, sweep["id"], 422, params={"lr": 5.0, "dropout": "x", "hidden": 8.5, "momentum": 0.9})
    found = errors(answer)
    assert "outside" in found["body", "params", "lr"]
    assert "not a number" in found["body", "params", "dropout"]
    assert "whole number" in found["body", "params", "hidden"]
    assert "not a parameter" in found["body", "params", "momentum"]
    answer = enqueue(client, sweep["id"], 422, params=[{**GOOD, "hidden": 8}, {"lr": 0.01, "hidden": 8}])
    assert "missing" in errors(answer)["body", "params", 1, "dropout"]
    answer = enqueue(client, sweep["id"], 422, params={**GOOD, "hidden": 8}, stage=3)
    assert "no stage 3" in errors(answer)["body", "stage"]
    # Nothing was stored; a whole number on an int axis given as 16.0 is taken as 16.
    assert client.get(f"{API}/sweeps/{sweep['id']}/trials").json() == []
    made = enqueue(client, sweep["id"], params={"lr": 1, "dropout": 0, "hidden": 16.0})
    assert made["trials"][0]["params"] == {"lr": 1.0, "dropout": 0.0, "hidden": 16}


def test_the_same_params_twice_in_a_stage_are_refused_unless_allowed(client: TestClient) -> None:
    sweep = submit(client)
    enqueue(client, sweep["id"], params=GOOD)
    answer = enqueue(client, sweep["id"], 422, params=GOOD)
    assert "already has a trial with these params" in errors(answer)["body", "params"]
    answer = enqueue(client, sweep["id"], 422, params=[{"lr": 0.5, "dropout": 0.1}] * 2)
    assert "twice" in errors(answer)["body", "params", 1]
    # A strategy's trial counts too.
    strategy = claim(client, sweep["id"], count=2)[1]
    assert not strategy["enqueued"]
    enqueue(client, sweep["id"], 422, params=strategy["params"])
    made = enqueue(client, sweep["id"], params=GOOD, allow_duplicate=True)
    assert made["trials"][0]["params"] == GOOD


def test_the_same_key_answers_the_same_trials_and_adds_none(client: TestClient) -> None:
    sweep = submit(client)
    made = enqueue(client, sweep["id"], params=[GOOD], key="k-1")
    again = enqueue(client, sweep["id"], 200, params=[GOOD], key="k-1")
    assert [t["id"] for t in again["trials"]] == [t["id"] for t in made["trials"]]
    assert len(client.get(f"{API}/sweeps/{sweep['id']}/trials").json()) == 1
    # Still the same once the trial runs; other params under that key are refused.
    claim(client, sweep["id"])
    assert enqueue(client, sweep["id"], 200, params=[GOOD], key="k-1")["trials"][0]["status"] == "running"
    answer = enqueue(client, sweep["id"], 409, params={"lr": 0.2, "dropout": 0.1}, key="k-1")
    assert "k-1" in answer["detail"]


def test_the_stage_budget_and_the_sweep_state_are_respected(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 2, "epochs": 1}])
    answer = enqueue(client, sweep["id"], 409, params=[GOOD, {"lr": 0.1, "dropout": 0.1}, {"lr": 0.2, "dropout": 0.1}])
    assert "has 2 of its 2 trials left" in answer["detail"]
    enqueue(client, sweep["id"], params=[GOOD, {"lr": 0.1, "dropout": 0.1}])
    trials = claim(client, sweep["id"], count=3)
    assert [t["enqueued"] for t in trials] == [True, True]
    for trial in trials:
        finish(client, trial, 0.5)
    answer = enqueue(client, sweep["id"], 409, params={"lr": 0.3, "dropout": 0.1})
    assert "completed" in answer["detail"]
    assert client.post(f"{API}/sweeps/999/trials", json={"params": GOOD}).status_code == 404


def test_a_later_stage_runs_its_enqueued_trials_first_when_it_starts(client: TestClient) -> None:
    stages = [{"trials": 2, "epochs": 1}, {"trials": 3, "epochs": 2, "top_k": 1}]
    sweep = submit(client, stages=stages)
    # Checked against the sweep's space, as the stage's own is derived when it starts.
    made = enqueue(client, sweep["id"], params={"lr": 0.9, "dropout": 0.45}, stage=1, key="later")
    assert made["trials"] == [] and made["waiting"] == [{"lr": 0.9, "dropout": 0.45}]
    assert enqueue(client, sweep["id"], 200, params={"lr": 0.9, "dropout": 0.45}, stage=1, key="later") == made
    for trial in claim(client, sweep["id"], count=2):
        finish(client, trial, 0.5)
    first, *rest = claim(client, sweep["id"], count=8)
    assert (first["stage"], first["params"], first["enqueued"]) == (1, {"lr": 0.9, "dropout": 0.45}, True)
    assert [t["enqueued"] for t in rest] == [False, False]
    assert len({t["number"] for t in [first, *rest]}) == 3
    stage = client.get(f"{API}/sweeps/{sweep['id']}").json()["stages"][1]
    assert (stage["trials"], stage["enqueued"], stage["waiting"]) == (3, 1, [])
    again = enqueue(client, sweep["id"], 200, params={"lr": 0.9, "dropout": 0.45}, stage=1, key="later")
    assert [t["id"] for t in again["trials"]] == [first["id"]]
    # Stage 0 has ended.
    assert "has ended" in enqueue(client, sweep["id"], 409, params=GOOD, stage=0)["detail"]


def test_a_stage_enqueue_in_the_document(client: TestClient) -> None:
    stages = [
        {"trials": 3, "epochs": 1, "enqueue": [GOOD]},
        {"trials": 2, "epochs": 1, "top_k": 1, "enqueue": [{"lr": 0.5, "dropout": 0.3}]},
    ]
    sweep = submit(client, stages=stages)
    assert [s["enqueued"] for s in sweep["stages"]] == [1, 1]
    assert sweep["stages"][1]["waiting"] == [{"lr": 0.5, "dropout": 0.3}]
    first = claim(client, sweep["id"])[0]
    assert (first["number"], first["params"], first["enqueued"]) == (0, GOOD, True)

    bad = [{"trials": 1, "epochs": 1, "enqueue": [{"lr": 2.0, "dropout": 0.1}, GOOD]}]
    response = client.post(f"{API}/sweeps", json=sweep_doc(stages=bad))
    assert response.status_code == 422
    found = errors(response.json())
    assert "outside" in found["body", "stages", 0, "enqueue", 0, "lr"]
    assert "cannot run 2 enqueued" in found["body", "stages", 0, "enqueue"]


def test_an_enqueued_result_informs_the_next_stage(client: TestClient) -> None:
    stages = [{"trials": 3, "epochs": 1, "enqueue": [{"lr": 0.1, "dropout": 0.25}]}, {"trials": 1, "top_k": 1}]
    sweep = submit(client, stages=stages)
    for trial in claim(client, sweep["id"], count=3):
        finish(client, trial, 0.9 if trial["enqueued"] else 0.1)
    space = client.get(f"{API}/sweeps/{sweep['id']}").json()["stages"][1]["space"]
    assert space["lr"]["low"] < 0.1 < space["lr"]["high"] < 1.0


@pytest.mark.parametrize("keyed", [True, False])
def test_no_duplicate_trial_under_concurrent_enqueues(store: Store, keyed: bool) -> None:
    spec = SweepSpec.model_validate(sweep_doc(stages=[{"trials": 40, "epochs": 1}]))
    sweep_id = store.create_sweep(spec=spec, plan=check_spec(spec)).id
    made: list[list[int]] = []
    refused: list[SpecError] = []

    def call(index: int) -> None:
        request = EnqueueIn(params=GOOD, key="same" if keyed else None)
        try:
            made.append([t.id for t in store.enqueue(sweep_id=sweep_id, request=request)[0].trials])
        except SpecError as exc:
            refused.append(exc)

    run_workers(call, 16)
    trials, total = store.list_trials(sweep_id=sweep_id)
    assert total == 1 and trials[0].params == GOOD
    if keyed:
        assert made == [[trials[0].id]] * 16
    else:
        assert (made, len(refused)) == ([[trials[0].id]], 15)
