"""A sweep's sanity checks on the server (``service.store.sanity``): the sweep waits
queued, its sanity trial is handed out like any trial, and its results start the sweep,
hold it, or start it with a warning."""

from __future__ import annotations

from typing import Any

import pytest

from hypersweep.sanity import (
    SANITY_INDEX,
    CheckResult,
    judge_initial_loss,
    judge_overfit,
    judge_regularization,
    to_metrics,
)
from hypersweep.service.claims import Claims
from hypersweep.service.schemas import SweepSpec
from hypersweep.service.store import Store
from hypersweep.service.validation import check_spec
from tests.conftest import sweep_doc


def create(store: Store, **overrides: Any) -> int:
    spec = SweepSpec.model_validate(sweep_doc(**overrides))
    return store.create_sweep(spec=spec, plan=check_spec(spec)).id


def results(*, overfits: bool) -> list[CheckResult]:
    return [
        judge_initial_loss(2.31, 10),
        judge_regularization(2.31, 40.0),
        judge_overfit(1.0 if overfits else 0.35, lr=0.01),
    ]


def run_sanity_trial(store: Store, claims: Claims, sweep_id: int, checks: list[CheckResult]) -> None:
    [trial] = claims.claim(worker_id="w", sweep_id=sweep_id, count=4)
    assert trial.number == SANITY_INDEX
    assert trial.trainer["sanity_space"]["lr"]["high"] == 1.0
    store.finish(trial_id=trial.id, lease_token=trial.lease_token, status="completed", metrics=to_metrics(checks))


def test_a_sanity_sweep_waits_queued_and_hands_out_only_its_sanity_trial(store: Store) -> None:
    claims = Claims(store)
    sweep_id = create(store, sanity=True)
    sweep = store.get_sweep(sweep_id=sweep_id)
    assert sweep.status == "queued"
    assert sweep.sanity is not None and sweep.sanity.status == "pending"
    assert sweep.stages[0].status == "pending"
    assert store.running_sweep_ids() == [sweep_id]  # claimable: its sanity trial waits
    [trial] = claims.claim(worker_id="w", count=8)
    assert (trial.number, trial.stage) == (SANITY_INDEX, 0)
    # The middle of the space: the geometric mean of a log axis, the mean of a linear one.
    assert trial.params["lr"] == pytest.approx(1e-2)
    assert trial.params["dropout"] == pytest.approx(0.25)
    assert claims.claim(worker_id="w2", count=8) == []  # nothing else while it runs
    assert store.get_sweep(sweep_id=sweep_id).counts == {}


def test_checks_that_pass_start_the_sweep(store: Store) -> None:
    claims = Claims(store)
    sweep_id = create(store, sanity=True)
    run_sanity_trial(store, claims, sweep_id, results(overfits=True))
    sweep = store.get_sweep(sweep_id=sweep_id)
    assert sweep.status == "running"
    assert sweep.sanity is not None and sweep.sanity.status == "passed"
    assert [c.name for c in sweep.sanity.checks] == ["initial_loss", "regularization", "overfit"]
    assert not sweep.warnings
    trials = claims.claim(worker_id="w", sweep_id=sweep_id, count=8)
    assert len(trials) == 4 and all(t.number >= 0 for t in trials)


@pytest.mark.parametrize("mode", [True, "warn"])
def test_a_failed_check_holds_the_sweep_or_warns(store: Store, mode: Any) -> None:
    claims = Claims(store)
    sweep_id = create(store, sanity=mode)
    run_sanity_trial(store, claims, sweep_id, results(overfits=False))
    sweep = store.get_sweep(sweep_id=sweep_id)
    assert sweep.sanity is not None and sweep.sanity.status == "failed"
    [warning] = sweep.warnings
    assert "sanity checks failed: overfit (training accuracy 0.35" in warning
    if mode is True:
        assert sweep.status == "queued"
        assert claims.claim(worker_id="w", count=8) == []
        assert store.cancel_sweep(sweep_id=sweep_id).status == "cancelled"
    else:
        assert sweep.status == "running"
        assert len(claims.claim(worker_id="w", count=8)) == 4


def test_the_sanity_finish_carried_by_a_claim_starts_the_sweep_in_that_claim(store: Store) -> None:
    from hypersweep.service.schemas import FinishedIn

    claims = Claims(store)
    sweep_id = create(store, sanity=True)
    [trial] = claims.claim(worker_id="w", sweep_id=sweep_id)
    result = FinishedIn(
        trial_id=trial.id,
        lease_token=trial.lease_token,
        status="completed",
        metrics=to_metrics(results(overfits=True)),
    )
    _, claimed = claims.finish_and_claim(results=[result], worker_id="w", sweep_id=sweep_id, count=2)
    assert len(claimed) == 2 and store.get_sweep(sweep_id=sweep_id).status == "running"


def test_checks_that_could_not_run_hold_the_sweep_with_their_error(store: Store) -> None:
    claims = Claims(store)
    sweep_id = create(store, sanity=True)
    [trial] = claims.claim(worker_id="w", sweep_id=sweep_id)
    store.finish(trial_id=trial.id, lease_token=trial.lease_token, status="failed", metrics={}, error="boom")
    sweep = store.get_sweep(sweep_id=sweep_id)
    assert sweep.status == "queued"
    assert sweep.sanity is not None and sweep.sanity.error == "boom"
    assert "could not run: boom" in sweep.warnings[0]


def test_a_sanity_option_other_than_true_warn_or_false_is_refused_with_its_path(client: Any) -> None:
    response = client.post("/api/v1/sweeps", json=sweep_doc(sanity="maybe"))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["path"] == "sanity"
    assert "sanity is true, warn or false, not 'maybe'" in error["msg"]
    assert client.get("/api/v1/sweeps").json() == []
