"""Local refinement: SciPy's COBYQA, a derivative-free trust-region method of the BOBYQA
family (Powell's successors, by Ragonneau and Zhang), run from each of the previous
stage's ``top_k`` best trials, within the stage's space.

COBYQA calls its objective function; a sweep learns a value only when a trial ends. So
the designer drives it by deterministic replay: to find the next point of a start, it
runs COBYQA again from that start, answering each point it asks about with the stored
result of this stage's trial at that point, and stops at the first point with no result.
That point is the start's next trial. When it is already queued or running, the start
waits (it proposes nothing new until the trial ends), so ``top_k`` starts keep at most
``top_k`` trials running, one each. Nothing is kept but the results: a designer rebuilt
from the stored trials (a restarted server) replays to the same points.

Axes are searched in their scales: COBYQA moves in the unit cube of the stage's space
(log axes in log10), its first trust-region radius ``search.radius`` of each axis's
range. Int axes are rounded when a point becomes a trial; categorical axes keep each
start's values. The start itself is the first point of its run: it ran with the previous
stage's epochs, and is measured again with this stage's.

A diverged (or pruned) trial counts as the worst result of the stage so far, plus the stage's
spread; a start whose run has converged (or whose own point diverged with nothing to
rank it against) keeps refining with points drawn around the stage's best result, so the
stage spends its budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hypersweep.service.search.base import Designer, Observation, Params, SearchConfig
from hypersweep.service.search.space import CategoricalParam, FloatParam, IntParam, ParamValue, Space

__all__ = ["FINAL_RADIUS", "LOCAL_EXTRA", "LocalDesigner", "cobyqa_missing"]

#: The trust-region radius (in the unit cube) at which a start's run has converged.
FINAL_RADIUS = 1e-3
#: The package extra that brings a SciPy with COBYQA.
LOCAL_EXTRA = "hypersweep[local]"
#: Fresh draws tried when a point around the best repeats a known or pending one.
_REDRAWS = 20

_Key = tuple[tuple[str, str, ParamValue], ...]


def cobyqa_missing() -> str | None:
    """``None`` when this SciPy has COBYQA (1.14 or later), else a sentence saying what
    to install."""
    try:
        import scipy  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - SciPy is a dependency
        found = "no SciPy"
    else:
        parts = scipy.__version__.split(".")
        if (int(parts[0]), int(parts[1])) >= (1, 14):
            return None
        found = f"SciPy {scipy.__version__}"
    return (
        f"search kind local runs SciPy's COBYQA, which needs SciPy 1.14 or later, and this server has {found}: "
        f"install {LOCAL_EXTRA}"
    )


def _key(params: Params) -> _Key:
    return tuple((name, type(value).__name__, value) for name, value in sorted(params.items()))


class _Unknown(Exception):
    """Raised by the replayed objective at the first point without a result."""

    def __init__(self, params: Params) -> None:
        super().__init__()
        self.params = params


class _Stuck(Exception):
    """Raised by the replayed objective at a diverged point with no result to rank it by."""


class LocalDesigner(Designer):
    """``search.kind: local``: COBYQA from each of the previous stage's best trials (see
    the module). ``suggest`` returns at most one new point per start that is not
    waiting, so fewer than asked when starts wait."""

    learns = True
    starts_from_previous = True

    def __init__(self, space: Space, *, config: SearchConfig, stage: int, minimize: bool) -> None:
        super().__init__(space, config=config, stage=stage, minimize=minimize)
        self._axes: list[tuple[str, FloatParam | IntParam]] = []
        self._fixed_axes: list[tuple[str, CategoricalParam]] = []
        for name, param in sorted(space.items()):
            if isinstance(param, CategoricalParam):
                self._fixed_axes.append((name, param))
            else:
                self._axes.append((name, param))
        if not self._axes:
            raise ValueError("local refines numeric axes, and this space has none")
        #: Per start: its point in the unit cube, and its params there (categoricals included).
        self._starts: list[tuple[np.ndarray, Params]] = []
        self._losses: dict[_Key, float] = {}
        self._diverged: dict[_Key, float | None] = {}
        self._pending: set[_Key] = set()

    # -- what is known -------------------------------------------------------------------------

    def start_from(self, starts: Sequence[Params]) -> None:
        """Each start as a point of the unit cube (clipped to the stage's space) and its
        categorical values; with no start (no result in the previous stage), the centre."""
        self._starts = [self._start(params) for params in starts] or [self._start({})]

    def _start(self, params: Params) -> tuple[np.ndarray, Params]:
        """The point of ``params`` in the unit cube, and the params measured there: the
        given ones (cast to the axes) where they lie inside the space."""
        x = []
        for name, param in self._axes:
            value = params.get(name)
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            x.append(min(max(param.to_unit(float(value)), 0.0), 1.0) if numeric else 0.5)  # type: ignore[arg-type]
        fixed: Params = {}
        for name, categorical in self._fixed_axes:
            value = params.get(name)
            same = [v for v in categorical.values if type(v) is type(value) and v == value]
            fixed[name] = same[0] if same else categorical.values[0]
        point = np.array(x)
        exact: Params = {}
        for (name, param), u in zip(self._axes, point, strict=True):
            value = params.get(name)
            low, high = param.bounds()
            inside = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
            exact[name] = param.cast(float(value)) if inside else param.cast(param.from_unit(float(u)))  # type: ignore[arg-type]
        return point, {**exact, **fixed}

    def update(self, completed: Sequence[Observation], active: Sequence[Params]) -> None:
        """Keep this stage's results (earlier stages ran with other epochs) and make
        ``active`` the pending points."""
        for observation in completed:
            if observation.stage != self.stage:
                continue
            key = self._key_of(observation.params)
            if observation.diverged or observation.pruned:  # a pruned trial lost to its stage
                self._diverged[key] = observation.value
            elif observation.value is not None and math.isfinite(observation.value):
                self._losses[key] = observation.value if self.minimize else -observation.value
        self._pending = {self._key_of(params) for params in active}

    def _key_of(self, params: Params) -> _Key:
        return _key({name: params[name] for name in self.space if name in params})

    def _params(self, x: np.ndarray, fixed: Params) -> Params:
        params: Params = {
            name: param.cast(param.from_unit(float(u))) for (name, param), u in zip(self._axes, x, strict=True)
        }
        return {**params, **fixed}

    # -- suggesting ----------------------------------------------------------------------------

    def suggest(self, start: int, count: int) -> list[Params]:
        """Up to ``count`` points, at most one per start that is not waiting. The starts
        take turns: trial ``start`` asks start ``start mod top_k`` first, then the next."""
        if not self._starts:
            self.start_from([])
        suggestions: list[Params] = []
        k = len(self._starts)
        for j in ((start + turn) % k for turn in range(k)):
            if len(suggestions) == count:
                break
            params = self._next(j)
            key = _key(params)
            if key in self._pending:
                continue  # this start waits for its trial
            self._pending.add(key)
            suggestions.append(params)
        return suggestions

    def _next(self, j: int) -> Params:
        """Start ``j``'s next point: where its replayed run first lacks a result, or, once
        the run has converged, a point around the stage's best result."""
        from scipy.optimize import Bounds, minimize  # type: ignore[import-untyped]

        x0, at_start = self._starts[j]
        fixed = {name: at_start[name] for name, _ in self._fixed_axes}
        if _key(at_start) not in self._losses and _key(at_start) not in self._diverged:
            # The start comes first, measured at its own params: COBYQA may shift its
            # first point away from a bound, and the cube's round trip is inexact.
            return at_start

        def objective(x: np.ndarray) -> float:
            params = self._params(np.clip(x, 0.0, 1.0), fixed)
            key = _key(params)
            if key in self._losses:
                return self._losses[key]
            if key in self._diverged:
                penalty = self._penalty(self._diverged[key])
                if penalty is not None:
                    return penalty
                raise _Stuck  # nothing to rank it against yet
            raise _Unknown(params)

        d = len(self._axes)
        try:
            minimize(
                objective,
                x0,
                method="COBYQA",
                bounds=Bounds(np.zeros(d), np.ones(d)),
                options={
                    "initial_tr_radius": self.config.radius,
                    "final_tr_radius": FINAL_RADIUS,
                    "maxfev": 500 * d,
                    "disp": False,
                },
            )
        except _Unknown as unknown:
            return unknown.params
        except _Stuck:
            pass
        return self._around_best(j, fixed)

    def _penalty(self, value: float | None) -> float | None:
        if not self._losses:
            return None
        best, worst = min(self._losses.values()), max(self._losses.values())
        own = None if value is None or not math.isfinite(value) else (value if self.minimize else -value)
        floor = worst + (worst - best)
        return floor if own is None else max(own, floor)

    def _around_best(self, j: int, fixed: Params) -> Params:
        """A point drawn around the stage's best result (or start ``j``), at the first
        radius's quarter, the same until a new result comes in."""
        centre = self._starts[j][0]
        if self._losses:
            best = min(self._losses, key=lambda key: self._losses[key])
            values = dict((name, value) for name, _, value in best)
            centre = self._start(values)[0]
        rng = np.random.default_rng([self.config.seed, self.stage, j, len(self._losses) + len(self._diverged)])
        params = self._params(centre, fixed)
        for _ in range(_REDRAWS):
            x = np.clip(centre + rng.normal(0.0, self.config.radius / 4, len(centre)), 0.0, 1.0)
            params = self._params(x, fixed)
            key = _key(params)
            if key not in self._losses and key not in self._diverged and key not in self._pending:
                break
        return params
