"""Bayesian search: what the model is told, how it treats pending and diverged trials, and
that it finds better trials than random search on a simple landscape."""

from __future__ import annotations

import math
import statistics

import numpy as np
import optuna
import pytest
import scipy.special
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe import _truncnorm
from optuna.trial import TrialState
from pydantic import TypeAdapter

from hypersweep.service.search.base import Observation, Params, SearchConfig
from hypersweep.service.search.bayes import N_STARTUP_TRIALS, BayesDesigner, _use_compiled_log_ndtr, distribution
from hypersweep.service.search.registry import make_designer
from hypersweep.service.search.space import Space
from tests.service.search.test_designers import SPACE, drive, inside, score

LR_ONLY: Space = TypeAdapter(Space).validate_python(
    {
        "lr": {"type": "float", "low": 1e-6, "high": 1.0, "scale": "log"},
        "dropout": {"type": "float", "low": 0.0, "high": 0.7},
    }
)


def bayes(space: Space = SPACE, *, sampler: str = "tpe", seed: int = 0, minimize: bool = False) -> BayesDesigner:
    designer = make_designer(
        space, config=SearchConfig(kind="bayes", sampler=sampler, seed=seed), stage=0, minimize=minimize
    )
    assert isinstance(designer, BayesDesigner)
    return designer


def told(designer: BayesDesigner, state: TrialState = TrialState.COMPLETE) -> list[tuple[Params, float | None]]:
    return [(t.params, t.value) for t in designer.study.get_trials(deepcopy=False, states=(state,))]


def point(lr: float, dropout: float = 0.3) -> Params:
    return {"lr": lr, "dropout": dropout}


def test_axes_become_optuna_distributions_in_their_own_scale() -> None:
    assert distribution(SPACE["lr"]) == FloatDistribution(1e-6, 1.0, log=True)
    assert distribution(SPACE["dropout"]) == FloatDistribution(0.0, 0.7)
    assert distribution(SPACE["hidden"]) == IntDistribution(32, 512, log=True)
    assert distribution(SPACE["optimizer"]) == CategoricalDistribution(["sgd", "adam", "rmsprop"])


def test_results_are_told_once_and_failed_or_outside_trials_are_left_out() -> None:
    designer = bayes(LR_ONLY, minimize=True)
    designer.update(
        [
            Observation(point(1e-3), 0.4),
            Observation(point(1e-2), None),  # failed: no value, not diverged
            Observation(point(1e-2, dropout=0.9), 0.1),  # an earlier stage's trial outside this space
        ],
        [],
    )
    designer.update([Observation(point(1e-4), 0.2)], [])
    assert told(designer) == [(point(1e-3), 0.4), (point(1e-4), 0.2)]


def test_diverged_trials_are_told_as_the_worst_result() -> None:
    designer = bayes(LR_ONLY)  # maximize: lower is worse
    # Diverged before any result: it waits until there is a worst value to give it.
    designer.update([Observation(point(0.9), None, diverged=True)], [])
    assert told(designer) == []
    designer.update([Observation(point(1e-3), 0.9), Observation(point(1e-5), 0.5)], [])
    assert told(designer)[-1] == (point(0.9), 0.5)
    designer.update(
        [
            Observation(point(0.8), 0.1, diverged=True),  # its own value is worse: kept
            Observation(point(0.7), -100.0, diverged=True),  # far worse: held to one spread below
            Observation(point(0.6), 0.7, diverged=True),  # better than the worst: told as the worst
        ],
        [],
    )
    assert [value for _, value in told(designer)[-3:]] == pytest.approx([0.1, 0.1, 0.5])


def test_active_trials_are_pending_and_a_finished_one_leaves_no_trace() -> None:
    designer = bayes(LR_ONLY)
    batch = designer.suggest(0, 4)
    # Suggestions are pending as soon as they are made.
    assert sorted(p["lr"] for p, _ in told(designer, TrialState.RUNNING)) == sorted(p["lr"] for p in batch)
    # Two finish, one is queued again, one is gone (cancelled), and another process's trial runs.
    other = point(1e-4)
    designer.update([Observation(batch[0], 0.5), Observation(batch[1], 0.6)], [batch[2], other])
    assert told(designer) == [(batch[0], 0.5), (batch[1], 0.6)]
    assert [p for p, _ in told(designer, TrialState.RUNNING)] == [batch[2], other]
    assert len(told(designer, TrialState.FAIL)) == 1


def test_the_start_is_an_even_spread_fixed_by_the_index_of_each_trial() -> None:
    whole = bayes(LR_ONLY, seed=6).suggest(0, N_STARTUP_TRIALS)
    assert bayes(LR_ONLY, seed=6).suggest(4, 3) == whole[4:7]
    assert bayes(LR_ONLY, seed=7).suggest(0, N_STARTUP_TRIALS) != whole
    # A Sobol start: the first eight trials put one in every eighth of each axis (in log10 for lr).
    for name, low, high in (("lr", -6.0, 0.0), ("dropout", 0.0, 0.7)):
        values = [math.log10(float(p[name])) if name == "lr" else float(p[name]) for p in whole[:8]]
        assert sorted(int((v - low) / (high - low) * 8) for v in values) == list(range(8))


