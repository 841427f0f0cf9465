"""A typed client for hypersweep's REST API, built on an injected ``httpx.Client``.

The ``httpx.Client`` is the seam: production code gets one from
:meth:`ServiceClient.connect`, tests pass Starlette's ``TestClient`` (an
``httpx.Client`` bound to the app) or a client on a mock transport.

Answers come back as the typed objects of :mod:`hypersweep.worker.wire` (``Sweep``,
``Trial``, ``ClaimedTrial``, ``Action``, ...), parsed once from the answer's bytes.

Error contract, for every method:

* a connection error, a timeout or a 502, 503 or 504 answer (the server or its database
  out of reach for now) is retried with capped exponential backoff and full jitter,
  within :class:`RetryPolicy`'s attempts and time budget; when that runs out,
  :class:`ServiceUnavailable` is raised;
* 409 raises :class:`LeaseLost` (the lease token is stale: another worker may own the
  trial now, so the caller must abandon it without finishing);
* any other 4xx, and a 500 or another 5xx (the server failed in a way that asking again
  does not mend, such as a read-only database), raises :class:`ServiceError` at once,
  carrying the server's ``detail``;
* an answer that is not the expected shape raises :class:`ServiceError` too.

JSON has no NaN or infinity, so non-finite floats in request bodies are sent as the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (and read back as floats).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from hypersweep.limits import MAX_CURVES, MAX_POINTS
from hypersweep.worker.wire import (
    Action,
    ClaimAnswer,
    ClaimedTrial,
    Enqueued,
    FinishOutcome,
    Sweep,
    SweepCurves,
    Trial,
    TrialCurve,
    encode_floats,
)

__all__ = [
    "API_PREFIX",
    "MAX_POINTS",
    "REPORT_EVERY_SECONDS",
    "RETRIED_STATUSES",
    "Ending",
    "FinishStatus",
    "LeaseLost",
    "RetryPolicy",
    "ServiceClient",
    "ServiceError",
    "ServiceUnavailable",
]

API_PREFIX = "/api/v1"
#: How often, at most, a worker sends a trial's new curve points (seconds): one request
#: then carries every epoch that ended since the last, so short epochs cost no request each.
REPORT_EVERY_SECONDS = 1.0

FinishStatus = Literal["completed", "diverged", "pruned", "failed"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: Answers that say the server, or what it stands on, is out of reach for now.
RETRIED_STATUSES = frozenset({502, 503, 504})
_SWEEPS: TypeAdapter[list[Sweep]] = TypeAdapter(list[Sweep])
_TRIALS: TypeAdapter[list[Trial]] = TypeAdapter(list[Trial])
_OBJECT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


class ServiceError(Exception):
    """The service refused a request (a 4xx other than 409), failed on it (a 5xx that is
    not retried), answered what this client cannot read, or could not be reached.

    ``status_code`` is the HTTP status (``None`` when no answer came), ``detail`` the
    server's ``detail`` field (FastAPI's error body) or the raw text of the answer.
    """

    def __init__(self, message: str, *, status_code: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


class LeaseLost(ServiceError):
    """409: the lease token is stale. The trial is no longer this worker's to report on."""


class ServiceUnavailable(ServiceError):
    """Connection errors, timeouts or 502, 503 and 504 answers persisted through every retry."""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How transient failures are retried.

    Attempt ``n`` (from 0) sleeps ``uniform(0, min(max_delay, base_delay * 2**n))``
    seconds before the next one ("full jitter", so that many workers that lost the
    server at the same moment do not come back in lockstep). At most ``attempts``
    requests are made, and no retry starts once ``deadline`` seconds have passed since
    the first. By default the deadline is what ends the retries: a worker rides out a
    server or database restart of up to a minute. (Eight attempts of full jitter gave up
    after about 12 s on average, and after a few seconds at worst.)
    """

    attempts: int = 100
    base_delay: float = 0.25
    max_delay: float = 8.0
    deadline: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to sleep after failed attempt ``attempt`` (0-based)."""
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * 2.0**attempt))


@dataclass(frozen=True)
class Ending:
    """How a trial ended, as a worker tells the server: what :meth:`ServiceClient.finish`
    sends, and what :meth:`ServiceClient.finish_and_claim` carries."""

    trial_id: int
    lease_token: str
    status: FinishStatus
    metrics: Mapping[str, Any]
    error: str | None = None
    #: Points ``(step, metrics)`` of the curve not reported yet.
    points: Sequence[tuple[int, Mapping[str, Any]]] = ()

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"lease_token": self.lease_token, "status": self.status, "metrics": self.metrics}
        if self.error is not None:
            body["error"] = self.error
        if self.points:
            body["points"] = [{"step": step, "metrics": m} for step, m in self.points]
        return body


