"""Random search: each axis sampled uniformly in its own scale (log axes in log10 space)."""

from __future__ import annotations

import numpy as np

from hypersweep.service.search.base import Designer, Params
from hypersweep.service.search.space import CategoricalParam, Param

__all__ = ["RandomDesigner", "sample"]


def sample(name_params: list[tuple[str, Param]], rng: np.random.Generator) -> Params:
    """One point of the space, drawn with ``rng``; axes are visited in the given order."""
    params: Params = {}
    for name, param in name_params:
        if isinstance(param, CategoricalParam):
            params[name] = param.values[int(rng.integers(len(param.values)))]
        else:
            params[name] = param.cast(param.from_unit(float(rng.random())))
    return params


class RandomDesigner(Designer):
    """Trial ``i`` of a stage is drawn from a generator seeded with ``(seed, stage, i)``,
    so the same seed and space give the same trials in any claim order."""

    def suggest(self, start: int, count: int) -> list[Params]:
        axes = sorted(self.space.items())
        return [
            sample(axes, np.random.default_rng([self.config.seed, self.stage, index]))
            for index in range(start, start + count)
        ]
