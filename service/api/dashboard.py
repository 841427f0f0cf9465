"""Read-only aggregates for the dashboard: a sweep's trials as columns, and a few curves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hypersweep.service.api.deps import DatabaseDep, SweepId
from hypersweep.service.api.responses import NOT_FOUND
from hypersweep.service.dashboard import queries
from hypersweep.service.dashboard.schemas import MAX_CURVES, SweepCurves, SweepPoints

router = APIRouter(prefix="/sweeps", tags=["dashboard"])

__all__ = ["router"]

_IDS_PATTERN = rf"^\d{{1,10}}(,\d{{1,10}}){{0,{MAX_CURVES - 1}}}$"


@router.get("/{sweep_id}/points", response_model=SweepPoints, responses=NOT_FOUND)
def sweep_points(sweep_id: SweepId, db: DatabaseDep) -> SweepPoints:
    """Every trial of the sweep in one answer, as columns in ``number`` order: what the
    dashboard's scatter plots, parallel coordinates and trial table draw from."""
    return queries.sweep_points(db=db, sweep_id=sweep_id)


@router.get("/{sweep_id}/curves", response_model=SweepCurves, responses=NOT_FOUND)
def sweep_curves(
    sweep_id: SweepId,
    db: DatabaseDep,
    trials: Annotated[
        str,
        Query(pattern=_IDS_PATTERN, description=f"Comma-separated trial ids, at most {MAX_CURVES}."),
    ],
) -> SweepCurves:
    """The learning curves of the listed trials of this sweep, as columns per trial.
    Ids that are not this sweep's trials are left out of the answer."""
    return queries.sweep_curves(db=db, sweep_id=sweep_id, trial_ids=[int(part) for part in trials.split(",")])
