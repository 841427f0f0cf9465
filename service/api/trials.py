"""Trials and the worker protocol: claim, heartbeat, report, finish, release."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from service.api.deps import StoreDep
from service.schemas import ActionOut, ClaimIn, ClaimOut, FinishIn, LeaseIn, ReportIn, TrialDetail, TrialOut

router = APIRouter(prefix="/trials", tags=["trials"])

__all__ = ["router"]

_NO_WORK: dict[int | str, dict[str, Any]] = {204: {"description": "Nothing to do now; ask again later."}}


@router.post("/claim", response_model=ClaimOut, responses=_NO_WORK)
def claim(body: ClaimIn, store: StoreDep, request: Request) -> ClaimOut | Response:
    trials = store.claim(worker_id=body.worker_id, sweep_id=body.sweep_id, count=body.count)
    request.app.state.metrics.claimed.inc(len(trials))
    if not trials:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return ClaimOut(trials=trials)


@router.get("/{trial_id}", response_model=TrialDetail)
def get_trial(trial_id: int, store: StoreDep) -> TrialDetail:
    return store.get_trial(trial_id=trial_id)


@router.post("/{trial_id}/heartbeat", response_model=ActionOut)
def heartbeat(trial_id: int, body: LeaseIn, store: StoreDep) -> ActionOut:
    return store.heartbeat(trial_id=trial_id, lease_token=body.lease_token)


@router.post("/{trial_id}/report", response_model=ActionOut)
def report(trial_id: int, body: ReportIn, store: StoreDep) -> ActionOut:
    return store.report(trial_id=trial_id, lease_token=body.lease_token, step=body.step, metrics=body.metrics)


@router.post("/{trial_id}/finish", response_model=TrialOut)
def finish(trial_id: int, body: FinishIn, store: StoreDep, request: Request) -> TrialOut:
    trial = store.finish(
        trial_id=trial_id, lease_token=body.lease_token, status=body.status, metrics=body.metrics, error=body.error
    )
    request.app.state.metrics.finished.labels(status=trial.status).inc()
    return trial


@router.post("/{trial_id}/release", response_model=TrialOut)
def release(trial_id: int, body: LeaseIn, store: StoreDep) -> TrialOut:
    """Give a running trial back at once (a worker shutting down): it is queued again."""
    return store.release(trial_id=trial_id, lease_token=body.lease_token)
