"""Dependencies shared by the routers: the store, the claims, the database and the
bearer-token check.

They are coroutines although none of them waits for anything: FastAPI runs a plain
``def`` dependency in its thread pool, a thread hop per dependency per request that a
worker's short requests should not pay."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hypersweep.limits import MAX_ID
from hypersweep.service.claims import Claims
from hypersweep.service.config import Settings
from hypersweep.service.db import Database
from hypersweep.service.store import Store

__all__ = [
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


async def require_token(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the request carries the server's token or its worker token (when one is
    set). Both comparisons are always made, each in the same time wherever the strings
    differ. Notes on the request whether it came with the worker token."""
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


async def require_user_token(request: Request) -> None:
    """403 for a request that came with the worker token: it cannot change what runs."""
    if getattr(request.state, "by_worker_token", False):
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="the worker token cannot submit or cancel sweeps; use the user token",
        )
