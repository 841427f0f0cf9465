"""Pruning decisions, taken inside the transaction of the report that brings a trial to an
epoch where it may be stopped (the rules: ``service.pruning``).

A stage's decisions are taken one at a time: each locks the stage's row first, so reports
that arrive together are decided as if they came one after another, in the order they
took the lock, on every backend. Each decision is stored (``prune_decisions``) and taken
once per trial and epoch: a report sent again, or read by a restarted server, gets the
decision stored before.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter
from sqlalchemy import Connection, insert, select

from hypersweep.service.models import CurvePoint, PruneDecision, Stage, Sweep, Trial
from hypersweep.service.pruning import (
    AshaPruner,
    Decision,
    MedianPruner,
    PrunerConfig,
    asha_decide,
    decision_steps,
    median_decide,
)
from hypersweep.service.statuses import TrialStatus

__all__ = ["PruningOut", "StagePruners", "StagePruning", "decide", "sweep_pruning"]

_PRUNER: TypeAdapter[Any] = TypeAdapter(PrunerConfig)


@dataclass(frozen=True)
class StagePruning:
    """What deciding for one stage needs, none of which changes while the sweep lives."""

    config: AshaPruner | MedianPruner
    #: The epochs at which a trial of the stage may be stopped.
    steps: frozenset[int]
    metric: str
    minimize: bool


class StagePruners:
    """Each stage's pruning, read once per process (``None``: the stage prunes nothing)."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, int], StagePruning | None] = {}
        self._lock = threading.Lock()

    def of(self, conn: Connection, sweep_id: int, stage: int) -> StagePruning | None:
        key = (sweep_id, stage)
        with self._lock:
            if key in self._known:
                return self._known[key]
        row = conn.execute(
            select(Sweep.spec, Sweep.objective_metric, Sweep.minimize, Stage.epochs)
            .join_from(Sweep, Stage, Stage.sweep_id == Sweep.id)
            .where(Sweep.id == sweep_id, Stage.index == stage)
        ).one()
        stages = row.spec.get("stages") or []
        raw = stages[stage].get("pruner") if stage < len(stages) else None
        config = _PRUNER.validate_python(raw) if raw else None
        pruning = None
        if isinstance(config, AshaPruner | MedianPruner):
            steps = frozenset(decision_steps(config, row.epochs))
            if steps:
                pruning = StagePruning(config, steps, row.objective_metric, row.minimize)
        with self._lock:
            self._known[key] = pruning
        return pruning


def decide(
    conn: Connection,
    pruning: StagePruning,
    *,
    trial_id: int,
    sweep_id: int,
    stage: int,
    points: Sequence[tuple[int, dict[str, Any]]],
    now: datetime,
) -> Decision | None:
    """Decide, in order, at each epoch of ``points`` (just recorded) where the trial may be
    stopped; returns the decision that stops it, if one does. Epochs whose point does not
    hold the objective metric are passed over."""
    due = [(step, metrics) for step, metrics in points if pruning.metric in metrics]
    if isinstance(pruning.config, AshaPruner):
        # A rung passed between two reported epochs is decided with the later value.
        due = [(rung, metrics) for step, metrics in due for rung in sorted(pruning.steps) if rung <= step]
    else:
        due = [(step, metrics) for step, metrics in due if step in pruning.steps]
    if not due:
        return None
    conn.execute(select(Stage.id).where(Stage.sweep_id == sweep_id, Stage.index == stage).with_for_update())
    taken: dict[int, tuple[bool, str]] = {
        row.step: (row.pruned, row.reason)
        for row in conn.execute(
            select(PruneDecision.step, PruneDecision.pruned, PruneDecision.reason).where(
                PruneDecision.trial_id == trial_id
            )
        )
    }
    for step, metrics in due:
        before = taken.get(step)
        if before is not None:
            if before[0]:
                return Decision(step, None, None, 0, True, before[1])
            continue
        value = _number(metrics.get(pruning.metric))
        if isinstance(pruning.config, AshaPruner):
            others = _rung_values(conn, sweep_id, stage, step, trial_id)
            decision = asha_decide(
                value, others, step=step, eta=pruning.config.eta, minimize=pruning.minimize, metric=pruning.metric
            )
        else:
            best = _best_so_far(conn, trial_id, step, pruning.metric, minimize=pruning.minimize)
            others = _completed_values(conn, sweep_id, stage, step, pruning.metric)
            decision = median_decide(
                best,
                others,
                step=step,
                min_trials=pruning.config.min_trials,
                minimize=pruning.minimize,
                metric=pruning.metric,
            )
        conn.execute(
            insert(PruneDecision).values(
                sweep_id=sweep_id,
                stage=stage,
                trial_id=trial_id,
                step=step,
                value=decision.value,
                cutoff=decision.cutoff,
                compared=decision.compared,
                pruned=decision.pruned,
                reason=decision.reason,
                created_at=now,
            )
        )
        taken[step] = (decision.pruned, decision.reason)
        if decision.pruned:
            return decision
    return None


