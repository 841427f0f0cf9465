"""The error answers of the API, declared for its OpenAPI schema: each is ``{"detail": "..."}``."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel

__all__ = ["ANY_ROUTE", "CONFLICT", "NOT_FOUND", "USER_ONLY", "ErrorOut", "json_response"]


class ErrorOut(BaseModel):
    detail: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


#: What any route under ``/api/v1`` (and ``/metrics``) may answer.
ANY_ROUTE: dict[int | str, dict[str, Any]] = {
    401: _error("Missing or wrong bearer token (when the server has HYPERSWEEP_TOKEN set)."),
    403: _error(
        "The worker token (HYPERSWEEP_WORKER_TOKEN) on a route it may not call: it may call only the routes "
        "marked x-worker-token."
    ),
    413: _error("The request body is larger than HYPERSWEEP_MAX_BODY_BYTES."),
    500: _error(
        "The database refuses to record anything until someone acts (it is read-only, its disk is full): "
        "'detail' says what is wrong; asking again does not help."
    ),
    503: _error("The database is out of reach for now; try again after Retry-After seconds."),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _error("No such sweep or trial.")}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: _error("The request does not fit the current state: a stale lease token, or a completed sweep.")
}
USER_ONLY: dict[int | str, dict[str, Any]] = {
    403: _error("The worker token (HYPERSWEEP_WORKER_TOKEN) cannot submit or cancel sweeps, nor read their results.")
}


def json_response(model: BaseModel) -> Response:
    """``model`` as a JSON answer, serialised once by pydantic. For the routes workers call
    many times a second: FastAPI would dump a returned model, validate the dump against the
    route's ``response_model`` and serialise it again; the route still declares that model
    for its schema."""
    return Response(model.model_dump_json(), media_type="application/json")
