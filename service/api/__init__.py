"""The REST API under ``/api/v1``: one router per resource."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from hypersweep.service.api import dashboard, pruning, sweeps, trials
from hypersweep.service.api.deps import require_token

__all__ = ["api_router"]

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)])
# Workers' requests are most of the traffic: their routes are matched first.
api_router.include_router(trials.router)
api_router.include_router(sweeps.router)
api_router.include_router(dashboard.router)
api_router.include_router(pruning.router)
