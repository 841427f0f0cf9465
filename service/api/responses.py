"""The error answers of the API, declared for its OpenAPI schema: each is ``{"detail": "..."}``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

__all__ = ["ANY_ROUTE", "CONFLICT", "NOT_FOUND", "USER_ONLY", "ErrorOut"]


class ErrorOut(BaseModel):
    detail: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


#: What any route under ``/api/v1`` (and ``/metrics``) may answer.
ANY_ROUTE: dict[int | str, dict[str, Any]] = {
    401: _error("Missing or wrong bearer token (when the server has HYPERSWEEP_TOKEN set)."),
    413: _error("The request body is larger than HYPERSWEEP_MAX_BODY_BYTES."),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _error("No such sweep or trial.")}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: _error("The request does not fit the current state: a stale lease token, or a completed sweep.")
}
USER_ONLY: dict[int | str, dict[str, Any]] = {
    403: _error("The worker token (HYPERSWEEP_WORKER_TOKEN) cannot submit or cancel sweeps.")
}
