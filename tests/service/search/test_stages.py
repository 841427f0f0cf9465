"""Coarse to fine: narrowing a space around the best trials of a stage."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from hypersweep.service.search.space import CategoricalParam, FloatParam, IntParam, Space
from hypersweep.service.search.stages import narrow

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


@pytest.mark.parametrize(
    ("low", "scale"), [(0.5, "linear"), (1e10, "linear"), (-1e-300, "linear"), (0.5, "log"), (3.0, "log")]
)
@pytest.mark.parametrize("end", [0, 1])
def test_an_axis_one_float_wide_is_kept_rather_than_narrowed_to_nothing(low: float, scale: str, end: int) -> None:
    high = math.nextafter(low, math.inf)
    axis = FloatParam(type="float", low=low, high=high, scale=scale)  # type: ignore[arg-type]
    result = narrow({"x": axis}, original={"x": axis}, top=[{"x": (low, high)[end]}], stage=0)
    assert result.space["x"] == axis


def test_int_log_axis_narrows_in_log_space() -> None:
    hidden = narrow(SPACE, original=SPACE, top=top(1e-3, 1e-2, hidden=(64, 256)), stage=0).space["hidden"]
    assert isinstance(hidden, IntParam) and hidden.scale == "log"
    # The span is two octaves (64..256); half an octave is added on each side.
    assert (hidden.low, hidden.high) == (45, 362)


def test_best_value_on_the_lower_border_extends_that_side() -> None:
    current: Space = {**SPACE, "dropout": FloatParam(type="float", low=0.2, high=0.6)}
    result = narrow(current, original=SPACE, top=top(1e-3, 1e-2, dropout=(0.2, 0.4)), stage=1)
    dropout = result.space["dropout"]
    assert isinstance(dropout, FloatParam)
    # Half the current range (0.2) past the border, not just the margin.
    assert dropout.low == pytest.approx(0.0)
    assert dropout.high == pytest.approx(0.45)
    assert any("lower border" in w and "dropout" in w and "extends" in w for w in result.warnings)


unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    lr_units=st.lists(unit, min_size=1, max_size=8),
    dropout_units=st.lists(unit, min_size=1, max_size=8),
    hiddens=st.lists(st.integers(16, 1024), min_size=1, max_size=8),
    optimizers=st.lists(st.sampled_from(["sgd", "momentum", "adam"]), min_size=1, max_size=8),
)
def test_the_narrowed_space_holds_every_top_trial_and_stays_inside_the_original(
    lr_units: list[float], dropout_units: list[float], hiddens: list[int], optimizers: list[str]
) -> None:
    n = min(len(lr_units), len(dropout_units), len(hiddens), len(optimizers))
    best = [
        {"lr": 10 ** (-6 + 6 * lr_units[i]), "dropout": 0.8 * dropout_units[i], "hidden": hiddens[i], "optimizer": o}
        for i, o in enumerate(optimizers[:n])
    ]
    space = narrow(SPACE, original=SPACE, top=best, stage=0).space
    for name, param in space.items():
        original = SPACE[name]
        values = [p[name] for p in best]
        if isinstance(param, CategoricalParam):
            assert set(param.values) == set(values)
            continue
        assert not isinstance(original, CategoricalParam)
        assert original.low <= param.low < param.high <= original.high
        assert type(param) is type(original) and param.scale == original.scale
        # Inclusive up to the rounding of a bound through log10 and back.
        assert all(param.low * (1 - 1e-12) <= float(v) <= param.high * (1 + 1e-12) for v in values)
