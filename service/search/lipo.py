"""LIPO search: MaxLIPO with a trust region, the method of dlib's ``global_function_search``
(Malherbe and Vayatis, "Global optimization of Lipschitz functions", ICML 2017; D. King,
"A global optimization algorithm worth using", 2017).

The designer works in the unit cube of the stage's space: every axis mapped to [0, 1] in
its own scale, so log axes are searched in log space. Results are maximised (a loss is
negated). Steps, as dlib takes them:

* the first trial is the centre of the space, and until the stage holds ``max(3, d)``
  results trials are drawn at random;
* then odd trials try a **trust-region step**: a quadratic fitted to the best result and
  its nearest neighbours (least squares, or Powell's least-Frobenius-norm interpolation
  when there are too few), maximised within a ball around the best point and the bounds;
  int axes stay at the best point's values. The step is taken when the model predicts an
  improvement and the point is new;
* otherwise a **MaxLIPO step**: of 5,000 random points, the one where the upper bound
  ``U(x) = min_i y_i + sqrt(s_i + sum_k c_k (x_k - x_ik)^2)`` is largest, if it lies
  above the best result. The slopes ``c`` and the noise terms ``s`` are the smallest
  (in the squared norm) that keep every result under the bound of every other, a
  least-distance programme solved as one non-negative least-squares problem;
* 2% of the time, and whenever neither step has a point, a random point.

Parallel claims: a queued or running trial is a point of the bound with its nearest
result's value (dlib's treatment of outstanding evaluations), so the bound is low there
and the next point goes elsewhere; a suggestion never repeats a pending or known point.

Unlike dlib, nothing is carried between suggestions but the results: the trust region's
radius is derived each time from the best point's neighbours (dlib's reset rule, 0.95 of
the farthest one's distance), and each trial's random draws come from a generator seeded
with ``(seed, stage, index)``. So a designer rebuilt from the stored results (a restarted
server) suggests what the one it replaces would have.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hypersweep.service.search.base import Designer, Observation, Params, SearchConfig
from hypersweep.service.search.space import CategoricalParam, FloatParam, IntParam, ParamValue, Space

__all__ = ["RANDOM_CANDIDATES", "LipoDesigner", "UpperBound"]

#: Random points among which a MaxLIPO step picks the highest upper bound (dlib's number).
RANDOM_CANDIDATES = 5000
#: The chance that a step is plain random search (dlib's ``pure_random_search_probability``).
PURE_RANDOM = 0.02
#: The noise allowance of the upper bound, relative to the spread of the results (dlib's).
RELATIVE_NOISE = 0.001
#: Fresh random draws tried when a point repeats a known or pending one.
_REDRAWS = 20

_Key = tuple[tuple[str, str, ParamValue], ...]


def _key(params: Params) -> _Key:
    return tuple((name, type(value).__name__, value) for name, value in sorted(params.items()))


class UpperBound:
    """dlib's ``upper_bound_function``: a Lipschitz upper bound of the results ``(x, y)``,
    with a slope per axis and a noise term per point, fitted to be as tight as it can be
    while no result lies above another's bound."""

    def __init__(self, x: np.ndarray, y: np.ndarray, *, noise: float = RELATIVE_NOISE) -> None:
        n, d = x.shape
        self.x, self.y = x, y
        self._sx = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        self._sy = float(y.std()) if y.std() > 0 else 1.0
        self.slopes = np.zeros(d)
        self.offsets = np.zeros(n)
        i, j = np.triu_indices(n, k=1)
        if len(i) == 0:
            return
        a = ((x[i] - x[j]) / self._sx) ** 2  # per pair, per axis
        b = ((y[i] - y[j]) / self._sy) ** 2
        lower = np.where(y[i] > y[j], j, i)  # the point whose bound must reach the other
        keep = b > 0
        a, b, lower = a[keep], b[keep], lower[keep]
        if len(b) == 0:
            return

        # A least-distance programme, min |w|^2 with w = (c, s) subject to
        # a.c + noise * s[lower] >= b, solved as Lawson and Hanson do (Solving Least
        # Squares Problems, ch. 23): one non-negative least-squares problem.
        m = len(b)
        g = np.zeros((m, d + n))
        g[:, :d] = a
        g[np.arange(m), d + lower] = noise
        e = np.vstack([g.T, b[None, :]])
        f = np.zeros(d + n + 1)
        f[-1] = 1.0
        from scipy.optimize import nnls  # type: ignore[import-untyped]  # loaded when first needed

        u, _ = nnls(e, f, maxiter=50 * m)
        r = e @ u - f
        if r[-1] == 0:  # pragma: no cover - the constraints are always feasible
            return
        w = np.maximum(-r[:-1] / r[-1], 0.0)
        self.slopes = w[:d]
        self.offsets = noise * w[d:]

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """The bound at each row of ``points``."""
        diff = (points[:, None, :] - self.x[None, :, :]) / self._sx
        reach = np.sqrt(self.offsets[None, :] + (diff**2) @ self.slopes)
        return np.asarray(np.min(self.y[None, :] + self._sy * reach, axis=1))


