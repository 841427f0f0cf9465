"""A stage's end and the next one's start, and the search policy's reads, inside a
transaction whose owner holds the sweep's lock.

What a new stage starts with (its space, budget and warnings) is the search policy's to
derive (``search.policy``); this module reads what the policy asks for
(:class:`TrialsIn`) and writes what it derived.
"""

from __future__ import annotations

import logging
from collections.abc import Set
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from hypersweep.sanity import SANITY_INDEX
from hypersweep.service import queries as q
from hypersweep.service.models import CurvePoint, Stage, Sweep, Trial
from hypersweep.service.search.base import Params
from hypersweep.service.search.diagnoses import StageTrial, diagnose
from hypersweep.service.search.policy import FinishedTrial, NextStage, SearchPolicy, StageSetup
from hypersweep.service.search.space import load_space
from hypersweep.service.statuses import ACTIVE, FINISHED, SweepStatus, TrialStatus
from hypersweep.service.store.enqueue import start_waiting
from hypersweep.service.store.warmstart import imported_for

__all__ = ["TrialsIn", "advance", "stage_trials"]

logger = logging.getLogger(__name__)

#: Finished trials a designer is new to, past which they are read by their stage instead
#: of listed by id.
_IN_LIST_MAX = 500


def advance(conn: Connection, sweep_id: int, now: datetime, *, policy: SearchPolicy) -> bool:
    """Close the sweep's current stage if it is done (its budget handed out, none of its
    trials active): start the next one, with what ``policy`` derives from this one's best
    trials, or complete the sweep. Returns whether a new stage started."""
    sweep = conn.execute(
        select(Sweep.status, Sweep.current_stage, Sweep.minimize, Sweep.warnings, Sweep.spec).where(
            Sweep.id == sweep_id
        )
    ).one()
    if sweep.status != SweepStatus.running:
        return False
    index = sweep.current_stage
    stage = conn.execute(
        select(Stage.generated, Stage.trials, Stage.space).where(Stage.sweep_id == sweep_id, Stage.index == index)
    ).one()
    if stage.generated < stage.trials:
        return False
    # Only the current stage can have queued or running trials (a stage starts only once
    # the one before has none), so the sweep's active trials are the stage's.
    running, queued, _ = conn.execute(q.ACTIVE_COUNTS, {"b_sweep_id": sweep_id, "b_now": now}).one()
    if running or queued:
        return False
    _update_stage(conn, sweep_id, index, finished_at=now)
    following = conn.execute(
        select(Stage.search, Stage.trials, Stage.top_k, Stage.generated).where(
            Stage.sweep_id == sweep_id, Stage.index == index + 1
        )
    ).one_or_none()
    assert stage.space is not None
    diagnosed = _diagnose(conn, sweep, sweep_id, index, stage.space, last=following is None)
    if following is None:
        conn.execute(
            update(Sweep)
            .where(Sweep.id == sweep_id)
            .values(status=SweepStatus.completed, finished_at=now, warnings=[*sweep.warnings, *diagnosed])
        )
        return False
    assert following.top_k is not None
    started = index + 1
    change = policy.next_stage(
        TrialsIn(conn),
        sweep_id=sweep_id,
        minimize=sweep.minimize,
        original=sweep.spec["space"],
        ended=index,
        ended_space=stage.space,
        following=NextStage(started, following.search, following.trials, following.top_k),
    )
    # Trials enqueued for the stage before it started run even where its grid is smaller.
    trials = max(change.trials, following.generated)
    _update_stage(conn, sweep_id, started, space=change.space, trials=trials, started_at=now)
    start_waiting(conn, sweep_id, started, now)
    conn.execute(
        update(Sweep)
        .where(Sweep.id == sweep_id)
        .values(warnings=[*sweep.warnings, *diagnosed, *change.warnings], current_stage=started)
    )
    return True


def _diagnose(
    conn: Connection, sweep: Any, sweep_id: int, index: int, space: dict[str, Any], *, last: bool
) -> list[str]:
    """The diagnoses of the stage that just ended (``search.diagnoses``). They only
    inform: whatever goes wrong in them is logged, and the stage moves on without them."""
    try:
        return diagnose(
            stage_trials(conn, sweep_id, index),
            stage=index,
            space=load_space(space),
            original=load_space(sweep.spec["space"]),
            minimize=sweep.minimize,
            last=last,
        )
    except Exception:
        logger.exception("sweep %s: the diagnoses of stage %s failed", sweep_id, index)
        return []


