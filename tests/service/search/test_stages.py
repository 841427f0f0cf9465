"""Coarse to fine: narrowing a space around the best trials of a stage."""

from __future__ import annotations

import math

import pytest
from pydantic import TypeAdapter

from service.search.space import CategoricalParam, FloatParam, IntParam, Space
from service.search.stages import narrow

SPACE: Space = TypeAdapter(Space).validate_python(
    {
        "lr": {"type": "float", "low": 1e-6, "high": 1.0, "scale": "log"},
        "dropout": {"type": "float", "low": 0.0, "high": 0.8},
        "hidden": {"type": "int", "low": 16, "high": 1024, "scale": "log"},
        "optimizer": {"type": "categorical", "values": ["sgd", "momentum", "adam"]},
    }
)


def top(
    *lrs: float, dropout: tuple[float, ...] = (0.3, 0.4), hidden: tuple[int, ...] = (64, 128)
) -> list[dict[str, object]]:
    return [
        {
            "lr": lr,
            "dropout": dropout[i % len(dropout)],
            "hidden": hidden[i % len(hidden)],
            "optimizer": "adam" if i else "sgd",
        }
        for i, lr in enumerate(lrs)
    ]


def test_log_axis_narrows_in_log_space_with_a_quarter_margin() -> None:
    result = narrow(SPACE, original=SPACE, top=top(1e-3, 1e-2), stage=0)
    lr = result.space["lr"]
    assert isinstance(lr, FloatParam) and lr.scale == "log"
    # Span is one decade; a quarter decade is added on each side.
    assert math.log10(lr.low) == pytest.approx(-3.25)
    assert math.log10(lr.high) == pytest.approx(-1.75)
    assert result.warnings == []


def test_linear_axis_narrows_in_its_own_units() -> None:
    dropout = narrow(SPACE, original=SPACE, top=top(1e-3, 1e-2, dropout=(0.2, 0.6)), stage=0).space["dropout"]
    assert isinstance(dropout, FloatParam)
    assert (dropout.low, dropout.high) == pytest.approx((0.1, 0.7))


def test_int_axis_stays_integer_and_distinct() -> None:
    hidden = narrow(SPACE, original=SPACE, top=top(1e-3, 1e-2, hidden=(128, 128)), stage=0).space["hidden"]
    assert isinstance(hidden, IntParam)
    assert hidden.low < 128 < hidden.high
    assert isinstance(hidden.low, int) and isinstance(hidden.high, int)


def test_categorical_axis_keeps_the_values_seen_among_the_best() -> None:
    optimizer = narrow(SPACE, original=SPACE, top=top(1e-3, 1e-2), stage=0).space["optimizer"]
    assert isinstance(optimizer, CategoricalParam)
    assert optimizer.values == ["sgd", "adam"]


def test_narrowed_axis_is_clipped_to_the_original_bounds() -> None:
    current: Space = {**SPACE, "dropout": FloatParam(type="float", low=0.0, high=0.4)}
    dropout = narrow(current, original=SPACE, top=top(1e-3, 1e-2, dropout=(0.3, 0.02)), stage=1).space["dropout"]
    assert isinstance(dropout, FloatParam)
    assert dropout.low == 0.0
    assert dropout.high == pytest.approx(0.37)


def test_best_value_on_the_border_extends_that_side_and_warns() -> None:
    current: Space = {**SPACE, "lr": FloatParam(type="float", low=1e-4, high=1e-2, scale="log")}
    result = narrow(current, original=SPACE, top=top(1e-2, 1e-3), stage=1)
    lr = result.space["lr"]
    assert isinstance(lr, FloatParam)
    # The best lr sits on the upper border of [1e-4, 1e-2]: the next stage reaches past it.
    assert lr.high > 1e-2
    assert lr.high <= 1.0
    assert any("upper border" in w and "lr" in w for w in result.warnings)


def test_best_value_on_the_original_bound_warns_to_widen_the_space() -> None:
    result = narrow(SPACE, original=SPACE, top=top(1.0, 1e-3), stage=0)
    lr = result.space["lr"]
    assert isinstance(lr, FloatParam)
    assert lr.high == 1.0
    assert any("original bound" in w for w in result.warnings)


def test_identical_best_values_keep_some_room() -> None:
    lr = narrow(SPACE, original=SPACE, top=top(1e-3, 1e-3), stage=0).space["lr"]
    assert isinstance(lr, FloatParam)
    assert lr.low < 1e-3 < lr.high


def test_no_completed_trials_keeps_the_space() -> None:
    result = narrow(SPACE, original=SPACE, top=[], stage=0)
    assert result.space == SPACE
    assert "no completed trial" in result.warnings[0]
