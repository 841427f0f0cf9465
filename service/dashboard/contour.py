"""The objective over two parameters as a grid for a filled contour: SciPy's linear
interpolation over the Delaunay triangles of the completed trials, in each axis's scale.

Trials in, a grid out; nothing here reads the database. A ``log`` axis is gridded and
interpolated in ``log10`` of its values (evenly spaced there, as the dashboard's log axes
draw it), a categorical one at its values' positions 0, 1, 2... Cells outside the trials'
convex hull have no value: the plot leaves them blank rather than invent the objective
where no trial went.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hypersweep.service.search.space import CategoricalParam, Param

__all__ = ["RESOLUTION", "ContourGrid", "GridAxis", "contour_grid"]

#: Cells along a numeric axis.
RESOLUTION = 48


@dataclass(frozen=True)
class GridAxis:
    """One axis of the grid: the values at its cell centres (as the parameter takes them:
    ``10**u`` on a log axis, a category's value on a categorical one)."""

    name: str
    scale: str
    values: list[Any]


@dataclass(frozen=True)
class ContourGrid:
    """``z[j][i]`` is the interpolated objective at ``x.values[i]``, ``y.values[j]``, or
    ``None`` outside the trials' hull; ``z`` is empty, with ``note`` saying why, when the
    trials cannot be interpolated."""

    trials: int
    x: GridAxis
    y: GridAxis
    z: list[list[float | None]]
    note: str | None = None


def contour_grid(
    space: Mapping[str, Param], x: str, y: str, params: Sequence[Mapping[str, Any]], values: Sequence[float]
) -> ContourGrid:
    """Interpolate ``values`` (the objective of the completed trials whose parameters are
    ``params``) over the axes ``x`` and ``y`` of ``space``."""
    points: list[tuple[float, float]] = []
    zs: list[float] = []
    for p, v in zip(params, values, strict=True):
        u, w = _position(space[x], p.get(x)), _position(space[y], p.get(y))
        if u is None or w is None or not isinstance(v, int | float) or not math.isfinite(v):
            continue
        points.append((u, w))
        zs.append(float(v))
    gx, gy = _grid(space[x], [u for u, _ in points]), _grid(space[y], [w for _, w in points])
    axes = (GridAxis(x, gx.scale, gx.values), GridAxis(y, gy.scale, gy.values))
    if x == y:
        return ContourGrid(len(zs), *axes, [], "Pick two different parameters.")
    if len(zs) < 3:
        return ContourGrid(len(zs), *axes, [], f"Needs at least 3 completed trials with a value; there are {len(zs)}.")
    from scipy.interpolate import griddata  # type: ignore[import-untyped]
    from scipy.spatial import QhullError  # type: ignore[import-untyped]

    us, ws = np.meshgrid(gx.positions, gy.positions)
    at, z_at = _binned(np.array(points), np.array(zs), gx.positions, gy.positions)
    try:
        grid = griddata(at, z_at, (us, ws), method="linear")
    except (QhullError, ValueError):
        return ContourGrid(len(zs), *axes, [], "The trials lie on a line in these two parameters: nothing to fill.")
    z = [[None if math.isnan(c) else float(c) for c in row] for row in grid.tolist()]
    return ContourGrid(len(zs), *axes, z)


def _binned(points: np.ndarray, zs: np.ndarray, xs: list[float], ys: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """The trials merged per grid cell: the mean position and value of those in each
    cell. Triangulating at most one point per cell keeps the time bounded however many
    trials there are, and where trials crowd a cell the contour shows their mean."""

    def cell(values: np.ndarray, lines: list[float]) -> np.ndarray:
        if len(lines) < 2:
            return np.zeros(len(values), dtype=np.int64)
        edges = (np.array(lines[1:]) + np.array(lines[:-1])) / 2
        return np.searchsorted(edges, values)

    key = cell(points[:, 0], xs) * (len(ys) + 1) + cell(points[:, 1], ys)
    _, index = np.unique(key, return_inverse=True)
    counts = np.bincount(index)

    def mean(values: np.ndarray) -> np.ndarray:
        means: np.ndarray = np.bincount(index, weights=values) / counts
        return means

    return np.column_stack([mean(points[:, 0]), mean(points[:, 1])]), mean(zs)


@dataclass(frozen=True)
class _Grid:
    scale: str
    positions: list[float]
    values: list[Any]


def _grid(param: Param, seen: Sequence[float]) -> _Grid:
    if isinstance(param, CategoricalParam):
        return _Grid("categorical", [float(k) for k in range(len(param.values))], list(param.values))
    log = param.scale == "log"
    low, high = (math.log10(b) for b in param.bounds()) if log else param.bounds()
    # A trial outside the declared bounds (a narrowed stage's space) widens the grid.
    low, high = min(low, *seen, high), max(high, *seen, low)
    positions = np.linspace(low, high, RESOLUTION).tolist()
    return _Grid("log10" if log else "linear", positions, [10.0**u for u in positions] if log else positions)


def _position(param: Param, value: Any) -> float | None:
    """Where ``value`` sits on the grid's axis, or ``None`` when it has no place there."""
    if value is None:
        return None
    if isinstance(param, CategoricalParam):
        matches = [k for k, v in enumerate(param.values) if str(v) == str(value)]
        return float(matches[0]) if matches else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if param.scale == "log":
        return math.log10(value) if value > 0 else None
    return float(value) if math.isfinite(value) else None
