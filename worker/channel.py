"""The channel of one running trial: everything sent for it before its end (batched
curve points, heartbeats), from a thread of its own, so that training never waits on the
network; and what the server answered (a stop, a lost lease), for the trial to read."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from hypersweep.limits import DEFAULT_LEASE_SECONDS as FALLBACK_LEASE_SECONDS
from hypersweep.limits import MAX_POINTS
from hypersweep.worker.client import LeaseLost, ServiceClient, ServiceError
from hypersweep.worker.wire import Action, ClaimedTrial

__all__ = [
    "FALLBACK_LEASE_SECONDS",
    "MIN_HEARTBEAT_SECONDS",
    "Point",
    "TrialChannel",
    "channel_for",
    "lease_seconds_left",
    "trial_name",
]

logger = logging.getLogger(__name__)

#: Heartbeats never come closer together than this, however short the lease.
MIN_HEARTBEAT_SECONDS = 0.2


def lease_seconds_left(expires_at: datetime, *, now: datetime | None = None) -> float:
    """Seconds until ``expires_at`` (a naive time is UTC); the fallback lease when it is
    already past (clocks can disagree)."""
    moment = expires_at if expires_at.tzinfo is not None else expires_at.replace(tzinfo=UTC)
    left = (moment - (now or datetime.now(UTC))).total_seconds()
    return left if left > 0 else FALLBACK_LEASE_SECONDS


Point = tuple[int, dict[str, float]]


class TrialChannel(threading.Thread):
    """Everything sent for one running trial before its end, from a thread of its own so
    that training never waits on the network. Curve points are sent at most every
    ``report_every`` seconds, those measured in between together in one request (the
    last ones ride with the finish: :meth:`close` hands them back); a heartbeat renews the
    lease whenever nothing has for ``every`` seconds. What the server answers lands in
    :attr:`lease_lost` and :attr:`stop_requested`, which the training thread reads at its
    next epoch end."""

    def __init__(
        self, client: ServiceClient, trial_id: int, lease_token: str, every: float, report_every: float, *, name: str
    ):
        super().__init__(name=f"trial-{trial_id}", daemon=True)
        self.client = client
        self.trial_id = trial_id
        #: How the logs name the trial (``trial 7 (id 42)``).
        self.label = name
        self.lease_token = lease_token
        self.every = every
        # Points never wait so long that the lease would lapse meanwhile.
        self.report_every = min(report_every, every)
        self.lease_lost = threading.Event()
        self.stop_requested = threading.Event()
        #: Why the server said stop, once it did: ``"pruned"``, or ``None`` (a cancel).
        self.stop_reason: str | None = None
        #: The server's sentence about the stop (why the trial was pruned), if any.
        self.stop_detail: str | None = None
        # None marks the end; an event with a point asks for it to be sent at once, and is
        # set once the server answered (or could not be reached).
        self._outbox: queue.Queue[tuple[Point, threading.Event | None] | None] = queue.Queue()
        self._unsent: list[Point] = []

    def report(self, step: int, metrics: Mapping[str, float], *, wait: float | None = None) -> None:
        """Queue one point of the curve; returns at once. With ``wait`` (seconds), send it
        now with the points before it and return once the server answered, or after
        ``wait`` seconds: an epoch where the server may prune the trial, whose answer the
        trainer should see before it trains another epoch."""
        if wait is None:
            self._outbox.put(((step, dict(metrics)), None))
            return
        answered = threading.Event()
        self._outbox.put(((step, dict(metrics)), answered))
        answered.wait(wait)

    def close(self) -> list[Point]:
        """Stop, and return the points not sent yet (none once the lease is lost). After
        this the lease is the caller's to end."""
        self._outbox.put(None)
        self.join()
        return [] if self.lease_lost.is_set() else self._unsent[-MAX_POINTS:]

    def run(self) -> None:
        pending: list[Point] = []
        waiting: list[threading.Event] = []  # callers waiting for the answer to a report
        contact = time.monotonic()  # the last call to the server, or the claim
        failed = False  # whether that call failed: then the next waits a heartbeat's interval
        try:
            while True:
                now = time.monotonic()
                due = contact + (self.report_every if pending and not failed else self.every)
                if waiting:
                    due = now
                if now < due:
                    try:
                        item = self._outbox.get(timeout=due - now)
                    except queue.Empty:
                        continue
                    if item is None:
                        self._unsent = pending
                        return
                    point, answered = item
                    pending.append(point)
                    if answered is not None:
                        waiting.append(answered)
                    continue
                if pending:
                    failed = not self._send(self._report, pending)
                    # Points the server did not get go with the next report or the finish,
                    # within what one request carries.
                    pending = pending[-MAX_POINTS:] if failed else []
                else:
                    failed = not self._send(self._heartbeat)
                contact = time.monotonic()
                for answered in waiting:
                    answered.set()
                waiting.clear()
        finally:
            for answered in waiting:
                answered.set()

    def _heartbeat(self) -> Action:
        return self.client.heartbeat(self.trial_id, lease_token=self.lease_token)

    def _report(self, points: list[Point]) -> Action:
        if len(points) == 1:
            [(step, metrics)] = points
            return self.client.report(self.trial_id, lease_token=self.lease_token, step=step, metrics=metrics)
        return self.client.report_many(self.trial_id, lease_token=self.lease_token, points=points)

    def _send(self, call: Callable[..., Action], *args: Any) -> bool:
        """Make one call; False when it failed (the server could not be reached, or
        refused it). Once the lease is lost nothing is sent, and that counts as done."""
        if self.lease_lost.is_set():
            return True  # nothing more is ours to say; the queue just drains until closed
        try:
            answer = call(*args)
        except LeaseLost as exc:
            logger.warning("%s: lease lost: %s", self.label, exc.detail)
            self.lease_lost.set()
            return True
        except ServiceError as exc:
            # The server may be back before the lease runs out, so training goes on; the
            # points go again with the next report or the finish.
            logger.warning("%s: %s", self.label, exc)
            return False
        if answer.stop:
            if not self.stop_requested.is_set():
                self.stop_reason, self.stop_detail = answer.reason, answer.detail
            self.stop_requested.set()
        return True


def trial_name(number: int | None, trial_id: int) -> str:
    """How the logs name a trial: by its number in the sweep (what the CLI and the
    dashboard show), then its id (what the API takes)."""
    return f"trial id {trial_id}" if number is None else f"trial {number} (id {trial_id})"


def channel_for(client: ServiceClient, trial: ClaimedTrial, report_every: float) -> TrialChannel:
    """A channel for a claimed trial, heartbeating every third of what is left of its lease."""
    every = max(MIN_HEARTBEAT_SECONDS, lease_seconds_left(trial.lease_expires_at) / 3)
    return TrialChannel(
        client, trial.id, trial.lease_token, every, report_every, name=trial_name(trial.number, trial.id)
    )
