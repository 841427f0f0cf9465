"""Warm starts: the finished trials of earlier sweeps that inform a sweep's search.

A sweep with ``warm_start: {sweeps: [...]}`` imports the trials of those sweeps that had
finished (``completed`` with a value, or ``diverged``) when it was submitted: later ones
are left out, so what it imports never changes, whichever process reads it. Of those,
the ones whose params lie in the sweep's space are observations: every learning designer
of the sweep is shown them first (each keeps those inside its own stage's space), and
the first stage's narrowing ranks them with that stage's trials. They are not the sweep's
trials: they are not in its counts, its budget, its trial list or its best.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from hypersweep.service.models import Sweep, Trial
from hypersweep.service.schemas import ImportedTrial, SweepSpec
from hypersweep.service.search.chosen import inside
from hypersweep.service.search.policy import FinishedTrial
from hypersweep.service.search.space import Space, load_space
from hypersweep.service.statuses import TrialStatus
from hypersweep.service.validation import Loc, SpecError

__all__ = ["IMPORTED_STATUSES", "check_sources", "imported_for", "imported_trials"]

#: The statuses of the trials a warm start imports: results, and runs that diverged.
IMPORTED_STATUSES = (TrialStatus.completed, TrialStatus.diverged)


def check_sources(s: Session, spec: SweepSpec) -> list[str]:
    """Check the sweeps ``spec`` warm-starts from: each exists, once, and optimises the same
    metric in the same direction (a value of another objective says nothing of this one).
    Raises ``SpecError`` with every problem at its path; returns warnings for the sweep:
    how many finished trials lie in its space."""
    if spec.warm_start is None:
        return []
    errors: list[tuple[Loc, str]] = []
    ids = spec.warm_start.sweeps
    found = {
        row.id: row
        for row in s.execute(select(Sweep.id, Sweep.objective_metric, Sweep.minimize).where(Sweep.id.in_(ids)))
    }
    mode = spec.objective.mode
    for index, sweep_id in enumerate(ids):
        loc: Loc = ("warm_start", "sweeps", index)
        source = found.get(sweep_id)
        if sweep_id in ids[:index]:
            errors.append((loc, f"sweep {sweep_id} is named twice"))
        elif source is None:
            errors.append((loc, f"sweep {sweep_id} does not exist"))
        elif source.objective_metric != spec.objective.metric or ("min" if source.minimize else "max") != mode:
            theirs = f"{'min' if source.minimize else 'max'} {source.objective_metric}"
            errors.append(
                (
                    loc,
                    f"sweep {sweep_id} optimises {theirs} and this sweep {mode} {spec.objective.metric}: "
                    "its values say nothing of this objective, so it cannot warm-start it",
                )
            )
    if errors:
        raise SpecError(errors)
    rows = _finished(s.connection(), ids, before=None)
    used = sum(1 for row in rows if inside(spec.space, row.params) is not None)
    names = ", ".join(map(str, ids))
    if not rows:
        return [f"warm start: sweep(s) {names} have no finished trials yet; nothing is imported"]
    if not used:
        return [f"warm start: none of the {len(rows)} finished trials of sweep(s) {names} lies in this sweep's space"]
    return [f"warm start: {used} of the {len(rows)} finished trials of sweep(s) {names} lie in this sweep's space"]


def _finished(conn: Connection, sources: Sequence[int], *, before: Any) -> list[Any]:
    where = [Trial.sweep_id.in_(list(sources)), Trial.status.in_(IMPORTED_STATUSES)]
    if before is not None:
        where.append(Trial.finished_at <= before)
    return list(
        conn.execute(
            select(Trial.id, Trial.sweep_id, Trial.number, Trial.params, Trial.status, Trial.value)
            .where(*where)
            .order_by(Trial.sweep_id, Trial.number)
        )
    )


def _sources(conn: Connection, sweep_id: int) -> tuple[list[int], Any, Space]:
    row = conn.execute(select(Sweep.spec, Sweep.created_at).where(Sweep.id == sweep_id)).one()
    warm = row.spec.get("warm_start") or {}
    return list(warm.get("sweeps", [])), row.created_at, load_space(row.spec["space"])


def imported_trials(conn: Connection, sweep_id: int) -> list[ImportedTrial]:
    """Every trial the sweep imports, each marked with whether it lies in the sweep's space."""
    sources, created, space = _sources(conn, sweep_id)
    if not sources:
        return []
    return [
        ImportedTrial(
            sweep_id=row.sweep_id,
            trial_id=row.id,
            number=row.number,
            params=row.params,
            status=TrialStatus(row.status),
            value=row.value,
            inside=inside(space, row.params) is not None,
        )
        for row in _finished(conn, sources, before=created)
    ]


def imported_for(conn: Connection, sweep_id: int) -> list[FinishedTrial]:
    """The imported trials whose params lie in the sweep's space, as the search policy reads
    them (their params as the space holds them)."""
    sources, created, space = _sources(conn, sweep_id)
    if not sources:
        return []
    found = []
    for row in _finished(conn, sources, before=created):
        params = inside(space, row.params)
        if params is not None:
            found.append(FinishedTrial(row.id, params, row.status, row.value))
    return found
