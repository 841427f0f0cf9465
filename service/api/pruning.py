"""A sweep's pruning: each stage's rungs and, for one trial, its decisions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hypersweep.limits import MAX_ID
from hypersweep.service.api.deps import StoreDep, SweepId
from hypersweep.service.api.responses import NOT_FOUND
from hypersweep.service.store.pruning import PruningOut

router = APIRouter(prefix="/sweeps", tags=["sweeps"])

__all__ = ["router"]


@router.get("/{sweep_id}/pruning", response_model=PruningOut, responses=NOT_FOUND)
def get_pruning(
    sweep_id: SweepId,
    store: StoreDep,
    trial: Annotated[int | None, Query(ge=0, le=MAX_ID, description="Also list this trial's decisions.")] = None,
) -> PruningOut:
    """Per stage: its pruner, and per epoch where trials were decided on, how many reached
    it, how many were pruned there and the latest cutoff."""
    return store.pruning(sweep_id=sweep_id, trial_id=trial)
