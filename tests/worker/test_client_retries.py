"""Retries on failures that no real part of the system produces on demand.

A live server answers 5xx or drops connections only by accident, so these tests drive
the client through ``httpx.MockTransport``; everything else runs against the real app
(``test_client.py``).
"""

from __future__ import annotations

import math
import random

import httpx
import pytest

from hypersweep.worker.client import RetryPolicy, ServiceClient, ServiceError, ServiceUnavailable


def _client(handler: httpx.MockTransport, *, attempts: int = 5) -> tuple[ServiceClient, list[float]]:
    slept: list[float] = []
    client = ServiceClient(
        httpx.Client(transport=handler, base_url="http://hypersweep.test"),
        retry=RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=2.0, deadline=3600),
        sleep=slept.append,
        rng=random.Random(0),
    )
    return client, slept


def test_connection_errors_are_retried_until_the_server_answers() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"status": "ok", "database": "ok"})

    client, slept = _client(httpx.MockTransport(handler))
    assert client.healthz() == {"status": "ok", "database": "ok"}
    assert calls == 3
    assert len(slept) == 2


def test_5xx_is_retried_and_4xx_is_not() -> None:
    answers = iter([503, 502, 200])
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        status = next(answers)
        return httpx.Response(status, json={"action": "continue"} if status == 200 else {})

    client, _ = _client(httpx.MockTransport(handler))
    assert client.heartbeat(1, lease_token="t").action == "continue"
    assert seen == ["/api/v1/trials/1/heartbeat"] * 3

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append("refused")
        return httpx.Response(404, json={"detail": "trial 1 not found"})

    seen.clear()
    client, slept = _client(httpx.MockTransport(refuse))
    with pytest.raises(ServiceError) as info:
        client.get_trial(1)
    assert info.value.status_code == 404
    assert info.value.detail == "trial 1 not found"
    assert seen == ["refused"]
    assert slept == []


def test_retries_stop_after_the_configured_attempts() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("no answer", request=request)

    client, slept = _client(httpx.MockTransport(handler), attempts=4)
    with pytest.raises(ServiceUnavailable, match="after 4 attempts"):
        client.claim(worker_id="w")
    assert calls == 4
    assert len(slept) == 3


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=2.0)
    rng = random.Random(1)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 2.0), (10, 2.0)]:
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0.0 <= delay <= ceiling for delay in delays)
        # Full jitter spreads over the whole range rather than clustering near the ceiling.
        assert min(delays) < ceiling / 4 < ceiling * 3 / 4 < max(delays)


def test_non_finite_metrics_are_sent_as_json_strings() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(200, json={"action": "continue"})

    client, _ = _client(httpx.MockTransport(handler))
    client.report(
        3,
        lease_token="t",
        step=1,
        metrics={"train_loss": math.nan, "val_loss": math.inf, "x": -math.inf, "ok": 0.5},
    )
    assert bodies == [
        b'{"lease_token": "t", "step": 1, "metrics": {"train_loss": "NaN", '
        b'"val_loss": "Infinity", "x": "-Infinity", "ok": 0.5}}'
    ]


def test_an_answer_of_the_wrong_shape_is_a_service_error_not_a_crash() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"action": "dance"})

    client, slept = _client(httpx.MockTransport(handler))
    with pytest.raises(ServiceError, match="not what this client expects") as info:
        client.heartbeat(1, lease_token="t")
    assert info.value.status_code == 200
    assert slept == []


def test_a_500_is_not_retried_and_carries_what_is_wrong() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(500, json={"detail": "the SQLite database is read-only: ..."})

    client, slept = _client(httpx.MockTransport(handler))
    with pytest.raises(ServiceError) as info:
        client.claim(worker_id="w")
    assert not isinstance(info.value, ServiceUnavailable)
    assert (info.value.status_code, calls, slept) == (500, 1, [])
    assert "read-only" in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>proxy error</html>",
        b"",
        b"null",
        b'"text"',
        b"[]",
        b'[{"action": "continue", "trials": []}]',
        b"\xff\xfe",
    ],
    ids=["html", "empty", "null", "string", "list", "wrong-shape", "not-utf8"],
)
def test_a_200_that_is_not_the_expected_json_is_a_service_error(body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    client, _ = _client(httpx.MockTransport(handler))
    for call in (
        lambda: client.claim(worker_id="w"),
        lambda: client.heartbeat(1, lease_token="t"),
        lambda: client.finish(1, lease_token="t", status="completed", metrics={}),
        lambda: client.get_sweep(1),
        lambda: client.healthz(),
    ):
        with pytest.raises(ServiceError, match="not what this client expects") as info:
            call()
        assert info.value.status_code == 200
