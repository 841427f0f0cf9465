"""Dependencies shared by the routers: the store, the claims, the database and the
bearer-token check.

They are coroutines although none of them waits for anything: FastAPI runs a plain
``def`` dependency in its thread pool, a thread hop per dependency per request that a
worker's short requests should not pay."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hypersweep.limits import MAX_ID
from hypersweep.service.claims import Claims
from hypersweep.service.config import Settings
from hypersweep.service.db import Database
from hypersweep.service.store import Store

__all__ = [
    "WORKER_ROUTE",
    "ClaimsDep",
    "DatabaseDep",
    "SettingsDep",
    "StoreDep",
    "SweepId",
    "TrialId",
    "require_token",
    "require_user_token",
]


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_claims(request: Request) -> Claims:
    claims: Claims = request.app.state.claims
    return claims


async def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


StoreDep = Annotated[Store, Depends(get_store)]
ClaimsDep = Annotated[Claims, Depends(get_claims)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SweepId = Annotated[int, Path(ge=0, le=MAX_ID)]
TrialId = Annotated[int, Path(ge=0, le=MAX_ID)]

_bearer = HTTPBearer(auto_error=False, description="Required when the server has HYPERSWEEP_TOKEN set.")


#: ``openapi_extra`` of the routes the worker token may call: what a worker does (claim,
#: heartbeat, report, finish, release), the sweep it was started for, and ``/metrics`` (for
#: an autoscaler). Every other route answers it 403, routes added later included.
WORKER_ROUTE: dict[str, Any] = {"x-worker-token": True}


async def require_token(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the request carries the server's token or its worker token (when one is
    set); 403 for the worker token on a route not marked :data:`WORKER_ROUTE`. Both
    comparisons are always made, each in the same time wherever the strings differ."""
    if settings.token is None:
        return
    given = credentials.credentials.encode() if credentials is not None else b""
    user = hmac.compare_digest(given, settings.token.get_secret_value().encode())
    worker = settings.worker_token is not None and hmac.compare_digest(
        given, settings.worker_token.get_secret_value().encode()
    )
    if not (user or worker):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="wrong bearer token" if given else "missing bearer token: this server needs one",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.by_worker_token = not user
    if not user and not _open_to_workers(request):
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=WORKER_TOKEN_REFUSED)


#: What the worker token is told on a route it may not call.
WORKER_TOKEN_REFUSED = (
    "the worker token may only claim, heartbeat, report on, finish and release trials, read a sweep, "
    "and read /metrics; use the user token (HYPERSWEEP_TOKEN)"
)


def _open_to_workers(request: Request) -> bool:
    route = request.scope.get("route")
    return isinstance(route, APIRoute) and bool((route.openapi_extra or {}).get("x-worker-token"))


async def require_user_token(request: Request) -> None:
    """403 for a request that came with the worker token. :func:`require_token` already
    refuses it on every route not open to workers; this states it on a route itself."""
    if getattr(request.state, "by_worker_token", False):
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=WORKER_TOKEN_REFUSED)
