"""Bayesian search inside the service: a coarse-to-fine sweep with a bayes stage driven
through the REST API. The designer kept between claims is ``test_policy``'s."""

from __future__ import annotations

import math
import statistics
from typing import Any

from fastapi.testclient import TestClient

from hypersweep.service.search.bayes import N_STARTUP_TRIALS
from tests.service.api.test_sweeps import API, claim, submit

SPACE = {
    "lr": {"type": "float", "low": 1e-5, "high": 1.0, "scale": "log"},
    "dropout": {"type": "float", "low": 0.0, "high": 0.6},
    "hidden": {"type": "int", "low": 16, "high": 256, "scale": "log"},
    "optimizer": {"type": "categorical", "values": ["sgd", "adam"]},
}


def loss(params: dict[str, Any]) -> float | None:
    """Validation loss of a made-up model: best at lr = 1e-2, dropout = 0.2, adam; ``None``
    (diverged) once lr passes 0.3."""
    lr = float(params["lr"])
    if lr > 0.3:
        return None
    penalty = 0.0 if params["optimizer"] == "adam" else 0.2
    width = math.log2(params["hidden"] / 64) ** 2 / 50
    return (math.log10(lr) + 2) ** 2 + (params["dropout"] - 0.2) ** 2 + width + penalty


def finish(client: TestClient, trial: dict[str, Any], status: str | None = None) -> None:
    value = loss(trial["params"])
    body: dict[str, Any] = {"lease_token": trial["lease_token"], "status": status or "completed", "metrics": {}}
    if value is None:
        body.update(status="diverged", metrics={"val_loss": 1e6})
    elif status != "failed":
        body["metrics"] = {"val_loss": value}
    response = client.post(f"{API}/trials/{trial['id']}/finish", json=body)
    assert response.status_code == 200, response.text


def inside(params: dict[str, Any], space: dict[str, Any]) -> bool:
    for name, axis in space.items():
        if axis["type"] == "categorical":
            if params[name] not in axis["values"]:
                return False
        elif not axis["low"] <= params[name] <= axis["high"]:
            return False
    return True


def test_coarse_to_fine_sweep_with_a_bayes_stage(client: TestClient) -> None:
    sweep = submit(
        client,
        space=SPACE,
        objective={"metric": "val_loss", "mode": "min"},
        search={"kind": "random", "seed": 11},
        stages=[
            {"trials": 16, "epochs": 1},
            {"trials": 18, "epochs": 3, "top_k": 5, "search": {"kind": "bayes", "sampler": "tpe", "seed": 11}},
        ],
        parallelism=4,
    )
    claims = 0
    while batch := claim(client, sweep["id"], count=3):
        claims += 1
        assert all(t["trainer"]["epochs"] == (1 if t["stage"] == 0 else 3) for t in batch)
        # One trial fails outright; the rest finish, in the reverse of their claim order.
        for i, trial in enumerate(reversed(batch)):
            finish(client, trial, "failed" if claims == 7 and i == 0 else None)

    done = client.get(f"{API}/sweeps/{sweep['id']}").json()
    assert done["status"] == "completed"
    fine = done["stages"][1]
    assert sum(fine["counts"].values()) == 18
    trials = client.get(f"{API}/sweeps/{sweep['id']}/trials", params={"limit": 100}).json()
    stage1 = [t for t in trials if t["stage"] == 1]
    assert all(inside(t["params"], fine["space"]) for t in stage1)
    assert len({tuple(sorted(t["params"].items())) for t in stage1}) == 18
    coarse_values = [t["value"] for t in trials if t["stage"] == 0 and t["value"] is not None]
    fine_values = [t["value"] for t in stage1 if t["value"] is not None]
    # Narrowed and modelled, the fine stage runs mostly better trials than the coarse one.
    assert statistics.median(fine_values) < statistics.median(coarse_values)


def test_a_bayes_stage_learns_from_the_stage_before(client: TestClient) -> None:
    """Two sweeps with the same seed and the same first stage, whose results rank the
    trials in opposite orders. Top_k covers the whole first stage, so both derive the same
    space for the second; with more results than the random start needs, the bayes stage's
    first suggestion comes from its model, and so differs between the sweeps."""

    def run(sign: float) -> dict[str, Any]:
        sweep = submit(
            client,
            space=SPACE,
            objective={"metric": "val_loss", "mode": "min"},
            search={"kind": "random", "seed": 5},
            stages=[
                {"trials": N_STARTUP_TRIALS + 2, "epochs": 1},
                {"trials": 1, "top_k": N_STARTUP_TRIALS + 2, "search": {"kind": "bayes", "seed": 5}},
            ],
            parallelism=N_STARTUP_TRIALS + 2,
        )
        for trial in claim(client, sweep["id"], count=N_STARTUP_TRIALS + 2):
            value = sign * (math.log10(trial["params"]["lr"]) + 3)
            response = client.post(
                f"{API}/trials/{trial['id']}/finish",
                json={"lease_token": trial["lease_token"], "status": "completed", "metrics": {"val_loss": value}},
            )
            assert response.status_code == 200
        [second] = claim(client, sweep["id"])
        assert second["stage"] == 1 and second["trainer"]["epochs"] == 1
        spaces = client.get(f"{API}/sweeps/{sweep['id']}").json()["stages"]
        return {"params": second["params"], "space": spaces[1]["space"]}

    low_lr_wins, high_lr_wins = run(1.0), run(-1.0)
    assert low_lr_wins["space"] == high_lr_wins["space"]
    assert low_lr_wins["params"]["lr"] < high_lr_wins["params"]["lr"]


def test_one_claim_of_64_bayes_trials_gets_64_distinct_points(client: TestClient) -> None:
    sweep = submit(
        client,
        space=SPACE,
        objective={"metric": "val_loss", "mode": "min"},
        search={"kind": "bayes", "sampler": "tpe", "seed": 2},
        stages=[{"trials": N_STARTUP_TRIALS + 64, "epochs": 1}],
        parallelism=64,
    )
    for trial in claim(client, sweep["id"], count=N_STARTUP_TRIALS):
        finish(client, trial)
    batch = claim(client, sweep["id"], count=64)
    assert len(batch) == 64
    assert len({tuple(sorted(t["params"].items())) for t in batch}) == 64
    assert all(inside(t["params"], SPACE) for t in batch)
    # Spread out, not piled on the best point so far: many decades of lr are visited.
    assert len({math.floor(math.log10(t["params"]["lr"])) for t in batch}) >= 3
