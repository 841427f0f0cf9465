"""A sweep's sanity checks on the server: the sanity trial, handing it out, and what the
sweep does with its results.

A sweep with ``sanity: true`` or ``sanity: warn`` is stored ``queued`` with one trial of
its own: number and stage index :data:`~hypersweep.sanity.SANITY_INDEX` in stage 0, at
the middle of the space, queued. Claims hand it out like any trial (a lease, heartbeats,
re-queued when the lease expires, failed after ``max_attempts``); the worker that holds
it runs the checks instead of training and finishes it with their results as metrics
(``hypersweep.sanity.to_metrics``). The server judges nothing and needs no PyTorch: it
reads the verdicts the worker sent.

Once the sanity trial has ended, :func:`conclude_in` (under the sweep's lock: the claim
that carries the finish, or the transaction after a plain finish) stores the results on
the sweep and starts stage 0, or, when a check failed with ``sanity: true``, leaves the
sweep queued with a warning; ``sanity: warn`` starts it anyway, with the warning.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from hypersweep.sanity import SANITY_INDEX, from_metrics, middle_params, passed
from hypersweep.service import queries as q
from hypersweep.service.models import Stage, Sweep, Trial
from hypersweep.service.schemas import ClaimedTrial, SweepSpec
from hypersweep.service.search.space import dump_space
from hypersweep.service.statuses import FINISHED, SweepStatus, TrialStatus
from hypersweep.service.store.leases import expire

__all__ = ["add_sanity_trial", "conclude_in", "initial_sanity", "serve_in"]


class _Asking(Protocol):
    worker_id: str
    count: int


def initial_sanity(spec: SweepSpec) -> dict[str, Any] | None:
    """What a new sweep stores as its ``sanity``: pending checks, or ``None`` without."""
    if spec.sanity is False:
        return None
    return {"mode": "warn" if spec.sanity == "warn" else "true", "status": "pending", "checks": []}


def add_sanity_trial(s: Session, sweep: Sweep, spec: SweepSpec, now: datetime) -> Trial:
    """Queue the sanity trial of ``sweep`` (just added to ``s``)."""
    trial = Trial(
        sweep_id=sweep.id,
        stage=0,
        stage_index=SANITY_INDEX,
        number=SANITY_INDEX,
        params=middle_params(dump_space(spec.space)),
        status=TrialStatus.queued,
        attempt=1,
        metrics={},
        created_at=now,
    )
    s.add(trial)
    return trial


def serve_in(
    conn: Connection,
    sweep: Any,
    asks: Sequence[_Asking],
    now: datetime,
    *,
    lease: timedelta,
    settings: dict[str, Any],
) -> list[list[ClaimedTrial]] | None:
    """Serve ``asks`` from ``sweep`` (the locked row of a ``queued`` sweep): its sanity
    trial to the first ask, when it is queued (or its lease expired). Returns ``None``
    when the sweep's checks had ended and it has started: the caller serves it as a
    running sweep. ``settings`` are stage 0's trial settings before the params."""
    served: list[list[ClaimedTrial]] = [[] for _ in asks]
    expire(conn, sweep.id, max_attempts=sweep.max_attempts, now=now)
    if conclude_in(conn, sweep.id, now):
        return None
    row = conn.execute(
        select(*Trial.__table__.columns)
        .where(Trial.sweep_id == sweep.id, Trial.number == SANITY_INDEX, Trial.status == TrialStatus.queued)
        .with_for_update(skip_locked=True)
    ).one_or_none()
    taker = next((i for i, ask in enumerate(asks) if ask.count > 0), None)
    if row is None or taker is None:
        return served
    trial = dict(row._mapping)
    trial.update(
        status=TrialStatus.running,
        worker_id=asks[taker].worker_id,
        lease_token=secrets.token_urlsafe(24),
        lease_expires_at=now + lease,
        started_at=now,
    )
    columns = ("status", "worker_id", "lease_token", "lease_expires_at", "started_at")
    conn.execute(q.UPDATE_TRIAL, {"b_trial_id": trial["id"], **{c: trial[c] for c in columns}})
    served[taker].append(ClaimedTrial(**trial, trainer={**settings, **trial["params"]}))
    return served


def conclude_in(conn: Connection, sweep_id: int, now: datetime) -> bool:
    """Take the results of the sweep's sanity trial once it has ended (see the module
    doc); the caller holds the sweep's lock. Returns whether the sweep started now."""
    sweep = conn.execute(select(Sweep.status, Sweep.sanity, Sweep.warnings).where(Sweep.id == sweep_id)).one()
    if sweep.status != SweepStatus.queued or not sweep.sanity or sweep.sanity.get("status") != "pending":
        return False
    trial = conn.execute(
        select(Trial.id, Trial.status, Trial.metrics, Trial.error).where(
            Trial.sweep_id == sweep_id, Trial.number == SANITY_INDEX
        )
    ).one_or_none()
    if trial is None or trial.status not in FINISHED:
        return False
    results = from_metrics(trial.metrics or {})
    error = None
    if trial.status != TrialStatus.completed or not results:
        error = trial.error or f"the sanity trial ended {trial.status} without results"
    ok = error is None and passed(results)
    sanity = {
        **sweep.sanity,
        "status": "passed" if ok else "failed",
        "checks": [result.as_dict() for result in results],
        "error": error,
        "trial_id": trial.id,
    }
    warnings = list(sweep.warnings)
    start = ok or sanity["mode"] == "warn"
    if not ok:
        failed = [f"{r.name} ({r.detail})" for r in results if not r.passed]
        why = "; ".join(failed) if error is None else f"the checks could not run: {error[-500:]}"
        then = "the sweep starts anyway (sanity: warn)" if start else "the sweep stays queued; fix it and submit again"
        warnings.append(f"sanity checks failed: {why}; {then}")
    values: dict[str, Any] = {"sanity": sanity, "warnings": warnings}
    if start:
        values["status"] = SweepStatus.running
        conn.execute(update(Stage).where(Stage.sweep_id == sweep_id, Stage.index == 0).values(started_at=now))
    conn.execute(update(Sweep).where(Sweep.id == sweep_id).values(**values))
    return start
