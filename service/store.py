"""The data layer: sweeps, stages, trials, claims and leases.

Each public method is one transaction and owns it. Who owns a trial: a ``running`` trial
belongs to the holder of its ``lease_token`` until the lease expires; only that holder may
report, heartbeat or finish it. Everything that creates trials or starts them (claim,
cancel, lease expiry, a stage's end) first locks the sweep's row, so within one sweep these
are serial: budgets, parallelism and stage changes are exact. Finishes, releases,
heartbeats and reports lock only their trial's row; results a claim carries are finished
in the claim's transaction, after the sweep's lock. Claims of one sweep that arrive while
another of its claims runs queue in this process and are served together by the next claim
transaction.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import ColumnElement, Connection, Row, Text, cast, delete, func, select, update
from sqlalchemy.orm import Session

from hypersweep.service import queries as q
from hypersweep.service.dashboard.schemas import SweepCurves, SweepPoints, TrialCurve
from hypersweep.service.db import Database
from hypersweep.service.errors import Conflict, LeaseConflict, NotFound
from hypersweep.service.models import FINISHED, CurvePoint, Stage, Sweep, SweepStatus, Trial, TrialStatus, utcnow
from hypersweep.service.schemas import (
    MAX_ID,
    ActionOut,
    ClaimedTrial,
    CurvePointOut,
    FinishedIn,
    FinishOutcome,
    Objective,
    StageOut,
    SweepOut,
    SweepSpec,
    TrialDetail,
    TrialOut,
)
from hypersweep.service.search.base import Designer, Observation, Params, SearchConfig
from hypersweep.service.search.registry import make_designer
from hypersweep.service.search.space import Space
from hypersweep.service.search.stages import narrow
from hypersweep.service.validation import Plan
from hypersweep.trainer.config import TrainerConfig

__all__ = ["SORT_KEYS", "Store"]

logger = logging.getLogger(__name__)

_space_adapter: TypeAdapter[Space] = TypeAdapter(Space)
_ACTIVE = q.ACTIVE
_TRAINER_DEFAULTS = TrainerConfig().as_dict()
#: Learning designers kept in memory, one per sweep stage; the least recently used goes first.
LEARNERS_KEPT = 64
#: Started stages whose plan claims keep in memory (all are dropped once this many are).
PLANS_KEPT = 4096
#: Sweeps whose claim lines are kept; past this, idle lines are dropped.
LINES_KEPT = 1024
_IN_LIST_MAX = 500

#: ``sort`` values for trial listings; a leading ``-`` sorts descending.
SORT_KEYS: dict[str, Any] = {
    "number": Trial.number,
    "id": Trial.id,
    "metric": Trial.value,
    "value": Trial.value,
    "stage": Trial.stage,
    "status": Trial.status,
    "attempt": Trial.attempt,
    "created_at": Trial.created_at,
    "started_at": Trial.started_at,
    "finished_at": Trial.finished_at,
}


@lru_cache(maxsize=256)
def _parse_space(frozen: str) -> Space:
    return _space_adapter.validate_json(frozen)


def _space(raw: dict[str, Any]) -> Space:
    return _parse_space(json.dumps(raw, sort_keys=True))


def _dump_space(space: Space) -> dict[str, Any]:
    dumped: dict[str, Any] = _space_adapter.dump_python(space, mode="json")
    return dumped


def objective_value(metrics: dict[str, Any], metric: str) -> float | None:
    value = metrics.get(metric)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _check_lease(trial_id: int, expires: datetime | None, now: datetime) -> None:
    if expires is not None and expires < now:
        raise LeaseConflict(f"trial {trial_id}: the lease expired at {expires.isoformat()}")


def _check_token(trial_id: int, token: str | None, lease_token: str) -> None:
    if token is None or not secrets.compare_digest(token, lease_token):
        raise LeaseConflict(f"trial {trial_id}: the lease token is not the current one")


def _ending(result: FinishedIn) -> _Ending:
    points = [(point.step, point.metrics) for point in result.points]
    return _Ending(result.trial_id, result.lease_token, result.status, result.metrics, result.error, points)


def _outcomes(endings: Sequence[_Ending], outs: Sequence[TrialOut | NotFound | LeaseConflict]) -> list[FinishOutcome]:
    """What the API answers for each ending: finished (200), no such trial (404), not held (409)."""
    outcomes = []
    for ending, out in zip(endings, outs, strict=True):
        if isinstance(out, NotFound):
            outcomes.append(FinishOutcome(trial_id=ending.trial_id, code=404, detail=str(out)))
        elif isinstance(out, LeaseConflict):
            outcomes.append(FinishOutcome(trial_id=ending.trial_id, code=409, detail=str(out)))
        else:
            outcomes.append(FinishOutcome(trial_id=ending.trial_id, code=200, status=out.status))
    return outcomes


def _merged(latest: dict[str, Any], points: Sequence[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """The metrics ``latest`` updated with each point's values, in order."""
    merged = dict(latest)
    for _, metrics in points:
        merged.update(metrics)
    return merged


def _check_held(
    trial_id: int, status: str, token: str | None, expires: datetime | None, lease_token: str, now: datetime
) -> None:
    """A trial is held with ``lease_token`` when that is its current token and it is running
    with an unexpired lease, or was cancelled while it ran. Anything else is a
    ``LeaseConflict``."""
    _check_token(trial_id, token, lease_token)
    if status == TrialStatus.cancelled:
        return
    if status != TrialStatus.running:
        raise LeaseConflict(f"trial {trial_id} is {status}; its lease has ended")
    _check_lease(trial_id, expires, now)