def _number(value: Any) -> float | None:
    """A reported value as a finite float; anything else (NaN, infinity, text) is ``None``."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _rung_values(conn: Connection, sweep_id: int, stage: int, step: int, trial_id: int) -> list[float | None]:
    """The values other trials of the stage recorded at rung ``step``; a diverged trial's is
    the worst (``None``)."""
    rows = conn.execute(
        select(PruneDecision.value, Trial.status)
        .join_from(PruneDecision, Trial, Trial.id == PruneDecision.trial_id)
        .where(
            PruneDecision.sweep_id == sweep_id,
            PruneDecision.stage == stage,
            PruneDecision.step == step,
            PruneDecision.trial_id != trial_id,
        )
    )
    return [None if row.status == TrialStatus.diverged else row.value for row in rows]


def _completed_values(conn: Connection, sweep_id: int, stage: int, step: int, metric: str) -> list[float | None]:
    """The objective values at epoch ``step`` of the stage's completed trials, and the worst
    (``None``) for each diverged trial that reached it."""
    rows = conn.execute(
        select(CurvePoint.metrics, Trial.status)
        .join_from(CurvePoint, Trial, Trial.id == CurvePoint.trial_id)
        .where(
            Trial.sweep_id == sweep_id,
            Trial.stage == stage,
            Trial.status.in_([TrialStatus.completed, TrialStatus.diverged]),
            CurvePoint.step == step,
        )
    )
    values: list[float | None] = []
    for row in rows:
        if row.status == TrialStatus.diverged:
            values.append(None)
        elif metric in row.metrics:
            values.append(_number(row.metrics[metric]))
    return values


def _best_so_far(conn: Connection, trial_id: int, step: int, metric: str, *, minimize: bool) -> float | None:
    """The trial's best finite objective value at epochs up to ``step``, or ``None``."""
    rows = conn.execute(
        select(CurvePoint.metrics).where(CurvePoint.trial_id == trial_id, CurvePoint.step <= step)
    ).scalars()
    values = [v for metrics in rows if (v := _number(metrics.get(metric))) is not None]
    if not values:
        return None
    return min(values) if minimize else max(values)


class RungOut(BaseModel):
    """One epoch where a stage's trials were decided on: how many reached it, how many were
    pruned there, and the cutoff of the latest decision (what a trial reaching it now
    would have to beat, about)."""

    step: int
    reached: int
    pruned: int
    cutoff: float | None
    compared: int


class StagePruningOut(BaseModel):
    index: int
    pruner: dict[str, Any] | None
    rungs: list[RungOut]


class DecisionOut(BaseModel):
    trial_id: int
    step: int
    value: float | None
    cutoff: float | None
    compared: int
    pruned: bool
    reason: str


class PruningOut(BaseModel):
    """A sweep's pruning: per stage, its pruner and its rungs; with ``trial``, that trial's
    decisions too."""

    sweep_id: int
    stages: list[StagePruningOut]
    decisions: list[DecisionOut] = Field(default_factory=list)


def sweep_pruning(conn: Connection, sweep_id: int, *, trial_id: int | None = None) -> PruningOut | None:
    """What the dashboard shows of a sweep's pruning (``None``: no such sweep)."""
    spec = conn.execute(select(Sweep.spec).where(Sweep.id == sweep_id)).scalar_one_or_none()
    if spec is None:
        return None
    rows = conn.execute(
        select(PruneDecision)
        .where(PruneDecision.sweep_id == sweep_id)
        .order_by(PruneDecision.stage, PruneDecision.step, PruneDecision.id)
    ).all()
    by_stage: dict[int, dict[int, RungOut]] = {}
    for row in rows:
        rungs = by_stage.setdefault(row.stage, {})
        rung = rungs.get(row.step) or RungOut(step=row.step, reached=0, pruned=0, cutoff=None, compared=0)
        rungs[row.step] = RungOut(
            step=row.step,
            reached=rung.reached + 1,
            pruned=rung.pruned + int(row.pruned),
            cutoff=row.cutoff if row.cutoff is not None else rung.cutoff,
            compared=row.compared,
        )
    stages = [
        StagePruningOut(
            index=index,
            pruner=stage.get("pruner"),
            rungs=sorted(by_stage.get(index, {}).values(), key=lambda rung: rung.step),
        )
        for index, stage in enumerate(spec.get("stages") or [])
    ]
    decisions = [
        DecisionOut(
            trial_id=row.trial_id,
            step=row.step,
            value=row.value,
            cutoff=row.cutoff,
            compared=row.compared,
            pruned=row.pruned,
            reason=row.reason,
        )
        for row in rows
        if row.trial_id == trial_id
    ]
    return PruningOut(sweep_id=sweep_id, stages=stages, decisions=decisions)
