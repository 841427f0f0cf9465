"""The FastAPI application, built by ``create_app`` from one ``Settings``."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hypersweep.service.api import api_router
from hypersweep.service.api.deps import WORKER_ROUTE, require_token
from hypersweep.service.api.responses import ANY_ROUTE
from hypersweep.service.api.sweeps import submit_sweep
from hypersweep.service.api_docs import add_api_docs
from hypersweep.service.claims import Claims
from hypersweep.service.config import Settings
from hypersweep.service.dashboard.analyses import Analyses
from hypersweep.service.dashboard.assets import ASSETS_PATH, assets_app, index_html
from hypersweep.service.db import Database, lasting_problem
from hypersweep.service.errors import Conflict, NotFound
from hypersweep.service.metrics import ServiceMetrics
from hypersweep.service.store import Store
from hypersweep.service.validation import SpecError, cross_field_errors

__all__ = ["create_app"]

log = logging.getLogger("hypersweep.service")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. The database must already be at the head migration
    (``hypersweep db upgrade``; ``hypersweep serve`` does it on SQLite)."""
    settings = settings or Settings()
    db = Database(settings.database_url)
    store = Store(db, lease_seconds=settings.lease_seconds)
    claims = Claims(store)
    metrics = ServiceMetrics(store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # What exists by now (modules, SQLAlchemy's and pydantic's machinery) lives as long
        # as the server. Left to the collector, every full collection walks all of it and
        # stalls every request meanwhile; frozen, a collection walks only what requests
        # create.
        gc.collect()
        gc.freeze()
        reaper = _Reaper(store, metrics, interval=settings.reaper_seconds())
        reaper.start()
        try:
            yield
        finally:
            reaper.stop()
            db.dispose()

    app = FastAPI(
        title="hypersweep",
        summary="Hyperparameter search service for PyTorch.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.store = store
    app.state.claims = claims
    app.state.metrics = metrics
    app.state.analyses = Analyses(db)
    app.add_middleware(_BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(api_router, responses=ANY_ROUTE)
    _add_error_handlers(app)

    @app.get("/healthz", tags=["service"], responses={503: {"description": "The database is unreachable."}})
    def healthz() -> JSONResponse:
        """Liveness and database reachability; needs no token."""
        try:
            store.ping()
        except Exception as exc:
            log.warning("health check: database unreachable: %s", type(exc).__name__)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    @app.get(
        "/metrics",
        tags=["service"],
        dependencies=[Depends(require_token)],
        response_class=Response,
        responses=ANY_ROUTE,
        openapi_extra=WORKER_ROUTE,
    )
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.mount(ASSETS_PATH, assets_app(), name="dashboard")
    add_api_docs(app)

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    def index() -> HTMLResponse:
        """The dashboard's page; it loads without the token and asks for one on a 401."""
        return HTMLResponse(index_html(), headers={"Cache-Control": "no-cache"})

    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> Response:
        cause = f"{type(exc.orig).__name__}: {_first_line(exc.orig)}"
        problem = lasting_problem(exc)
        if problem is not None:
            # Asking again changes nothing until someone acts: 500 (which workers do not
            # retry) with what is wrong, and the same in the log.
            log.error("%s %s: %s (%s)", request.method, request.url.path, problem, cause)
            return JSONResponse({"detail": problem}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)
        if not isinstance(exc, OperationalError):
            raise exc  # a fault of ours: the server's own 500, with the traceback logged
        # A lost or refused connection (a database restart): nothing was changed, and the
        # caller may try again; workers do so by themselves.
        log.warning("%s %s: database unavailable: %s", request.method, request.url.path, cause)
        return JSONResponse(
            {"detail": "the database is unavailable; try again shortly"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)

    @app.exception_handler(SpecError)
    async def bad_spec(request: Request, exc: SpecError) -> JSONResponse:
        errors = [{"loc": ["body", *loc], "msg": msg, "type": "value_error"} for loc, msg in exc.errors]
        return _unprocessable(errors)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            loc = _clean_loc(err.get("loc", ()))
            if err.get("type") == "json_invalid":
                # FastAPI puts the character's position in the location: it goes in the sentence.
                position = f" at character {loc[1]}" if len(loc) > 1 else ""
                msg = f"the body is not valid JSON: {err.get('ctx', {}).get('error', msg)}{position}"
                loc = ["body"]
            elif loc == ["body"] and not _sent_as_json(request):
                msg = f"{msg}; {_json_hint(request)}"
            errors.append({"loc": loc, "msg": msg, "type": err.get("type")})
        if request.scope.get("endpoint") is submit_sweep and isinstance(exc.body, dict):
            # Field errors and the cross-field checks in one answer, not one fix at a time.
            invalid = [tuple(err["loc"][1:]) for err in errors if err["loc"][:1] == ["body"]]
            for where, problem in cross_field_errors(exc.body, invalid):
                errors.append({"loc": ["body", *where], "msg": problem, "type": "value_error"})
        return _unprocessable(errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == status.HTTP_400_BAD_REQUEST and exc.__cause__ is not None:
            # FastAPI's answer to a body it could not parse for a reason other than bad JSON
            # syntax (nested too deeply, not UTF-8): 422 with a sentence, as bad JSON gets.
            msg = _unreadable(exc.__cause__)
            if not _sent_as_json(request):
                msg = f"{msg}; {_json_hint(request)}"
            return _unprocessable([{"loc": ["body"], "msg": msg, "type": "json_invalid"}])
        return await http_exception_handler(request, exc)


def _sent_as_json(request: Request) -> bool:
    """Whether the request says its body is JSON (``application/json`` or ``+json``), or
    says nothing (FastAPI reads such a body as JSON)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind in ("", "application/json") or (kind.startswith("application/") and kind.endswith("+json"))


def _json_hint(request: Request) -> str:
    kind = request.headers.get("content-type", "")
    return f"send the body as JSON with 'Content-Type: application/json' (this request said {kind!r})"


def _unreadable(cause: BaseException) -> str:
    if isinstance(cause, RecursionError):
        return "the body is nested too deeply to read"
    if isinstance(cause, UnicodeError):
        return "the body is not UTF-8 text"
    return f"the body cannot be read as JSON ({type(cause).__name__})"


def _first_line(error: BaseException | None) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else ""


def _clean_loc(loc: Any) -> list[str | int]:
    # Drop the union tags and key markers pydantic puts in locations
    # ("space.lr.float.low" -> "space.lr.low", "space.Bad Name.[key]" -> "space.Bad Name").
    tags = {"float", "int", "categorical", "[key]"}
    return [part for part in loc if not (isinstance(part, str) and (part in tags or part.startswith("function-")))]


def _unprocessable(errors: list[dict[str, Any]]) -> JSONResponse:
    """422 with FastAPI's usual ``detail`` list, each entry also carrying ``path`` (the
    field as ``a.b.c``), and ``message``: one line for a person."""
    for err in errors:
        loc = err["loc"][1:] if err["loc"][:1] in (["body"], ["query"], ["path"]) else err["loc"]
        err["path"] = ".".join(str(part) for part in loc)
    message = "; ".join(f"{e['path'] or 'body'}: {e['msg']}" for e in errors)
    return JSONResponse({"detail": errors, "message": message}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


class _BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, before they are parsed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _too_large(self.max_bytes)(scope, receive, send)
                return
        seen = 0
        refused = False

        # A body without Content-Length (chunked) is counted as it arrives. Past the limit
        # the 413 goes out from here and the app is told the client left: an exception
        # raised into the app would be caught by its body parsing and answered 400.
        async def limited() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    await _too_large(self.max_bytes)(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited, unless_refused)


def _too_large(limit: int) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    return JSONResponse({"detail": f"request body is larger than {limit} bytes"}, status_code=413)


class _Reaper:
    """Re-queues trials whose lease ran out, every ``interval`` seconds, in a thread."""

    def __init__(self, store: Store, metrics: ServiceMetrics, *, interval: float) -> None:
        self.store = store
        self.metrics = metrics
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hypersweep-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.metrics.expired.inc(self.store.expire_leases())
            except Exception:
                log.exception("expiring leases failed; trying again in %.1f s", self.interval)
