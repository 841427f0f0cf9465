"""Params a user chose (enqueued trials, imported results): checked against a space and
compared with each other.

A chosen value is held as the axis holds it: a float axis's value as a float (``1`` is
``1.0``), an int axis's as an int (``64.0`` is ``64``; ``64.5`` is refused), a categorical
axis's as the value of the axis it equals, of the same type (``1`` is not ``true``, nor
``"1"``). Pure functions: nothing here knows of storage or HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hypersweep.service.search.base import Params
from hypersweep.service.search.space import CategoricalParam, FloatParam, IntParam, Param, ParamValue, Space

__all__ = ["ParamsKey", "check_params", "inside", "params_key"]

#: What makes two parameter sets the same: each name with its value's type and value.
ParamsKey = tuple[tuple[str, str, ParamValue], ...]


def params_key(params: Mapping[str, ParamValue]) -> ParamsKey:
    """The identity of a parameter set; the type is part of it, as ``1``, ``1.0`` and
    ``True`` are equal in Python but not as settings."""
    return tuple((name, type(value).__name__, value) for name, value in sorted(params.items()))


def _value(param: Param, value: Any) -> ParamValue:
    """``value`` as the axis holds it; ``ValueError`` with a sentence when the axis has no
    such value."""
    if isinstance(param, CategoricalParam):
        for allowed in param.values:
            if type(allowed) is type(value) and allowed == value:
                return allowed
        raise ValueError(f"{value!r} is not one of the axis's values {param.values}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number; this axis is {param.type}")
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    number: int | float
    if isinstance(param, IntParam):
        if not float(value).is_integer():
            raise ValueError(f"{value} is not a whole number; this axis is int")
        number = int(value)
    else:
        assert isinstance(param, FloatParam)
        number = float(value)
    low, high = param.bounds()
    if not low <= number <= high:
        scale = " (log scale)" if param.scale == "log" else ""
        raise ValueError(f"{value} lies outside the axis's range {param.low:g} .. {param.high:g}{scale}")
    return number


def check_params(space: Space, params: Mapping[str, Any]) -> tuple[Params, list[tuple[str, str]]]:
    """``params`` as ``space`` holds them, and the problems found, each ``(name, sentence)``
    (``name`` empty for the set as a whole). Every axis needs a value, and no other name is
    allowed. The params are usable only when there is no problem."""
    checked: Params = {}
    problems: list[tuple[str, str]] = []
    for name in params:
        if name not in space:
            problems.append((name, f"{name!r} is not a parameter of this space ({', '.join(sorted(space))})"))
    for name, param in space.items():
        if name not in params:
            problems.append((name, "missing: every parameter of the space needs a value"))
            continue
        try:
            checked[name] = _value(param, params[name])
        except ValueError as exc:
            problems.append((name, str(exc)))
    return checked, problems


def inside(space: Space, params: Mapping[str, Any]) -> Params | None:
    """The values of ``params`` on the axes of ``space``, as the space holds them, or
    ``None`` when one is missing or lies outside its axis. Names the space does not have
    are left out."""
    checked: Params = {}
    for name, param in space.items():
        if name not in params:
            return None
        try:
            checked[name] = _value(param, params[name])
        except ValueError:
            return None
    return checked
