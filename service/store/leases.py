"""What happens to a leased trial, inside a transaction its caller holds: the holder's
checks, its curve points, its end, and a lease given back or run out.

A ``running`` trial belongs to the holder of its ``lease_token`` until the lease expires;
only that holder may report, heartbeat or finish it (:func:`check_held`). Each function
locks the rows of the trials it changes; the caller holds the sweep's lock where a
function says so.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, select

from hypersweep.sanity import SANITY_INDEX
from hypersweep.service import queries as q
from hypersweep.service.errors import LeaseConflict, NotFound
from hypersweep.service.models import CurvePoint, Trial
from hypersweep.service.schemas import FinishedIn, TrialOut
from hypersweep.service.statuses import FINISHED, TrialStatus

__all__ = [
    "STOPPED_WHILE_RUNNING",
    "AlreadyEnded",
    "Ended",
    "Ending",
    "SweepFacts",
    "check_held",
    "expire",
    "finish",
    "held",
    "objective_value",
    "record",
    "requeue",
]


#: The ends the server gives a trial while its holder still runs it: the holder is told to
#: stop at its next report or heartbeat, and its finish records the final metrics.
STOPPED_WHILE_RUNNING = frozenset({TrialStatus.cancelled, TrialStatus.pruned})


@dataclass(frozen=True)
class AlreadyEnded:
    """An ending of a trial that had ended before it: a finish sent again (nothing changes),
    or the first finish of a trial cancelled while it ran (it records the final metrics,
    once; the trial stays cancelled). ``trial`` is the trial as it is now."""

    trial: TrialOut


#: What happened to one ending: the trial as this ending ended it, the trial as it is when
#: it had ended already, or why the ending could not be taken.
Ended = TrialOut | AlreadyEnded | NotFound | LeaseConflict


@dataclass(frozen=True)
class Ending:
    """How a worker says one of its trials ended: a finish."""

    trial_id: int
    lease_token: str
    status: str
    metrics: dict[str, Any]
    error: str | None
    points: Sequence[tuple[int, dict[str, Any]]]

    @classmethod
    def of(cls, result: FinishedIn) -> Ending:
        points = [(point.step, point.metrics) for point in result.points]
        return cls(result.trial_id, result.lease_token, result.status, result.metrics, result.error, points)


@dataclass(frozen=True)
class SweepFacts:
    """What never changes of a sweep that finishes and claims need."""

    objective_metric: str
    #: The user's program that runs its trials; ``None`` for the built-in trainer.
    program: str | None
    #: The sweep's ``trainer`` section as stored.
    trainer: dict[str, Any]


def objective_value(metrics: dict[str, Any], metric: str) -> float | None:
    """The value of ``metric`` in ``metrics`` when it is a finite number, else ``None``."""
    value = metrics.get(metric)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def check_held(
    trial_id: int, status: str, token: str | None, expires: datetime | None, lease_token: str, now: datetime
) -> None:
    """A trial is held with ``lease_token`` when that is its current token and it is running
    with an unexpired lease, or was cancelled or pruned while it ran. Anything else is a
    ``LeaseConflict``."""
    _check_token(trial_id, token, lease_token)
    if status in STOPPED_WHILE_RUNNING:
        return
    if status != TrialStatus.running:
        raise LeaseConflict(f"trial {trial_id} is {status}; its lease has ended")
    _check_lease(trial_id, expires, now)


def held(conn: Connection, trial_id: int, lease_token: str, now: datetime) -> Row[Any]:
    """What a report or heartbeat needs of the trial (its status and metrics), locked
    and checked to be held with ``lease_token``, in one statement."""
    row = conn.execute(q.HELD_TRIAL, {"b_trial_id": trial_id}).one_or_none()
    if row is None:
        raise NotFound("trial", trial_id)
    check_held(trial_id, row.status, row.lease_token, row.lease_expires_at, lease_token, now)
    return row


def record(
    conn: Connection,
    trial_id: int,
    latest: dict[str, Any],
    points: Sequence[tuple[int, dict[str, Any]]],
    now: datetime,
) -> dict[str, Any]:
    """Upsert curve points of the trial (the last point of a step wins); returns its
    metrics ``latest`` updated with each point's values in order."""
    if not points:
        return latest
    by_step = {step: metrics for step, metrics in points}
    conn.execute(
        q.upsert_points(conn.dialect.name),
        [{"trial_id": trial_id, "step": step, "metrics": m, "created_at": now} for step, m in by_step.items()],
    )
    return _merged(latest, points)


