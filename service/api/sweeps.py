"""Sweeps: submit, list, read, cancel, and list a sweep's trials."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BeforeValidator

from hypersweep.limits import MAX_ID
from hypersweep.service.api.deps import WORKER_ROUTE, StoreDep, SweepId, require_user_token
from hypersweep.service.api.responses import CONFLICT, NOT_FOUND, USER_ONLY
from hypersweep.service.models import TrialStatus
from hypersweep.service.schemas import EnqueueIn, EnqueueOut, ImportedTrial, SweepOut, SweepSpec, TrialOut
from hypersweep.service.store import SORT_KEYS
from hypersweep.service.validation import check_spec

router = APIRouter(prefix="/sweeps", tags=["sweeps"])

_SORT_PATTERN = "^-?(" + "|".join(SORT_KEYS) + ")$"


def _split_commas(values: Any) -> Any:
    """``["completed,failed", "pruned"]`` -> ``["completed", "failed", "pruned"]``."""
    if isinstance(values, list):
        return [part.strip() for value in values for part in str(value).split(",") if part.strip()]
    return values


#: Trial statuses, each given as its own ``status=`` or several comma-separated in one.
StatusFilter = Annotated[list[TrialStatus], BeforeValidator(_split_commas)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SweepOut,
    dependencies=[Depends(require_user_token)],
    responses=USER_ONLY,
)
def submit_sweep(spec: SweepSpec, store: StoreDep) -> SweepOut:
    return store.create_sweep(spec=spec, plan=check_spec(spec))


@router.get("", response_model=list[SweepOut])
def list_sweeps(
    store: StoreDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> list[SweepOut]:
    """Sweeps, newest first. The total is in the ``X-Total-Count`` header."""
    sweeps, total = store.list_sweeps(limit=limit, offset=offset)
    response.headers["X-Total-Count"] = str(total)
    return sweeps


@router.get("/{sweep_id}", response_model=SweepOut, responses=NOT_FOUND, openapi_extra=WORKER_ROUTE)
def get_sweep(sweep_id: SweepId, store: StoreDep) -> SweepOut:
    return store.get_sweep(sweep_id=sweep_id)


@router.post(
    "/{sweep_id}/cancel",
    response_model=SweepOut,
    dependencies=[Depends(require_user_token)],
    responses={**NOT_FOUND, **CONFLICT, **USER_ONLY},
)
def cancel_sweep(sweep_id: SweepId, store: StoreDep) -> SweepOut:
    return store.cancel_sweep(sweep_id=sweep_id)


@router.get("/{sweep_id}/trials", response_model=list[TrialOut], responses=NOT_FOUND)
def list_trials(
    sweep_id: SweepId,
    store: StoreDep,
    response: Response,
    status: Annotated[StatusFilter | None, Query(description="Repeat or comma-separate to match several.")] = None,
    stage: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    sort: Annotated[
        str, Query(pattern=_SORT_PATTERN, description=f"One of {', '.join(SORT_KEYS)}; '-' in front for descending.")
    ] = "number",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> list[TrialOut]:
    """A sweep's trials. ``sort=-metric`` puts the best first on a ``max`` objective;
    trials without a value come last either way. The total is in ``X-Total-Count``."""
    trials, total = store.list_trials(
        sweep_id=sweep_id, status=status or [], stage=stage, sort=sort, limit=limit, offset=offset
    )
    response.headers["X-Total-Count"] = str(total)
    return trials


@router.get("/{sweep_id}/imported", response_model=list[ImportedTrial], responses=NOT_FOUND)
def imported_trials(sweep_id: SweepId, store: StoreDep) -> list[ImportedTrial]:
    """The finished trials of earlier sweeps that this one imports (its ``warm_start``):
    observations for its search, not its trials. ``inside`` marks those whose params lie
    in its space, the only ones used."""
    return store.imported_trials(sweep_id=sweep_id)


@router.post(
    "/{sweep_id}/trials",
    status_code=status.HTTP_201_CREATED,
    response_model=EnqueueOut,
    dependencies=[Depends(require_user_token)],
    responses={
        200: {"model": EnqueueOut, "description": "The key was used before: the trials that call made; none new."},
        **NOT_FOUND,
        **CONFLICT,
        **USER_ONLY,
    },
)
def enqueue_trials(sweep_id: SweepId, body: EnqueueIn, store: StoreDep, response: Response) -> EnqueueOut:
    """Queue trials with params you chose, ahead of the strategy's, in the current stage or
    the one named (a stage that has not started runs them first when it starts). They
    count within the stage's trials. 422 for params outside the stage's space or already
    tried in it (unless ``allow_duplicate``); 409 when the stage has ended or has too few
    trials left, or the sweep has ended."""
    out, created = store.enqueue(sweep_id=sweep_id, request=body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return out


__all__ = ["router"]
