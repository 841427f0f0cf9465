"""Contract tests every designer passes, and what random and grid search promise."""

from __future__ import annotations

import math
import statistics
from typing import Any, get_args

import pytest
from pydantic import TypeAdapter

from hypersweep.service.search.base import Designer, Observation, Params, SearchConfig, SearchKind
from hypersweep.service.search.grid import GridDesigner
from hypersweep.service.search.registry import DESIGNERS, make_designer
from hypersweep.service.search.space import CategoricalParam, FloatParam, IntParam, Space

SPACE: Space = TypeAdapter(Space).validate_python(
    {
        "lr": {"type": "float", "low": 1e-6, "high": 1.0, "scale": "log"},
        "dropout": {"type": "float", "low": 0.0, "high": 0.7},
        "hidden": {"type": "int", "low": 32, "high": 512, "scale": "log"},
        "optimizer": {"type": "categorical", "values": ["sgd", "adam", "rmsprop"]},
    }
)


#: Every strategy, by the name the contract tests show, and its ``search`` section.
STRATEGIES: dict[str, dict[str, Any]] = {
    "random": {"kind": "random"},
    "grid": {"kind": "grid", "grid_points": 3},
    "bayes-tpe": {"kind": "bayes", "sampler": "tpe"},
    "bayes-gp": {"kind": "bayes", "sampler": "gp"},
}


def designer(kind: str, seed: int = 0, stage: int = 0, grid_points: int = 3) -> Any:
    return make_designer(
        SPACE, config=SearchConfig(kind=kind, seed=seed, grid_points=grid_points), stage=stage, minimize=False
    )  # type: ignore[arg-type]


def strategy(name: str, seed: int = 0) -> Designer:
    return make_designer(SPACE, config=SearchConfig(**STRATEGIES[name], seed=seed), stage=0, minimize=False)


def score(params: Params) -> float:
    """A made-up objective to maximize: best near lr = 1e-3, dropout = 0.2, adam."""
    lr, dropout = float(params["lr"]), float(params["dropout"])
    bonus = 0.3 if params["optimizer"] == "adam" else 0.0
    width = abs(math.log2(int(params["hidden"]) / 128)) / 20
    return bonus - (math.log10(lr) + 3) ** 2 / 10 - (dropout - 0.2) ** 2 - width


def drive(d: Designer, trials: int, batch: int) -> list[Params]:
    """Claim ``batch`` trials at a time, as workers would, and report each batch's results
    before the next claim; returns every suggestion in claim order."""
    suggested: list[Params] = []
    finished: list[Observation] = []
    while len(suggested) < trials:
        d.update(finished, [])
        chunk = d.suggest(len(suggested), min(batch, trials - len(suggested)))
        finished = [Observation(p, score(p)) for p in chunk]
        suggested += chunk
    return suggested


def distinct(points: list[Params]) -> int:
    return len({tuple(sorted(p.items())) for p in points})


def inside(params: dict[str, object]) -> bool:
    for name, param in SPACE.items():
        value = params[name]
        if isinstance(param, CategoricalParam):
            if value not in param.values:
                return False
        elif not (param.bounds()[0] <= float(value) <= param.bounds()[1]):  # type: ignore[arg-type]
            return False
        if isinstance(param, IntParam) and not isinstance(value, int):
            return False
    return True


@pytest.mark.parametrize("name", STRATEGIES)
def test_suggestions_stay_inside_the_space(name: str) -> None:
    # Past the random start of the learning designers (ten results), so their models propose too.
    for params in drive(strategy(name), trials=14, batch=4):
        assert set(params) == set(SPACE)
        assert inside(params)


@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_and_same_results_give_the_same_trials(name: str) -> None:
    first = drive(strategy(name, seed=7), trials=14, batch=2)
    assert drive(strategy(name, seed=7), trials=14, batch=2) == first
    assert drive(strategy(name, seed=8), trials=14, batch=2) != first


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_parallel_claim_gets_distinct_trials(name: str) -> None:
    assert distinct(strategy(name).suggest(0, 16)) == 16
    # Once a model is fitted, one claim of many trials still spreads them out.
    warm = strategy(name)
    done = drive(warm, trials=12, batch=4)
    warm.update([Observation(p, score(p)) for p in done[-4:]], [])
    batch = warm.suggest(12, 8)
    assert distinct(batch + done) == 20


