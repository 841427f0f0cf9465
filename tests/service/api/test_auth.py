"""With HYPERSWEEP_TOKEN set, the API and /metrics need the bearer token; the health check
and the dashboard page do not."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import sweep_doc
from tests.service.api.test_sweeps import API

TOKEN = "s3cret-token"


@pytest.fixture
def secured(make_client: Any) -> TestClient:
    client: TestClient = make_client(token=TOKEN)
    return client


def _protected_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every operation in the app's own OpenAPI schema under /api/v1, and /metrics."""
    routes = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        if path.startswith("/api/v1") or path == "/metrics":
            for method in operations:
                routes.append((method.upper(), path.replace("{sweep_id}", "1").replace("{trial_id}", "1")))
    return routes


def test_every_protected_endpoint_is_401_without_the_token(secured: TestClient) -> None:
    routes = _protected_routes(secured)
    assert len(routes) >= 12
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
            response = secured.request(method, path, json={}, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert TOKEN not in response.text


def test_the_token_opens_the_api(secured: TestClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    created = secured.post(f"{API}/sweeps", json=sweep_doc(), headers=auth)
    assert created.status_code == 201
    assert secured.get(f"{API}/sweeps", headers=auth).status_code == 200
    assert secured.get("/metrics", headers=auth).status_code == 200
    claimed = secured.post(f"{API}/trials/claim", json={"worker_id": "w"}, headers=auth)
    assert claimed.status_code == 200


def test_health_and_dashboard_need_no_token(secured: TestClient) -> None:
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/").status_code == 200


def test_without_a_configured_token_no_header_is_needed(client: TestClient) -> None:
    assert client.get(f"{API}/sweeps").status_code == 200
    assert client.get("/metrics").status_code == 200
