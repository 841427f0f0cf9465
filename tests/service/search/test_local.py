"""Local refinement (``service.search.local``): COBYQA from each of the previous stage's
best trials, driven by replay, one pending trial per start."""

from __future__ import annotations

import math

import pytest
import scipy  # type: ignore[import-untyped]
from pydantic import TypeAdapter

from hypersweep.service.search.base import Observation, Params, SearchConfig
from hypersweep.service.search.local import LOCAL_EXTRA, LocalDesigner, cobyqa_missing
from hypersweep.service.search.space import Space

SPACE: Space = TypeAdapter(Space).validate_python(
    {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "scale": "log"},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "hidden": {"type": "int", "low": 16, "high": 256, "scale": "log"},
        "optimizer": {"type": "categorical", "values": ["sgd", "adam"]},
    }
)
STARTS: list[Params] = [
    {"lr": 0.02, "dropout": 0.4, "hidden": 32, "optimizer": "adam"},
    {"lr": 3e-4, "dropout": 0.1, "hidden": 200, "optimizer": "sgd"},
]


def local(seed: int = 0) -> LocalDesigner:
    designer = LocalDesigner(SPACE, config=SearchConfig(kind="local", seed=seed), stage=1, minimize=True)
    designer.start_from(STARTS)
    return designer


def loss(params: Params) -> float:
    """Best at lr = 3e-3, dropout = 0.2, hidden = 64."""
    lr, dropout, hidden = float(params["lr"]), float(params["dropout"]), int(params["hidden"])
    return (math.log10(lr) + 2.5) ** 2 + 4 * (dropout - 0.2) ** 2 + math.log2(hidden / 64) ** 2 / 20


def key(params: Params) -> tuple[object, ...]:
    return tuple(sorted(params.items()))


def inside(params: Params) -> bool:
    for name, param in SPACE.items():
        if name == "optimizer":
            if params[name] not in ("sgd", "adam"):
                return False
        elif not param.bounds()[0] <= params[name] <= param.bounds()[1]:  # type: ignore[union-attr]
            return False
    return isinstance(params["hidden"], int)


def run(designer: LocalDesigner, trials: int, batch: int) -> list[Params]:
    """Claims of up to ``batch``, all reported before the next claim."""
    done: list[Params] = []
    finished: list[Observation] = []
    while len(done) < trials:
        designer.update(finished, [])
        chunk = designer.suggest(len(done), batch)
        assert chunk, "a start with nothing pending always has a next point"
        finished = [Observation(p, loss(p), stage=1) for p in chunk]
        done += chunk
    return done


def test_each_start_is_measured_again_first_and_then_waits_for_its_trial() -> None:
    designer = local()
    first = designer.suggest(0, 8)
    # One point per start (the starts themselves, re-run with this stage's epochs), not eight.
    assert first == STARTS
    designer.update([], first)
    assert designer.suggest(2, 8) == []
    # The first start's trial ends: only that start moves on, keeping its categorical value.
    designer.update([Observation(first[0], loss(first[0]), stage=1)], first[1:])
    (following,) = designer.suggest(2, 8)
    assert following["optimizer"] == "adam" and key(following) != key(first[0])


def test_an_earlier_stages_value_at_a_start_is_not_taken_for_this_stages() -> None:
    designer = local()
    designer.update([Observation(STARTS[0], 0.01, stage=0), Observation(STARTS[1], 0.02, stage=0)], [])
    assert designer.suggest(0, 2) == STARTS


def test_suggestions_stay_in_bounds_and_are_distinct() -> None:
    points = run(local(), trials=24, batch=2)
    assert all(inside(p) for p in points)
    assert len({key(p) for p in points}) == len(points)


def test_a_designer_rebuilt_from_the_stored_results_replays_to_the_same_points() -> None:
    kept = local(seed=5)
    done = run(kept, trials=14, batch=2)
    observations = [Observation(p, loss(p), stage=1) for p in done]
    kept.update(observations[-2:], [])
    rebuilt = local(seed=5)
    rebuilt.update(observations, [])
    assert rebuilt.suggest(14, 2) == kept.suggest(14, 2)


def test_refinement_improves_on_its_starts() -> None:
    points = run(local(), trials=40, batch=2)
    assert min(loss(p) for p in points) < min(loss(s) for s in STARTS) / 4


def test_a_diverged_point_counts_as_worse_than_every_result() -> None:
    designer = local()
    first = designer.suggest(0, 2)
    designer.update(
        [Observation(first[0], loss(first[0]), stage=1), Observation(first[1], None, diverged=True, stage=1)], []
    )
    penalty = designer._penalty(None)
    assert penalty is not None and penalty >= loss(first[0])
    assert len(designer.suggest(2, 2)) == 2


def test_without_a_start_it_begins_at_the_centre() -> None:
    designer = LocalDesigner(SPACE, config=SearchConfig(kind="local"), stage=1, minimize=True)
    designer.start_from([])
    (first,) = designer.suggest(0, 4)
    assert first["lr"] == pytest.approx(10**-2.5) and first["dropout"] == pytest.approx(0.25)


def test_an_old_scipy_is_reported_with_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cobyqa_missing() is None
    monkeypatch.setattr(scipy, "__version__", "1.11.4")
    message = cobyqa_missing()
    assert message is not None and LOCAL_EXTRA in message and "1.11.4" in message
