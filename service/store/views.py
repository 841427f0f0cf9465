"""Sweeps, their stages and trials as the API shows them, read in a session its caller
holds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hypersweep.sanity import SANITY_INDEX
from hypersweep.service.models import Stage, Sweep, Trial
from hypersweep.service.schemas import Objective, SanityOut, StageOut, StageStatus, SweepOut, TrialOut
from hypersweep.service.statuses import SweepStatus, TrialStatus

__all__ = ["SORT_KEYS", "sweep_outs"]

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


def sweep_outs(s: Session, sweeps: Sequence[Sweep]) -> list[SweepOut]:
    """``sweeps`` with their trial counts (per status, in all and per stage), their stages
    and their best trial, in a fixed number of queries plus one per sweep (its best)."""
    if not sweeps:
        return []
    ids = [sw.id for sw in sweeps]
    minimize = {sw.id: sw.minimize for sw in sweeps}
    counts: dict[int, dict[int, dict[str, int]]] = {i: {} for i in ids}
    # Each stage's best objective value: the lowest or highest of its completed trials'.
    bests: dict[int, dict[int, float | None]] = {i: {} for i in ids}
    for sweep_id, stage, status, n, low, high in s.execute(
        select(Trial.sweep_id, Trial.stage, Trial.status, func.count(), func.min(Trial.value), func.max(Trial.value))
        .where(Trial.sweep_id.in_(ids), Trial.number != SANITY_INDEX)
        .group_by(Trial.sweep_id, Trial.stage, Trial.status)
    ):
        counts[sweep_id].setdefault(stage, {})[status] = n
        if status == TrialStatus.completed:
            bests[sweep_id][stage] = low if minimize[sweep_id] else high
    stages: dict[int, list[Stage]] = {i: [] for i in ids}
    for st in s.scalars(select(Stage).where(Stage.sweep_id.in_(ids)).order_by(Stage.sweep_id, Stage.index)):
        stages[st.sweep_id].append(st)
    out = []
    for sw in sweeps:
        total: dict[str, int] = {}
        for per_stage in counts[sw.id].values():
            for status, n in per_stage.items():
                total[status] = total.get(status, 0) + n
        best_trial = _best(s, sw)
        out.append(
            SweepOut(
                id=sw.id,
                name=sw.name,
                program=sw.program,
                status=SweepStatus(sw.status),
                objective=Objective(metric=sw.objective_metric, mode="min" if sw.minimize else "max"),
                parallelism=sw.parallelism,
                max_attempts=sw.max_attempts,
                current_stage=sw.current_stage,
                counts=total,
                best=TrialOut.model_validate(best_trial) if best_trial is not None else None,
                stages=[
                    _stage_out(sw, st, counts[sw.id].get(st.index, {}), bests[sw.id].get(st.index))
                    for st in stages[sw.id]
                ],
                warnings=list(sw.warnings),
                spec=sw.spec,
                created_at=sw.created_at,
                finished_at=sw.finished_at,
                sanity=SanityOut.model_validate(sw.sanity) if sw.sanity else None,
            )
        )
    return out


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


def _stage_out(sweep: Sweep, stage: Stage, counts: dict[str, int], best_value: float | None) -> StageOut:
    """A stage as the API shows it. A stage is ``completed`` when it handed out all of its
    trials and each ended by itself; the stage a failed sweep was in is ``failed``; once
    the sweep is cancelled, every other stage (the one the cancel stopped, and those that
    never started) is ``cancelled``."""
    status: StageStatus
    ran_out = stage.finished_at is not None and stage.generated >= stage.trials and not counts.get("cancelled")
    if sweep.status == SweepStatus.failed and stage.index == sweep.current_stage:
        status = "failed"
    elif ran_out:
        status = "completed"
    elif sweep.status == SweepStatus.cancelled:
        status = "cancelled"
    elif stage.finished_at is not None:
        status = "completed"
    elif stage.started_at is not None:
        status = "running"
    else:
        status = "pending"
    return StageOut(
        index=stage.index,
        status=status,
        best_value=best_value,
        space=stage.space,
        search=stage.search,
        trials=stage.trials,
        epochs=stage.epochs,
        top_k=stage.top_k,
        counts=counts,
        started_at=stage.started_at,
        finished_at=stage.finished_at,
        enqueued=stage.enqueued,
        waiting=[entry["params"] for entry in stage.waiting],
    )
