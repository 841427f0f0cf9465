"""schemathesis against the app's own OpenAPI schema: for every operation, requests
generated from the schema (valid and invalid) never get a 5xx, and every answer has a
documented status code, content type and body shape.

A bounded number of examples per operation keeps this inside CI's time. The database is
seeded with a sweep whose trials are queued, running and finished, so that generated ids
sometimes hit real rows. ``positive_data_acceptance`` is left out: a sweep document has
rules across fields (trainer names, grid sizes, stage budgets) that JSON Schema cannot
express, so a schema-valid document may rightly be refused with 422.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from hypersweep.service.app import create_app
from hypersweep.service.config import Settings
from tests.conftest import sweep_doc

TOKEN = "schema-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 15


def _schema(database_url: str) -> schemathesis.BaseSchema:
    app = create_app(Settings(database_url=database_url, lease_seconds=30, token=TOKEN, reaper_interval=3600))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _operations(schema: schemathesis.BaseSchema) -> dict[str, schemathesis.APIOperation[Any, Any, Any, Any]]:
    """Every operation of the schema by label; a part schemathesis cannot read fails here."""
    operations = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations[result.ok().label] = result.ok()
    return operations


OPERATIONS = list(_operations(_schema("sqlite://")))


def _seed(client: TestClient) -> None:
    sweep = client.post("/api/v1/sweeps", json=sweep_doc(stages=[{"trials": 6, "epochs": 1}]), headers=AUTH).json()
    trials = client.post(
        "/api/v1/trials/claim", json={"worker_id": "seed", "sweep_id": sweep["id"], "count": 3}, headers=AUTH
    ).json()["trials"]
    first = trials[0]
    client.post(
        f"/api/v1/trials/{first['id']}/finish",
        json={"lease_token": first["lease_token"], "status": "completed", "metrics": {"val_accuracy": 0.5}},
        headers=AUTH,
    )


@pytest.mark.parametrize("label", OPERATIONS)
def test_generated_requests_get_documented_answers_and_no_server_error(database_url: str, label: str) -> None:
    schema = _schema(database_url)
    with TestClient(schema.app) as client:
        _seed(client)
        operation = _operations(schema)[label]

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(headers=AUTH, excluded_checks=[schemathesis.checks.positive_data_acceptance])

        check()