@pytest.mark.parametrize("sampler", ["tpe", "gp"])
def test_a_designer_rebuilt_from_the_finished_trials_suggests_what_the_kept_one_would(sampler: str) -> None:
    kept = bayes(sampler=sampler, seed=3)
    trials = drive(kept, trials=N_STARTUP_TRIALS + 1, batch=1)
    rebuilt = bayes(sampler=sampler, seed=3)
    rebuilt.update([Observation(p, score(p)) for p in trials[:-1]], [])
    assert rebuilt.suggest(len(trials) - 1, 1) == [trials[-1]]


def test_log_axes_are_modelled_in_log_space() -> None:
    # The best results sit around lr = 1e-5, a sliver of [1e-6, 1] in linear terms.
    designer = bayes(LR_ONLY, minimize=True, seed=1)
    rng = np.random.default_rng(0)
    lrs = 10 ** rng.uniform(-6, 0, size=30)
    designer.update([Observation(point(lr), (math.log10(lr) + 5) ** 2) for lr in lrs], [])
    exponents = [math.log10(float(p["lr"])) for p in designer.suggest(30, 10)]
    assert abs(statistics.median(exponents) + 5) < 1


@pytest.mark.parametrize("sampler", ["tpe", "gp"])
def test_pending_trials_move_the_next_suggestion_and_spread_a_batch(sampler: str) -> None:
    rng = np.random.default_rng(1)
    results = [
        Observation(point(lr, dropout), (math.log10(lr) + 3) ** 2 + (dropout - 0.3) ** 2)
        for lr, dropout in zip(10 ** rng.uniform(-6, 0, size=20), rng.uniform(0, 0.7, size=20), strict=True)
    ]

    def fresh(active: list[Params]) -> BayesDesigner:
        designer = bayes(LR_ONLY, sampler=sampler, minimize=True, seed=2)
        designer.update(results, active)
        return designer

    [alone] = fresh([]).suggest(20, 1)
    assert fresh([]).suggest(20, 1) == [alone]
    # The same state and seed with that trial running: the model looks elsewhere.
    assert fresh([alone]).suggest(20, 1) != [alone]
    # One claim of eight: each suggestion is pending for the next, so they spread out.
    batch = fresh([]).suggest(20, 8)
    units = np.array([[(math.log10(float(p["lr"])) + 6) / 6, float(p["dropout"]) / 0.7] for p in batch])
    gaps = [float(np.linalg.norm(units[i] - units[j])) for i in range(8) for j in range(i)]
    assert statistics.mean(gaps) > 0.05


def test_bayes_finds_better_trials_than_random_search() -> None:
    def best(name: str, seed: int) -> float:
        config = SearchConfig(kind=name, seed=seed)
        designer = make_designer(SPACE, config=config, stage=0, minimize=False)
        return max(score(p) for p in drive(designer, trials=40, batch=2))

    seeds = range(7)
    bayes_best = statistics.median(best("bayes", seed) for seed in seeds)
    random_best = statistics.median(best("random", seed) for seed in seeds)
    assert bayes_best > random_best


def test_suggestions_for_mixed_axes_are_inside_and_typed() -> None:
    for params in drive(bayes(seed=4), trials=N_STARTUP_TRIALS + 6, batch=3):
        assert inside(params)
        assert isinstance(params["hidden"], int)
        assert isinstance(params["lr"], float)


def test_optunas_tpe_uses_scipys_log_ndtr_with_the_same_values() -> None:
    assert _truncnorm._log_ndtr is scipy.special.log_ndtr
    points = np.linspace(-40, 40, 801)
    reference = np.array([_truncnorm._log_ndtr_single(float(a)) for a in points])
    assert scipy.special.log_ndtr(points) == pytest.approx(reference, rel=1e-9, abs=1e-15)


def test_optunas_log_ndtr_is_left_alone_on_a_major_version_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    def own_log_ndtr(a: float) -> float:
        return a

    monkeypatch.setattr(_truncnorm, "_log_ndtr", own_log_ndtr)
    monkeypatch.setattr(optuna, "__version__", "5.0.0")
    assert _use_compiled_log_ndtr() is False
    assert _truncnorm._log_ndtr is own_log_ndtr

    monkeypatch.setattr(optuna, "__version__", "4.0.0")
    assert _use_compiled_log_ndtr() is True
    assert _truncnorm._log_ndtr is scipy.special.log_ndtr


@pytest.mark.parametrize("high", [10_000, 2**40, 2**53])
def test_the_gp_models_a_wide_int_axis_as_a_float_axis_and_suggests_integers_inside_it(high: int) -> None:
    # Optuna's GP lists every value of a discrete axis: 2**40 of them asked for terabytes.
    space: Space = TypeAdapter(Space).validate_python(
        {"seed": {"type": "int", "low": 0, "high": high}, "dropout": {"type": "float", "low": 0.0, "high": 0.7}}
    )
    designer = bayes(space, sampler="gp")
    assert distribution(space["seed"], sampler="gp") == FloatDistribution(0, high)
    assert distribution(space["seed"], sampler="tpe") == IntDistribution(0, high)
    suggested = designer.suggest(0, N_STARTUP_TRIALS)
    designer.update([Observation(p, p["seed"] / high - p["dropout"]) for p in suggested], [])
    for params in [*suggested, *designer.suggest(N_STARTUP_TRIALS, 2)]:
        assert isinstance(params["seed"], int) and 0 <= params["seed"] <= high


def test_the_gp_keeps_an_int_axis_it_can_list_as_integers() -> None:
    hidden = TypeAdapter(Space).validate_python({"hidden": {"type": "int", "low": 1, "high": 9_999}})["hidden"]
    assert distribution(hidden, sampler="gp") == IntDistribution(1, 9_999)