class ServiceClient:
    """One method per endpoint of the REST API; answers are typed objects (see
    :mod:`hypersweep.worker.wire`).

    The client does not own an injected ``httpx.Client`` unless it was built by
    :meth:`connect`; :meth:`close` (or leaving a ``with`` block) closes only what it owns.
    Methods may be called from several threads at once (the worker's heartbeat thread
    shares the client with the training thread), as ``httpx.Client`` allows.
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        owns_http: bool = False,
    ) -> None:
        self.http = http
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._owns_http = owns_http

    @classmethod
    def connect(
        cls,
        server: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> ServiceClient:
        """A client for the service at ``server`` (e.g. ``http://127.0.0.1:8000``),
        sending ``Authorization: Bearer <token>`` when a token is given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        http = httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout)
        return cls(http, retry=retry, owns_http=True)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Sweeps

    def submit_sweep(self, spec: Mapping[str, Any]) -> Sweep:
        """``POST /sweeps``: the stored sweep (422 from the server raises ServiceError)."""
        return self._answer(Sweep.model_validate_json, "POST", "/sweeps", body=spec)

    def list_sweeps(self, *, limit: int | None = None, offset: int | None = None) -> list[Sweep]:
        """``GET /sweeps``, newest first."""
        return self._answer(_SWEEPS.validate_json, "GET", "/sweeps", params={"limit": limit, "offset": offset})

    def get_sweep(self, sweep_id: int) -> Sweep:
        """``GET /sweeps/{id}``: status, counts, best, stages, warnings."""
        return self._answer(Sweep.model_validate_json, "GET", f"/sweeps/{sweep_id}")

    def cancel_sweep(self, sweep_id: int) -> Sweep:
        """``POST /sweeps/{id}/cancel``: no new trials; running ones are told to stop."""
        return self._answer(Sweep.model_validate_json, "POST", f"/sweeps/{sweep_id}/cancel")

    def list_trials(
        self,
        sweep_id: int,
        *,
        status: str | None = None,
        stage: int | None = None,
        sort: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[Trial]:
        """``GET /sweeps/{id}/trials`` with the given filters (server default: by number).
        Listed trials carry no curve."""
        params = {"status": status, "stage": stage, "sort": sort, "limit": limit, "offset": offset}
        return self._answer(_TRIALS.validate_json, "GET", f"/sweeps/{sweep_id}/trials", params=params)

    def enqueue_trials(self, sweep_id: int, body: Mapping[str, Any]) -> Enqueued:
        """``POST /sweeps/{id}/trials``: trials with chosen params, queued ahead of the
        strategy's. Give ``key`` in ``body`` to make a retry harmless."""
        return self._answer(Enqueued.model_validate_json, "POST", f"/sweeps/{sweep_id}/trials", body=body)

    def get_trial(self, trial_id: int) -> Trial:
        """``GET /trials/{id}``: one trial with its curve."""
        return self._answer(Trial.model_validate_json, "GET", f"/trials/{trial_id}")

    def sweep_curves(self, sweep_id: int, trial_ids: Sequence[int]) -> list[TrialCurve]:
        """``GET /sweeps/{id}/curves``: the curves of the named trials of the sweep, as
        columns, asking for at most ``MAX_CURVES`` per request."""
        curves: list[TrialCurve] = []
        for start in range(0, len(trial_ids), MAX_CURVES):
            ids = ",".join(str(trial_id) for trial_id in trial_ids[start : start + MAX_CURVES])
            path = f"/sweeps/{sweep_id}/curves"
            curves += self._answer(SweepCurves.model_validate_json, "GET", path, params={"trials": ids}).trials
        return curves

    # The worker protocol

    def claim(
        self, *, worker_id: str, sweep_id: int | None = None, count: int = 1, program: str | None = None
    ) -> list[ClaimedTrial]:
        """``POST /trials/claim``: up to ``count`` leased trials, ``[]`` when the server has
        nothing to do now (204). Each carries its resolved ``settings``, ``lease_token`` and
        ``lease_expires_at``. ``program`` names the program the caller runs: only trials of
        sweeps with that ``program`` are handed out (``None``: the built-in trainer's)."""
        return self.finish_and_claim((), worker_id=worker_id, sweep_id=sweep_id, count=count, program=program)[1]

    def finish_and_claim(
        self,
        endings: Sequence[Ending],
        *,
        worker_id: str,
        sweep_id: int | None = None,
        count: int = 1,
        program: str | None = None,
    ) -> tuple[list[FinishOutcome], list[ClaimedTrial]]:
        """``POST /trials/claim`` carrying ``endings``: the server finishes those trials
        first (each as :meth:`finish` would), then leases up to ``count`` trials; one
        request where a worker would make two. Returns one outcome per ending, in order
        (``code`` 200, or 404 or 409 with ``detail``; a 409 means that lease was lost),
        and the trials. Retried as every request is: finishing again is harmless, and trials
        leased by an attempt whose answer was lost go back to the queue when their lease
        expires, as with :meth:`claim`."""
        body: dict[str, Any] = {"worker_id": worker_id, "count": count}
        if sweep_id is not None:
            body["sweep_id"] = sweep_id
        if program is not None:
            body["program"] = program
        if endings:
            body["finished"] = [{"trial_id": ending.trial_id, **ending.body()} for ending in endings]
        response = self._request("POST", "/trials/claim", body=body)
        if response.status_code == httpx.codes.NO_CONTENT:
            return [], []
        answer = _parsed(ClaimAnswer.model_validate_json, response, "POST /trials/claim")
        return list(answer.finished), list(answer.trials)

    def heartbeat(self, trial_id: int, *, lease_token: str) -> Action:
        """``POST /trials/{id}/heartbeat``: extends the lease; the answer's ``action`` is
        ``"continue"`` or ``"stop"``. Raises LeaseLost on a stale token."""
        return self._answer(
            Action.model_validate_json, "POST", f"/trials/{trial_id}/heartbeat", body={"lease_token": lease_token}
        )

    def report(self, trial_id: int, *, lease_token: str, step: int, metrics: Mapping[str, Any]) -> Action:
        """``POST /trials/{id}/report``: one point of the curve; answers with ``action``."""
        body = {"lease_token": lease_token, "step": step, "metrics": metrics}
        return self._answer(Action.model_validate_json, "POST", f"/trials/{trial_id}/report", body=body)

    def report_many(
        self, trial_id: int, *, lease_token: str, points: Sequence[tuple[int, Mapping[str, Any]]]
    ) -> Action:
        """``POST /trials/{id}/reports``: several points ``(step, metrics)`` of the curve in
        one request, in order; answers with ``action``."""
        body = {"lease_token": lease_token, "points": [{"step": step, "metrics": m} for step, m in points]}
        return self._answer(Action.model_validate_json, "POST", f"/trials/{trial_id}/reports", body=body)

    def finish(
        self,
        trial_id: int,
        *,
        lease_token: str,
        status: FinishStatus,
        metrics: Mapping[str, Any],
        error: str | None = None,
        points: Sequence[tuple[int, Mapping[str, Any]]] = (),
    ) -> Trial:
        """``POST /trials/{id}/finish``: the final status and metrics, and ``points`` of the
        curve not reported yet; answers with the trial. Finishing twice with the same token
        is harmless, which is what makes retrying it safe."""
        ending = Ending(trial_id, lease_token, status, metrics, error=error, points=points)
        return self._answer(Trial.model_validate_json, "POST", f"/trials/{trial_id}/finish", body=ending.body())

    def release(self, trial_id: int, *, lease_token: str) -> Trial:
        """``POST /trials/{id}/release``: give the trial back now; the server re-queues it
        without waiting for the lease to expire."""
        return self._answer(
            Trial.model_validate_json, "POST", f"/trials/{trial_id}/release", body={"lease_token": lease_token}
        )

    def healthz(self) -> dict[str, Any]:
        """``GET /healthz`` (outside ``/api/v1``): liveness and database reachability."""
        return _parsed(_OBJECT.validate_json, self._request("GET", "/healthz", prefix=""), "GET /healthz")

    # Plumbing

    def _answer(
        self,
        parse: Callable[[bytes], T],
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> T:
        response = self._request(method, path, body=body, params=params)
        return _parsed(parse, response, f"{method} {path}")

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        prefix: str = API_PREFIX,
    ) -> httpx.Response:
        url = prefix + path
        content = None if body is None else json.dumps(encode_floats(body), allow_nan=False)
        headers = {"Content-Type": "application/json"} if content is not None else None
        query = {key: value for key, value in (params or {}).items() if value is not None}
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                response = self.http.request(method, url, content=content, headers=headers, params=query)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
                status_code = None
            else:
                if response.status_code not in RETRIED_STATUSES:
                    return _checked(response, method, url)
                failure = f"HTTP {response.status_code}"
                status_code = response.status_code
            attempt += 1
            elapsed = time.monotonic() - started
            if attempt >= self.retry.attempts or elapsed >= self.retry.deadline:
                raise ServiceUnavailable(
                    f"{method} {url} failed after {attempt} attempts: {failure}",
                    status_code=status_code,
                )
            delay = min(self.retry.delay(attempt - 1, self._rng), self.retry.deadline - elapsed)
            logger.warning("%s %s: %s; retrying in %.2fs", method, url, failure, delay)
            self._sleep(delay)


def _parsed(parse: Callable[[bytes], T], response: httpx.Response, what: str) -> T:
    """The answer's body read by ``parse`` (a typed object's JSON parser), straight from its bytes."""
    try:
        return parse(response.content)
    except ValidationError as exc:
        raise ServiceError(
            f"{what}: the server's answer is not what this client expects: {exc.errors()[0]['msg']} "
            f"at {'.'.join(map(str, exc.errors()[0]['loc'])) or 'the top'}",
            status_code=response.status_code,
            detail=response.text[:200],
        ) from None


def _checked(response: httpx.Response, method: str, url: str) -> httpx.Response:
    """Pass a 1xx-3xx answer through; turn a 409 into LeaseLost, another 4xx or 5xx into
    ServiceError."""
    if response.status_code < 400:
        return response
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text[:200]
    message = f"{method} {url} answered {response.status_code}: {detail}"
    if response.status_code == httpx.codes.CONFLICT:
        raise LeaseLost(message, status_code=response.status_code, detail=detail)
    raise ServiceError(message, status_code=response.status_code, detail=detail)
