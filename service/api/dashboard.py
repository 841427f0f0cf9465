"""Read-only aggregates for the dashboard: a sweep's trials as columns, a few curves, the
importance of its parameters and the objective over two of them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError

from hypersweep.limits import MAX_ID
from hypersweep.service.api.deps import DatabaseDep, SweepId
from hypersweep.service.api.responses import NOT_FOUND
from hypersweep.service.dashboard import queries
from hypersweep.service.dashboard.analyses import Analyses, UnknownParameter
from hypersweep.service.dashboard.importance import EVALUATORS
from hypersweep.service.dashboard.schemas import MAX_CURVES, SweepContour, SweepCurves, SweepImportance, SweepPoints

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


async def get_analyses(request: Request) -> Analyses:
    analyses: Analyses = request.app.state.analyses
    return analyses


AnalysesDep = Annotated[Analyses, Depends(get_analyses)]
_EVALUATOR_PATTERN = "^(" + "|".join(EVALUATORS) + ")$"


@router.get("/{sweep_id}/importance", response_model=SweepImportance, responses=NOT_FOUND)
def sweep_importance(
    sweep_id: SweepId,
    analyses: AnalysesDep,
    evaluator: Annotated[
        str, Query(pattern=_EVALUATOR_PATTERN, description="An Optuna importance evaluator: " + ", ".join(EVALUATORS))
    ] = "fanova",
) -> SweepImportance:
    """Which parameters matter: each parameter's share of the objective's variation over
    the completed trials, overall and per stage, each axis in its own scale (log axes as
    log10). Computed once per stage and kept until the stage has more completed trials."""
    return analyses.importance(sweep_id=sweep_id, evaluator=evaluator)


@router.get("/{sweep_id}/contour", response_model=SweepContour, responses=NOT_FOUND)
def sweep_contour(
    sweep_id: SweepId,
    analyses: AnalysesDep,
    x: Annotated[
        str | None, Query(max_length=64, description="A parameter of the sweep; by default the first numeric one.")
    ] = None,
    y: Annotated[
        str | None, Query(max_length=64, description="Another parameter; by default the second numeric one.")
    ] = None,
    stage: Annotated[int | None, Query(ge=0, le=MAX_ID, description="Only this stage's trials.")] = None,
) -> SweepContour:
    """The objective of the completed trials interpolated over parameters ``x`` and
    ``y`` on a grid, in each axis's scale, for a filled contour."""
    try:
        return analyses.contour(sweep_id=sweep_id, x=x, y=y, stage=stage)
    except UnknownParameter as exc:
        raise RequestValidationError([{"loc": ("query", exc.field), "msg": str(exc), "type": "value_error"}]) from exc
