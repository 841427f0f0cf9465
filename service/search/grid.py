"""Grid search: ``grid_points`` per numeric axis (log-spaced on log axes), every value of a
categorical axis. A grid point is derived from its index alone; the product is never built.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from hypersweep.service.search.base import Designer, Params
from hypersweep.service.search.space import ParamValue

__all__ = ["GridDesigner", "grid_size"]


def grid_size(axes: list[list[ParamValue]]) -> int:
    return math.prod(len(values) for values in axes)


class GridDesigner(Designer):
    """Visits the grid in a scattered order fixed by the seed, so a stage that runs only part
    of the grid still spreads over it. The order is the bijection ``i -> (a*i + b) mod n``
    with ``a`` coprime to ``n``: each point comes up exactly once in ``n`` indices."""

    @cached_property
    def _axes(self) -> list[tuple[str, list[ParamValue]]]:
        return [(name, param.grid(self.config.grid_points)) for name, param in sorted(self.space.items())]

    @cached_property
    def _order(self) -> tuple[int, int]:
        n = self.capacity()
        if n <= 2:
            return 1, 0
        rng = np.random.default_rng([self.config.seed, self.stage, 0x6772])
        while True:
            a = int(rng.integers(1, n))
            if math.gcd(a, n) == 1:
                return a, int(rng.integers(0, n))

    def capacity(self) -> int:
        return grid_size([values for _, values in self._axes])

    def point(self, index: int) -> Params:
        """The grid point at ``index`` (0 <= index < capacity) in mixed-radix order."""
        params: Params = {}
        for name, values in reversed(self._axes):
            index, digit = divmod(index, len(values))
            params[name] = values[digit]
        return dict(sorted(params.items()))

    def suggest(self, start: int, count: int) -> list[Params]:
        n = self.capacity()
        a, b = self._order
        if start + count > n:
            raise ValueError(f"the grid has {n} points; trials {start}..{start + count - 1} asked")
        return [self.point((a * i + b) % n) for i in range(start, start + count)]
