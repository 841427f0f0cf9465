"""What every runner shares: the trial it is handed, what it hands back, and the watch
that stands between a running program and the server.

A runner runs one claimed trial of one kind (the built-in trainer, a user's function, a
user's command) and returns a :class:`RunResult`; it never talks to the server itself.
Everything a program reports goes through one :class:`Watch`, which applies the
divergence rule, forwards the point to the trial's channel (heartbeats and batched
reports), and tells the runner when the trial must end: its loss exploded, the server
said stop (cancelled, pruned), the lease was lost, the worker is stopping, or the trial
ran past its time limit. So the 3x rule and the stops live once, around every kind.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol

from hypersweep.limits import MAX_STEP
from hypersweep.program import metric_value

__all__ = [
    "DEFAULT_DIVERGENCE_FACTOR",
    "DEFAULT_DIVERGENCE_METRIC",
    "RunResult",
    "RunStatus",
    "Runner",
    "Stop",
    "StopCause",
    "TrialRun",
    "Watch",
]

logger = logging.getLogger(__name__)

#: The reported metric the divergence rule watches unless the sweep's ``trainer`` section
#: names another (``divergence_metric``).
DEFAULT_DIVERGENCE_METRIC = "train_loss"
#: A trial diverges once that metric exceeds this many times its first value.
DEFAULT_DIVERGENCE_FACTOR = 3.0


RunStatus = Literal["completed", "diverged", "failed", "stopped"]


class StopCause(StrEnum):
    """Why a trial was ended before its program finished."""

    DIVERGED = "diverged"  # the watched metric exceeded the factor times its first value
    NAN = "nan"  # the watched metric was NaN or infinite
    SERVER = "stopped"  # the server answered "stop": the sweep was cancelled, or the trial pruned
    LEASE_LOST = "lease_lost"  # the lease expired and the trial is someone else's now
    SHUTDOWN = "shutdown"  # this worker is stopping (SIGTERM, Ctrl-C): the trial goes back
    TIMEOUT = "timeout"  # the trial ran past --timeout


@dataclass(frozen=True)
class Stop:
    cause: StopCause
    detail: str = ""


@dataclass(frozen=True)
class TrialRun:
    """What a runner needs of a claimed trial."""

    id: int
    number: int
    stage: int
    params: Mapping[str, Any]
    settings: Mapping[str, Any]
    device: str | None = None
    sweep_id: int | None = None
    #: The trial's checkpoint folder (``worker.checkpoints``), made already; ``None`` without a root.
    checkpoint_dir: Path | None = None


@dataclass
class RunResult:
    """How a run ended. ``stopped`` means the watch ended it for ``stop`` (other than a
    divergence, which is ``diverged``); ``metrics`` are the final metrics: the last
    reported value of each metric, updated by what the program gave as final."""

    status: RunStatus
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    stop: Stop | None = None


class Runner(Protocol):
    """Runs one trial of one kind. ``watch`` is fresh for each trial."""

    def run(self, trial: TrialRun, watch: Watch) -> RunResult: ...


def divergence_settings(settings: Mapping[str, Any]) -> tuple[str, float]:
    """The watched metric and factor named by a trial's settings, or the defaults."""
    metric = settings.get("divergence_metric", DEFAULT_DIVERGENCE_METRIC)
    factor = metric_value(settings.get("divergence_factor", DEFAULT_DIVERGENCE_FACTOR))
    if not isinstance(metric, str) or not metric:
        metric = DEFAULT_DIVERGENCE_METRIC
    if factor is None or not math.isfinite(factor) or factor <= 1:
        factor = DEFAULT_DIVERGENCE_FACTOR
    return metric, factor


