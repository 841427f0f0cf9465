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
from hypothesis import strategies as st
from schemathesis.core.result import Ok

from hypersweep.service.app import create_app
from hypersweep.service.config import Settings
from tests.conftest import sweep_doc

TOKEN = "schema-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 15
#: Numbers past what the fields, the databases or a float hold: beyond 64 bits, past 2**53,
#: past an id, at the ends of the float range.
HUGE_NUMBERS = st.one_of(
    st.integers(min_value=2**63, max_value=10**400),
    st.integers(min_value=-(10**400), max_value=-(2**63) - 1),
    st.sampled_from([2**31, 2**53 + 1, 2**64, 1e308, -1.7976931348623157e308, 5e-324, 1e-300]),
)


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


def _swap_numbers(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with some of its numbers (never its booleans) replaced by huge ones."""
    if isinstance(value, dict):
        return {key: _swap_numbers(draw, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_swap_numbers(draw, item) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool) and draw(st.booleans()):
        return draw(HUGE_NUMBERS)
    return value


@st.composite
def _with_huge_numbers(draw: st.DrawFn, cases: st.SearchStrategy[schemathesis.Case[Any]]) -> schemathesis.Case[Any]:
    """A generated request whose numbers, in the body, the query and the path, may be huge;
    and one huge number more in the query string, under a name the operation takes."""
    case = draw(cases)
    if isinstance(case.body, dict | list):
        case.body = _swap_numbers(draw, case.body)
    if case.query:
        case.query = {name: _swap_numbers(draw, value) for name, value in case.query.items()}
    if case.path_parameters:
        # Often the seeded sweep and its trials (1, 2, 3), so that the numbers reach a query.
        ids = st.sampled_from([1, 2, 3]) | HUGE_NUMBERS | st.just(None)
        case.path_parameters = {
            name: value if (chosen := draw(ids)) is None else chosen for name, value in case.path_parameters.items()
        }
    names = [p.name for p in case.operation.query]
    if names:
        case.query = {**(case.query or {}), draw(st.sampled_from(names)): draw(HUGE_NUMBERS)}
    return case


@pytest.mark.parametrize("label", OPERATIONS)
def test_huge_numbers_in_bodies_queries_and_paths_never_get_a_server_error(database_url: str, label: str) -> None:
    schema = _schema(database_url)
    with TestClient(schema.app) as client:
        _seed(client)
        operation = _operations(schema)[label]

        @given(case=_with_huge_numbers(operation.as_strategy()))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case[Any]) -> None:
            response = case.call(headers=AUTH)
            assert response.status_code < 500, (case.as_curl_command(), response.text)
            # Whatever was taken, the seeded sweep still reads and draws.
            assert client.get("/api/v1/sweeps/1", headers=AUTH).status_code == 200
            assert client.get("/api/v1/sweeps/1/points", headers=AUTH).status_code == 200
            assert client.get("/api/v1/sweeps/1/curves?trials=1,2,3", headers=AUTH).status_code == 200

        check()
