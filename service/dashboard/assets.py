"""Serving the dashboard's page and static files from the installed package."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from os import PathLike, stat_result

from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope

__all__ = ["ASSETS_PATH", "assets_app", "index_html"]

#: Where the app mounts ``assets_app``; the page refers to its files relative to ``/``.
ASSETS_PATH = "/dashboard"


class _Revalidated(StaticFiles):
    """Static files that browsers revalidate on every load (a cheap 304 when unchanged),
    so an upgraded server never runs next to yesterday's cached scripts."""

    def file_response(
        self, full_path: str | PathLike[str], stat_result: stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        return response


def assets_app() -> ASGIApp:
    """The files under ``service/dashboard/static``, compressed for clients that accept
    it (the chart library is large as plain text). At the fastest level, because
    compressing happens on the server's event loop, which a higher level would hold longer
    for little gain."""
    return GZipMiddleware(
        _Revalidated(packages=[("hypersweep.service.dashboard", "static")]), minimum_size=1024, compresslevel=1
    )


@lru_cache(maxsize=1)
def index_html() -> str:
    """The single page; the same text for every route, which the page resolves itself."""
    return resources.files("hypersweep.service.dashboard").joinpath("index.html").read_text(encoding="utf-8")
