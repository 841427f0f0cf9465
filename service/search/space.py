"""Search spaces: the parameter kinds of a sweep document and the arithmetic on their axes.

Every numeric axis maps to the unit interval through its own scale: a ``log`` axis is
uniform in ``log10`` (the CS231n advice, ``lr = 10 ** uniform(-6, 0)``), a ``linear`` one
in the value itself. Sampling, grid points and narrowing all happen in that unit space.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, model_validator

__all__ = [
    "MAX_INT_BOUND",
    "MAX_PARAMS",
    "PARAM_NAME_PATTERN",
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "Param",
    "ParamValue",
    "Space",
    "dump_space",
    "load_space",
]

#: The most parameters a space may have.
MAX_PARAMS = 32
#: The largest bound of an int axis, either sign: designers work in float64, which holds
#: every integer up to 2**53 exactly.
MAX_INT_BOUND = 2**53
PARAM_NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"

ParamValue = str | int | float | bool
ParamName = Annotated[str, StringConstraints(pattern=PARAM_NAME_PATTERN, max_length=64)]


class _Numeric(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scale: Literal["linear", "log"] = "linear"

    @model_validator(mode="after")
    def _check_bounds(self) -> _Numeric:
        low, high = self.bounds()
        if not low < high:
            raise ValueError(f"low ({low}) must be less than high ({high})")
        if self.scale == "log" and low <= 0:
            raise ValueError(f"a log-scale axis needs low > 0, got low = {low}")
        # Sampling and narrowing map the axis to [0, 1] through its scale: its width there
        # must be a finite number above zero.
        scaled_low, scaled_high = self._scaled_bounds()
        if not math.isfinite(scaled_high - scaled_low):
            raise ValueError(f"the axis from {low} to {high} is too wide to sample: high - low must be finite")
        if not scaled_high > scaled_low:
            raise ValueError(f"the axis from {low} to {high} is too narrow to sample in {self.scale} scale")
        return self

    def bounds(self) -> tuple[float, float]:
        raise NotImplementedError

    def to_unit(self, value: float) -> float:
        """Position of ``value`` on the axis, 0 at ``low`` and 1 at ``high``, in the axis's scale."""
        low, high = self._scaled_bounds()
        return (self._scaled(value) - low) / (high - low)

    def from_unit(self, u: float) -> float:
        """The value at unit position ``u`` (clipped to [0, 1]), in the axis's scale."""
        low, high = self._scaled_bounds()
        x = low + min(max(u, 0.0), 1.0) * (high - low)
        return 10.0**x if self.scale == "log" else x

    def _scaled(self, value: float) -> float:
        return math.log10(value) if self.scale == "log" else float(value)

    def _scaled_bounds(self) -> tuple[float, float]:
        low, high = self.bounds()
        return self._scaled(low), self._scaled(high)


class FloatParam(_Numeric):
    type: Literal["float"]
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high

    def cast(self, value: float) -> float:
        return min(max(float(value), self.low), self.high)

    def grid(self, points: int) -> list[ParamValue]:
        """``points`` values evenly spaced in the axis's scale, both ends included."""
        if points == 1:
            return [self.from_unit(0.5)]
        return [self.cast(self.from_unit(i / (points - 1))) for i in range(points)]


class IntParam(_Numeric):
    type: Literal["int"]
    low: int = Field(ge=-MAX_INT_BOUND, le=MAX_INT_BOUND)
    high: int = Field(ge=-MAX_INT_BOUND, le=MAX_INT_BOUND)

    def bounds(self) -> tuple[float, float]:
        return float(self.low), float(self.high)

    def cast(self, value: float) -> int:
        return min(max(round(value), self.low), self.high)

    def grid(self, points: int) -> list[ParamValue]:
        """Up to ``points`` distinct integers spread in the axis's scale, both ends included."""
        if points == 1:
            return [self.cast(self.from_unit(0.5))]
        values = (self.cast(self.from_unit(i / (points - 1))) for i in range(points))
        return sorted(set(values))


class CategoricalParam(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["categorical"]
    values: list[ParamValue] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _check_unique(self) -> CategoricalParam:
        seen: set[tuple[str, Any]] = set()
        for value in self.values:
            key = (type(value).__name__, value)
            if key in seen:
                raise ValueError(f"values must be distinct, {value!r} appears twice")
            seen.add(key)
        return self

    def grid(self, points: int) -> list[ParamValue]:
        return list(self.values)


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]
Space = dict[ParamName, Param]

_space_adapter: TypeAdapter[Space] = TypeAdapter(Space)


def load_space(raw: dict[str, Any]) -> Space:
    """The space stored as ``raw`` (what :func:`dump_space` wrote). Parsed once per distinct
    space in a process; the result is shared, so callers must not change it."""
    return _parse_space(json.dumps(raw, sort_keys=True))


@lru_cache(maxsize=256)
def _parse_space(frozen: str) -> Space:
    return _space_adapter.validate_json(frozen)


def dump_space(space: Space) -> dict[str, Any]:
    """``space`` as JSON-ready data, the form a stage stores."""
    dumped: dict[str, Any] = _space_adapter.dump_python(space, mode="json")
    return dumped