@dataclass(frozen=True)
class _Ending:
    """How a worker says one of its trials ended: a finish."""

    trial_id: int
    lease_token: str
    status: str
    metrics: dict[str, Any]
    error: str | None
    points: Sequence[tuple[int, dict[str, Any]]]


@dataclass(eq=False)
class _Ask:
    """One claim waiting in its sweep's line: what it asks for, then what it got."""

    worker_id: str
    count: int
    #: Results the claim carries, finished in the same transaction before it is served.
    endings: Sequence[_Ending] = ()
    done: threading.Event = field(default_factory=threading.Event)
    #: Set when this claim is to serve the line's next batch instead of being served.
    lead: bool = False
    trials: list[ClaimedTrial] = field(default_factory=list)
    #: Per ending, the trial as it ended or why it could not.
    ended: list[TrialOut | NotFound | LeaseConflict] = field(default_factory=list)
    error: BaseException | None = None

    def outcome(self) -> _Ask:
        if self.error is not None:
            raise self.error
        return self


@dataclass(eq=False)
class _ClaimLine:
    """The claims of one sweep waiting for a transaction. ``busy`` while a claim serves
    the line; the others wait for it, or for their turn to lead."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    waiting: list[_Ask] = field(default_factory=list)
    busy: bool = False


@dataclass(frozen=True)
class _StagePlan:
    """What never changes about a started stage: its epochs and, unless it learns, its
    designer (whose suggestions then depend only on their index in the stage)."""

    epochs: int
    designer: Designer


@dataclass
class _Learner:
    """A learning designer kept between claims, and the ids of the finished trials it has
    been shown (told, or passed over as failed or outside its space)."""

    designer: Designer
    seen: set[int] = field(default_factory=set)


class Store:
    """All reads and writes of the service. ``lease_seconds`` is how long a claim or a
    heartbeat keeps a trial for its holder."""

    def __init__(self, db: Database, *, lease_seconds: float) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self._learners: OrderedDict[tuple[int, int], _Learner] = OrderedDict()
        self._learners_lock = threading.Lock()
        self._metrics: dict[int, str] = {}
        self._trainers: dict[int, dict[str, Any]] = {}
        self._plans: dict[tuple[int, int], _StagePlan] = {}
        self._lines: dict[int, _ClaimLine] = {}
        self._lines_lock = threading.Lock()

    # -- sweeps ---------------------------------------------------------------------------

    def create_sweep(self, *, spec: SweepSpec, plan: Plan) -> SweepOut:
        """Store a validated sweep and its planned stages; stage 0 starts at once."""
        now = utcnow()
        with self.db.write() as s:
            sweep = Sweep(
                name=spec.name,
                spec=spec.model_dump(mode="json"),
                status=SweepStatus.running,
                objective_metric=spec.objective.metric,
                minimize=spec.objective.mode == "min",
                parallelism=spec.parallelism,
                max_attempts=spec.max_attempts,
                warnings=list(plan.warnings),
                created_at=now,
            )
            s.add(sweep)
            s.flush()
            for index, stage in enumerate(plan.stages):
                s.add(
                    Stage(
                        sweep_id=sweep.id,
                        index=index,
                        space=_dump_space(spec.space) if index == 0 else None,
                        search=stage.search.model_dump(mode="json"),
                        trials=stage.trials,
                        epochs=stage.epochs,
                        top_k=stage.top_k,
                        started_at=now if index == 0 else None,
                    )
                )
            s.flush()
            return self._sweep_outs(s, [sweep])[0]

    def get_sweep(self, *, sweep_id: int) -> SweepOut:
        with self.db.read() as s:
            sweep = s.get(Sweep, sweep_id)
            if sweep is None:
                raise NotFound("sweep", sweep_id)
            return self._sweep_outs(s, [sweep])[0]

    def list_sweeps(self, *, limit: int, offset: int) -> tuple[list[SweepOut], int]:
        """Sweeps newest first, and how many there are in all."""
        with self.db.read() as s:
            total = s.scalar(select(func.count()).select_from(Sweep)) or 0
            sweeps = s.scalars(select(Sweep).order_by(Sweep.id.desc()).limit(limit).offset(offset)).all()
            return self._sweep_outs(s, sweeps), total

    def cancel_sweep(self, *, sweep_id: int) -> SweepOut:
        """No new trials; queued ones are cancelled, running ones are told to stop at their
        next heartbeat or report. Cancelling a cancelled sweep changes nothing; a completed
        sweep cannot be cancelled."""
        now = utcnow()
        with self.db.write() as s:
            sweep = self._lock_sweep(s, sweep_id)
            if sweep.status == SweepStatus.completed:
                raise Conflict(f"sweep {sweep_id} is already completed")
            if sweep.status == SweepStatus.running:
                sweep.status = SweepStatus.cancelled
                sweep.finished_at = now
                s.execute(
                    update(Trial)
                    .where(Trial.sweep_id == sweep_id, Trial.status.in_(_ACTIVE))
                    .values(status=TrialStatus.cancelled, finished_at=now)
                )
                for stage in s.scalars(select(Stage).where(Stage.sweep_id == sweep_id, Stage.finished_at.is_(None))):
                    if stage.started_at is not None:
                        stage.finished_at = now
            return self._sweep_outs(s, [sweep])[0]

    # -- trials: reading ---------------------------------------------------------------

    def list_trials(
        self,
        *,
        sweep_id: int,
        status: Sequence[TrialStatus] = (),
        stage: int | None = None,
        sort: str = "number",
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[TrialOut], int]:
        """A page of a sweep's trials and how many match. ``sort`` is a key of
        ``SORT_KEYS``, ``-`` in front for descending; trials without a value sort last."""
        descending = sort.startswith("-")
        column = SORT_KEYS[sort.lstrip("-")]
        with self.db.read() as s:
            if s.get(Sweep, sweep_id) is None:
                raise NotFound("sweep", sweep_id)
            where: list[ColumnElement[bool]] = [Trial.sweep_id == sweep_id]
            if status:
                where.append(Trial.status.in_(list(status)))
            if stage is not None:
                where.append(Trial.stage == stage)
            total = s.scalar(select(func.count()).select_from(Trial).where(*where)) or 0
            order = column.desc() if descending else column.asc()
            rows = s.scalars(
                select(Trial).where(*where).order_by(order.nulls_last(), Trial.number).limit(limit).offset(offset)
            ).all()
            return [TrialOut.model_validate(t) for t in rows], total

    def get_trial(self, *, trial_id: int) -> TrialDetail:
        with self.db.read() as s:
            trial = s.get(Trial, trial_id)
            if trial is None:
                raise NotFound("trial", trial_id)
            points = s.scalars(select(CurvePoint).where(CurvePoint.trial_id == trial_id).order_by(CurvePoint.step))
            return TrialDetail(
                **TrialOut.model_validate(trial).model_dump(),
                curve=[CurvePointOut.model_validate(p) for p in points],
            )

    # -- the worker protocol -----------------------------------------------------------------

    def claim(self, *, worker_id: str, sweep_id: int | None = None, count: int = 1) -> list[ClaimedTrial]:
        """Give ``worker_id`` up to ``count`` trials, from one sweep or from any running
        sweep (oldest first). Re-queued trials go out before new ones are generated."""
        if sweep_id is not None:
            candidates = [sweep_id]
        else:
            with self.db.read() as s:
                candidates = list(
                    s.scalars(select(Sweep.id).where(Sweep.status == SweepStatus.running).order_by(Sweep.id))
                )
        claimed: list[ClaimedTrial] = []
        for candidate in candidates:
            claimed += self._claim_from(candidate, worker_id, count - len(claimed)).trials
            if len(claimed) >= count:
                break
        return claimed

    def finish_and_claim(
        self, *, results: Sequence[FinishedIn], worker_id: str, sweep_id: int | None = None, count: int = 1
    ) -> tuple[list[FinishOutcome], list[ClaimedTrial]]:
        """:meth:`finish_many` then :meth:`claim`: the outcome of each result and the trials
        claimed. With a ``sweep_id`` both happen in the claim's transaction (the claims of
        the sweep waiting together share it, results and all)."""
        if sweep_id is None:
            return self.finish_many(results=results), self.claim(worker_id=worker_id, count=count)
        endings = [_ending(result) for result in results]
        ask = self._claim_from(sweep_id, worker_id, count, endings)
        return _outcomes(endings, ask.ended), ask.trials

    def heartbeat(self, *, trial_id: int, lease_token: str) -> ActionOut:
        """Renew the lease. ``stop`` when the trial was cancelled meanwhile."""
        now = utcnow()
        with self.db.transaction() as conn:
            trial = self._held(conn, trial_id, lease_token, now)
            if trial.status != TrialStatus.running:
                return ActionOut(action="stop")
            expires = now + self.lease
            conn.execute(q.UPDATE_TRIAL, {"b_trial_id": trial_id, "lease_expires_at": expires})
            return ActionOut(action="continue", lease_expires_at=expires)

    def report(self, *, trial_id: int, lease_token: str, points: Sequence[tuple[int, dict[str, Any]]]) -> ActionOut:
        """Record points ``(step, metrics)`` of the curve, in order (reporting a step again
        replaces it), make their values the trial's latest metrics, and renew the lease."""
        now = utcnow()
        with self.db.transaction() as conn:
            trial = self._held(conn, trial_id, lease_token, now)
            if trial.status != TrialStatus.running:
                return ActionOut(action="stop")
            metrics = self._record(conn, trial_id, trial.metrics, points, now)
            expires = now + self.lease
            conn.execute(q.UPDATE_TRIAL, {"b_trial_id": trial_id, "metrics": metrics, "lease_expires_at": expires})
            return ActionOut(action="continue", lease_expires_at=expires)

    def finish(
        self,
        *,
        trial_id: int,
        lease_token: str,
        status: str,
        metrics: dict[str, Any],
        error: str | None = None,
        points: Sequence[tuple[int, dict[str, Any]]] = (),
    ) -> TrialOut:
        """End a running trial, first recording ``points`` of its curve not reported yet.
        Finishing again with the same token returns the trial as it is; a trial cancelled
        while it ran keeps ``cancelled`` and gets its final metrics (not its last points, as
        reports after the cancel are not recorded either).

        Only the trial's row is locked to record the result; when that may have been the
        last active trial of its stage, a second transaction takes the sweep's lock and
        starts the next stage or completes the sweep (claims and the lease reaper do the same,
        so a crash between the two loses nothing)."""
        now = utcnow()
        ending = _Ending(trial_id, lease_token, status, metrics, error, points)
        with self.db.transaction() as conn:
            [out], stages_may_end = self._finish_all(conn, [ending], now)
        if isinstance(out, Exception):
            raise out
        for sweep_id in stages_may_end:
            self._advance_sweep(sweep_id, now)
        return out

    def finish_many(self, *, results: Sequence[FinishedIn]) -> list[FinishOutcome]:
        """End several trials in one transaction, each as :meth:`finish` would, in order. A
        trial that does not exist or is not held with its token changes nothing and gets
        its outcome (``404`` or ``409``) instead of failing the others."""
        now = utcnow()
        endings = [_ending(result) for result in results]
        with self.db.transaction() as conn:
            outs, stages_may_end = self._finish_all(conn, endings, now)
        for sweep_id in sorted(stages_may_end):
            self._advance_sweep(sweep_id, now)
        return _outcomes(endings, outs)

    def _finish_all(
        self, conn: Connection, endings: Sequence[_Ending], now: datetime
    ) -> tuple[list[TrialOut | NotFound | LeaseConflict], set[int]]:
        """The finishing transaction's work, for any number of trials in a fixed number of
        statements (read and lock them, record their curve points, update them): per ending,
        in order, the trial as it ends or why it cannot (a later ending of the same trial
        sees the earlier one); and the sweeps whose current stage may have ended with them
        (its budget was handed out and an active trial ended)."""
        ids = sorted({ending.trial_id for ending in endings})
        rows = {row.id: dict(row._mapping) for row in conn.execute(q.TRIALS_TO_FINISH, {"b_trial_ids": ids})}
        outs: list[TrialOut | NotFound | LeaseConflict] = []
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
                if row["status"] in FINISHED and row["status"] != TrialStatus.cancelled:
                    outs.append(TrialOut.model_validate(row))
                    continue
                cancelled = row["status"] == TrialStatus.cancelled
                values: dict[str, Any] = {}
                latest = row["metrics"]
                if not cancelled:
                    _check_lease(trial_id, row["lease_expires_at"], now)
                    values = {"status": ending.status, "error": ending.error, "finished_at": now}
                    values["lease_expires_at"] = None
                    for step, point in ending.points:
                        new_points[trial_id, step] = point
                    latest = _merged(latest, ending.points)
            except LeaseConflict as exc:
                outs.append(exc)
                continue
            values["metrics"] = {**latest, **ending.metrics}
            values["value"] = objective_value(values["metrics"], self._objective_metric(conn, row["sweep_id"]))
            row.update(values)
            updates[trial_id] = {**updates.get(trial_id, {}), **values}
            outs.append(TrialOut.model_validate(row))
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

    def _advance_sweep(self, sweep_id: int, now: datetime) -> None:
        """Start the sweep's next stage, or complete it, if its current stage is done.

        Called after a finish has committed. While other trials of the sweep are active the
        stage cannot be done, and that is read without the sweep's lock: the finish of the
        stage's last active trial, whichever commits last, reads none and advances."""
        with self.db.read() as s:
            running, queued, _ = s.connection().execute(q.ACTIVE_COUNTS, {"b_sweep_id": sweep_id, "b_now": now}).one()
        if running or queued:
            return
        with self.db.write() as s:
            self._advance(s, self._lock_sweep(s, sweep_id), now)

    def release(self, *, trial_id: int, lease_token: str) -> TrialOut:
        """Give a running trial back at once: it is queued again with ``attempt + 1``."""
        now = utcnow()
        with self.db.write() as s:
            trial = self._held_trial(s, trial_id, lease_token, now)
            if trial.status == TrialStatus.running:
                self._requeue(s, trial)
            return TrialOut.model_validate(trial)

    def expire_leases(self) -> int:
        """Re-queue (or fail, after ``max_attempts``) every running trial whose lease has
        expired, in every sweep. Returns how many trials it touched."""
        now = utcnow()
        with self.db.read() as s:
            sweep_ids = list(
                s.scalars(
                    select(Trial.sweep_id)
                    .where(Trial.status == TrialStatus.running, Trial.lease_expires_at < now)
                    .distinct()
                )
            )
        touched = 0
        for sweep_id in sweep_ids:
            with self.db.write() as s:
                sweep = self._lock_sweep(s, sweep_id)
                touched += self._expire(s, sweep, now)
                self._advance(s, sweep, now)
        return touched

    # -- metrics -------------------------------------------------------------------------------

    def status_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """How many sweeps and trials there are in each status."""
        with self.db.read() as s:
            sweeps = dict(s.execute(select(Sweep.status, func.count()).group_by(Sweep.status)).all())
            trials = dict(s.execute(select(Trial.status, func.count()).group_by(Trial.status)).all())
            return sweeps, trials

    def ping(self) -> None:
        with self.db.read() as s:
            s.execute(select(1))

    # -- inside a transaction -----------------------------------------------------------------

    def _lock_sweep(self, s: Session, sweep_id: int) -> Sweep:
        sweep = s.get(Sweep, sweep_id, with_for_update=True, populate_existing=True)
        if sweep is None:
            raise NotFound("sweep", sweep_id)
        return sweep

    def _held_trial(self, s: Session, trial_id: int, lease_token: str, now: datetime) -> Trial:
        """The trial, locked and checked to be held with ``lease_token`` (see :func:`_check_held`)."""
        trial = s.get(Trial, trial_id, with_for_update=True, populate_existing=True)
        if trial is None:
            raise NotFound("trial", trial_id)
        _check_held(trial_id, trial.status, trial.lease_token, trial.lease_expires_at, lease_token, now)
        return trial

    @staticmethod
    def _held(conn: Connection, trial_id: int, lease_token: str, now: datetime) -> Row[Any]:
        """What a report or heartbeat needs of the trial (its status and metrics), locked
        and checked to be held with ``lease_token``, in one statement."""
        row = conn.execute(q.HELD_TRIAL, {"b_trial_id": trial_id}).one_or_none()
        if row is None:
            raise NotFound("trial", trial_id)
        _check_held(trial_id, row.status, row.lease_token, row.lease_expires_at, lease_token, now)
        return row

    @staticmethod
    def _record(
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

    def _claim_from(self, sweep_id: int, worker_id: str, count: int, endings: Sequence[_Ending] = ()) -> _Ask:
        """Claim from one sweep, after finishing ``endings``. Claims of a sweep that arrive
        while one of its claim transactions runs wait in its line, and the next transaction
        serves all of them (in the order they came): under many workers a sweep's lock is
        taken once per batch of claims, not once per claim."""
        with self._lines_lock:
            line = self._lines.get(sweep_id)
            if line is None:
                if len(self._lines) >= LINES_KEPT:
                    self._lines = {k: v for k, v in self._lines.items() if v.busy}
                line = self._lines[sweep_id] = _ClaimLine()
        ask = _Ask(worker_id, count, endings)
        with line.lock:
            line.waiting.append(ask)
            follow = line.busy
            line.busy = True
        if follow:
            ask.done.wait()
            if not ask.lead:
                return ask.outcome()
        # This claim leads: serve every claim waiting now, then hand the line on.
        with line.lock:
            batch, line.waiting = line.waiting, []
        try:
            served = self._claim_batch(sweep_id, batch)
        except BaseException as exc:  # every claim of the batch shares its fate
            for waiting in batch:
                waiting.error = exc
        else:
            for waiting, trials in zip(batch, served, strict=True):
                waiting.trials = trials
        for waiting in batch:
            if waiting is not ask:
                waiting.done.set()
        with line.lock:
            if line.waiting:
                line.waiting[0].lead = True
                line.waiting[0].done.set()
            else:
                line.busy = False
        return ask.outcome()

    def _claim_batch(self, sweep_id: int, asks: Sequence[_Ask]) -> list[list[ClaimedTrial]]:
        """Serve ``asks`` in one transaction, in order: first the results they carry (each
        ask's ``ended``), then the claims, each up to its ``count``. A stage of this sweep
        that the results end is moved on by the claim itself, or after the commit when the
        claim hands out nothing; other sweeps' after the commit."""
        now = utcnow()
        stages_may_end: set[int] = set()
        with self.db.transaction() as conn:
            # The sweep's lock before any trial's, the order every claim, cancel and lease
            # expiry takes them in: two transactions never wait on each other.
            locked = conn.execute(q.LOCK_SWEEP, {"b_sweep_id": sweep_id}).one_or_none()
            if locked is None:
                raise NotFound("sweep", sweep_id)
            for ask in asks:
                if ask.endings:
                    ask.ended, ending = self._finish_all(conn, ask.endings, now)
                    stages_may_end |= ending
            served = self._claim_fresh(conn, locked, asks, now)
            if served is None:
                with self.db.session_in(conn) as s:
                    sweep = self._lock_sweep(s, sweep_id)
                    served = [self._claim_locked(s, sweep, ask.worker_id, ask.count, now) for ask in asks]
        if any(served):
            # This sweep has trials running again: its stage is not done.
            stages_may_end.discard(sweep_id)
        for ended in sorted(stages_may_end):
            # After the commit, as a plain finish does: a finish that committed while this
            # transaction ran saw these trials still running, and left the stage to us.
            try:
                self._advance_sweep(ended, now)
            except Exception:
                # The results and leases are committed; the sweep's next claim moves it on.
                logger.exception("sweep %s: could not advance after finishing trials", ended)
        return served

    def _claim_locked(self, s: Session, sweep: Sweep, worker_id: str, count: int, now: datetime) -> list[ClaimedTrial]:
        """Any claim, on a sweep locked by the caller: re-queued trials first, then new ones,
        starting the next stage when this one is done."""
        if sweep.status != SweepStatus.running:
            return []
        self._expire(s, sweep, now)
        running = self._count(s, sweep.id, [TrialStatus.running])
        slots = min(count, sweep.parallelism - running)
        if slots <= 0:
            return []
        picked = list(
            s.scalars(
                select(Trial)
                .where(Trial.sweep_id == sweep.id, Trial.status == TrialStatus.queued)
                .order_by(Trial.number)
                .limit(slots)
                .with_for_update(skip_locked=True)
            )
        )
        self._start(picked, worker_id, now)
        stage = self._stage(s, sweep.id, sweep.current_stage)
        # Queued trials belong to the current stage: a stage starts only once the one
        # before has none queued or running.
        epochs = {stage.index: stage.epochs}
        while len(picked) < slots:
            left = stage.trials - stage.generated
            if left > 0:
                fresh = self._generate(s, sweep, stage, min(left, slots - len(picked)), now)
                self._start(fresh, worker_id, now)
                picked += fresh
            elif self._advance(s, sweep, now):
                stage = self._stage(s, sweep.id, sweep.current_stage)
                epochs[stage.index] = stage.epochs
            else:
                break
        s.flush()
        trainer = sweep.spec.get("trainer", {})
        return [self._claimed(t, trainer, epochs[t.stage]) for t in picked]

    def _claim_fresh(
        self, conn: Connection, sweep: Any, asks: Sequence[_Ask], now: datetime
    ) -> list[list[ClaimedTrial]] | None:
        """The common claim on ``sweep``, the row its caller locked (``LOCK_SWEEP``), in four
        more statements however many ``asks`` it serves: count its active trials, take
        budget from the current stage, insert the new trials as running, count them on the
        sweep. ``None`` (with nothing changed, the sweep still locked) when the claim needs
        more: re-queued or expired trials to hand out, a designer that learns, or a stage
        without budget for every free slot (unless it has handed out all of it and some of
        its trials still run: then there is nothing to give, and every ask gets none)."""
        sweep_id = sweep.id
        if sweep.status != SweepStatus.running:
            return [[] for _ in asks]
        running, queued, expired = conn.execute(q.ACTIVE_COUNTS, {"b_sweep_id": sweep_id, "b_now": now}).one()
        if queued or expired:
            return None
        # Free slots go to the asks in order.
        holders: list[int] = []
        free = sweep.parallelism - running
        for position, ask in enumerate(asks):
            take = max(0, min(ask.count, free - len(holders)))
            holders += [position] * take
        slots = len(holders)
        if slots == 0:
            return [[] for _ in asks]
        plan = self._stage_plan(conn, sweep_id, sweep.current_stage, minimize=sweep.minimize)
        if plan is None:
            return None
        generated = conn.execute(
            q.TAKE_BUDGET, {"b_sweep_id": sweep_id, "b_stage": sweep.current_stage, "b_slots": slots}
        ).scalar_one_or_none()
        if generated is None:
            budget = conn.execute(q.STAGE_BUDGET, {"b_sweep_id": sweep_id, "b_stage": sweep.current_stage}).one()
            if budget.generated >= budget.trials and running:
                # The stage has handed out every trial and some still run: nothing to give
                # until they end (the next stage starts then).
                return [[] for _ in asks]
            return None
        first = generated - slots
        expires = now + self.lease
        rows = [
            {
                "sweep_id": sweep_id,
                "stage": sweep.current_stage,
                "stage_index": first + i,
                "number": sweep.trials_created + i,
                "params": params,
                "status": TrialStatus.running,
                "attempt": 1,
                "worker_id": asks[holders[i]].worker_id,
                "lease_token": secrets.token_urlsafe(24),
                "lease_expires_at": expires,
                "metrics": {},
                "created_at": now,
                "started_at": now,
            }
            for i, params in enumerate(plan.designer.suggest(first, slots))
        ]
        ids = conn.execute(q.INSERT_TRIALS, rows).scalars().all()
        conn.execute(q.BUMP_TRIALS_CREATED, {"b_sweep_id": sweep_id, "b_slots": slots})
        trainer = self._trainer(conn, sweep_id)
        served: list[list[ClaimedTrial]] = [[] for _ in asks]
        for position, trial_id, row in zip(holders, ids, rows, strict=True):
            served[position].append(
                ClaimedTrial(
                    id=trial_id,
                    value=None,
                    finished_at=None,
                    error=None,
                    trainer={**_TRAINER_DEFAULTS, **trainer, "epochs": plan.epochs, **row["params"]},
                    **row,
                )
            )
        return served

    def _stage_plan(self, conn: Connection, sweep_id: int, index: int, *, minimize: bool) -> _StagePlan | None:
        """What claims need of a started stage that never changes, read once per process;
        ``None`` when its designer learns."""
        key = (sweep_id, index)
        plan = self._plans.get(key)
        if plan is None:
            stage = conn.execute(
                select(Stage.space, Stage.search, Stage.epochs).where(Stage.sweep_id == sweep_id, Stage.index == index)
            ).one()
            if stage.space is None:
                return None
            designer = make_designer(
                _space(stage.space), config=SearchConfig.model_validate(stage.search), stage=index, minimize=minimize
            )
            plan = _StagePlan(epochs=stage.epochs, designer=designer)
            if len(self._plans) >= PLANS_KEPT:
                self._plans.clear()
            self._plans[key] = plan
        return None if plan.designer.learns else plan

    def _start(self, trials: Iterable[Trial], worker_id: str, now: datetime) -> None:
        for trial in trials:
            trial.status = TrialStatus.running
            trial.worker_id = worker_id
            trial.lease_token = secrets.token_urlsafe(24)
            trial.lease_expires_at = now + self.lease
            trial.started_at = now

    def _claimed(self, trial: Trial, trainer: dict[str, Any], epochs: int) -> ClaimedTrial:
        settings = {**_TRAINER_DEFAULTS, **trainer, "epochs": epochs, **trial.params}
        assert trial.lease_token is not None and trial.lease_expires_at is not None
        return ClaimedTrial(
            **TrialOut.model_validate(trial).model_dump(),
            trainer=settings,
            lease_token=trial.lease_token,
            lease_expires_at=trial.lease_expires_at,
        )

    def _generate(self, s: Session, sweep: Sweep, stage: Stage, count: int, now: datetime) -> list[Trial]:
        suggestions: list[Params] = self._designer(s, sweep, stage).suggest(stage.generated, count)
        trials = [
            Trial(
                sweep_id=sweep.id,
                stage=stage.index,
                stage_index=stage.generated + i,
                number=sweep.trials_created + i,
                params=params,
                status=TrialStatus.queued,
                attempt=1,
                metrics={},
                created_at=now,
            )
            for i, params in enumerate(suggestions)
        ]
        stage.generated += count
        sweep.trials_created += count
        s.add_all(trials)
        return trials

    def _designer(self, s: Session, sweep: Sweep, stage: Stage) -> Designer:
        """The stage's designer, ready to suggest. Designers that learn are kept in this
        process between claims (the caller holds the sweep's lock, so one claim at a time
        uses each) and brought up to date here: shown the trials of this stage and the ones
        before that finished since they last looked, and this stage's queued and running
        trials. A designer built afresh (a new process, or one evicted) is shown every
        finished trial, in ``number`` order."""
        assert stage.space is not None
        key = (sweep.id, stage.index)
        with self._learners_lock:
            learner = self._learners.get(key)
            if learner is not None:
                self._learners.move_to_end(key)
        if learner is None:
            designer = make_designer(
                _space(stage.space),
                config=SearchConfig.model_validate(stage.search),
                stage=stage.index,
                minimize=sweep.minimize,
            )
            if not designer.learns:
                return designer
            learner = _Learner(designer)
            with self._learners_lock:
                for earlier in range(stage.index):
                    self._learners.pop((sweep.id, earlier), None)
                self._learners[key] = learner
                while len(self._learners) > LEARNERS_KEPT:
                    self._learners.popitem(last=False)
        active = s.scalars(
            select(Trial.params)
            .where(Trial.sweep_id == sweep.id, Trial.stage == stage.index, Trial.status.in_(_ACTIVE))
            .order_by(Trial.number)
        ).all()
        learner.designer.update(self._finished_since(s, sweep.id, stage.index, learner), active)
        return learner.designer

    @staticmethod
    def _finished_since(s: Session, sweep_id: int, stage: int, learner: _Learner) -> list[Observation]:
        """Observations of the trials of stages up to ``stage`` that finished since
        ``learner`` last looked, in ``number`` order; marks them seen. Only their ids are
        read for the trials it has seen already."""
        where = [Trial.sweep_id == sweep_id, Trial.stage <= stage, Trial.status.in_(FINISHED)]
        new = set(s.scalars(select(Trial.id).where(*where))) - learner.seen
        if not new:
            return []
        query = select(Trial.id, Trial.params, Trial.status, Trial.value).order_by(Trial.number)
        # A designer built afresh is new to every finished trial: too many ids for an IN list.
        query = query.where(Trial.id.in_(new)) if len(new) <= _IN_LIST_MAX else query.where(*where)
        observations: list[Observation] = []
        for trial_id, params, status, value in s.execute(query):
            if trial_id not in new:
                continue
            learner.seen.add(trial_id)
            if status == TrialStatus.completed and value is not None:
                observations.append(Observation(params, value))
            elif status == TrialStatus.diverged:
                observations.append(Observation(params, value, diverged=True))
        return observations

    def _advance(self, s: Session, sweep: Sweep, now: datetime) -> bool:
        """Close the current stage if it is done: start the next one (deriving its space
        from this one's best trials) or complete the sweep. Returns whether a new stage
        started."""
        if sweep.status != SweepStatus.running:
            return False
        stage = self._stage(s, sweep.id, sweep.current_stage)
        if stage.generated < stage.trials:
            return False
        # Only the current stage can have queued or running trials (a stage starts once the
        # one before has none), so counting the sweep's active trials counts the stage's,
        # through the (sweep_id, status, number) index.
        if self._count(s, sweep.id, list(_ACTIVE)):
            return False
        stage.finished_at = now
        following = s.scalar(select(Stage).where(Stage.sweep_id == sweep.id, Stage.index == stage.index + 1))
        if following is None:
            sweep.status = SweepStatus.completed
            sweep.finished_at = now
            return False
        assert stage.space is not None and following.top_k is not None
        order = Trial.value.asc() if sweep.minimize else Trial.value.desc()
        top = s.scalars(
            select(Trial.params)
            .where(
                Trial.sweep_id == sweep.id,
                Trial.stage == stage.index,
                Trial.status == TrialStatus.completed,
                Trial.value.is_not(None),
            )
            .order_by(order, Trial.number)
            .limit(following.top_k)
        ).all()
        narrowed = narrow(_space(stage.space), original=_space(sweep.spec["space"]), top=top, stage=stage.index)
        following.space = _dump_space(narrowed.space)
        following.started_at = now
        capacity = make_designer(
            narrowed.space,
            config=SearchConfig.model_validate(following.search),
            stage=following.index,
            minimize=sweep.minimize,
        ).capacity()
        warnings = list(narrowed.warnings)
        if capacity is not None and following.trials > capacity:
            warnings.append(
                f"stage {following.index} asks for {following.trials} trials but its grid has {capacity}; "
                f"it runs {capacity}"
            )
            following.trials = capacity
        sweep.warnings = [*sweep.warnings, *warnings]
        sweep.current_stage = following.index
        return True

    def _expire(self, s: Session, sweep: Sweep, now: datetime) -> int:
        expired = s.scalars(
            select(Trial)
            .where(Trial.sweep_id == sweep.id, Trial.status == TrialStatus.running, Trial.lease_expires_at < now)
            .with_for_update(skip_locked=True)
        ).all()
        for trial in expired:
            if trial.attempt >= sweep.max_attempts:
                trial.status = TrialStatus.failed
                trial.error = f"the lease expired on each of {trial.attempt} attempts"
                trial.finished_at = now
                trial.lease_expires_at = None
            else:
                self._requeue(s, trial)
        return len(expired)

    def _requeue(self, s: Session, trial: Trial) -> None:
        s.execute(delete(CurvePoint).where(CurvePoint.trial_id == trial.id))
        trial.status = TrialStatus.queued
        trial.attempt += 1
        trial.worker_id = None
        trial.lease_token = None
        trial.lease_expires_at = None
        trial.started_at = None
        trial.metrics = {}

    def _objective_metric(self, s: Session | Connection, sweep_id: int) -> str:
        """The sweep's objective metric; it never changes, so it is read once per process."""
        metric = self._metrics.get(sweep_id)
        if metric is None:
            metric = s.scalar(select(Sweep.objective_metric).where(Sweep.id == sweep_id))
            assert metric is not None
            self._metrics[sweep_id] = metric
        return metric

    def _trainer(self, s: Session | Connection, sweep_id: int) -> dict[str, Any]:
        """The sweep's fixed trainer settings; they never change, so they are read once per process."""
        trainer = self._trainers.get(sweep_id)
        if trainer is None:
            spec = s.scalar(select(Sweep.spec).where(Sweep.id == sweep_id))
            assert spec is not None
            trainer = self._trainers[sweep_id] = dict(spec.get("trainer", {}))
        return trainer

    @staticmethod
    def _stage(s: Session, sweep_id: int, index: int) -> Stage:
        stage = s.scalar(select(Stage).where(Stage.sweep_id == sweep_id, Stage.index == index))
        assert stage is not None
        return stage

    @staticmethod
    def _count(s: Session, sweep_id: int, statuses: list[TrialStatus]) -> int:
        return (
            s.scalar(
                select(func.count()).select_from(Trial).where(Trial.sweep_id == sweep_id, Trial.status.in_(statuses))
            )
            or 0
        )

    def _sweep_outs(self, s: Session, sweeps: Sequence[Sweep]) -> list[SweepOut]:
        if not sweeps:
            return []
        ids = [sw.id for sw in sweeps]
        counts: dict[int, dict[int, dict[str, int]]] = {i: {} for i in ids}
        for sweep_id, stage, status, n in s.execute(
            select(Trial.sweep_id, Trial.stage, Trial.status, func.count())
            .where(Trial.sweep_id.in_(ids))
            .group_by(Trial.sweep_id, Trial.stage, Trial.status)
        ):
            counts[sweep_id].setdefault(stage, {})[status] = n
        stages: dict[int, list[Stage]] = {i: [] for i in ids}
        for st in s.scalars(select(Stage).where(Stage.sweep_id.in_(ids)).order_by(Stage.sweep_id, Stage.index)):
            stages[st.sweep_id].append(st)
        out = []
        for sw in sweeps:
            total: dict[str, int] = {}
            for per_stage in counts[sw.id].values():
                for status, n in per_stage.items():
                    total[status] = total.get(status, 0) + n
            best_trial = self._best(s, sw)
            out.append(
                SweepOut(
                    id=sw.id,
                    name=sw.name,
                    status=SweepStatus(sw.status),
                    objective=Objective(metric=sw.objective_metric, mode="min" if sw.minimize else "max"),
                    parallelism=sw.parallelism,
                    max_attempts=sw.max_attempts,
                    current_stage=sw.current_stage,
                    counts=total,
                    best=TrialOut.model_validate(best_trial) if best_trial is not None else None,
                    stages=[self._stage_out(st, counts[sw.id].get(st.index, {})) for st in stages[sw.id]],
                    warnings=list(sw.warnings),
                    spec=sw.spec,
                    created_at=sw.created_at,
                    finished_at=sw.finished_at,
                )
            )
        return out

    @staticmethod
    def _best(s: Session, sweep: Sweep) -> Trial | None:
        """The completed trial with the best objective value (the lowest number on ties),
        read through the (sweep_id, value) index."""
        order = Trial.value.asc() if sweep.minimize else Trial.value.desc()
        return s.scalar(
            select(Trial)
            .where(Trial.sweep_id == sweep.id, Trial.status == TrialStatus.completed, Trial.value.is_not(None))
            .order_by(order, Trial.number)
            .limit(1)
        )

    @staticmethod
    def _stage_out(stage: Stage, counts: dict[str, int]) -> StageOut:
        if stage.finished_at is not None:
            status = "completed"
        elif stage.started_at is not None:
            status = "running"
        else:
            status = "pending"
        return StageOut(
            index=stage.index,
            status=status,
            space=stage.space,
            search=stage.search,
            trials=stage.trials,
            epochs=stage.epochs,
            top_k=stage.top_k,
            counts=counts,
            started_at=stage.started_at,
            finished_at=stage.finished_at,
        )

    # -- the dashboard: read-only aggregates -------------------------------------------------

    def sweep_points(self, *, sweep_id: int) -> SweepPoints:
        """Every trial of the sweep as columns, for the dashboard's plots and table. One
        query reads only the columns they need (never curves or whole metrics), and the
        JSON in them is decoded in one call per column, so a sweep of 10,000 trials
        answers in well under a tenth of a second."""
        with self.db.read() as s:
            spec = s.scalar(select(Sweep.spec).where(Sweep.id == sweep_id))
            if spec is None:
                raise NotFound("sweep", sweep_id)
            seconds: ColumnElement[Any]
            if s.bind is not None and s.bind.dialect.name == "postgresql":
                seconds = func.extract("epoch", Trial.finished_at - Trial.started_at)
            else:
                seconds = (func.julianday(Trial.finished_at) - func.julianday(Trial.started_at)) * 86400.0
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
                    )
                    .where(Trial.sweep_id == sweep_id)
                    .order_by(Trial.number)
                )
                .all()
            )
        columns = list(zip(*rows, strict=True)) if rows else [()] * 9
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
            epochs_run=[int(e) if _is_number(e) and math.isfinite(e) else None for e in epochs],
            seconds=[None if t is None else float(t) for t in columns[8]],
            params={name: [p.get(name) for p in params] for name in names},
        )

    def sweep_curves(self, *, sweep_id: int, trial_ids: Sequence[int]) -> SweepCurves:
        """The curves of the trials ``trial_ids`` that belong to the sweep, in the order
        asked; ids of other sweeps' trials, or of none, are left out. Every numeric metric
        becomes a column; a step without it, or with a non-finite value, has null there."""
        # An id past MAX_ID names no trial, and PostgreSQL would refuse it in the query.
        wanted = [trial_id for trial_id in dict.fromkeys(trial_ids) if 0 <= trial_id <= MAX_ID]
        with self.db.read() as s:
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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _json_many(texts: Iterable[str | None]) -> list[Any]:
    """Decode many JSON texts (SQL NULL as None) in one call to the decoder, which is
    several times faster than a call for each."""
    return list(json.loads("[" + ",".join("null" if t is None else t for t in texts) + "]"))
