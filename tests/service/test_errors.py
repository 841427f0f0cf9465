"""The app's error answers: a body it cannot read, every problem of a sweep in one answer,
and a database that refuses to record anything."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from tests.conftest import _pg_admin, sweep_doc
from tests.service.api.test_sweeps import API, submit

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "headers", "words"),
    [
        (b'{"name": "x",', JSON, "the body is not valid JSON: Expecting"),
        (b"[" * 100_000 + b"]" * 100_000, JSON, "the body is nested too deeply"),
        (b'{"name": "\xff"}', JSON, "the body is not UTF-8"),
        (json.dumps(sweep_doc()).encode(), {"content-type": "text/plain"}, "'Content-Type: application/json'"),
        (json.dumps(sweep_doc()).encode(), {"content-type": "application/x-www-form-urlencoded"}, "Content-Type"),
    ],
    ids=["syntax", "nested", "not-utf8", "text-plain", "form"],
)
def test_a_body_that_cannot_be_read_as_json_is_422_with_a_sentence(
    client: TestClient, body: bytes, headers: dict[str, str], words: str
) -> None:
    response = client.post(f"{API}/sweeps", content=body, headers=headers)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["detail"][0]["loc"] == ["body"]
    assert words in answer["detail"][0]["msg"] and words in answer["message"]
    assert client.get(f"{API}/sweeps").json() == []


def test_the_schema_lists_422_for_every_route_that_takes_a_body(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    with_body = [op for ops in paths.values() for op in ops.values() if "requestBody" in op]
    assert len(with_body) >= 7
    assert all("422" in op["responses"] for op in with_body)
    # Nothing answers 400: a body that is not JSON is 422 like any other bad input.
    assert not any("400" in op["responses"] for ops in paths.values() for op in ops.values())


def test_a_sweep_is_answered_with_every_problem_at_once(client: TestClient) -> None:
    # Field errors (parallelism, an axis's bound, the name) and the cross-field checks
    # (an unknown trainer setting, an axis the trainer does not know) in one answer.
    doc = sweep_doc(
        name="",
        parallelism=0,
        trainer={"warmup": 1},
        space={
            "lr": {"type": "float", "low": "tiny", "high": 1.0},
            "foo": {"type": "float", "low": 0.0, "high": 1.0},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        },
    )
    response = client.post(f"{API}/sweeps", json=doc)
    assert response.status_code == 422
    paths = {error["path"] for error in response.json()["detail"]}
    assert paths == {"name", "parallelism", "space.lr.low", "trainer.warmup", "space.foo"}
    assert "trainer.warmup" in response.json()["message"]


def test_checks_that_need_a_failed_field_are_left_out(client: TestClient) -> None:
    # The stages cannot be planned without a valid search: only what is known is reported.
    doc = sweep_doc(search={"kind": "grid", "grid_points": 0}, stages=[{"epochs": 1}], trainer={"warmup": 1})
    paths = {error["path"] for error in client.post(f"{API}/sweeps", json=doc).json()["detail"]}
    assert paths == {"search.grid_points", "trainer.warmup"}


@pytest.fixture
def read_only(backend: str, database_url: str, make_client: Callable[..., TestClient]) -> TestClient:
    """The app on this test's database, which it can read but not write: a SQLite file
    opened read-only, or a PostgreSQL database whose transactions are read-only."""
    writable = make_client()
    submit(writable, name="before")
    if backend == "sqlite":
        path = make_url(database_url).database
        url = f"sqlite:///file:{path}?mode=ro&uri=true"
    else:
        _pg_admin(f"ALTER DATABASE {make_url(database_url).database} SET default_transaction_read_only = on")
        url = database_url
    client: TestClient = make_client(database_url=url)
    return client


def test_a_read_only_database_is_a_lasting_error_that_says_so(
    read_only: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="hypersweep.service"):
        for response in (
            read_only.post(f"{API}/sweeps", json=sweep_doc()),
            read_only.post(f"{API}/trials/claim", json={"worker_id": "w"}),
        ):
            # Not 503 "try again shortly": asking again changes nothing until someone acts.
            assert response.status_code == 500
            assert "Retry-After" not in response.headers
            assert "read-only" in response.json()["detail"]
    assert [record.levelno for record in caplog.records] == [logging.ERROR] * 2
    assert all("read-only" in record.getMessage() for record in caplog.records)
    # Reading still works.
    assert [sweep["name"] for sweep in read_only.get(f"{API}/sweeps").json()] == ["before"]
