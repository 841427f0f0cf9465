"""The watch around every program: the 3x rule, bad reports, and the stops that need no report."""

from __future__ import annotations

import math
from typing import Any

import pytest

from hypersweep.worker.runners.base import Stop, StopCause, Watch, divergence_settings, final_metrics


class Sent:
    def __init__(self) -> None:
        self.points: list[tuple[int, dict[str, float]]] = []

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        self.points.append((step, metrics))


def test_a_loss_above_three_times_its_first_value_stops_the_trial_at_that_report() -> None:
    sent = Sent()
    watch = Watch(send=sent)
    assert watch.observe(0, {"train_loss": 2.0}) is None
    assert watch.observe(1, {"train_loss": 5.9}) is None
    stop = watch.observe(2, {"train_loss": 6.1})
    assert stop is not None and stop.cause is StopCause.DIVERGED
    assert "6.1" in stop.detail and "3 x" in stop.detail
    # The crossing point is recorded too: the curve shows what ended the trial.
    assert [step for step, _ in sent.points] == [0, 1, 2]
    # Once stopped, it stays stopped and nothing more is sent.
    assert watch.observe(3, {"train_loss": 1.0}) is stop
    assert len(sent.points) == 3


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_loss_stops_the_trial_as_nan(bad: float) -> None:
    watch = Watch(send=Sent())
    watch.observe(1, {"train_loss": 1.0})
    stop = watch.observe(2, {"train_loss": bad})
    assert stop is not None and stop.cause is StopCause.NAN


def test_the_rule_watches_the_named_metric_with_the_named_factor() -> None:
    metric, factor = divergence_settings({"divergence_metric": "loss", "divergence_factor": 2})
    watch = Watch(send=Sent(), metric=metric, factor=factor)
    assert watch.observe(1, {"loss": 1.0, "train_loss": 100.0}) is None
    assert watch.observe(2, {"train_loss": 1e9}) is None
    stop = watch.observe(3, {"loss": 2.5})
    assert stop is not None and stop.cause is StopCause.DIVERGED


@pytest.mark.parametrize(
    "settings", [{}, {"divergence_factor": "x"}, {"divergence_factor": 0.5}, {"divergence_metric": 3}]
)
def test_missing_or_unusable_divergence_settings_fall_back_to_the_defaults(settings: dict[str, Any]) -> None:
    assert divergence_settings(settings) == ("train_loss", 3.0)


def test_bad_reports_are_left_out_with_a_warning_never_an_error(caplog: pytest.LogCaptureFixture) -> None:
    sent = Sent()
    watch = Watch(send=sent, label="trial 7")
    assert watch.observe("three", {"train_loss": 1.0}) is None
    assert watch.observe(1.5, {"train_loss": 1.0}) is None
    assert watch.observe(4, {"train_loss": 1.0, "note": "fine", "flag": True}) is None
    assert watch.observe(3, {"train_loss": 1.0}) is None  # goes backwards
    assert watch.observe(5, {"note": "only text"}) is None
    assert sent.points == [(4, {"train_loss": 1.0})]
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "trial 7" in messages
    assert "must be an integer" in messages and "goes back from step 4" in messages and "not a number" in messages


def test_numbers_with_a_float_conversion_count_as_metrics() -> None:
    import numpy as np
    import torch

    sent = Sent()
    watch = Watch(send=sent)
    watch.observe(np.int64(2), {"train_loss": torch.tensor(0.5), "acc": np.float32(0.25)})
    assert sent.points == [(2, {"train_loss": 0.5, "acc": 0.25})]


def test_a_time_limit_and_an_outside_stop_need_no_report() -> None:
    now = [0.0]
    watch = Watch(send=Sent(), timeout=10, clock=lambda: now[0])
    assert watch.check() is None
    now[0] = 10.5
    stop = watch.check()
    assert stop is not None and stop.cause is StopCause.TIMEOUT and stop.detail == "timed out after 10 s"

    told: list[Stop | None] = [None]
    watch = Watch(send=Sent(), interrupted=lambda: told[0])
    assert watch.check() is None
    told[0] = Stop(StopCause.SERVER, "cancelled")
    assert watch.check() == Stop(StopCause.SERVER, "cancelled")


def test_final_metrics_update_the_last_reported_values() -> None:
    final = final_metrics(
        {"train_loss": 0.5, "val_accuracy": 0.8},
        {"val_accuracy": 0.9, "test_accuracy": 0.88, "note": "x", "bad": [1]},
        label="t",
    )
    assert final == {"train_loss": 0.5, "val_accuracy": 0.9, "test_accuracy": 0.88, "note": "x"}
