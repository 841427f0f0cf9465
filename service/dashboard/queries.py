"""The dashboard's read-only aggregates: a sweep's trials as columns, and a few curves.

Each function is one read transaction on ``db`` and raises ``NotFound`` for a sweep that
does not exist. They read only the columns the page draws (never whole curves or metrics
for ``sweep_points``), and decode the JSON in them in one call per column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Text, cast, func, select

from hypersweep.limits import MAX_ID
from hypersweep.sanity import SANITY_INDEX
from hypersweep.service.dashboard.schemas import SweepCurves, SweepPoints, TrialCurve
from hypersweep.service.db import Database
from hypersweep.service.errors import NotFound
from hypersweep.service.models import CurvePoint, Stage, Sweep, Trial
from hypersweep.service.statuses import TrialStatus

__all__ = ["CompletedTrials", "completed_counts", "completed_trials", "sweep_curves", "sweep_points"]


def sweep_points(*, db: Database, sweep_id: int) -> SweepPoints:
    """Every trial of the sweep as columns, in ``number`` order, for the dashboard's plots
    and table."""
    with db.read() as s:
        spec = s.scalar(select(Sweep.spec).where(Sweep.id == sweep_id))
        if spec is None:
            raise NotFound("sweep", sweep_id)
        postgres = s.bind is not None and s.bind.dialect.name == "postgresql"
        seconds = _seconds_between(Trial.started_at, Trial.finished_at, postgres=postgres)
        created = select(Sweep.created_at).where(Sweep.id == sweep_id).scalar_subquery()
        finished = _seconds_between(created, Trial.finished_at, postgres=postgres)
        rows = (
            s.connection()
            .execute(
                select(
                    Trial.id,
                    Trial.number,
                    Trial.stage,
                    Trial.status,
                    Trial.value,
                    Trial.attempt,
                    cast(Trial.params, Text),
                    cast(Trial.metrics["epochs_run"], Text),
                    seconds,
                    finished,
                )
                # The sanity trial is no trial of the search: its panel links to it.
                .where(Trial.sweep_id == sweep_id, Trial.number != SANITY_INDEX)
                .order_by(Trial.number)
            )
            .all()
        )
    columns = list(zip(*rows, strict=True)) if rows else [()] * 10
    names = list(spec.get("space", {}))
    params = _json_many(columns[6])
    epochs = _json_many(columns[7])
    return SweepPoints(
        sweep_id=sweep_id,
        id=list(columns[0]),
        number=list(columns[1]),
        stage=list(columns[2]),
        status=list(columns[3]),
        value=list(columns[4]),
        attempt=list(columns[5]),
        epochs_run=[_whole(e) for e in epochs],
        seconds=[None if t is None else float(t) for t in columns[8]],
        finished=[None if t is None else round(float(t), 3) for t in columns[9]],
        params={name: [p.get(name) for p in params] for name in names},
    )


def sweep_curves(*, db: Database, sweep_id: int, trial_ids: Sequence[int]) -> SweepCurves:
    """The curves of the trials ``trial_ids`` that belong to the sweep, in the order
    asked; ids of other sweeps' trials, or of none, are left out. Every numeric metric
    becomes a column; a step without it, or with a non-finite value, has null there."""
    # An id past MAX_ID names no trial, and PostgreSQL would refuse it in the query.
    wanted = [trial_id for trial_id in dict.fromkeys(trial_ids) if 0 <= trial_id <= MAX_ID]
    with db.read() as s:
        if s.scalar(select(Sweep.id).where(Sweep.id == sweep_id)) is None:
            raise NotFound("sweep", sweep_id)
        if not wanted:
            return SweepCurves(sweep_id=sweep_id, trials=[])
        found = {
            row.id: row
            for row in s.execute(
                select(Trial.id, Trial.number, Trial.stage, Trial.status, Trial.metrics).where(
                    Trial.sweep_id == sweep_id, Trial.id.in_(wanted)
                )
            )
        }
        steps: dict[int, list[tuple[int, dict[str, Any]]]] = {trial_id: [] for trial_id in found}
        if found:
            for trial_id, step, metrics in s.execute(
                select(CurvePoint.trial_id, CurvePoint.step, CurvePoint.metrics)
                .where(CurvePoint.trial_id.in_(list(found)))
                .order_by(CurvePoint.trial_id, CurvePoint.step)
            ):
                steps[trial_id].append((step, metrics))
    curves = []
    for trial_id in wanted:
        if trial_id not in found:
            continue
        row, points = found[trial_id], steps[trial_id]
        columns: dict[str, list[float | None]] = {}
        for i, (_, metrics) in enumerate(points):
            for name, value in metrics.items():
                if _is_number(value):
                    columns.setdefault(name, [None] * len(points))[i] = _finite(value)
        final = {name: _finite(value) for name, value in row.metrics.items() if _is_number(value)}
        curves.append(
            TrialCurve(
                id=row.id,
                number=row.number,
                stage=row.stage,
                status=row.status,
                step=[step for step, _ in points],
                metrics=columns,
                final=final,
            )
        )
    return SweepCurves(sweep_id=sweep_id, trials=curves)


@dataclass(frozen=True)
class CompletedTrials:
    """The completed trials with a value, as columns: ``stage``, ``params`` and ``value``
    (entry ``i`` of each belongs to one trial), with the sweep's objective mode, space and
    each stage's space as derived (``None`` before the stage starts)."""

    minimize: bool
    space: dict[str, Any]
    stage_spaces: list[dict[str, Any] | None]
    stage: list[int]
    params: list[dict[str, Any]]
    value: list[float]


