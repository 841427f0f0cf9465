"""The worker's client rides out a server outage of tens of seconds with its default
retry policy, and still gives up once the policy's deadline has passed.

The outage is simulated (a transport that refuses connections until enough sleep has
been asked for, and a clock that advances with the sleeps), so the test takes no time and
does not depend on the jitter drawn.
"""

from __future__ import annotations

import random

import httpx
import pytest

from hypersweep.worker.client import RetryPolicy, ServiceClient, ServiceUnavailable


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def client_during_outage(clock: FakeClock, outage: float, seed: int) -> ServiceClient:
    started = clock.now

    def handler(request: httpx.Request) -> httpx.Response:
        if clock.now - started < outage:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(204)

    http = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://hypersweep.test")
    return ServiceClient(http, sleep=clock.sleep, rng=random.Random(seed))


@pytest.mark.parametrize("seed", range(20))
def test_the_default_policy_rides_out_a_thirty_second_outage(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    clock = FakeClock()
    monkeypatch.setattr("hypersweep.worker.client.time.monotonic", clock.monotonic)
    client = client_during_outage(clock, outage=30.0, seed=seed)
    assert client.claim(worker_id="w", sweep_id=1) == []


def test_the_default_policy_gives_up_after_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("hypersweep.worker.client.time.monotonic", clock.monotonic)
    client = client_during_outage(clock, outage=3600.0, seed=0)
    with pytest.raises(ServiceUnavailable):
        client.claim(worker_id="w", sweep_id=1)
    assert RetryPolicy().deadline <= clock.now - 1000.0 <= RetryPolicy().deadline + RetryPolicy().max_delay