class LipoDesigner(Designer):
    """``search.kind: lipo``: MaxLIPO with a trust region (see the module). Numeric axes
    only: validation refuses a space with a categorical axis."""

    learns = True

    def __init__(self, space: Space, *, config: SearchConfig, stage: int, minimize: bool) -> None:
        super().__init__(space, config=config, stage=stage, minimize=minimize)
        self._axes: list[tuple[str, FloatParam | IntParam]] = []
        for name, param in sorted(space.items()):
            if isinstance(param, CategoricalParam):
                raise ValueError(f"lipo searches numeric axes only, and {name} is categorical")
            self._axes.append((name, param))
        self._integer = np.array([isinstance(p, IntParam) for _, p in self._axes], dtype=bool)
        self._x: list[np.ndarray] = []
        self._y: list[float] = []
        #: Diverged results waiting for a first result to be ranked against.
        self._deferred: list[np.ndarray] = []
        self._known: set[_Key] = set()
        self._pending: dict[_Key, np.ndarray] = {}
        self._bound: UpperBound | None = None

    # -- what is known -------------------------------------------------------------------------

    def update(self, completed: Sequence[Observation], active: Sequence[Params]) -> None:
        """Take in new results (a diverged or pruned trial counts as the worst result so far) and make
        ``active`` the pending points."""
        for observation in completed:
            x = self._unit(observation.params)
            if x is None:
                continue
            if (
                observation.diverged
                or observation.pruned
                or observation.value is None
                or not np.isfinite(observation.value)
            ):
                if observation.diverged or observation.pruned:
                    self._deferred.append(x)
                continue
            self._add(x, -observation.value if self.minimize else observation.value)
        if self._y and self._deferred:
            worst = min(self._y)
            for x in self._deferred:
                self._add(x, worst)
            self._deferred.clear()
        self._pending = {}
        for params in active:
            x = self._unit(params)
            if x is not None:
                self._pending[_key(self._params(x))] = x

    def _add(self, x: np.ndarray, y: float) -> None:
        self._x.append(x)
        self._y.append(y)
        self._known.add(_key(self._params(x)))
        self._bound = None

    def _unit(self, params: Params) -> np.ndarray | None:
        """``params`` as a point of the unit cube, or ``None`` when outside this space."""
        point = []
        for name, param in self._axes:
            value = params.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            low, high = param.bounds()
            if not low <= value <= high:
                return None
            point.append(param.to_unit(float(value)))
        return np.array(point)

    def _params(self, x: np.ndarray) -> Params:
        return {name: param.cast(param.from_unit(float(u))) for (name, param), u in zip(self._axes, x, strict=True)}

    def _snap(self, x: np.ndarray) -> np.ndarray:
        """``x`` moved onto the values the axes can take (integers on int axes)."""
        snapped = self._unit(self._params(x))
        assert snapped is not None
        return snapped

    def _snap_many(self, x: np.ndarray) -> np.ndarray:
        """:meth:`_snap` of each row, vectorised over the int axes (float axes need none)."""
        x = x.copy()
        for i, (_, param) in enumerate(self._axes):
            if not isinstance(param, IntParam):
                continue
            log = param.scale == "log"
            low, high = (np.log10(b) if log else b for b in param.bounds())
            scaled = low + x[:, i] * (high - low)
            values = np.clip(np.round(10.0**scaled if log else scaled), param.low, param.high)
            x[:, i] = ((np.log10(values) if log else values) - low) / (high - low)
        return x

    # -- suggesting ----------------------------------------------------------------------------

    def suggest(self, start: int, count: int) -> list[Params]:
        """One point per trial index, each pending from the moment it is suggested."""
        suggestions = []
        for index in range(start, start + count):
            x = self._next(index)
            params = self._params(x)
            self._pending[_key(params)] = x
            suggestions.append(params)
        return suggestions

    def _next(self, index: int) -> np.ndarray:
        rng = np.random.default_rng([self.config.seed, self.stage, index, 0x6C69])
        d = len(self._axes)
        if not self._y and not self._pending:
            return self._snap(np.full(d, 0.5))
        if len(self._y) >= max(3, d):
            if index % 2 == 1:
                step = self._trust_region_step()
                if step is not None and self._is_new(step):
                    return step
            if rng.random() >= PURE_RANDOM:
                step = self._max_upper_bound(rng)
                if step is not None:
                    return step
        return self._random(rng)

    def _is_new(self, x: np.ndarray) -> bool:
        key = _key(self._params(x))
        return key not in self._known and key not in self._pending

    def _random(self, rng: np.random.Generator) -> np.ndarray:
        x = self._snap(rng.random(len(self._axes)))
        for _ in range(_REDRAWS):
            if self._is_new(x):
                break
            x = self._snap(rng.random(len(self._axes)))
        return x

    def _max_upper_bound(self, rng: np.random.Generator) -> np.ndarray | None:
        """The MaxLIPO step: the random candidate with the highest upper bound, counting
        pending points at their nearest result's value; ``None`` when no candidate's bound
        lies above the best result."""
        x, y = np.array(self._x), np.array(self._y)
        if self._bound is None:
            self._bound = UpperBound(x, y)
        bound = self._bound
        if self._pending:
            pending = np.array(list(self._pending.values()))
            nearest = np.argmin(((pending[:, None, :] - x[None, :, :]) ** 2).sum(axis=2), axis=1)
            with_pending = UpperBound.__new__(UpperBound)
            with_pending.__dict__.update(bound.__dict__)
            with_pending.x = np.vstack([x, pending])
            with_pending.y = np.concatenate([y, y[nearest]])
            with_pending.offsets = np.concatenate([bound.offsets, np.zeros(len(pending))])
            bound = with_pending
        candidates = rng.random((RANDOM_CANDIDATES, len(self._axes)))
        candidates = self._snap_many(candidates)
        values = bound(candidates)
        for i in np.argsort(-values)[:_REDRAWS]:
            if values[i] <= y.max():
                return None
            if self._is_new(candidates[i]):
                return np.asarray(candidates[i])
        return None

    def _trust_region_step(self) -> np.ndarray | None:
        """dlib's trust-region step around the best result, or ``None`` when the model
        predicts no improvement (or every axis is an integer)."""
        active = ~self._integer
        m = int(active.sum())
        x, y = np.array(self._x), np.array(self._y)
        if m == 0 or len(y) <= len(self._axes) + 1:
            return None
        best = x[int(np.argmax(y))]
        near = np.argsort(np.linalg.norm(x - best, axis=1), kind="stable")[: min(len(y), (m + 1) * (m + 2) // 2)]
        offsets = x[near][:, active] - best[active]
        radius = 0.95 * float(np.linalg.norm(offsets, axis=1).max())
        if radius <= 0:
            return None
        hessian, gradient = _fit_quadratic(offsets, y[near])
        step = _solve_trust_region(hessian, gradient, radius, -best[active], 1.0 - best[active])
        predicted = 0.5 * step @ hessian @ step + gradient @ step
        if not predicted > 0:
            return None
        point = best.copy()
        point[active] = np.clip(best[active] + step, 0.0, 1.0)
        return self._snap(point)


def _fit_quadratic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``H`` and ``g`` of the quadratic ``0.5 x'Hx + g'x + c`` through the points (rows of
    ``x``): least squares when there are enough points to fix it, otherwise the one of
    least Frobenius norm of ``H`` that interpolates them (Powell's NEWUOA equations 3.9 to
    3.12, as dlib fits it)."""
    n, m = x.shape
    if n >= (m + 1) * (m + 2) // 2:
        rows, cols = np.triu_indices(m)
        quad = x[:, rows] * x[:, cols] * np.where(rows == cols, 0.5, 1.0)
        z = np.linalg.lstsq(np.hstack([x, np.ones((n, 1)), quad]), y, rcond=None)[0]
        hessian = np.zeros((m, m))
        hessian[rows, cols] = z[m + 1 :]
        hessian[cols, rows] = z[m + 1 :]
        return hessian, z[:m]
    w = np.zeros((n + m + 1, n + m + 1))
    w[:n, :n] = 0.5 * (x @ x.T) ** 2
    w[:n, n] = w[n, :n] = 1.0
    w[:n, n + 1 :] = x
    w[n + 1 :, :n] = x.T
    rhs = np.concatenate([y, np.zeros(m + 1)])
    z = np.linalg.lstsq(w, rhs, rcond=None)[0]
    return x.T @ np.diag(z[:n]) @ x, z[n + 1 :]


def _solve_trust_region(
    hessian: np.ndarray, gradient: np.ndarray, radius: float, lower: np.ndarray, upper: np.ndarray
) -> np.ndarray:
    """The step ``p`` that maximises ``0.5 p'Hp + g'p`` with ``|p| <= radius`` and
    ``lower <= p <= upper``, from two starts (none, and along the gradient)."""
    from scipy.optimize import minimize  # loaded when first needed

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        return float(-(0.5 * p @ hessian @ p + gradient @ p)), -(hessian @ p + gradient)

    norm = float(np.linalg.norm(gradient))
    starts = [np.zeros_like(gradient)]
    if norm > 0:
        starts.append(np.clip(gradient / norm * radius * 0.5, lower, upper))
    best = np.zeros_like(gradient)
    best_loss = 0.0
    for start in starts:
        result = minimize(
            loss,
            start,
            jac=True,
            method="SLSQP",
            bounds=list(zip(lower, upper, strict=True)),
            constraints=[{"type": "ineq", "fun": lambda p: radius**2 - p @ p, "jac": lambda p: -2 * p}],
            options={"maxiter": 200},
        )
        p = np.clip(result.x, lower, upper)
        length = float(np.linalg.norm(p))
        if length > radius:
            p *= radius / length
        value = loss(p)[0]
        if value < best_loss:
            best, best_loss = p, value
    return best
