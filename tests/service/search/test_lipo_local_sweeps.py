"""LIPO and local search inside the service, on every backend: parallel claims get
distinct points inside the stage's space, a restarted service goes on as one that kept
running, and what a server cannot run is refused at submit time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import scipy  # type: ignore[import-untyped]
from fastapi.testclient import TestClient

from hypersweep.service.claims import Claims
from hypersweep.service.db import Database
from hypersweep.service.schemas import SweepSpec
from hypersweep.service.store import Store
from hypersweep.service.validation import check_spec
from tests.conftest import sweep_doc
from tests.service.api.test_sweeps import API, claim, submit
from tests.service.search import test_bayes_sweeps
from tests.service.search.test_bayes_sweeps import SPACE, inside

NUMERIC = {name: axis for name, axis in SPACE.items() if axis["type"] != "categorical"}
LOCAL_STAGES = [
    {"trials": 8, "epochs": 1},
    {"trials": 10, "epochs": 3, "top_k": 2, "search": {"kind": "local", "seed": 4}},
]


def loss(params: dict[str, Any]) -> float | None:
    """``test_bayes_sweeps``'s loss; a space without ``optimizer`` counts as adam."""
    return test_bayes_sweeps.loss({"optimizer": "adam", **params})


def finish(client: TestClient, trial: dict[str, Any]) -> None:
    test_bayes_sweeps.finish(client, {**trial, "params": {"optimizer": "adam", **trial["params"]}})


def key(params: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted(params.items()))


def test_a_local_stage_runs_one_trial_per_start_at_a_time(client: TestClient) -> None:
    sweep = submit(
        client,
        space=SPACE,
        objective={"metric": "val_loss", "mode": "min"},
        search={"kind": "random", "seed": 4},
        stages=LOCAL_STAGES,
        parallelism=8,
    )
    coarse = claim(client, sweep["id"], count=8)
    for trial in coarse:
        finish(client, trial)
    ranked = sorted((t for t in coarse if loss(t["params"]) is not None), key=lambda t: loss(t["params"]))  # type: ignore[arg-type, return-value]
    # Eight slots are free, but the local stage has two starts, each waiting on its trial.
    first = claim(client, sweep["id"], count=8)
    assert [t["params"] for t in first] == [t["params"] for t in ranked[:2]]
    assert all(t["stage"] == 1 and t["trainer"]["epochs"] == 3 for t in first)
    assert claim(client, sweep["id"], count=8) == []
    finish(client, first[0])
    (following,) = claim(client, sweep["id"], count=8)
    finish(client, first[1])
    seen = [*first, following]
    finish(client, following)
    while batch := claim(client, sweep["id"], count=8):
        assert len(batch) <= 2
        for trial in batch:
            finish(client, trial)
        seen += batch
    done = client.get(f"{API}/sweeps/{sweep['id']}").json()
    assert done["status"] == "completed"
    fine = done["stages"][1]
    assert sum(fine["counts"].values()) == 10 == len(seen)
    assert all(inside(t["params"], fine["space"]) for t in seen)
    assert len({key(t["params"]) for t in seen}) == 10


def test_local_in_a_first_stage_is_422(client: TestClient) -> None:
    for overrides, path in [
        ({"search": {"kind": "local"}, "stages": [{"trials": 4}, {"trials": 4}]}, "search.kind"),
        ({"stages": [{"trials": 4, "search": {"kind": "local"}}]}, "stages.0.search.kind"),
    ]:
        response = client.post(f"{API}/sweeps", json=sweep_doc(**overrides))
        assert response.status_code == 422, response.text
        detail = {e["path"]: e["msg"] for e in response.json()["detail"]}
        assert "stage 0 has none" in detail[path]
    assert client.get(f"{API}/sweeps").json() == []


def test_lipo_on_a_categorical_axis_is_422(client: TestClient) -> None:
    doc = sweep_doc(space=SPACE, search={"kind": "lipo"})
    response = client.post(f"{API}/sweeps", json=doc)
    assert response.status_code == 422, response.text
    detail = {e["path"]: e["msg"] for e in response.json()["detail"]}
    assert "optimizer is categorical" in detail["search.kind"]


def test_local_without_cobyqa_is_422_naming_the_extra(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scipy, "__version__", "1.11.4")
    response = client.post(f"{API}/sweeps", json=sweep_doc(stages=LOCAL_STAGES))
    assert response.status_code == 422, response.text
    detail = {e["path"]: e["msg"] for e in response.json()["detail"]}
    assert "hypersweep[local]" in detail["stages.1.search.kind"]
    assert client.get(f"{API}/sweeps").json() == []


