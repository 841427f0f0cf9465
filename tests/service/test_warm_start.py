"""Warm starts (``warm_start: {sweeps: [...]}``): the sources are checked at submit; the
finished trials of earlier sweeps inside the space inform learning designers and the first
stage's narrowing, and are never counted as the sweep's trials or budget."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from hypersweep.service.search.bayes import BayesDesigner
from tests.conftest import sweep_doc
from tests.service.api.test_sweeps import claim, finish, submit

API = "/api/v1"


def run_all(client: TestClient, sweep_id: int, value: Any) -> list[dict[str, Any]]:
    """Claim and finish every trial of a sweep, each with ``value(params)``."""
    done = []
    while trials := claim(client, sweep_id, count=8):
        for trial in trials:
            finish(client, trial, value(trial["params"]))
            done.append(trial)
    return done


def test_unknown_or_unlike_sources_are_refused_with_their_path(client: TestClient) -> None:
    source = submit(client)
    other = submit(client, objective={"metric": "val_loss", "mode": "min"})
    flipped = submit(client, objective={"metric": "val_accuracy", "mode": "min"})
    ids = [source["id"], 999, other["id"], flipped["id"], source["id"]]
    response = client.post(f"{API}/sweeps", json=sweep_doc(warm_start={"sweeps": ids}))
    assert response.status_code == 422, response.text
    found = {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}
    at = ("body", "warm_start", "sweeps")
    assert set(found) == {(*at, 1), (*at, 2), (*at, 3), (*at, 4)}
    assert "does not exist" in found[(*at, 1)]
    assert "min val_loss" in found[(*at, 2)] and "max val_accuracy" in found[(*at, 2)]
    assert "min val_accuracy" in found[(*at, 3)]
    assert "twice" in found[(*at, 4)]
    assert len(client.get(f"{API}/sweeps").json()) == 3  # nothing stored


def test_imported_trials_inform_a_bayes_designer_but_are_not_counted(client: TestClient) -> None:
    wide = {
        "lr": {"type": "float", "low": 1e-5, "high": 1.0, "scale": "log"},
        "dropout": sweep_doc()["space"]["dropout"],
    }
    outside = {"lr": 1e-5, "dropout": 0.1}
    source = submit(client, space=wide, stages=[{"trials": 12, "epochs": 1, "enqueue": [outside]}])
    run_all(client, source["id"], lambda p: 1 - p["dropout"])
    space = sweep_doc()["space"]  # lr from 1e-4: the source's trials below it lie outside
    sweep = submit(
        client,
        search={"kind": "bayes", "sampler": "tpe", "seed": 0},
        stages=[{"trials": 3, "epochs": 1}],
        warm_start={"sweeps": [source["id"]]},
    )
    imported = client.get(f"{API}/sweeps/{sweep['id']}/imported").json()
    assert len(imported) == 12
    inside = [t for t in imported if t["inside"]]
    assert 0 < len(inside) < 12
    assert all(t["params"]["lr"] >= space["lr"]["low"] for t in inside)
    assert f"{len(inside)} of the 12 finished trials" in sweep["warnings"][0]

    claim(client, sweep["id"])
    learner = client.app.state.store.policy._learners[(sweep["id"], 0)]  # type: ignore[attr-defined]
    assert isinstance(learner.designer, BayesDesigner)
    told = [t for t in learner.designer.study.trials if t.state.name == "COMPLETE"]
    assert sorted(float(t.value or 0) for t in told) == sorted(t["value"] for t in inside)

    # Not this sweep's trials: not in its counts, its trials, its best, or its budget.
    now = client.get(f"{API}/sweeps/{sweep['id']}").json()
    assert now["counts"] == {"running": 1} and now["best"] is None
    assert now["stages"][0]["trials"] == 3
    assert len(claim(client, sweep["id"], count=8)) == 2


def test_an_imported_best_steers_the_first_narrowing(client: TestClient) -> None:
    source = submit(client, stages=[{"trials": 1, "epochs": 1, "enqueue": [{"lr": 0.5, "dropout": 0.25}]}])
    run_all(client, source["id"], lambda p: 0.99)
    sweep = submit(
        client,
        stages=[{"trials": 3, "epochs": 1, "enqueue": [{"lr": 1e-4, "dropout": 0.0}]}, {"trials": 1, "top_k": 1}],
        warm_start={"sweeps": [source["id"]]},
    )
    # The sweep's own trials are all worse than the imported one: stage 1 narrows around it.
    run_all(client, sweep["id"], lambda p: 0.1)
    lr = client.get(f"{API}/sweeps/{sweep['id']}").json()["stages"][1]["space"]["lr"]
    assert lr["low"] < 0.5 < lr["high"]
    assert client.get(f"{API}/sweeps/{sweep['id']}").json()["best"]["value"] == 0.1


def test_trials_that_finish_after_the_submit_are_not_imported(client: TestClient) -> None:
    source = submit(client, stages=[{"trials": 2, "epochs": 1}])
    early, late = claim(client, source["id"], count=2)
    finish(client, early, 0.5)
    sweep = submit(client, warm_start={"sweeps": [source["id"]]})
    finish(client, late, 0.6)
    imported = client.get(f"{API}/sweeps/{sweep['id']}/imported").json()
    assert [t["trial_id"] for t in imported] == [early["id"]]
    assert client.get(f"{API}/sweeps/{submit(client)['id']}/imported").json() == []
