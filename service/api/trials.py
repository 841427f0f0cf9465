"""Trials and the worker protocol: claim, heartbeat, report, finish, release; and the
HTTP status of each result a claim carries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request, Response, status

from hypersweep.service.api.deps import WORKER_ROUTE, ClaimsDep, StoreDep, TrialId
from hypersweep.service.api.responses import CONFLICT, NOT_FOUND, json_response
from hypersweep.service.errors import LeaseConflict, NotFound
from hypersweep.service.schemas import (
    ActionOut,
    ClaimIn,
    ClaimOut,
    FinishedIn,
    FinishIn,
    FinishOutcome,
    LeaseIn,
    RefusedResult,
    ReportIn,
    ReportsIn,
    TrialDetail,
    TrialOut,
)
from hypersweep.service.store import AlreadyEnded, Ended

router = APIRouter(prefix="/trials", tags=["trials"])

__all__ = ["finish_outcomes", "router"]

_NO_WORK: dict[int | str, dict[str, Any]] = {204: {"description": "Nothing to do now; ask again later."}}
_LEASED = {**NOT_FOUND, **CONFLICT}


@router.post(
    "/claim", response_model=ClaimOut, responses={**_NO_WORK, **NOT_FOUND, **CONFLICT}, openapi_extra=WORKER_ROUTE
)
def claim(body: ClaimIn, claims: ClaimsDep, request: Request) -> Response:
    """Lease up to ``count`` trials. The trials in ``finished`` are finished first, so a
    worker ends its last trials and gets the next ones in one request; a claim that carries
    results is answered 200 with their outcomes even when there are no trials to hand out."""
    metrics = request.app.state.metrics
    finished: list[FinishOutcome] = []
    if body.finished:
        results = [result for result in body.finished if isinstance(result, FinishedIn)]
        ended, trials = claims.finish_and_claim(
            results=results,
            worker_id=body.worker_id,
            sweep_id=body.sweep_id,
            count=body.count,
            program=body.program,
        )
        finished = finish_outcomes(body.finished, ended)
        for out in ended:
            # Only the results that ended their trial: not one sent again, nor a cancelled one.
            if isinstance(out, TrialOut):
                metrics.finished.labels(status=out.status).inc()
    else:
        trials = claims.claim(worker_id=body.worker_id, sweep_id=body.sweep_id, count=body.count, program=body.program)
    metrics.claimed.inc(len(trials))
    if not trials and not finished:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return json_response(ClaimOut(trials=trials, finished=finished))


@router.get("/{trial_id}", response_model=TrialDetail, responses=NOT_FOUND)
def get_trial(trial_id: TrialId, store: StoreDep) -> TrialDetail:
    return store.get_trial(trial_id=trial_id)


@router.post("/{trial_id}/heartbeat", response_model=ActionOut, responses=_LEASED, openapi_extra=WORKER_ROUTE)
def heartbeat(trial_id: TrialId, body: LeaseIn, store: StoreDep) -> Response:
    return json_response(store.heartbeat(trial_id=trial_id, lease_token=body.lease_token))


@router.post("/{trial_id}/report", response_model=ActionOut, responses=_LEASED, openapi_extra=WORKER_ROUTE)
def report(trial_id: TrialId, body: ReportIn, store: StoreDep) -> Response:
    return json_response(
        store.report(trial_id=trial_id, lease_token=body.lease_token, points=[(body.step, body.metrics)])
    )


@router.post("/{trial_id}/reports", response_model=ActionOut, responses=_LEASED, openapi_extra=WORKER_ROUTE)
def reports(trial_id: TrialId, body: ReportsIn, store: StoreDep) -> Response:
    """Several points of the curve in one request, in the order they were measured (a
    worker sending what gathered since its last report)."""
    points = [(point.step, point.metrics) for point in body.points]
    return json_response(store.report(trial_id=trial_id, lease_token=body.lease_token, points=points))


@router.post("/{trial_id}/finish", response_model=TrialOut, responses=_LEASED, openapi_extra=WORKER_ROUTE)
def finish(trial_id: TrialId, body: FinishIn, store: StoreDep, request: Request) -> Response:
    trial = store.finish(
        trial_id=trial_id,
        lease_token=body.lease_token,
        status=body.status,
        metrics=body.metrics,
        error=body.error,
        points=[(point.step, point.metrics) for point in body.points],
    )
    if isinstance(trial, AlreadyEnded):
        # Finishing again is harmless, and a cancelled trial stays cancelled: neither counts.
        return json_response(trial.trial)
    request.app.state.metrics.finished.labels(status=trial.status).inc()
    return json_response(trial)


@router.post("/{trial_id}/release", response_model=TrialOut, responses=_LEASED, openapi_extra=WORKER_ROUTE)
def release(trial_id: TrialId, body: LeaseIn, store: StoreDep) -> TrialOut:
    """Give a running trial back at once (a worker shutting down): it is queued again."""
    return store.release(trial_id=trial_id, lease_token=body.lease_token)


def finish_outcomes(results: Sequence[FinishedIn | RefusedResult], ended: Sequence[Ended]) -> list[FinishOutcome]:
    """What the API answers for each result a claim carried, in order: finished (200, with
    the trial's status now), no such trial (404), not held with that token (409) or not a
    valid finish (422). ``ended`` holds what happened to each valid result, in order."""
    outcomes = []
    taken = iter(ended)
    for result in results:
        if isinstance(result, RefusedResult):
            outcomes.append(FinishOutcome(trial_id=result.trial_id, code=422, detail=result.detail))
            continue
        out = next(taken)
        if isinstance(out, NotFound):
            outcomes.append(FinishOutcome(trial_id=result.trial_id, code=404, detail=str(out)))
        elif isinstance(out, LeaseConflict):
            outcomes.append(FinishOutcome(trial_id=result.trial_id, code=409, detail=str(out)))
        else:
            trial = out.trial if isinstance(out, AlreadyEnded) else out
            outcomes.append(FinishOutcome(trial_id=result.trial_id, code=200, status=trial.status))
    return outcomes
