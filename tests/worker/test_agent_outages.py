"""The pull loop when the server cannot be reached: a transport that refuses connections
stands in for a server that is down, which no real part produces on demand."""

from __future__ import annotations

import httpx
import pytest

from hypersweep.worker.agent import Agent, IdleBackoff
from hypersweep.worker.client import RetryPolicy, ServiceClient, ServiceUnavailable


def _client(handler: httpx.MockTransport) -> ServiceClient:
    http = httpx.Client(transport=handler, base_url="http://hypersweep.test")
    return ServiceClient(http, retry=RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.001))


def test_an_agent_serving_every_sweep_waits_out_an_outage() -> None:
    agent: Agent
    claims = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal claims
        assert request.url.path == "/api/v1/trials/claim"
        claims += 1
        if claims == 6:
            agent.request_stop()
            return httpx.Response(204)
        raise httpx.ConnectError("connection refused", request=request)

    agent = Agent(_client(httpx.MockTransport(handler)), worker_id="w", backoff=IdleBackoff(base=0.001, cap=0.002))
    assert agent.run() == 0
    # Two claims failed on both attempts; the third got through on its retry.
    assert claims == 6


def test_an_agent_bound_to_a_sweep_gives_up_when_the_server_stays_down() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    agent = Agent(_client(httpx.MockTransport(handler)), worker_id="w", sweep_id=1)
    with pytest.raises(ServiceUnavailable):
        agent.run()
