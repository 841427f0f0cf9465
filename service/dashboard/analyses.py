"""The dashboard's derived answers, parameter importance and contour grids, computed from a
sweep's completed trials and kept in memory.

The cache lives in the server process (one per app; not shared between processes, and
gone on a restart). An answer is keyed by what it was computed from, including how many
completed trials with a value its stage had (or the sweep, for the overall one): a newly
completed trial changes that count and so the key, and the next request recomputes. A
completed trial's parameters and value never change, so an unchanged count means an
unchanged answer. One cheap counting query per request tells which keys are current.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from hypersweep.service.dashboard import queries
from hypersweep.service.dashboard.contour import contour_grid
from hypersweep.service.dashboard.importance import Importances, axis_scale, param_importances
from hypersweep.service.dashboard.schemas import ContourAxis, StageImportance, SweepContour, SweepImportance
from hypersweep.service.db import Database
from hypersweep.service.search.space import CategoricalParam, Param, load_space

__all__ = ["CACHE_SIZE", "Analyses", "UnknownParameter"]

#: Answers kept; the least recently used goes first.
CACHE_SIZE = 512

T = TypeVar("T")


class UnknownParameter(ValueError):
    """A parameter name the sweep's space does not have; ``field`` is the query field."""

    def __init__(self, field: str, name: str, names: list[str]) -> None:
        super().__init__(f"the sweep has no parameter {name!r}; it has {', '.join(names)}")
        self.field = field


class Analyses:
    """Importance and contour answers for the sweeps in ``db``, computed on demand and
    cached. Safe to call from several threads: one computation runs at a time (they are
    CPU-bound, and two requests for the same answer then compute it once)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        #: How many answers were computed rather than taken from the cache (for tests).
        self.computed = 0

    def importance(self, *, sweep_id: int, evaluator: str) -> SweepImportance:
        """The importance of each parameter overall and per started stage."""
        raw_space, counts = queries.completed_counts(db=self.db, sweep_id=sweep_id)
        loaded: dict[str, queries.CompletedTrials] = {}

        def trials() -> queries.CompletedTrials:
            if "all" not in loaded:
                loaded["all"] = queries.completed_trials(db=self.db, sweep_id=sweep_id)
            return loaded["all"]

        def compute(stage: int | None) -> StageImportance:
            data = trials()
            rows = [i for i in range(len(data.value)) if stage is None or data.stage[i] == stage]
            raw = data.space if stage is None else (data.stage_spaces[stage] or data.space)
            result = param_importances(
                load_space(raw),
                [data.params[i] for i in rows],
                [data.value[i] for i in rows],
                minimize=data.minimize,
                evaluator=evaluator,
            )
            return _stage_importance(stage, result)

        total = sum(counts.values())
        overall = self._cached(("importance", sweep_id, None, evaluator, total), lambda: compute(None))
        stages = []
        for stage in sorted(counts):
            if len(counts) == 1:
                # One stage holds every completed trial: its answer is the overall one.
                stages.append(overall.model_copy(update={"stage": stage}))
            else:
                key = ("importance", sweep_id, stage, evaluator, counts[stage])
                stages.append(self._cached(key, lambda stage=stage: compute(stage)))  # type: ignore[misc]
        return SweepImportance(
            sweep_id=sweep_id,
            evaluator=evaluator,
            scales={name: axis_scale(param) for name, param in load_space(raw_space).items()},
            overall=overall,
            stages=stages,
        )

    def contour(self, *, sweep_id: int, x: str | None, y: str | None, stage: int | None) -> SweepContour:
        """The objective over parameters ``x`` and ``y`` (of one stage, with ``stage``);
        by default the first two numeric parameters (the first two of any kind when there
        are fewer), as the dashboard picks them. Raises ``UnknownParameter`` for a name the
        sweep's space does not have."""
        raw_space, counts = queries.completed_counts(db=self.db, sweep_id=sweep_id)
        space: dict[str, Param] = load_space(raw_space)
        # In the stored document's order, which is the order the dashboard sees.
        numeric = [name for name in raw_space if not isinstance(space[name], CategoricalParam)]
        first = numeric if len(numeric) >= 2 else list(raw_space)
        x = x if x is not None else first[0]
        y = y if y is not None else first[1 % len(first)]
        for field, name in (("x", x), ("y", y)):
            if name not in space:
                raise UnknownParameter(field, name, list(space))
        count = sum(counts.values()) if stage is None else counts.get(stage, 0)

        def compute() -> SweepContour:
            data = queries.completed_trials(db=self.db, sweep_id=sweep_id, stage=stage)
            grid = contour_grid(space, x, y, data.params, data.value)
            return SweepContour(
                sweep_id=sweep_id,
                stage=stage,
                trials=grid.trials,
                x=ContourAxis(name=grid.x.name, scale=grid.x.scale, values=grid.x.values),
                y=ContourAxis(name=grid.y.name, scale=grid.y.scale, values=grid.y.values),
                z=grid.z,
                note=grid.note,
            )

        return self._cached(("contour", sweep_id, stage, x, y, count), compute)

    def _cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                answer: T = self._cache[key]
                return answer
            answer = compute()
            self.computed += 1
            self._cache[key] = answer
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
            return answer


def _stage_importance(stage: int | None, result: Importances) -> StageImportance:
    return StageImportance(
        stage=stage, trials=result.trials, used=result.used, importances=result.shares, note=result.note
    )
