"""Coarse to fine: derive a later stage's space from the best trials of the stage before."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from hypersweep.service.search.base import Params
from hypersweep.service.search.diagnoses import BORDER_FRACTION, border_side, border_warning
from hypersweep.service.search.space import CategoricalParam, FloatParam, IntParam, Param, Space

__all__ = ["BORDER_FRACTION", "MARGIN", "Narrowed", "narrow"]

#: Each side of a narrowed axis is widened by this fraction of the top trials' span.
MARGIN = 0.25
#: When the top trials agree on one value, the axis keeps this fraction of its range.
MIN_SPAN_FRACTION = 0.1


@dataclass
class Narrowed:
    space: Space
    warnings: list[str] = field(default_factory=list)


def narrow(
    space: Space,
    *,
    original: Space,
    top: Sequence[Params],
    stage: int,
    margin: float = MARGIN,
    border: float = BORDER_FRACTION,
) -> Narrowed:
    """The space of the stage after ``stage``: each axis of ``space`` narrowed, in its own
    scale, to the span of ``top`` (best first) widened by ``margin`` of that span on each
    side and clipped to ``original``. When the best value lies on the border of ``space``,
    that side is extended (up to the original bound) instead, and a warning says so. An
    axis is never narrowed to nothing: where rounding would close it, it is kept.
    Categorical axes keep the values seen among ``top``. With no ``top`` trials the space
    is kept as it is."""
    if not top:
        return Narrowed(dict(space), [f"stage {stage} has no completed trial; the next stage keeps its space"])
    result = Narrowed({})
    for name, param in space.items():
        values = [p[name] for p in top if name in p]
        if not values:
            result.space[name] = param
        elif isinstance(param, CategoricalParam):
            seen = {(type(v).__name__, v) for v in values}
            result.space[name] = CategoricalParam(
                type="categorical", values=[v for v in param.values if (type(v).__name__, v) in seen]
            )
        else:
            orig = original.get(name, param)
            assert not isinstance(orig, CategoricalParam)
            result.space[name] = _narrow_numeric(
                name, param, orig, [float(v) for v in values], stage, margin, border, result.warnings
            )
    return result


def _narrow_numeric(
    name: str,
    param: FloatParam | IntParam,
    original: FloatParam | IntParam,
    values: list[float],
    stage: int,
    margin: float,
    border: float,
    warnings: list[str],
) -> Param:
    # Work in unit coordinates of the current stage's axis: 0 and 1 are its bounds, and the
    # scale (log10 or linear) is already applied, so the margin is a fraction in that scale.
    units = [param.to_unit(v) for v in values]
    lo, hi = min(units), max(units)
    span = max(hi - lo, MIN_SPAN_FRACTION)
    centre = (lo + hi) / 2
    lo, hi = min(lo, centre - span / 2), max(hi, centre + span / 2)
    new_lo, new_hi = lo - margin * span, hi + margin * span

    # The one test and sentence for a best value on a border (``diagnoses``).
    side = border_side(units[0], border)
    if side == "lower":
        new_lo = -0.5
        warnings.append(border_warning(stage, name, values[0], side, param.bounds()[0], original.bounds()[0]))
    elif side == "upper":
        new_hi = 1.5
        warnings.append(border_warning(stage, name, values[0], side, param.bounds()[1], original.bounds()[1]))

    orig_lo, orig_hi = (param.to_unit(b) for b in original.bounds())
    new_lo, new_hi = max(new_lo, orig_lo), min(new_hi, orig_hi)
    low, high = (_from_unit_unclipped(param, u) for u in (new_lo, new_hi))
    try:
        if isinstance(param, IntParam):
            assert isinstance(original, IntParam)
            ilow = max(original.low, round(low))
            ihigh = min(original.high, round(high))
            if ihigh <= ilow:
                ilow, ihigh = max(original.low, ilow - 1), min(original.high, ilow + 1)
            return IntParam(type="int", low=ilow, high=ihigh, scale=param.scale)
        low, high = max(low, original.low), min(high, original.high)
        return FloatParam(type="float", low=low, high=high, scale=param.scale)
    except ValueError:
        # Rounding closed the narrowed axis (the axis is only a few floats wide, or its
        # ends meet in log scale): the next stage keeps this one, which is valid.
        return param


def _from_unit_unclipped(param: FloatParam | IntParam, u: float) -> float:
    low, high = param.bounds()
    if param.scale == "log":
        a, b = math.log10(low), math.log10(high)
        return float(10.0 ** (a + u * (b - a)))
    return low + u * (high - low)