class Watch:
    """Sits between one running program and its channel.

    :meth:`observe` takes each report: it checks and cleans it (a step must be an integer
    that does not go backwards, a metric a finite or non-finite number; anything else is
    left out with a warning in the worker's log, never an error), forwards the point with
    ``send``, applies the divergence rule to ``metric`` (the first value is the initial
    loss; a value above ``factor`` times it, or a non-finite one, ends the trial), and
    returns the :class:`Stop` once the trial must end. :meth:`check` answers the same for
    the causes that need no report (the server's stop, the lease, the worker's shutdown,
    the time limit), for runners that poll. The first stop sticks.
    """

    def __init__(
        self,
        *,
        send: Callable[[int, dict[str, float]], None],
        interrupted: Callable[[], Stop | None] = lambda: None,
        metric: str = DEFAULT_DIVERGENCE_METRIC,
        factor: float = DEFAULT_DIVERGENCE_FACTOR,
        timeout: float | None = None,
        label: str = "trial",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._interrupted = interrupted
        self.metric = metric
        self.factor = factor
        self.timeout = timeout
        self.label = label
        self._clock = clock
        self._started = clock()
        self.latest: dict[str, float] = {}
        self.initial: float | None = None
        self.last_step: int | None = None
        self.stop: Stop | None = None

    def observe(self, step: Any, metrics: Mapping[str, Any]) -> Stop | None:
        """Take one report; the stop, once the trial must end."""
        if self.stop is not None:
            return self.stop
        point = self._clean(step, metrics)
        if point is not None:
            step_number, values = point
            self.last_step = step_number
            self.latest.update(values)
            self._send(step_number, values)
            diverged = self._diverged(values)
            if diverged is not None:
                self.stop = diverged
                return diverged
        return self.check()

    def check(self) -> Stop | None:
        """The stop, once one of the causes that need no report holds."""
        if self.stop is None:
            self.stop = self._interrupted() or self._timed_out()
        return self.stop

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    def _timed_out(self) -> Stop | None:
        if self.timeout is not None and self.elapsed > self.timeout:
            return Stop(StopCause.TIMEOUT, f"timed out after {self.timeout:g} s")
        return None

    def _diverged(self, values: Mapping[str, float]) -> Stop | None:
        value = values.get(self.metric)
        if value is None:
            return None
        if not math.isfinite(value):
            return Stop(StopCause.NAN, f"{self.metric} was {value}")
        if self.initial is None:
            self.initial = value
            return None
        # The rule is about a loss: with a first value of 0 or below no multiple of it means anything.
        if self.initial > 0 and value > self.factor * self.initial:
            return Stop(
                StopCause.DIVERGED,
                f"{self.metric} {value:.4g} > {self.factor:g} x its initial {self.initial:.4g}",
            )
        return None

    def _clean(self, step: Any, metrics: Mapping[str, Any]) -> tuple[int, dict[str, float]] | None:
        number = metric_value(step)
        if number is None or not math.isfinite(number) or not number.is_integer() or abs(number) > MAX_STEP:
            logger.warning(
                "%s: a report with step %.40r left out: the step must be an integer up to %d",
                self.label,
                step,
                MAX_STEP,
            )
            return None
        step = int(number)
        if step < 0:
            logger.warning("%s: a report with step %d left out: steps start at 0", self.label, step)
            return None
        if self.last_step is not None and step < self.last_step:
            logger.warning(
                "%s: a report with step %d left out: it goes back from step %d", self.label, step, self.last_step
            )
            return None
        values: dict[str, float] = {}
        for name, raw in metrics.items():
            value = metric_value(raw)
            if value is None or not isinstance(name, str) or not name:
                logger.warning("%s: metric %.40r = %.40r left out: not a number", self.label, name, raw)
                continue
            values[name] = value
        if not values:
            return None
        return step, values


def final_metrics(latest: Mapping[str, float], given: Mapping[str, Any] | None, *, label: str) -> dict[str, Any]:
    """The last reported value of each metric, updated by the final metrics a program gave
    (numbers, and strings such as a ``stop_reason``; other values are left out with a warning)."""
    final: dict[str, Any] = dict(latest)
    for name, raw in (given or {}).items():
        value = metric_value(raw)
        if value is not None:
            final[name] = int(value) if isinstance(raw, int) and not isinstance(raw, bool) else value
        elif isinstance(raw, str | bool) or raw is None:
            final[name] = raw
        else:
            logger.warning("%s: final metric %.40r = %.40r left out: not a number or a string", label, name, raw)
    return final


def stopped_result(watch: Watch, metrics: dict[str, Any]) -> RunResult:
    """The result of a run the watch ended (``watch.stop`` is set)."""
    stop = watch.stop
    assert stop is not None
    if stop.cause in (StopCause.DIVERGED, StopCause.NAN):
        return RunResult("diverged", {**metrics, "stop_reason": stop.cause.value}, stop=stop)
    if stop.cause is StopCause.TIMEOUT:
        return RunResult("failed", metrics, error=stop.detail, stop=stop)
    return RunResult("stopped", metrics, stop=stop)