def _completed(sweep_id: int) -> ColumnElement[bool]:
    return (Trial.sweep_id == sweep_id) & (Trial.status == TrialStatus.completed) & Trial.value.is_not(None)


def completed_counts(*, db: Database, sweep_id: int) -> tuple[dict[str, Any], dict[int, int]]:
    """The sweep's space, and how many completed trials with a value each of its stages
    has (stages without one are left out): cheap, to tell whether an answer derived from
    those trials is still current."""
    with db.read() as s:
        spec = s.scalar(select(Sweep.spec).where(Sweep.id == sweep_id))
        if spec is None:
            raise NotFound("sweep", sweep_id)
        rows = s.execute(select(Trial.stage, func.count()).where(_completed(sweep_id)).group_by(Trial.stage)).all()
    return dict(spec.get("space", {})), {stage: count for stage, count in rows}


def completed_trials(*, db: Database, sweep_id: int, stage: int | None = None) -> CompletedTrials:
    """The completed trials with a value of the sweep (of one stage, with ``stage``), in
    ``number`` order."""
    with db.read() as s:
        sweep = s.execute(select(Sweep.spec).where(Sweep.id == sweep_id)).first()
        if sweep is None:
            raise NotFound("sweep", sweep_id)
        spaces = list(s.scalars(select(Stage.space).where(Stage.sweep_id == sweep_id).order_by(Stage.index)))
        where = _completed(sweep_id) if stage is None else _completed(sweep_id) & (Trial.stage == stage)
        rows = (
            s.connection()
            .execute(select(Trial.stage, cast(Trial.params, Text), Trial.value).where(where).order_by(Trial.number))
            .all()
        )
    columns = list(zip(*rows, strict=True)) if rows else [()] * 3
    params = _json_many(columns[1])
    spec = sweep.spec
    return CompletedTrials(
        minimize=spec.get("objective", {}).get("mode") == "min",
        space=dict(spec.get("space", {})),
        stage_spaces=spaces,
        stage=list(columns[0]),
        params=[p if isinstance(p, dict) else {} for p in params],
        value=[float(v) for v in columns[2]],
    )


def _seconds_between(start: Any, end: Any, *, postgres: bool) -> ColumnElement[Any]:
    """``end - start`` in seconds, in SQL."""
    if postgres:
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: float) -> float | None:
    """``value`` as a float, or ``None`` when it is not finite or no float holds it (an
    integer beyond the float range, which older versions stored)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _whole(value: Any) -> int | None:
    """``value`` as a whole number within 64 bits, or ``None``."""
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) < value < 2**63:
        return value
    return None


def _json_many(texts: Iterable[str | None]) -> list[Any]:
    """Decode many JSON texts (SQL NULL as None) in one call to the decoder rather than one
    call each. A text that is not JSON (SQLite gives ``Inf`` for a number beyond the float
    range, which older versions stored) decodes to None, without spoiling the others."""
    texts = list(texts)
    try:
        return list(json.loads("[" + ",".join("null" if t is None else t for t in texts) + "]"))
    except ValueError:
        return [_json_or_none(t) for t in texts]


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
