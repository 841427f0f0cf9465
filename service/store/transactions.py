"""``Store``: transactions over sweeps, trials and leases, one per public method.

The methods ending in ``_in`` work in the transaction of a connection their caller holds
(``claims`` runs them in its claim transaction). The contract (who owns a trial, the order
locks are taken in, the errors) is the package's (``store``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, func, or_, select, update
from sqlalchemy.orm import Session

from hypersweep.sanity import SANITY_INDEX
from hypersweep.service import queries as q
from hypersweep.service.db import Database
from hypersweep.service.errors import Conflict, NotFound
from hypersweep.service.models import CurvePoint, Stage, Sweep, Trial, utcnow
from hypersweep.service.schemas import (
    ActionOut,
    CurvePointOut,
    EnqueueIn,
    EnqueueOut,
    FinishedIn,
    ImportedTrial,
    SweepOut,
    SweepSpec,
    TrialDetail,
    TrialOut,
)
from hypersweep.service.search.policy import SearchFailed, SearchPolicy
from hypersweep.service.search.space import dump_space
from hypersweep.service.settings import trial_settings
from hypersweep.service.statuses import ACTIVE, SweepStatus, TrialStatus
from hypersweep.service.store import enqueue, leases, pruning, sanity, stages, warmstart
from hypersweep.service.store.enqueue import enqueue_at_submit
from hypersweep.service.store.leases import AlreadyEnded, Ended, Ending, SweepFacts
from hypersweep.service.store.pruning import PruningOut, StagePruners
from hypersweep.service.store.stages import TrialsIn
from hypersweep.service.store.views import SORT_KEYS, sweep_outs
from hypersweep.service.validation import Plan

__all__ = ["Store"]

log = logging.getLogger(__name__)


class Store:
    """All reads and writes of sweeps, trials and leases. ``lease_seconds`` is how long a
    claim or a heartbeat keeps a trial for its holder; ``policy`` derives the stages'
    spaces and serves their designers (one per store, so one per process)."""

    def __init__(self, db: Database, *, lease_seconds: float, policy: SearchPolicy | None = None) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self.policy = policy or SearchPolicy()
        self.pruners = StagePruners()
        self._facts: dict[int, SweepFacts] = {}

    # -- sweeps ---------------------------------------------------------------------------

    def create_sweep(self, *, spec: SweepSpec, plan: Plan) -> SweepOut:
        """Store a validated sweep and its planned stages; stage 0 starts at once."""
        now = utcnow()
        with self.db.write() as s:
            warnings = [*plan.warnings, *warmstart.check_sources(s, spec)]
            sweep = Sweep(
                name=spec.name,
                spec=spec.model_dump(mode="json"),
                status=SweepStatus.running,
                objective_metric=spec.objective.metric,
                program=spec.program,
                minimize=spec.objective.mode == "min",
                parallelism=spec.parallelism,
                max_attempts=spec.max_attempts,
                warnings=warnings,
                created_at=now,
            )
            checks = sanity.initial_sanity(spec)
            if checks is not None:
                # Held until a worker has run the checks (``store.sanity``).
                sweep.status, sweep.sanity = SweepStatus.queued, checks
            s.add(sweep)
            s.flush()
            stages = []
            for index, stage in enumerate(plan.stages):
                stages.append(
                    Stage(
                        sweep_id=sweep.id,
                        index=index,
                        space=dump_space(spec.space) if index == 0 else None,
                        search=stage.search.model_dump(mode="json"),
                        trials=stage.trials,
                        epochs=stage.epochs,
                        top_k=stage.top_k,
                        started_at=now if index == 0 and checks is None else None,
                    )
                )
            s.add_all(stages)
            enqueue_at_submit(s, sweep, stages, [stage.enqueue for stage in spec.stages])
            if checks is not None:
                sanity.add_sanity_trial(s, sweep, spec, now)
            s.flush()
            return sweep_outs(s, [sweep])[0]

    def imported_trials(self, *, sweep_id: int) -> list[ImportedTrial]:
        """The trials of earlier sweeps that the sweep imports (its ``warm_start``)."""
        with self.db.read() as s:
            if s.get(Sweep, sweep_id) is None:
                raise NotFound("sweep", sweep_id)
            return warmstart.imported_trials(s.connection(), sweep_id)

    def enqueue(self, *, sweep_id: int, request: EnqueueIn) -> tuple[EnqueueOut, bool]:
        """Queue the trials a user chose (``store.enqueue.enqueue``), under the sweep's lock:
        the answer, and whether anything was made (not when the key was seen before)."""
        with self.db.transaction() as conn:
            return enqueue.enqueue(conn, request, sweep_id=sweep_id, now=utcnow())

    def get_sweep(self, *, sweep_id: int) -> SweepOut:
        with self.db.read() as s:
            sweep = s.get(Sweep, sweep_id)
            if sweep is None:
                raise NotFound("sweep", sweep_id)
            return sweep_outs(s, [sweep])[0]

    def list_sweeps(self, *, limit: int, offset: int) -> tuple[list[SweepOut], int]:
        """Sweeps newest first, and how many there are in all."""
        with self.db.read() as s:
            total = s.scalar(select(func.count()).select_from(Sweep)) or 0
            sweeps = s.scalars(select(Sweep).order_by(Sweep.id.desc()).limit(limit).offset(offset)).all()
            return sweep_outs(s, sweeps), total

    def running_sweep_ids(self, *, program: str | None = None) -> list[int]:
        """The ids of the running sweeps of ``program`` (``None``: the built-in trainer's),
        and of its queued ones whose sanity trial is still to run, oldest first."""
        sanity_due = (
            select(Trial.id)
            .where(Trial.sweep_id == Sweep.id, Trial.number == SANITY_INDEX, Trial.status.in_(ACTIVE))
            .exists()
        )
        with self.db.read() as s:
            return list(
                s.scalars(
                    select(Sweep.id)
                    .where(
                        or_(Sweep.status == SweepStatus.running, (Sweep.status == SweepStatus.queued) & sanity_due),
                        Sweep.program.is_not_distinct_from(program),
                    )
                    .order_by(Sweep.id)
                )
            )

    def cancel_sweep(self, *, sweep_id: int) -> SweepOut:
        """No new trials; queued ones are cancelled, running ones are told to stop at their
        next heartbeat or report. Cancelling a cancelled sweep changes nothing; a completed
        or failed sweep cannot be cancelled."""
        now = utcnow()
        with self.db.write() as s:
            sweep = s.get(Sweep, sweep_id, with_for_update=True, populate_existing=True)
            if sweep is None:
                raise NotFound("sweep", sweep_id)
            if sweep.status in (SweepStatus.completed, SweepStatus.failed):
                raise Conflict(f"sweep {sweep_id} is already {sweep.status}")
            if sweep.status in (SweepStatus.running, SweepStatus.queued):
                _end_sweep(s, sweep, SweepStatus.cancelled, now)
            return sweep_outs(s, [sweep])[0]

    def fail_sweep(self, failure: SearchFailed) -> None:
        """End the sweep whose search raised (``failure``): ``failed``, with the error in its
        warnings; stage ``failure.stage`` is its current stage, and the stages before it
        that were running are done. Its trials end as a cancel ends them. A sweep that is
        no longer running is left as it is."""
        now = utcnow()
        log.warning("sweep %s: %s", failure.sweep_id, failure, exc_info=failure.__cause__)
        with self.db.write() as s:
            sweep = s.get(Sweep, failure.sweep_id, with_for_update=True, populate_existing=True)
            if sweep is None or sweep.status != SweepStatus.running:
                return
            sweep.warnings = [*sweep.warnings, str(failure)]
            stage = s.scalar(select(Stage).where(Stage.sweep_id == sweep.id, Stage.index == failure.stage))
            if stage is not None:
                sweep.current_stage = failure.stage
                stage.started_at = stage.started_at or now
            _end_sweep(s, sweep, SweepStatus.failed, now)

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
            spec, program = s.execute(select(Sweep.spec, Sweep.program).where(Sweep.id == trial.sweep_id)).one()
            epochs = s.scalar(select(Stage.epochs).where(Stage.sweep_id == trial.sweep_id, Stage.index == trial.stage))
            settings = trial_settings(spec.get("trainer", {}), epochs or 0, trial.params, builtin=program is None)
            return TrialDetail(
                **TrialOut.model_validate(trial).model_dump(),
                curve=[CurvePointOut.model_validate(p) for p in points],
                settings=settings,
            )

    def pruning(self, *, sweep_id: int, trial_id: int | None = None) -> PruningOut:
        """The sweep's pruning rung by rung (``store.pruning.sweep_pruning``)."""
        with self.db.read() as s:
            out = pruning.sweep_pruning(s.connection(), sweep_id, trial_id=trial_id)
        if out is None:
            raise NotFound("sweep", sweep_id)
        return out

    # -- the holder of a lease ---------------------------------------------------------------

    def heartbeat(self, *, trial_id: int, lease_token: str) -> ActionOut:
        """Renew the lease. ``stop`` when the trial was cancelled meanwhile."""
        now = utcnow()
        with self.db.transaction() as conn:
            trial = leases.held(conn, trial_id, lease_token, now)
            if trial.status != TrialStatus.running:
                return _stop(trial.status, trial.metrics)
            expires = now + self.lease
            conn.execute(q.UPDATE_TRIAL, {"b_trial_id": trial_id, "lease_expires_at": expires})
            return ActionOut(action="continue", lease_expires_at=expires)

    def report(self, *, trial_id: int, lease_token: str, points: Sequence[tuple[int, dict[str, Any]]]) -> ActionOut:
        """Record points ``(step, metrics)`` of the curve, in order (reporting a step again
        replaces it), make their values the trial's latest metrics, and renew the lease.

        When the trial's stage has a pruner and a point reaches an epoch where the trial may
        be stopped, decide (``store.pruning``): a pruned trial ends ``pruned`` at once, with
        ``pruned_at`` and ``prune_reason`` in its metrics, and the answer is ``stop`` with
        reason ``pruned``; its holder keeps the lease until its finish."""
        now = utcnow()
        with self.db.transaction() as conn:
            trial = leases.held(conn, trial_id, lease_token, now)
            if trial.status != TrialStatus.running:
                return _stop(trial.status, trial.metrics)
            metrics = leases.record(conn, trial_id, trial.metrics, points, now)
            expires = now + self.lease
            stage = self.pruners.of(conn, trial.sweep_id, trial.stage)
            decision = None
            if stage is not None:
                decision = pruning.decide(
                    conn, stage, trial_id=trial_id, sweep_id=trial.sweep_id, stage=trial.stage, points=points, now=now
                )
            if decision is None:
                conn.execute(q.UPDATE_TRIAL, {"b_trial_id": trial_id, "metrics": metrics, "lease_expires_at": expires})
                return ActionOut(action="continue", lease_expires_at=expires)
            # Pruned: ended at once (its slot goes to the next trial), while its holder keeps
            # the lease until its finish brings the final metrics.
            metrics = {**metrics, "pruned_at": decision.step, "prune_reason": decision.reason}
            assert stage is not None
            conn.execute(
                q.UPDATE_TRIAL,
                {
                    "b_trial_id": trial_id,
                    "status": TrialStatus.pruned,
                    "metrics": metrics,
                    "value": leases.objective_value(metrics, stage.metric),
                    "finished_at": now,
                    "lease_expires_at": expires,
                },
            )
        self.advance_after(trial.sweep_id, now)
        return _stop(TrialStatus.pruned, metrics)

    def finish(
        self,
        *,
        trial_id: int,
        lease_token: str,
        status: str,
        metrics: dict[str, Any],
        error: str | None = None,
        points: Sequence[tuple[int, dict[str, Any]]] = (),
    ) -> TrialOut | AlreadyEnded:
        """End a running trial, first recording ``points`` of its curve not reported yet;
        returns the trial as it ended. An ended trial does not change: finishing again with
        the same token returns :class:`AlreadyEnded` with the trial as it is. The one
        exception is a trial cancelled while it ran: it keeps ``cancelled``, and its
        holder's first finish records its final metrics (not its last points, as reports
        after the cancel are not recorded either), then returns ``AlreadyEnded`` too.

        Only the trial's row is locked to record the result; when that may have been the
        last active trial of its stage, a second transaction takes the sweep's lock and
        starts the next stage or completes the sweep (claims and the lease reaper do the same,
        so a crash between the two loses nothing)."""
        now = utcnow()
        ending = Ending(trial_id, lease_token, status, metrics, error, points)
        with self.db.transaction() as conn:
            [out], stages_may_end = self.finish_in(conn, [ending], now)
        if isinstance(out, Exception):
            raise out
        for sweep_id in stages_may_end:
            self.advance_after(sweep_id, now)
        return out

    def finish_many(self, *, results: Sequence[FinishedIn]) -> list[Ended]:
        """End several trials in one transaction, each as :meth:`finish` would, in order. A
        trial that does not exist or is not held with its token changes nothing and gets
        its reason (``NotFound``, ``LeaseConflict``) instead of failing the others."""
        now = utcnow()
        with self.db.transaction() as conn:
            outs, stages_may_end = self.finish_in(conn, [Ending.of(result) for result in results], now)
        for sweep_id in sorted(stages_may_end):
            self.advance_after(sweep_id, now)
        return outs

    def release(self, *, trial_id: int, lease_token: str) -> TrialOut:
        """Give a running trial back at once: it is queued again with ``attempt + 1``."""
        now = utcnow()
        with self.db.transaction() as conn:
            row = conn.execute(
                select(*Trial.__table__.columns).where(Trial.id == trial_id).with_for_update()
            ).one_or_none()
            if row is None:
                raise NotFound("trial", trial_id)
            leases.check_held(trial_id, row.status, row.lease_token, row.lease_expires_at, lease_token, now)
            trial = dict(row._mapping)
            if row.status == TrialStatus.running:
                trial.update(leases.requeue(conn, [(trial_id, row.attempt)])[0])
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
            try:
                with self.db.transaction() as conn:
                    sweep = self.lock_sweep(conn, sweep_id)
                    expired = self.expire_in(conn, sweep_id, max_attempts=sweep.max_attempts, now=now)
                    self.advance_in(conn, sweep_id, now)
            except SearchFailed as failure:
                # Its trials end with the sweep; the other sweeps' leases are still due.
                self.fail_sweep(failure)
                continue
            touched += expired
        return touched

    def advance_after(self, sweep_id: int, now: datetime) -> None:
        """Start the sweep's next stage, or complete it, if its current stage is done.

        Called after a finish has committed. While other trials of the sweep are active the
        stage cannot be done, and that is read without the sweep's lock: the finish of the
        stage's last active trial, whichever commits last, reads none and advances."""
        with self.db.read() as s:
            running, queued, _ = s.connection().execute(q.ACTIVE_COUNTS, {"b_sweep_id": sweep_id, "b_now": now}).one()
        if running or queued:
            return
        try:
            with self.db.transaction() as conn:
                self.lock_sweep(conn, sweep_id)
                self.advance_in(conn, sweep_id, now)
        except SearchFailed as failure:
            self.fail_sweep(failure)

    # -- metrics -------------------------------------------------------------------------------

    def status_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """How many sweeps and trials there are in each status."""
        with self.db.read() as s:
            sweeps = dict(s.execute(select(Sweep.status, func.count()).group_by(Sweep.status)).all())
            trials = dict(s.execute(select(Trial.status, func.count()).group_by(Trial.status)).all())
            return sweeps, trials

    def slots_wanted(self) -> dict[str | None, int]:
        """For each program named by any sweep (``None``: the built-in trainer, always
        there), the trial slots its running sweeps can keep busy now: per sweep, its
        queued and running trials plus those its current and later stages have yet to
        create, at most its ``parallelism``. Workers to ask for = this / trials per worker.

        Later stages count before they start, so that workers are not sent away at a stage
        boundary only to be asked for again a moment later."""
        running = Sweep.status == SweepStatus.running
        with self.db.read() as s:
            wanted: dict[str | None, int] = {program: 0 for program in s.scalars(select(Sweep.program).distinct())}
            wanted.setdefault(None, 0)
            active = dict(
                s.execute(
                    select(Trial.sweep_id, func.count())
                    .join(Sweep, Sweep.id == Trial.sweep_id)
                    .where(running, Trial.status.in_(ACTIVE))
                    .group_by(Trial.sweep_id)
                ).all()
            )
            to_create = dict(
                s.execute(
                    select(Stage.sweep_id, func.sum(Stage.trials - Stage.generated))
                    .join(Sweep, Sweep.id == Stage.sweep_id)
                    .where(running, Stage.index >= Sweep.current_stage)
                    .group_by(Stage.sweep_id)
                ).all()
            )
            for sweep_id, program, parallelism in s.execute(
                select(Sweep.id, Sweep.program, Sweep.parallelism).where(running)
            ).all():
                left = active.get(sweep_id, 0) + max(0, int(to_create.get(sweep_id) or 0))
                wanted[program] += min(parallelism, left)
        return wanted

    def ping(self) -> None:
        with self.db.read() as s:
            s.execute(select(1))

    # -- inside the caller's transaction ------------------------------------------------------

    @staticmethod
    def lock_sweep(conn: Connection, sweep_id: int) -> Row[*tuple[Any, ...]]:
        """Lock the sweep's row; what a claim needs of it (``queries.LOCK_SWEEP``)."""
        sweep = conn.execute(q.LOCK_SWEEP, {"b_sweep_id": sweep_id}).one_or_none()
        if sweep is None:
            raise NotFound("sweep", sweep_id)
        return sweep

    @staticmethod
    def trials_in(conn: Connection) -> TrialsIn:
        """The search policy's reads, in ``conn``'s transaction."""
        return TrialsIn(conn)

    def finish_in(self, conn: Connection, endings: Sequence[Ending], now: datetime) -> tuple[list[Ended], set[int]]:
        """End trials (:func:`leases.finish`): per ending, in order, the trial as it ends or
        why it cannot; and the sweeps whose current stage may have ended with them."""
        return leases.finish(conn, endings, now, facts=lambda sweep_id: self.sweep_facts(conn, sweep_id))

    @staticmethod
    def expire_in(conn: Connection, sweep_id: int, *, max_attempts: int, now: datetime) -> int:
        """Re-queue (or fail) the sweep's trials whose lease expired (:func:`leases.expire`);
        the caller holds the sweep's lock. Returns how many."""
        return leases.expire(conn, sweep_id, max_attempts=max_attempts, now=now)

    def advance_in(self, conn: Connection, sweep_id: int, now: datetime) -> bool:
        """Start the sweep's next stage, or complete the sweep, if its current stage is done
        (:func:`stages.advance`); the caller holds the sweep's lock. Returns whether a new
        stage started. Raises ``SearchFailed`` when the next stage's space cannot be
        derived: the caller rolls back and ends the sweep (:meth:`fail_sweep`). A queued
        sweep whose sanity trial has ended takes its results first (:func:`sanity.conclude_in`)."""
        sanity.conclude_in(conn, sweep_id, now)
        return stages.advance(conn, sweep_id, now, policy=self.policy)

    def facts(self, sweep_id: int) -> SweepFacts:
        """:meth:`sweep_facts` in a transaction of its own (none when they are known);
        raises ``NotFound`` for a sweep that does not exist."""
        facts = self._facts.get(sweep_id)
        if facts is not None:
            return facts
        with self.db.read() as s:
            if s.get(Sweep, sweep_id) is None:
                raise NotFound("sweep", sweep_id)
            return self.sweep_facts(s.connection(), sweep_id)

    def sweep_facts(self, conn: Connection, sweep_id: int) -> SweepFacts:
        """What never changes of a sweep and every finish and claim needs: its objective
        metric, its program and its ``trainer`` section, read once per process."""
        facts = self._facts.get(sweep_id)
        if facts is None:
            row = conn.execute(
                select(Sweep.objective_metric, Sweep.program, Sweep.spec).where(Sweep.id == sweep_id)
            ).one()
            facts = SweepFacts(row.objective_metric, row.program, dict(row.spec.get("trainer", {})))
            self._facts[sweep_id] = facts
        return facts


def _stop(status: str, metrics: dict[str, Any]) -> ActionOut:
    """The answer to the holder of a trial that the server ended while it ran."""
    if status == TrialStatus.pruned:
        return ActionOut(action="stop", reason="pruned", detail=metrics.get("prune_reason"))
    return ActionOut(action="stop")


def _end_sweep(s: Session, sweep: Sweep, status: SweepStatus, now: datetime) -> None:
    """End a running sweep with ``status``: its queued and running trials are cancelled
    (a running one's holder is told to stop at its next heartbeat or report), and its
    started stages are done."""
    sweep.status = status
    sweep.finished_at = now
    s.execute(
        update(Trial)
        .where(Trial.sweep_id == sweep.id, Trial.status.in_(ACTIVE))
        .values(status=TrialStatus.cancelled, finished_at=now)
    )
    for stage in s.scalars(select(Stage).where(Stage.sweep_id == sweep.id, Stage.finished_at.is_(None))):
        if stage.started_at is not None:
            stage.finished_at = now
