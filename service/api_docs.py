"""The API reference pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served with
their scripts and styles from the package, so they work on a machine without internet.

FastAPI's own pages load those files from a CDN; here they come from the dashboard's
vendored files (``scripts/vendor-dashboard`` refreshes them). Like the dashboard, the
pages load without the token; the calls they make carry whatever the user enters under
"Authorize".
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

from hypersweep.service.dashboard.assets import ASSETS_PATH

__all__ = ["DOCS_URL", "REDOC_URL", "add_api_docs"]

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
_VENDOR = f"{ASSETS_PATH}/vendor"
_OAUTH2_REDIRECT_URL = f"{DOCS_URL}/oauth2-redirect"


def add_api_docs(app: FastAPI) -> None:
    """Add ``/docs``, its OAuth2 redirect page and ``/redoc`` to ``app``, which must be
    built with ``docs_url=None, redoc_url=None`` and serve the dashboard's assets."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - API reference",
            swagger_js_url=f"{_VENDOR}/swagger-ui-bundle.js",
            swagger_css_url=f"{_VENDOR}/swagger-ui.css",
            swagger_favicon_url=f"{_VENDOR}/swagger-ui-favicon.png",
            oauth2_redirect_url=_OAUTH2_REDIRECT_URL,
        )

    @app.get(_OAUTH2_REDIRECT_URL, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - API reference",
            redoc_js_url=f"{_VENDOR}/redoc.standalone.js",
            redoc_favicon_url=f"{_VENDOR}/swagger-ui-favicon.png",
            with_google_fonts=False,
        )
