"""The JSON shapes of the dashboard's aggregate endpoints.

They are columnar: a sweep of 10,000 trials is a handful of lists rather than 10,000
objects, which keeps the answer small and lets the page hand the columns to its charts
without reshaping them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from hypersweep.limits import MAX_CURVES
from hypersweep.service.models import TrialStatus

__all__ = [
    "MAX_CURVES",
    "ContourAxis",
    "StageImportance",
    "SweepContour",
    "SweepCurves",
    "SweepImportance",
    "SweepPoints",
    "TrialCurve",
]


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
    finished: list[float | None] = Field(
        default_factory=list,
        description="Seconds from the sweep's creation to the trial's finish (its place in finishing order); "
        "null until finished.",
    )
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


class StageImportance(BaseModel):
    """The importance of each parameter over one stage's completed trials (``stage`` null:
    over the whole sweep's)."""

    stage: int | None
    trials: int = Field(description="Completed trials with a value.")
    used: int = Field(description="How many of them the evaluator was given: all, or an even sample of 1,000.")
    importances: dict[str, float] | None = Field(
        description="Parameter -> its share of the objective's variation (the shares sum to 1), largest first; "
        "null when there is nothing to evaluate, and then `note` says why."
    )
    note: str | None = None


class SweepImportance(BaseModel):
    sweep_id: int
    evaluator: str = Field(description="The Optuna importance evaluator used.")
    scales: dict[str, Literal["log10", "linear", "categorical"]] = Field(
        description="The scale each parameter was evaluated in: a log axis as log10 of its values."
    )
    overall: StageImportance
    stages: list[StageImportance] = Field(description="Each stage with a completed trial, in order.")


class ContourAxis(BaseModel):
    name: str
    scale: Literal["log10", "linear", "categorical"]
    values: list[Any] = Field(
        description="The parameter's value at each grid line: evenly spaced in the axis's scale (in log10 on a "
        "log axis), or each category."
    )


class SweepContour(BaseModel):
    """The objective interpolated over two parameters, for a filled contour."""

    sweep_id: int
    stage: int | None
    trials: int = Field(description="Completed trials with a value that the grid interpolates.")
    x: ContourAxis
    y: ContourAxis
    z: list[list[float | None]] = Field(
        description="z[j][i] is the objective at x.values[i], y.values[j] (linear interpolation over the trials' "
        "Delaunay triangles); null outside the trials' convex hull. Empty when there is too little to "
        "interpolate, and then `note` says why."
    )
    note: str | None = None
