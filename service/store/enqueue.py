"""Enqueued trials in the database: a user's call, a sweep's ``enqueue`` at submit, and
the trials waiting for a stage that starts.

Every function here runs in a transaction whose owner holds the sweep's lock, as claims
do: enqueues and claims of one sweep are serial, so a budget, a duplicate check and a
client's key are exact under any number of concurrent callers.

An enqueued trial of the current stage is a ``queued`` trial at once, and claims lease
queued trials before asking the strategy for more: it runs ahead of the strategy's. One
enqueued for a stage that has not started waits in that stage's row (``Stage.waiting``,
its budget taken) and becomes a queued trial when the stage starts, so that only the
current stage ever has queued trials.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from hypersweep.service import queries as q
from hypersweep.service.enqueue import check_param_sets
from hypersweep.service.errors import Conflict, NotFound
from hypersweep.service.models import Stage, Sweep, Trial
from hypersweep.service.schemas import EnqueueIn, EnqueueOut, TrialOut
from hypersweep.service.search.base import Params
from hypersweep.service.search.chosen import ParamsKey, params_key
from hypersweep.service.search.space import load_space
from hypersweep.service.statuses import SweepStatus, TrialStatus
from hypersweep.service.validation import SpecError

__all__ = ["enqueue", "enqueue_at_submit", "start_waiting"]


def enqueue(conn: Connection, request: EnqueueIn, *, sweep_id: int, now: datetime) -> tuple[EnqueueOut, bool]:
    """Enqueue the request's params in sweep ``sweep_id`` (locked here): the answer, and
    whether it made anything (``False`` when the request's ``key`` was seen before).

    Raises ``NotFound`` for an unknown sweep, ``SpecError`` (422, with each problem's
    path) for params not in the stage's space, repeated, or a stage the sweep does not
    have, and ``Conflict`` (409) for a sweep that has ended, a stage that has ended or has
    too few trials of its budget left, or a key used before for other params."""
    sweep = conn.execute(q.LOCK_SWEEP, {"b_sweep_id": sweep_id}).one_or_none()
    if sweep is None:
        raise NotFound("sweep", sweep_id)
    raw_space, stage_count = _sweep_space(conn, sweep_id)
    index = sweep.current_stage if request.stage is None else request.stage
    if index >= stage_count:
        last = "stage 0" if stage_count == 1 else f"stages 0 to {stage_count - 1}"
        raise SpecError([(("stage",), f"sweep {sweep_id} has {last}; there is no stage {index}")])
    stage = conn.execute(
        select(Stage.space, Stage.trials, Stage.generated, Stage.waiting).where(
            Stage.sweep_id == sweep_id, Stage.index == index
        )
    ).one()
    # A stage that has not started is checked against the sweep's space: its own is
    # narrowed from that one only when it starts.
    space = load_space(stage.space if stage.space is not None else raw_space)
    single = not isinstance(request.params, list)
    if request.key is not None:
        replay = _replay(conn, sweep_id, request, raw_space, single=single)
        if replay is not None:
            return replay, False
    if sweep.status != SweepStatus.running:
        raise Conflict(f"sweep {sweep_id} is {sweep.status}; it runs no more trials")
    if index < sweep.current_stage:
        raise Conflict(
            f"stage {index} of sweep {sweep_id} has ended; enqueue into stage {sweep.current_stage} or later"
        )
    taken = _stage_keys(conn, sweep_id, index, stage.waiting)
    params, errors = check_param_sets(
        space,
        request.param_sets(),
        loc=("params",),
        single=single,
        taken=taken,
        allow_duplicate=request.allow_duplicate,
        stage=index,
    )
    if errors:
        raise SpecError(errors)
    left = stage.trials - stage.generated
    if len(params) > left:
        raise Conflict(
            f"stage {index} of sweep {sweep_id} has {left} of its {stage.trials} trials left to hand out; "
            f"it cannot take {len(params)} more (enqueued trials count within a stage's trials)"
        )
    if index == sweep.current_stage:
        trials = _insert(
            conn, sweep_id, index, params, first=stage.generated, number=sweep.trials_created, key=request.key, now=now
        )
        conn.execute(
            update(Sweep).where(Sweep.id == sweep_id).values(trials_created=Sweep.trials_created + len(params))
        )
        waiting: list[dict[str, Any]] = []
    else:
        trials = []
        waiting = [{"params": p, "key": request.key} for p in params]
    conn.execute(
        update(Stage)
        .where(Stage.sweep_id == sweep_id, Stage.index == index)
        .values(
            generated=Stage.generated + len(params),
            enqueued=Stage.enqueued + len(params),
            waiting=[*stage.waiting, *waiting],
        )
    )
    return EnqueueOut(sweep_id=sweep_id, stage=index, trials=trials, waiting=[w["params"] for w in waiting]), True


def _sweep_space(conn: Connection, sweep_id: int) -> tuple[dict[str, Any], int]:
    spec = conn.execute(select(Sweep.spec).where(Sweep.id == sweep_id)).scalar_one()
    return spec["space"], len(spec["stages"])


def _stage_keys(conn: Connection, sweep_id: int, index: int, waiting: Sequence[dict[str, Any]]) -> set[ParamsKey]:
    """The params of every trial of the stage, and of those waiting for it."""
    stored = conn.scalars(select(Trial.params).where(Trial.sweep_id == sweep_id, Trial.stage == index))
    return {params_key(p) for p in stored} | {params_key(w["params"]) for w in waiting}


def _replay(
    conn: Connection, sweep_id: int, request: EnqueueIn, raw_space: dict[str, Any], *, single: bool
) -> EnqueueOut | None:
    """The answer of the earlier call with the request's key, or ``None`` when there was
    none; ``Conflict`` when that call enqueued other params or in another stage."""
    rows = conn.execute(
        select(*Trial.__table__.columns)
        .where(Trial.sweep_id == sweep_id, Trial.enqueue_key == request.key)
        .order_by(Trial.number)
    ).all()
    trials = [TrialOut.model_validate(dict(row._mapping)) for row in rows]
    stage: int | None = trials[0].stage if trials else None
    waiting: list[dict[str, Any]] = []
    if stage is None:
        for index, entries in conn.execute(
            select(Stage.index, Stage.waiting).where(Stage.sweep_id == sweep_id).order_by(Stage.index)
        ):
            mine = [w["params"] for w in entries if w.get("key") == request.key]
            if mine:
                stage, waiting = index, mine
                break
    if stage is None:
        return None
    earlier = [t.params for t in trials] + waiting
    # Compared as the sweep's space holds them: a stage's narrowed space has the same axes,
    # and an earlier call's params may lie outside it now that the stage has started.
    space = load_space(raw_space)
    asked, errors = check_param_sets(space, request.param_sets(), loc=("params",), single=single, allow_duplicate=True)
    same_stage = request.stage is None or request.stage == stage
    if errors or not same_stage or [params_key(p) for p in asked] != [params_key(p) for p in earlier]:
        raise Conflict(
            f"the key {request.key!r} was used before on sweep {sweep_id} for other params or another stage; "
            "use a new key for new trials"
        )
    return EnqueueOut(sweep_id=sweep_id, stage=stage, trials=trials, waiting=waiting)


def _insert(
    conn: Connection,
    sweep_id: int,
    stage: int,
    params: Sequence[Params],
    *,
    first: int,
    number: int,
    key: str | None,
    now: datetime,
) -> list[TrialOut]:
    """Insert ``params`` as queued trials of the stage, from stage index ``first`` and
    sweep number ``number`` on."""
    rows: list[dict[str, Any]] = [
        {
            "sweep_id": sweep_id,
            "stage": stage,
            "stage_index": first + offset,
            "number": number + offset,
            "params": p,
            "status": TrialStatus.queued,
            "attempt": 1,
            "metrics": {},
            "created_at": now,
            "enqueued": True,
            "enqueue_key": key,
        }
        for offset, p in enumerate(params)
    ]
    if not rows:
        return []
    ids = conn.execute(q.INSERT_TRIALS, rows).scalars().all()
    return [
        TrialOut.model_validate(
            {
                **row,
                "id": trial_id,
                "worker_id": None,
                "value": None,
                "started_at": None,
                "finished_at": None,
                "error": None,
            }
        )
        for row, trial_id in zip(rows, ids, strict=True)
    ]


def start_waiting(conn: Connection, sweep_id: int, index: int, now: datetime) -> None:
    """Stage ``index`` has just started: its waiting params become queued trials, first in
    its line (their budget was taken when they were enqueued)."""
    waiting = conn.execute(select(Stage.waiting).where(Stage.sweep_id == sweep_id, Stage.index == index)).scalar_one()
    if not waiting:
        return
    number = conn.execute(select(Sweep.trials_created).where(Sweep.id == sweep_id)).scalar_one()
    for position, entry in enumerate(waiting):
        # One key may cover several entries; each is inserted with its own.
        _insert(
            conn,
            sweep_id,
            index,
            [entry["params"]],
            first=position,
            number=number + position,
            key=entry.get("key"),
            now=now,
        )
    conn.execute(update(Sweep).where(Sweep.id == sweep_id).values(trials_created=Sweep.trials_created + len(waiting)))
    conn.execute(update(Stage).where(Stage.sweep_id == sweep_id, Stage.index == index).values(waiting=[]))


def enqueue_at_submit(
    s: Session, sweep: Sweep, stages: Sequence[Stage], enqueues: Sequence[Sequence[Params] | None]
) -> None:
    """The ``enqueue`` lists of a new sweep's stages (checked by ``check_spec``): queued
    trials in its first stage, which starts at once, and waiting ones in the others."""
    for stage, params in zip(stages, enqueues, strict=True):
        if not params:
            continue
        stage.generated = stage.enqueued = len(params)
        if stage.index > 0:
            stage.waiting = [{"params": dict(p), "key": None} for p in params]
            continue
        for offset, p in enumerate(params):
            s.add(
                Trial(
                    sweep_id=sweep.id,
                    stage=0,
                    stage_index=offset,
                    number=offset,
                    params=dict(p),
                    status=TrialStatus.queued,
                    attempt=1,
                    metrics={},
                    created_at=sweep.created_at,
                    enqueued=True,
                )
            )
        sweep.trials_created = len(params)
