"""The JSON shapes of the dashboard's aggregate endpoints.

They are columnar: a sweep of 10,000 trials is a handful of lists rather than 10,000
objects, which keeps the answer small and lets the page hand the columns to its charts
without reshaping them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from hypersweep.limits import MAX_CURVES
from hypersweep.service.models import TrialStatus

__all__ = ["MAX_CURVES", "SweepCurves", "SweepPoints", "TrialCurve"]


class SweepPoints(BaseModel):
    """Every trial of a sweep, one column per field, in ``number`` order: entry ``i`` of
    each list (and of each list in ``params``) belongs to the same trial."""

    sweep_id: int
    id: list[int]
    number: list[int]
    stage: list[int]
    status: list[TrialStatus]
    value: list[float | None] = Field(description="The objective's final value; null when it has none.")
    attempt: list[int]
    epochs_run: list[int | None] = Field(description="Epochs trained, as the worker reported; null until it does.")
    seconds: list[float | None] = Field(description="Wall-clock seconds from start to finish; null until finished.")
    params: dict[str, list[Any]] = Field(
        description="One column per parameter of the sweep's space; null where a trial has no value for it."
    )


class TrialCurve(BaseModel):
    """One trial's curve as columns: ``step`` and, per numeric metric, its value at each
    step (null where that step did not report it, or reported a non-finite number)."""

    id: int
    number: int
    stage: int
    status: TrialStatus
    step: list[int]
    metrics: dict[str, list[float | None]]
    final: dict[str, float | None] = Field(
        description="The trial's numeric metrics as it last reported or finished them: for a diverged trial, where "
        "it stopped, which its curve (one point per completed epoch) does not show."
    )


class SweepCurves(BaseModel):
    sweep_id: int
    trials: list[TrialCurve] = Field(description="The trials asked for that belong to the sweep, in the order asked.")
