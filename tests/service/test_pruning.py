"""The pruning rules on hand-made curves, and against Optuna's pruners on the same curves."""

from __future__ import annotations

import math
import random

import optuna
import pytest

from hypersweep.service.pruning import (
    AshaPruner,
    MedianPruner,
    asha_decide,
    asha_rungs,
    decision_steps,
    median,
    median_decide,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_asha_rungs_grow_by_eta_and_stay_below_the_last_epoch() -> None:
    assert asha_rungs(AshaPruner(kind="asha", min_epochs=1, eta=3), 10) == [1, 3, 9]
    assert asha_rungs(AshaPruner(kind="asha", min_epochs=1, eta=3), 9) == [1, 3]
    assert asha_rungs(AshaPruner(kind="asha", min_epochs=2, eta=2), 17) == [2, 4, 8, 16]
    assert asha_rungs(AshaPruner(kind="asha", min_epochs=5, eta=3), 5) == []


def test_no_decision_before_min_epochs_or_the_warm_up() -> None:
    assert min(decision_steps(AshaPruner(kind="asha", min_epochs=4, eta=2), 20)) == 4
    assert decision_steps(MedianPruner(kind="median", warmup_epochs=3), 7) == [4, 5, 6]
    assert decision_steps(MedianPruner(kind="median", warmup_epochs=6), 7) == []


def test_asha_keeps_the_top_one_in_eta() -> None:
    others = [0.9, 0.8, 0.7, 0.6, 0.5]  # with the trial's own: 6 values, the top 2 go on
    kept = asha_decide(0.85, others, step=1, eta=3, minimize=False, metric="val_accuracy")
    assert not kept.pruned and kept.cutoff == 0.85 and kept.compared == 6
    cut = asha_decide(0.75, others, step=1, eta=3, minimize=False, metric="val_accuracy")
    assert cut.pruned and cut.cutoff == 0.8 and cut.compared == 6
    assert "0.75" in cut.reason and "0.8" in cut.reason and "6" in cut.reason and "epoch 1" in cut.reason


def test_asha_minimizing_keeps_the_lowest() -> None:
    assert not asha_decide(0.1, [0.5, 0.4], step=3, eta=3, minimize=True).pruned
    decision = asha_decide(0.45, [0.5, 0.4], step=3, eta=3, minimize=True)
    assert decision.pruned and decision.cutoff == 0.4 and "above" in decision.reason


def test_asha_ties_go_on() -> None:
    assert not asha_decide(0.8, [0.8, 0.8], step=1, eta=3, minimize=False).pruned
    assert not asha_decide(0.8, [0.8, 0.1, 0.2, 0.3, 0.9], step=1, eta=3, minimize=False).pruned


def test_asha_with_fewer_values_than_eta_lets_on_only_the_best_so_far() -> None:
    first = asha_decide(0.3, [], step=1, eta=3, minimize=False)
    assert not first.pruned and first.compared == 1
    assert not asha_decide(0.5, [0.3], step=1, eta=3, minimize=False).pruned
    assert asha_decide(0.2, [0.3], step=1, eta=3, minimize=False).pruned


def test_asha_prunes_a_value_that_is_not_a_number() -> None:
    decision = asha_decide(math.nan, [], step=1, eta=3, minimize=False)
    assert decision.pruned and decision.value is None and "not a number" in decision.reason
    assert asha_decide(None, [0.1], step=1, eta=3, minimize=False).pruned


def test_asha_counts_diverged_and_nan_trials_as_the_worst() -> None:
    # Two diverged trials (None) and a NaN: the trial's 0.01 beats them all.
    decision = asha_decide(0.01, [None, None, math.nan], step=3, eta=4, minimize=False)
    assert not decision.pruned and decision.cutoff == 0.01
    # With room for two, the cutoff is a diverged trial's: anything goes on.
    assert asha_decide(0.01, [None, None, math.nan], step=3, eta=2, minimize=False).cutoff is None
    # Minimizing, a diverged trial's huge loss is no better: it is the worst as well.
    assert not asha_decide(5.0, [None, None, None], step=3, eta=2, minimize=True).pruned
    decision = asha_decide(5.0, [None, None, 1.0], step=3, eta=4, minimize=True)
    assert decision.pruned and decision.cutoff == 1.0


def test_median_compares_the_best_so_far_with_the_median() -> None:
    others = [0.5, 0.6, 0.7, 0.8]
    assert median(others, minimize=False) == pytest.approx(0.65)
    decision = median_decide(0.6, others, step=2, min_trials=3, minimize=False, metric="val_accuracy")
    assert decision.pruned and decision.cutoff == pytest.approx(0.65) and decision.compared == 4
    assert "0.6" in decision.reason and "0.65" in decision.reason and "4 completed trials" in decision.reason
    assert not median_decide(0.65, others, step=2, min_trials=3, minimize=False).pruned  # a tie goes on


def test_median_needs_min_trials() -> None:
    decision = median_decide(0.0, [0.9, 0.9], step=2, min_trials=3, minimize=False)
    assert not decision.pruned and decision.cutoff is None and "fewer than the 3" in decision.reason


def test_median_counts_diverged_trials_as_the_worst() -> None:
    assert median([None, None, 0.2], minimize=False) is None
    assert not median_decide(0.0, [None, None, 0.2], step=2, min_trials=3, minimize=False).pruned
    assert median([None, 0.4, 0.2], minimize=True) == 0.4


def _async_order(n_trials: int, epochs: int, rng: random.Random) -> list[tuple[int, int]]:
    """(trial, epoch) events as asynchronous workers would send them: each trial's epochs
    in order, trials interleaved at random, later trials starting later."""
    order: list[tuple[int, int]] = []
    nxt = [1] * n_trials
    started = 2
    while any(e <= epochs for e in nxt):
        live = [t for t in range(min(started, n_trials)) if nxt[t] <= epochs]
        if not live:
            started += 1
            continue
        t = rng.choice(live)
        order.append((t, nxt[t]))
        nxt[t] += 1
        if rng.random() < 0.3:
            started += 1
    return order


def _curves(n_trials: int, epochs: int, rng: random.Random, *, ties: bool) -> list[list[float]]:
    curves = []
    for _ in range(n_trials):
        level, speed = rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.5)
        curve = [level * (1 - math.exp(-speed * e)) + rng.gauss(0, 0.02) for e in range(1, epochs + 1)]
        curves.append([round(v, 1) if ties else v for v in curve])
    return curves


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("eta", [2, 3])
def test_asha_decides_as_optunas_successive_halving(seed: int, eta: int) -> None:
    rng = random.Random(seed)
    epochs, n_trials = 10, 20
    curves = _curves(n_trials, epochs, rng, ties=seed % 2 == 1)
    config = AshaPruner(kind="asha", min_epochs=1, eta=eta)
    rungs = set(asha_rungs(config, epochs))
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=eta, min_early_stopping_rate=0),
    )
    trials = [study.ask() for _ in range(n_trials)]
    recorded: dict[int, list[float | None]] = {rung: [] for rung in rungs}
    stopped: set[int] = set()
    decisions = 0
    for t, epoch in _async_order(n_trials, epochs, rng):
        if t in stopped:
            continue
        value = curves[t][epoch - 1]
        trials[t].report(value, epoch)
        if epoch == epochs:
            study.tell(trials[t], value)
            continue
        theirs = trials[t].should_prune()
        ours = False
        if epoch in rungs:
            ours = asha_decide(value, recorded[epoch], step=epoch, eta=eta, minimize=False).pruned
            recorded[epoch].append(value)
            decisions += 1
        assert ours == theirs, (t, epoch)
        if ours:
            stopped.add(t)
            study.tell(trials[t], state=optuna.trial.TrialState.PRUNED)
    assert decisions > n_trials and stopped  # the comparison saw both outcomes


