"""Diagnoses after a stage (``service.search.diagnoses``): each appears, with its numbers,
in the warnings of a sweep built to show it, and none on a healthy sweep. The trials are
recorded at the store level, as a program that reports these metrics would."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hypersweep.service.claims import Claims
from hypersweep.service.schemas import SweepSpec
from hypersweep.service.search.diagnoses import StageTrial, diagnose
from hypersweep.service.search.space import load_space
from hypersweep.service.store import Store
from hypersweep.service.validation import check_spec
from tests.conftest import sweep_doc

#: (status, metrics) of a trial from its lr and its rank among the stage's lrs (0: lowest).
Outcome = Callable[[float, int], tuple[str, dict[str, Any]]]
POINTS = 7
SPACE = {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"}}


def run_stage(store: Store, outcome: Outcome) -> tuple[list[str], list[float]]:
    """A one-stage grid sweep over lr, each trial ended as ``outcome`` says; the sweep's
    warnings once it completed, and the lrs in order."""
    doc = sweep_doc(
        program="prog",
        space=SPACE,
        search={"kind": "grid", "grid_points": POINTS},
        stages=[{"epochs": 3}],
        trainer={},
    )
    spec = SweepSpec.model_validate(doc)
    sweep_id = store.create_sweep(spec=spec, plan=check_spec(spec)).id
    trials = Claims(store).claim(worker_id="w", sweep_id=sweep_id, count=POINTS, program="prog")
    lrs = sorted(t.params["lr"] for t in trials)
    for trial in trials:
        status, metrics = outcome(trial.params["lr"], lrs.index(trial.params["lr"]))
        store.finish(trial_id=trial.id, lease_token=trial.lease_token, status=status, metrics=metrics)
    sweep = store.get_sweep(sweep_id=sweep_id)
    assert sweep.status == "completed"
    return sweep.warnings, lrs


def healthy(lr: float, rank: int) -> tuple[str, dict[str, Any]]:
    # Best in the middle of the range; every loss halves; train and validation agree.
    val = 0.9 - 0.05 * abs(rank - POINTS // 2)
    return "completed", {"initial_loss": 2.3, "train_loss": 1.1, "val_accuracy": val, "train_accuracy": val + 0.02}


def test_a_healthy_stage_has_no_diagnosis(store: Store) -> None:
    warnings, _ = run_stage(store, healthy)
    assert warnings == []


def test_learning_rates_where_every_trial_diverged_are_too_high(store: Store) -> None:
    def outcome(lr: float, rank: int) -> tuple[str, dict[str, Any]]:
        if rank >= POINTS - 3:
            return "diverged", {"initial_loss": 2.3, "train_loss": 9.0, "val_accuracy": 0.1}
        return healthy(lr, rank)

    warnings, lrs = run_stage(store, outcome)
    assert f"stage 0: lr ≥ {lrs[-3]:.2g}: 3 of 3 diverged: too high" in warnings


def test_learning_rates_where_the_loss_barely_moved_are_too_low(store: Store) -> None:
    def outcome(lr: float, rank: int) -> tuple[str, dict[str, Any]]:
        status, metrics = healthy(lr, rank)
        if rank < 4:
            metrics["train_loss"] = 2.3 * (1 - 0.01 * (rank + 1))  # fell 1% .. 4%
        return status, metrics

    warnings, lrs = run_stage(store, outcome)
    expected = (
        f"stage 0: lr ≤ {lrs[3]:.2g}: the loss fell less than 5% in 4 of 4 trials (the largest fall: 4.0%): too low"
    )
    assert expected in warnings


def test_the_first_reported_loss_stands_in_for_a_missing_initial_loss(store: Store) -> None:
    # A program that reports no initial_loss: its curve's first train_loss is the start.
    doc = sweep_doc(program="prog", space=SPACE, search={"kind": "grid", "grid_points": 4}, stages=[{"epochs": 3}])
    spec = SweepSpec.model_validate(doc)
    sweep_id = store.create_sweep(spec=spec, plan=check_spec(spec)).id
    trials = Claims(store).claim(worker_id="w", sweep_id=sweep_id, count=4, program="prog")
    for trial in trials:
        points = [(1, {"train_loss": 2.0}), (2, {"train_loss": 1.99}), (3, {"train_loss": 1.98})]
        store.finish(
            trial_id=trial.id,
            lease_token=trial.lease_token,
            status="completed",
            metrics={"val_accuracy": 0.5},
            points=points,
        )
    warnings = store.get_sweep(sweep_id=sweep_id).warnings
    assert any("the loss fell less than 5% in 4 of 4 trials (the largest fall: 1.0%): too low" in w for w in warnings)


def test_a_gap_between_training_and_validation_accuracy_is_overfitting(store: Store) -> None:
    def outcome(lr: float, rank: int) -> tuple[str, dict[str, Any]]:
        status, metrics = healthy(lr, rank)
        metrics["train_accuracy"] = 1.0
        return status, metrics

    warnings, _ = run_stage(store, outcome)
    # The best three: 0.9, 0.85 and 0.85 on validation, all 1.0 in training.
    val = (0.9 + 0.85 + 0.85) / 3
    expected = (
        f"stage 0: overfitting: the best 3 trials' training accuracy is 1.00 against {val:.2f} on validation "
        f"(a gap of {1 - val:.2f}): raise reg or dropout"
    )
    assert expected in warnings


def test_a_best_value_on_the_border_after_the_last_stage_is_reported(store: Store) -> None:
    def outcome(lr: float, rank: int) -> tuple[str, dict[str, Any]]:
        status, metrics = healthy(lr, rank)
        metrics["val_accuracy"] = 0.5 + 0.05 * rank  # the highest lr is best
        metrics["train_accuracy"] = metrics["val_accuracy"]
        return status, metrics

    warnings, lrs = run_stage(store, outcome)
    assert warnings == [
        f"stage 0: the best lr = {lrs[-1]:.4g} lies on the upper border of its range, which is the original "
        "bound 1; consider widening the space"
    ]


def test_trials_without_the_metrics_a_diagnosis_needs_are_left_out() -> None:
    space = load_space(SPACE)
    trials = [StageTrial({"lr": 10 ** -(i / 2)}, "completed", 0.5, {"val_accuracy": 0.5}) for i in range(8)]
    assert diagnose(trials, stage=0, space=space, original=space, minimize=False, last=False) == []
    nan = StageTrial({"lr": 0.1}, "completed", 0.5, {"train_accuracy": math.nan, "val_accuracy": 0.1})
    assert diagnose([nan], stage=0, space=space, original=space, minimize=False, last=False) == []
