"""Dependencies shared by the routers: the store and the bearer-token check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.config import Settings
from service.schemas import MAX_ID
from service.store import Store

__all__ = ["SettingsDep", "StoreDep", "SweepId", "TrialId", "require_token"]


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SweepId = Annotated[int, Path(ge=0, le=MAX_ID)]
TrialId = Annotated[int, Path(ge=0, le=MAX_ID)]

_bearer = HTTPBearer(auto_error=False, description="Required when the server has HYPERSWEEP_TOKEN set.")


def require_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the request carries the server's token (when one is set). The
    comparison takes the same time wherever the strings differ."""
    if settings.token is None:
        return
    expected = settings.token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials is not None else b""
    if not hmac.compare_digest(given, expected):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