@pytest.mark.parametrize("seed", range(6))
def test_median_decides_as_optunas_median_pruner(seed: int) -> None:
    rng = random.Random(seed)
    epochs, n_trials, warmup, min_trials = 8, 20, 2, 3
    curves = _curves(n_trials, epochs, rng, ties=seed % 2 == 1)
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=warmup, n_min_trials=min_trials),
    )
    trials = [study.ask() for _ in range(n_trials)]
    steps = set(decision_steps(MedianPruner(kind="median", warmup_epochs=warmup, min_trials=min_trials), epochs))
    completed: list[int] = []
    stopped: set[int] = set()
    pruned = 0
    for t, epoch in _async_order(n_trials, epochs, rng):
        if t in stopped:
            continue
        value = curves[t][epoch - 1]
        # Optuna counts steps from 0; ours are epochs from 1.
        trials[t].report(value, epoch - 1)
        if epoch == epochs:
            study.tell(trials[t], value)
            completed.append(t)
            continue
        theirs = trials[t].should_prune()
        ours = False
        if epoch in steps:
            others = [curves[c][epoch - 1] for c in completed]
            best = max(curves[t][:epoch])
            ours = median_decide(best, others, step=epoch, min_trials=min_trials, minimize=False).pruned
        assert ours == theirs, (t, epoch)
        if ours:
            pruned += 1
            stopped.add(t)
            study.tell(trials[t], state=optuna.trial.TrialState.PRUNED)
    assert pruned
