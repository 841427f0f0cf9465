"""The search policy (``service.search.policy``) inside the service: the designers it keeps
between claims, and what a stage change derives, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypersweep.service.claims import Claims
from hypersweep.service.db import Database
from hypersweep.service.schemas import SweepSpec
from hypersweep.service.search.bayes import N_STARTUP_TRIALS
from hypersweep.service.store import Store
from hypersweep.service.validation import check_spec
from tests.conftest import sweep_doc
from tests.service.search.test_bayes_sweeps import SPACE, loss


def create(store: Store, **overrides: Any) -> int:
    spec = SweepSpec.model_validate(sweep_doc(**overrides))
    return store.create_sweep(spec=spec, plan=check_spec(spec)).id


def _claim_loop(make_claims: Callable[[], Claims], sweep_id: int) -> list[dict[str, Any]]:
    """Run a sweep to the end with claims of one, then one of three finished in reverse
    order, then ones again; ``make_claims`` gives the claims (and their store) each claim
    goes to."""
    sizes = [1] * (N_STARTUP_TRIALS - 2) + [3] + [1] * 5
    params: list[dict[str, Any]] = []
    for size in sizes:
        claims = make_claims()
        batch = claims.claim(worker_id="w", sweep_id=sweep_id, count=size)
        assert len(batch) == size
        for trial in reversed(batch):
            value = loss(trial.params)
            status = "diverged" if value is None else "completed"
            claims.store.finish(
                trial_id=trial.id, lease_token=trial.lease_token, status=status, metrics={"val_loss": value or 1e6}
            )
            params.append(trial.params)
    return params


def test_a_restarted_service_continues_a_bayes_sweep_as_one_that_kept_running(database_url: str) -> None:
    doc = sweep_doc(
        space=SPACE,
        objective={"metric": "val_loss", "mode": "min"},
        search={"kind": "bayes", "sampler": "tpe", "seed": 9},
        stages=[{"trials": N_STARTUP_TRIALS + 6, "epochs": 1}],
    )
    spec = SweepSpec.model_validate(doc)
    db = Database(database_url)
    try:
        kept = Claims(Store(db, lease_seconds=30))
        steady = kept.store.create_sweep(spec=spec, plan=check_spec(spec)).id
        restarted = kept.store.create_sweep(spec=spec, plan=check_spec(spec)).id
        # One store and policy (one process) all along, against new ones before every claim.
        steady_params = _claim_loop(lambda: kept, steady)
        restarted_params = _claim_loop(lambda: Claims(Store(db, lease_seconds=30)), restarted)
        assert restarted_params == steady_params
        assert kept.store.get_sweep(sweep_id=restarted).counts == kept.store.get_sweep(sweep_id=steady).counts
    finally:
        db.dispose()


def test_a_later_grid_stage_runs_only_what_its_narrowed_grid_holds_and_says_so(database_url: str) -> None:
    db = Database(database_url)
    store = Store(db, lease_seconds=30)
    claims = Claims(store)
    space = {
        "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
        "optimizer": {"type": "categorical", "values": ["sgd", "adam"]},
    }
    # Stage 1's grid is 2 x 2 on the sweep's space, but narrowed around stage 0's single
    # best trial its optimizer axis keeps one value: a grid of 2.
    sweep_id = create(
        store,
        space=space,
        stages=[
            {"trials": 4, "epochs": 1},
            {"trials": 4, "epochs": 2, "top_k": 1, "search": {"kind": "grid", "grid_points": 2}},
        ],
    )
    try:
        first = claims.claim(worker_id="w", sweep_id=sweep_id, count=4)
        assert len({t.params["optimizer"] for t in first}) == 2
        for rank, trial in enumerate(first):
            metrics = {"val_accuracy": 0.9 - rank / 10}
            store.finish(trial_id=trial.id, lease_token=trial.lease_token, status="completed", metrics=metrics)
        second = claims.claim(worker_id="w", sweep_id=sweep_id, count=4)
        assert len(second) == 2
        assert {t.params["optimizer"] for t in second} == {first[0].params["optimizer"]}
        sweep = store.get_sweep(sweep_id=sweep_id)
        assert sweep.stages[1].trials == 2
        assert sweep.stages[1].space is not None
        assert sweep.stages[1].space["optimizer"]["values"] == [first[0].params["optimizer"]]
        assert "stage 1 asks for 4 trials but its grid has 2; it runs 2" in sweep.warnings
    finally:
        db.dispose()