@pytest.mark.parametrize("kind", ["random", "grid"])
def test_same_seed_same_trials_in_any_order(kind: str) -> None:
    whole = designer(kind, seed=7).suggest(0, 20)  # type: ignore[attr-defined]
    pieces = designer(kind, seed=7).suggest(10, 10) + designer(kind, seed=7).suggest(0, 10)  # type: ignore[attr-defined]
    assert pieces[10:] + pieces[:10] == whole
    assert designer(kind, seed=8).suggest(0, 20) != whole  # type: ignore[attr-defined]


def test_stages_draw_different_points() -> None:
    assert designer("random", stage=0).suggest(0, 5) != designer("random", stage=1).suggest(0, 5)  # type: ignore[attr-defined]


def test_random_samples_log_axes_uniformly_in_log_space() -> None:
    lrs = [p["lr"] for p in designer("random").suggest(0, 4000)]  # type: ignore[attr-defined]
    exponents = [math.log10(v) for v in lrs]
    # Uniform on [-6, 0]: median -3, and each decade holds about a sixth of the draws.
    assert statistics.median(exponents) == pytest.approx(-3, abs=0.2)
    in_top_decade = sum(e > -1 for e in exponents) / len(exponents)
    assert in_top_decade == pytest.approx(1 / 6, abs=0.03)


def test_grid_points_are_log_spaced_on_log_axes() -> None:
    assert FloatParam(type="float", low=1e-3, high=1e1, scale="log").grid(5) == pytest.approx(
        [1e-3, 1e-2, 1e-1, 1, 1e1]
    )
    assert FloatParam(type="float", low=0, high=1).grid(3) == pytest.approx([0, 0.5, 1])
    assert IntParam(type="int", low=1, high=3).grid(10) == [1, 2, 3]
    assert IntParam(type="int", low=32, high=512, scale="log").grid(5) == [32, 64, 128, 256, 512]


def test_grid_visits_every_point_exactly_once() -> None:
    grid = designer("grid", grid_points=4)
    assert isinstance(grid, GridDesigner)
    size = grid.capacity()
    assert size == 4 * 4 * 4 * 3
    points = grid.suggest(0, size)
    assert len({tuple(sorted(p.items())) for p in points}) == size
    with pytest.raises(ValueError, match="points"):
        grid.suggest(size - 1, 2)


def test_grid_point_is_derived_from_its_index() -> None:
    grid = designer("grid", grid_points=2)
    assert isinstance(grid, GridDesigner)
    # Axes in name order (dropout, hidden, lr, optimizer); the last varies fastest.
    assert grid.point(0) == {"dropout": 0.0, "hidden": 32, "lr": 1e-6, "optimizer": "sgd"}
    assert grid.point(1) == {"dropout": 0.0, "hidden": 32, "lr": 1e-6, "optimizer": "adam"}
    assert grid.point(3) == {"dropout": 0.0, "hidden": 32, "lr": 1.0, "optimizer": "sgd"}
    assert grid.point(grid.capacity() - 1) == {"dropout": 0.7, "hidden": 512, "lr": 1.0, "optimizer": "rmsprop"}


def test_a_partial_grid_spreads_over_the_grid() -> None:
    grid = designer("grid", grid_points=10)
    lrs = {p["lr"] for p in grid.suggest(0, 30)}  # type: ignore[attr-defined]
    # Thirty scattered points of a 10x10x10x3 grid reach most lr values, not just one.
    assert len(lrs) >= 6


def test_every_search_kind_a_sweep_may_name_has_a_designer() -> None:
    assert set(DESIGNERS) == set(get_args(SearchKind)) == {"random", "grid", "bayes", "lipo", "local"}
    numeric = {name: param for name, param in SPACE.items() if not isinstance(param, CategoricalParam)}
    for kind in get_args(SearchKind):
        space = numeric if kind == "lipo" else SPACE  # lipo refuses categorical axes
        made = make_designer(space, config=SearchConfig(kind=kind), stage=0, minimize=False)
        assert isinstance(made, DESIGNERS[kind])
