"""The API reference at ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc): served with every
script and style from the package, so both render on a machine without internet."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, Route, expect

from tests.dashboard.conftest import serve

#: The one file ReDoc's bundle fetches from elsewhere: a cosmetic logo it drops when offline.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
STATIC = Path(__file__).resolve().parents[2] / "service" / "dashboard" / "static"


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_reference_pages_name_only_files_the_server_serves(make_client: Any, path: str) -> None:
    secured: TestClient = make_client(token="s3cret")
    page = secured.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", page.text)
    named = [url for pair in urls for url in pair if url]
    assert any(url.endswith(".js") for url in named), named
    for url in named:
        assert url.startswith("/"), f"{path} loads {url} from another host"
        response = secured.get(url)
        assert response.status_code == 200, url
    assert "fonts.googleapis.com" not in page.text


def test_the_vendored_files_are_the_ones_the_pages_name(client: TestClient) -> None:
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        response = client.get(f"/dashboard/vendor/{name}")
        assert response.status_code == 200, name
        assert response.content == (STATIC / "vendor" / name).read_bytes()
    for notice in ("SWAGGER-UI-LICENSE", "REDOC-LICENSE"):
        assert (STATIC / "vendor" / notice).stat().st_size > 0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("api-docs")
    with serve(f"sqlite:///{workdir / 'docs.db'}", workdir) as url:
        yield url


def offline(page: Page, server: str) -> list[str]:
    """Refuse every request to another host, as a machine without internet would; the
    list collects what was refused."""
    refused: list[str] = []

    def route(route: Route) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    return refused


def test_swagger_ui_renders_every_operation_offline(page: Page, server: str) -> None:
    refused = offline(page, server)
    page.goto(f"{server}/docs")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/sweeps/{sweep_id}/cancel")).to_be_visible()
    operations = page.locator(".opblock").count()
    schema = page.context.request.get(f"{server}/openapi.json").json()
    assert operations == sum(len(methods) for methods in schema["paths"].values())
    assert refused == []


def test_redoc_renders_the_reference_offline(page: Page, server: str) -> None:
    refused = offline(page, server)
    page.goto(f"{server}/redoc")
    expect(page.locator("h1", has_text="hypersweep")).to_be_visible()
    expect(page.get_by_text("/api/v1/trials/claim").first).to_be_attached()
    # ReDoc's sidebar asks its maker's site for a logo and hides the image when that fails;
    # nothing else leaves the server.
    assert set(refused) <= {REDOC_LOGO}
    expect(page.locator("img[alt='redocly logo']")).to_have_count(0)
