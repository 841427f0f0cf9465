"""Serving the dashboard: its page at ``/`` and every asset under ``/dashboard/``, from the
package, without the token and without anything from another host."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

STATIC = Path(__file__).resolve().parents[2] / "service" / "dashboard" / "static"


def test_the_page_and_every_asset_it_names_load_without_the_token(make_client: Any) -> None:
    secured: TestClient = make_client(token="s3cret")
    page = secured.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assets = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert "dashboard/vendor/echarts.min.js" in assets
    assert "dashboard/app.js" in assets
    for asset in assets:
        # Nothing from another host: the dashboard works without internet.
        assert not asset.startswith(("http:", "https:", "//")), asset
        if asset.startswith("data:") or asset == "docs":
            continue
        response = secured.get(f"/{asset}")
        assert response.status_code == 200, asset
        assert response.headers["cache-control"] == "no-cache"


def test_every_module_the_scripts_import_is_served(client: TestClient) -> None:
    for script in STATIC.glob("*.js"):
        for name in re.findall(r'from "\./([\w.-]+\.js)"', script.read_text()):
            response = client.get(f"/dashboard/{name}")
            assert response.status_code == 200, (script.name, name)
            assert "javascript" in response.headers["content-type"]


def test_assets_are_compressed_and_revalidated(client: TestClient) -> None:
    first = client.get("/dashboard/vendor/echarts.min.js", headers={"Accept-Encoding": "gzip"})
    assert first.status_code == 200
    assert first.headers["content-encoding"] == "gzip"
    assert first.content == (STATIC / "vendor" / "echarts.min.js").read_bytes()
    again = client.get("/dashboard/vendor/echarts.min.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


def test_unknown_asset_is_404(client: TestClient) -> None:
    assert client.get("/dashboard/nope.js").status_code == 404
    assert client.get("/dashboard/../store.py").status_code == 404
