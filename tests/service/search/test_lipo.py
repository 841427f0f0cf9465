"""LIPO search (``service.search.lipo``): MaxLIPO with a trust region, in the unit cube of
the axes' scales, with pending points proposed around."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import TypeAdapter

from hypersweep.service.search.base import Observation, Params, SearchConfig
from hypersweep.service.search.lipo import LipoDesigner, UpperBound
from hypersweep.service.search.space import Space

SPACE: Space = TypeAdapter(Space).validate_python(
    {
        "lr": {"type": "float", "low": 1e-6, "high": 1.0, "scale": "log"},
        "dropout": {"type": "float", "low": 0.0, "high": 0.7},
        "hidden": {"type": "int", "low": 16, "high": 512, "scale": "log"},
    }
)


def lipo(seed: int = 0) -> LipoDesigner:
    return LipoDesigner(SPACE, config=SearchConfig(kind="lipo", seed=seed), stage=0, minimize=True)


def loss(params: Params) -> float:
    """Best at lr = 1e-3, dropout = 0.2, hidden = 128."""
    lr, dropout, hidden = float(params["lr"]), float(params["dropout"]), int(params["hidden"])
    return (math.log10(lr) + 3) ** 2 + 4 * (dropout - 0.2) ** 2 + math.log2(hidden / 128) ** 2 / 10


def key(params: Params) -> tuple[object, ...]:
    return tuple(sorted(params.items()))


def drive(designer: LipoDesigner, trials: int, batch: int) -> list[Params]:
    """Claims of ``batch``, each reported before the next."""
    suggested: list[Params] = []
    finished: list[Observation] = []
    while len(suggested) < trials:
        designer.update(finished, [])
        chunk = designer.suggest(len(suggested), min(batch, trials - len(suggested)))
        finished = [Observation(p, loss(p), stage=0) for p in chunk]
        suggested += chunk
    return suggested


def test_the_first_trial_is_the_centre_of_the_space_in_each_axis_scale() -> None:
    first = lipo().suggest(0, 1)[0]
    assert first["lr"] == pytest.approx(1e-3)  # the middle of [1e-6, 1] in log10
    assert first["dropout"] == pytest.approx(0.35)
    assert first["hidden"] == round(10 ** ((math.log10(16) + math.log10(512)) / 2))


def test_suggestions_stay_in_bounds_and_int_axes_stay_integers() -> None:
    for params in drive(lipo(), trials=30, batch=3):
        assert set(params) == set(SPACE)
        for name, param in SPACE.items():
            low, high = param.bounds()  # type: ignore[union-attr]
            assert low <= params[name] <= high
        assert isinstance(params["hidden"], int)


def test_a_parallel_claim_gets_distinct_points_away_from_pending_ones() -> None:
    designer = lipo()
    done = drive(designer, trials=12, batch=4)
    designer.update([Observation(p, loss(p), stage=0) for p in done[-4:]], [])
    first = designer.suggest(12, 6)
    # The same claim again, with the first six now queued or running (as the store shows them).
    designer.update([], first)
    second = designer.suggest(18, 6)
    everything = done + first + second
    assert len({key(p) for p in everything}) == len(everything)


def test_a_designer_rebuilt_from_the_stored_results_suggests_the_same_points() -> None:
    kept = lipo(seed=3)
    done = drive(kept, trials=16, batch=2)
    kept.update([Observation(p, loss(p), stage=0) for p in done[-2:]], done[:0])
    rebuilt = lipo(seed=3)
    rebuilt.update([Observation(p, loss(p), stage=0) for p in done], [])
    assert rebuilt.suggest(16, 3) == kept.suggest(16, 3)


def test_lipo_closes_in_on_the_optimum_faster_than_its_random_start() -> None:
    points = drive(lipo(seed=1), trials=40, batch=1)
    losses = [loss(p) for p in points]
    assert min(losses[20:]) < min(losses[:5])
    assert min(losses) < 0.1


def test_a_diverged_trial_counts_as_the_worst_result() -> None:
    designer = lipo()
    good = {"lr": 1e-3, "dropout": 0.2, "hidden": 128}
    bad = {"lr": 0.5, "dropout": 0.6, "hidden": 500}
    designer.update([Observation(bad, None, diverged=True, stage=0), Observation(good, 1.0, stage=0)], [])
    # Told with the worst result there is once one is (losses are negated: results are maximised).
    assert sorted(designer._y) == [-1.0, -1.0]
    designer.update([Observation({"lr": 1e-5, "dropout": 0.1, "hidden": 20}, 3.0, stage=0)], [])
    assert sorted(designer._y) == [-3.0, -1.0, -1.0]


def test_the_upper_bound_lies_above_every_result() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((30, 3))
    y = np.sin(4 * x).sum(axis=1)
    bound = UpperBound(x, y)
    assert (bound.slopes >= 0).all() and (bound.offsets >= 0).all()
    # Each result lies under the bound every other result puts on it, and the bound is tight
    # at the results themselves.
    assert (bound(x) >= y - 1e-9).all()
    assert bound(x) == pytest.approx(y, abs=0.05 * float(y.std()))
    far = bound(rng.random((200, 3)))
    assert far.max() > y.max()


def test_a_categorical_axis_is_refused() -> None:
    space = {**SPACE, **TypeAdapter(Space).validate_python({"opt": {"type": "categorical", "values": ["a", "b"]}})}
    with pytest.raises(ValueError, match="categorical"):
        LipoDesigner(space, config=SearchConfig(kind="lipo"), stage=0, minimize=True)