def stage_trials(conn: Connection, sweep_id: int, stage: int) -> list[StageTrial]:
    """The stage's finished trials as the diagnoses read them (the sanity trial left out),
    with the first reported training loss of those whose metrics have no ``initial_loss``."""
    rows = conn.execute(
        select(Trial.id, Trial.params, Trial.status, Trial.value, Trial.metrics).where(
            Trial.sweep_id == sweep_id,
            Trial.stage == stage,
            Trial.number != SANITY_INDEX,
            Trial.status.in_(FINISHED),
        )
    ).all()
    wanted = [row.id for row in rows if "initial_loss" not in (row.metrics or {})]
    first: dict[int, float] = {}
    if wanted:
        earliest = (
            select(CurvePoint.trial_id, func.min(CurvePoint.step).label("step"))
            .where(CurvePoint.trial_id.in_(wanted))
            .group_by(CurvePoint.trial_id)
            .subquery()
        )
        for trial_id, metrics in conn.execute(
            select(CurvePoint.trial_id, CurvePoint.metrics).join(
                earliest, (CurvePoint.trial_id == earliest.c.trial_id) & (CurvePoint.step == earliest.c.step)
            )
        ):
            loss = (metrics or {}).get("train_loss")
            if isinstance(loss, int | float) and not isinstance(loss, bool):
                first[trial_id] = float(loss)
    return [StageTrial(row.params, row.status, row.value, row.metrics or {}, first.get(row.id)) for row in rows]


class TrialsIn:
    """The search policy's reads (:class:`~hypersweep.service.search.policy.Trials`) in
    the transaction of ``conn``, whose owner holds the sweep's lock."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def stage_setup(self, sweep_id: int, stage: int) -> StageSetup:
        row = self.conn.execute(
            select(Stage.space, Stage.search, Stage.epochs, Stage.top_k).where(
                Stage.sweep_id == sweep_id, Stage.index == stage
            )
        ).one()
        assert row.space is not None, f"sweep {sweep_id}: stage {stage} has not started"
        return StageSetup(row.space, row.search, row.epochs, row.top_k)

    def finished_since(self, sweep_id: int, stage: int, seen: Set[int]) -> list[FinishedTrial]:
        # Only the ids are read of the trials seen already.
        where = [Trial.sweep_id == sweep_id, Trial.stage <= stage, Trial.status.in_(FINISHED)]
        new = set(self.conn.scalars(select(Trial.id).where(*where))) - seen
        if not new:
            return []
        query = select(Trial.id, Trial.params, Trial.status, Trial.value, Trial.stage).order_by(Trial.number)
        # A designer built afresh is new to every finished trial: too many ids for an IN list.
        query = query.where(Trial.id.in_(new)) if len(new) <= _IN_LIST_MAX else query.where(*where)
        return [FinishedTrial(*row) for row in self.conn.execute(query) if row.id in new]

    def active_params(self, sweep_id: int, stage: int) -> list[Params]:
        return list(
            self.conn.scalars(
                select(Trial.params)
                .where(Trial.sweep_id == sweep_id, Trial.stage == stage, Trial.status.in_(ACTIVE))
                .order_by(Trial.number)
            )
        )

    def top_params(self, sweep_id: int, stage: int, k: int, *, minimize: bool) -> list[Params]:
        return [params for _, params in self.top_results(sweep_id, stage, k, minimize=minimize)]

    def top_results(self, sweep_id: int, stage: int, k: int, *, minimize: bool) -> list[tuple[float, Params]]:
        order = Trial.value.asc() if minimize else Trial.value.desc()
        rows = self.conn.execute(
            select(Trial.value, Trial.params)
            .where(
                Trial.sweep_id == sweep_id,
                Trial.stage == stage,
                Trial.status == TrialStatus.completed,
                Trial.value.is_not(None),
            )
            .order_by(order, Trial.number)
            .limit(k)
        )
        return [(row.value, row.params) for row in rows]

    def imported(self, sweep_id: int) -> list[FinishedTrial]:
        return imported_for(self.conn, sweep_id)


def _update_stage(conn: Connection, sweep_id: int, index: int, **values: Any) -> None:
    conn.execute(update(Stage).where(Stage.sweep_id == sweep_id, Stage.index == index).values(**values))
