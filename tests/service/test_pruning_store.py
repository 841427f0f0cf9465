"""Pruning in the store (``service.store.pruning``): decisions taken when reports arrive,
answered and stored, the same when reports arrive together as one after another, and kept
by a restarted server."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import select

from hypersweep.service.claims import Claims
from hypersweep.service.db import Database
from hypersweep.service.models import PruneDecision
from hypersweep.service.pruning import asha_decide
from hypersweep.service.schemas import ClaimedTrial, SweepSpec
from hypersweep.service.store import Store
from hypersweep.service.validation import check_spec
from tests.conftest import sweep_doc

ASHA = {"kind": "asha", "min_epochs": 1, "eta": 3}


def create(store: Store, trials: int, pruner: dict[str, Any], epochs: int = 9, **overrides: Any) -> int:
    doc = sweep_doc(stages=[{"trials": trials, "epochs": epochs, "pruner": pruner}], parallelism=64, **overrides)
    spec = SweepSpec.model_validate(doc)
    return store.create_sweep(spec=spec, plan=check_spec(spec)).id


def claim_all(store: Store, sweep_id: int, count: int) -> list[ClaimedTrial]:
    trials = Claims(store).claim(worker_id="w", sweep_id=sweep_id, count=count)
    assert len(trials) == count
    return trials


def report(store: Store, trial: ClaimedTrial, step: int, value: float) -> Any:
    metrics = {"val_accuracy": value, "train_loss": 1.0}
    return store.report(trial_id=trial.id, lease_token=trial.lease_token, points=[(step, metrics)])


def decisions(store: Store, sweep_id: int) -> list[PruneDecision]:
    with store.db.read() as s:
        return list(
            s.scalars(select(PruneDecision).where(PruneDecision.sweep_id == sweep_id).order_by(PruneDecision.id))
        )


def test_a_losing_trial_is_told_to_stop_and_ends_pruned_with_its_reason(store: Store) -> None:
    sweep_id = create(store, 4, ASHA)
    trials = claim_all(store, sweep_id, 4)
    assert trials[0].prune_epochs == [1, 3]
    assert [report(store, t, 1, v).action for t, v in zip(trials[:2], [0.5, 0.6], strict=True)] == ["continue"] * 2
    answer = report(store, trials[2], 1, 0.4)  # 3 values at the rung: only the best goes on
    assert (answer.action, answer.reason) == ("stop", "pruned")
    assert "0.4" in answer.detail and "0.6" in answer.detail and "3 values" in answer.detail

    pruned = store.get_trial(trial_id=trials[2].id)
    assert pruned.status == "pruned" and pruned.metrics["pruned_at"] == 1
    assert pruned.metrics["prune_reason"] == answer.detail and pruned.value == 0.4
    # Until its holder finishes, a later report or heartbeat hears the same stop.
    assert report(store, trials[2], 2, 0.45).reason == "pruned"
    assert len(store.get_trial(trial_id=trials[2].id).curve) == 1
    beat = store.heartbeat(trial_id=trials[2].id, lease_token=trials[2].lease_token)
    assert (beat.action, beat.reason, beat.detail) == ("stop", "pruned", answer.detail)
    # The holder's finish adds the final metrics; the trial stays pruned, its reason kept.
    ended = store.finish(
        trial_id=trials[2].id,
        lease_token=trials[2].lease_token,
        status="pruned",
        metrics={"test_accuracy": 0.3, "epochs_run": 2},
    )
    assert ended.status == "pruned" and ended.metrics["test_accuracy"] == 0.3
    assert ended.metrics["prune_reason"] == answer.detail and ended.metrics["val_accuracy"] == 0.4

    assert report(store, trials[3], 1, 0.7).action == "continue"  # 4 values: the best one goes on
    rungs = store.pruning(sweep_id=sweep_id).stages[0].rungs
    assert [(r.step, r.reached, r.pruned, r.compared) for r in rungs] == [(1, 4, 1, 4)]
    mine = store.pruning(sweep_id=sweep_id, trial_id=trials[2].id).decisions
    assert [(d.step, d.pruned, d.reason) for d in mine] == [(1, True, answer.detail)]


def test_no_decision_before_min_epochs(store: Store) -> None:
    sweep_id = create(store, 3, {"kind": "asha", "min_epochs": 3, "eta": 2})
    trials = claim_all(store, sweep_id, 3)
    for step in (1, 2):
        for t, value in zip(trials, [0.9, 0.5, 0.1], strict=True):
            assert report(store, t, step, value).action == "continue"
    assert decisions(store, sweep_id) == []
    assert report(store, trials[0], 3, 0.9).action == "continue"
    assert report(store, trials[2], 3, 0.1).action == "stop"


def test_a_diverged_trial_counts_as_the_worst_at_the_rungs_it_reached(store: Store) -> None:
    sweep_id = create(store, 3, {"kind": "asha", "min_epochs": 1, "eta": 2})
    first, second, third = claim_all(store, sweep_id, 3)
    assert report(store, first, 1, 0.9).action == "continue"
    store.finish(
        trial_id=first.id, lease_token=first.lease_token, status="diverged", metrics={"stop_reason": "diverged"}
    )
    # 0.2 is worse than the 0.9 the diverged trial had, but a diverged trial is the worst.
    assert report(store, second, 1, 0.2).action == "continue"
    assert report(store, third, 1, 0.1).action == "stop"


def test_the_median_rule_compares_with_completed_trials_after_the_warm_up(store: Store) -> None:
    sweep_id = create(store, 5, {"kind": "median", "warmup_epochs": 1, "min_trials": 3}, epochs=4)
    trials = claim_all(store, sweep_id, 5)
    for t, value in zip(trials[:3], [0.5, 0.6, 0.7], strict=True):
        for step in range(1, 5):
            assert report(store, t, step, value).action == "continue"
        store.finish(trial_id=t.id, lease_token=t.lease_token, status="completed", metrics={})
    assert report(store, trials[3], 1, 0.1).action == "continue"  # the warm-up epoch
    answer = report(store, trials[3], 2, 0.55)
    assert answer.action == "stop" and "0.6" in answer.detail and "3 completed trials" in answer.detail
    assert report(store, trials[4], 2, 0.6).action == "continue"  # a tie goes on


def test_reports_that_arrive_together_are_decided_as_one_after_another(database_url: str) -> None:
    db = Database(database_url)
    store = Store(db, lease_seconds=60)
    try:
        sweep_id = create(store, 12, ASHA)
        trials = claim_all(store, sweep_id, 12)
        values = [0.31, 0.52, 0.18, 0.77, 0.52, 0.05, 0.9, 0.44, 0.61, 0.29, 0.77, 0.12]
        answers: dict[int, str] = {}
        start = threading.Barrier(len(trials))
        errors: list[BaseException] = []

        def send(trial: ClaimedTrial, value: float) -> None:
            try:
                start.wait()
                answers[trial.id] = report(store, trial, 1, value).action
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=send, args=pair) for pair in zip(trials, values, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        taken = decisions(store, sweep_id)
        assert len(taken) == len(trials)
        # Replayed one after another, in the order the decisions were stored, the rule
        # gives the same decisions and cutoffs.
        seen: list[float | None] = []
        for decision in taken:
            replay = asha_decide(decision.value, seen, step=1, eta=3, minimize=False, metric="val_accuracy")
            assert (decision.pruned, decision.cutoff, decision.compared) == (
                replay.pruned,
                replay.cutoff,
                replay.compared,
            )
            assert answers[decision.trial_id] == ("stop" if replay.pruned else "continue")
            seen.append(decision.value)
        assert any(d.pruned for d in taken) and not all(d.pruned for d in taken)
    finally:
        db.dispose()


def test_a_restarted_server_keeps_its_decisions(database_url: str) -> None:
    db = Database(database_url)
    store = Store(db, lease_seconds=60)
    try:
        sweep_id = create(store, 4, ASHA)
        trials = claim_all(store, sweep_id, 4)
        for trial, value in zip(trials[:3], [0.5, 0.8, 0.3], strict=True):
            report(store, trial, 1, value)
        before = [(d.trial_id, d.pruned, d.cutoff) for d in decisions(store, sweep_id)]
    finally:
        db.dispose()
    db = Database(database_url)
    restarted = Store(db, lease_seconds=60)
    try:
        # A report sent again (its answer was lost, say) gets the decision stored before,
        # even with another value.
        assert report(restarted, trials[1], 1, 0.01).action == "continue"
        assert restarted.get_trial(trial_id=trials[2].id).status == "pruned"
        # A new decision is taken over the values stored before the restart.
        answer = report(restarted, trials[3], 1, 0.6)
        assert answer.action == "stop" and "4 values" in answer.detail and "0.8" in answer.detail
        after = [(d.trial_id, d.pruned, d.cutoff) for d in decisions(restarted, sweep_id)]
        assert after[:3] == before and len(after) == 4
    finally:
        db.dispose()


@pytest.mark.parametrize("kind", ["bogus", "asha"])
def test_a_bad_pruner_is_refused_with_its_path(client: Any, kind: str) -> None:
    pruner = {"kind": kind, "eta": 1} if kind == "asha" else {"kind": kind}
    answer = client.post("/api/v1/sweeps", json=sweep_doc(stages=[{"trials": 2, "epochs": 3, "pruner": pruner}]))
    assert answer.status_code == 422
    assert any(error["loc"][:4] == ["body", "stages", 0, "pruner"] for error in answer.json()["detail"]), answer.json()