def finish(
    conn: Connection, endings: Sequence[Ending], now: datetime, *, facts: Callable[[int], SweepFacts]
) -> tuple[list[Ended], set[int]]:
    """End trials, in a fixed number of statements however many (read and lock them,
    record their curve points, update them). Returns, per ending in order, the trial as
    it ends, :class:`AlreadyEnded` for a trial that had ended before, or why it cannot (a
    later ending of the same trial sees the earlier one); and
    the sweeps whose current stage may have ended with them (its budget was handed out and
    an active trial ended). ``facts`` gives a sweep's objective metric and program.

    A program's trial that ends ``completed`` without ever reporting the objective metric
    ends ``failed`` instead, with a sentence saying so: its value could not be ranked."""
    ids = sorted({ending.trial_id for ending in endings})
    rows = {row.id: dict(row._mapping) for row in conn.execute(q.TRIALS_TO_FINISH, {"b_trial_ids": ids})}
    outs: list[Ended] = []
    updates: dict[int, dict[str, Any]] = {}
    new_points: dict[tuple[int, int], dict[str, Any]] = {}
    stages_may_end: set[int] = set()
    for ending in endings:
        trial_id = ending.trial_id
        row = rows.get(trial_id)
        if row is None:
            outs.append(NotFound("trial", trial_id))
            continue
        try:
            _check_token(trial_id, row["lease_token"], ending.lease_token)
        except LeaseConflict as exc:
            outs.append(exc)
            continue
        # An ended trial keeps what it ended with. The one exception: a trial cancelled
        # while it ran still has its lease's end set until its holder's finish, which
        # records the final metrics (not its points, as reports after the cancel are not
        # recorded either) and clears it.
        cancelled = row["status"] == TrialStatus.cancelled
        # A pruned trial, likewise, keeps its status and the curve it was pruned with; its
        # holder's first finish adds the final metrics that the curve does not hold.
        pruned = row["status"] == TrialStatus.pruned and row["lease_expires_at"] is not None
        if row["status"] in FINISHED and not (cancelled and row["lease_expires_at"] is not None) and not pruned:
            outs.append(AlreadyEnded(TrialOut.model_validate(row)))
            continue
        values: dict[str, Any] = {"lease_expires_at": None}
        latest = row["metrics"]
        if pruned:
            values["metrics"] = {**ending.metrics, **latest}
        elif not cancelled:
            try:
                _check_lease(trial_id, row["lease_expires_at"], now)
            except LeaseConflict as exc:
                outs.append(exc)
                continue
            values.update(status=ending.status, error=ending.error, finished_at=now)
            for step, point in ending.points:
                new_points[trial_id, step] = point
            latest = _merged(latest, ending.points)
        if not pruned:
            values["metrics"] = {**latest, **ending.metrics}
        sweep = facts(row["sweep_id"])
        values["value"] = objective_value(values["metrics"], sweep.objective_metric)
        checks = row["number"] == SANITY_INDEX
        if checks and not cancelled:
            # The sanity trial: its sweep takes the results under the sweep's lock.
            stages_may_end.add(row["sweep_id"])
        elif values.get("status") == TrialStatus.completed and values["value"] is None and sweep.program is not None:
            values["status"] = TrialStatus.failed
            values["error"] = (
                f"the program ended without reporting {sweep.objective_metric!r}, the sweep's objective "
                f"(it reported: {', '.join(sorted(values['metrics'])) or 'nothing'})"
            )
        row.update(values)
        updates[trial_id] = {**updates.get(trial_id, {}), **values}
        trial = TrialOut.model_validate(row)
        outs.append(AlreadyEnded(trial) if cancelled else trial)
        if row["budget_used"] and not cancelled:
            stages_may_end.add(row["sweep_id"])
    if new_points:
        conn.execute(
            q.upsert_points(conn.dialect.name),
            [{"trial_id": t, "step": step, "metrics": m, "created_at": now} for (t, step), m in new_points.items()],
        )
    # One UPDATE statement per shape of change (a cancelled trial's sets fewer columns).
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for trial_id, values in updates.items():
        shapes.setdefault(tuple(sorted(values)), []).append({"b_trial_id": trial_id, **values})
    for params in shapes.values():
        conn.execute(q.UPDATE_TRIAL, params)
    return outs, stages_may_end


def requeue(conn: Connection, trials: Sequence[tuple[int, int]]) -> list[dict[str, Any]]:
    """Queue the trials ``(id, attempt)`` again, each with ``attempt + 1``, no holder and
    its curve cleared; returns the values each trial was given."""
    if not trials:
        return []
    values: list[dict[str, Any]] = [
        {
            "status": TrialStatus.queued,
            "attempt": attempt + 1,
            "worker_id": None,
            "lease_token": None,
            "lease_expires_at": None,
            "started_at": None,
            "metrics": {},
        }
        for _, attempt in trials
    ]
    ids = [trial_id for trial_id, _ in trials]
    conn.execute(delete(CurvePoint).where(CurvePoint.trial_id.in_(ids)))
    conn.execute(q.UPDATE_TRIAL, [{"b_trial_id": trial_id, **v} for trial_id, v in zip(ids, values, strict=True)])
    return values


def expire(conn: Connection, sweep_id: int, *, max_attempts: int, now: datetime) -> int:
    """Re-queue the sweep's running trials whose lease has expired, or fail those that
    had ``max_attempts`` already; the caller holds the sweep's lock. Returns how many."""
    expired = conn.execute(
        select(Trial.id, Trial.attempt)
        .where(Trial.sweep_id == sweep_id, Trial.status == TrialStatus.running, Trial.lease_expires_at < now)
        .with_for_update(skip_locked=True)
    ).all()
    failed = [
        {
            "b_trial_id": trial_id,
            "status": TrialStatus.failed,
            "error": f"the lease expired on each of {attempt} attempts",
            "finished_at": now,
            "lease_expires_at": None,
        }
        for trial_id, attempt in expired
        if attempt >= max_attempts
    ]
    if failed:
        conn.execute(q.UPDATE_TRIAL, failed)
    requeue(conn, [(trial_id, attempt) for trial_id, attempt in expired if attempt < max_attempts])
    return len(expired)


def _check_lease(trial_id: int, expires: datetime | None, now: datetime) -> None:
    if expires is not None and expires < now:
        raise LeaseConflict(f"trial {trial_id}: the lease expired at {expires.isoformat()}")


def _check_token(trial_id: int, token: str | None, lease_token: str) -> None:
    if token is None or not secrets.compare_digest(token, lease_token):
        raise LeaseConflict(f"trial {trial_id}: the lease token is not the current one")


def _merged(latest: dict[str, Any], points: Sequence[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """The metrics ``latest`` updated with each point's values, in order."""
    merged = dict(latest)
    for _, metrics in points:
        merged.update(metrics)
    return merged