def _run(make_claims: Callable[[], Claims], sweep_id: int) -> list[dict[str, Any]]:
    """Claims of three, each batch finished in reverse before the next claim, to the end."""
    params: list[dict[str, Any]] = []
    while True:
        claims = make_claims()
        batch = claims.claim(worker_id="w", sweep_id=sweep_id, count=3)
        if not batch:
            return params
        for trial in reversed(batch):
            value = loss(trial.params)
            status = "diverged" if value is None else "completed"
            claims.store.finish(
                trial_id=trial.id, lease_token=trial.lease_token, status=status, metrics={"val_loss": value or 1e6}
            )
        params += [trial.params for trial in batch]


@pytest.mark.parametrize(
    "overrides",
    [
        {"space": NUMERIC, "search": {"kind": "lipo", "seed": 3}, "stages": [{"trials": 12, "epochs": 1}]},
        {"space": SPACE, "search": {"kind": "random", "seed": 3}, "stages": LOCAL_STAGES},
    ],
    ids=["lipo", "local"],
)
def test_a_restarted_service_goes_on_as_one_that_kept_running(database_url: str, overrides: dict[str, Any]) -> None:
    spec = SweepSpec.model_validate(sweep_doc(objective={"metric": "val_loss", "mode": "min"}, **overrides))
    db = Database(database_url)
    try:
        kept = Claims(Store(db, lease_seconds=30))
        steady = kept.store.create_sweep(spec=spec, plan=check_spec(spec)).id
        restarted = kept.store.create_sweep(spec=spec, plan=check_spec(spec)).id
        # One store and policy (one process) all along, against new ones before every claim.
        steady_params = _run(lambda: kept, steady)
        assert _run(lambda: Claims(Store(db, lease_seconds=30)), restarted) == steady_params
        last = spec.stages[-1]
        assert last.trials is not None
        assert len(steady_params) == sum(s.trials or 0 for s in spec.stages)
        assert len({key(p) for p in steady_params[-last.trials :]}) == last.trials
    finally:
        db.dispose()


def test_one_lipo_claim_of_many_trials_gets_distinct_points_inside_the_space(client: TestClient) -> None:
    sweep = submit(
        client,
        space=NUMERIC,
        objective={"metric": "val_loss", "mode": "min"},
        search={"kind": "lipo", "seed": 2},
        stages=[{"trials": 30, "epochs": 1}],
        parallelism=16,
    )
    for trial in claim(client, sweep["id"], count=6):
        finish(client, trial)
    batch = claim(client, sweep["id"], count=16)
    more = claim(client, sweep["id"], count=16)  # every slot is taken: nothing more
    assert len(batch) == 16 and more == []
    points = [t["params"] for t in batch]
    assert len({key(p) for p in points}) == 16
    assert all(inside(p, NUMERIC) for p in points)


@pytest.mark.parametrize(
    ("overrides", "fresh"),
    [
        ({"space": NUMERIC, "search": {"kind": "lipo", "seed": 3}, "stages": [{"trials": 20, "epochs": 1}]}, 4),
        ({"space": SPACE, "search": {"kind": "random", "seed": 3}, "stages": LOCAL_STAGES}, 0),
    ],
    ids=["lipo", "local"],
)
def test_a_restarted_service_proposes_around_the_trials_still_running(
    database_url: str, overrides: dict[str, Any], fresh: int
) -> None:
    spec = SweepSpec.model_validate(sweep_doc(objective={"metric": "val_loss", "mode": "min"}, **overrides))
    db = Database(database_url)
    try:
        before = Claims(Store(db, lease_seconds=30))
        sweep_id = before.store.create_sweep(spec=spec, plan=check_spec(spec)).id
        for trial in before.claim(worker_id="w", sweep_id=sweep_id, count=8):
            value = loss(trial.params)
            status = "diverged" if value is None else "completed"
            before.store.finish(
                trial_id=trial.id, lease_token=trial.lease_token, status=status, metrics={"val_loss": value or 1e6}
            )
        running = before.claim(worker_id="w", sweep_id=sweep_id, count=4)
        # A new process: its designers are rebuilt from the stored trials, the running ones pending.
        after = Claims(Store(db, lease_seconds=30)).claim(worker_id="w", sweep_id=sweep_id, count=4)
        assert len(after) == fresh
        assert not {key(t.params) for t in after} & {key(t.params) for t in running}
        assert len({key(t.params) for t in after}) == len(after)
    finally:
        db.dispose()
