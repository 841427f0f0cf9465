"""Run a user's Python function per trial: ``hypersweep worker --program NAME --function pkg.module:train``.

The function is imported once, when the worker starts (from the working directory or the
installed environment), and called as ``train(trial)`` for each trial with a
:class:`hypersweep.Trial`. Its reports go through the trial's :class:`~.base.Watch`;
:meth:`hypersweep.Trial.report` raises :class:`hypersweep.TrialStopped` once the watch
says the trial must end, so a function that reports stops at its next report.

The function runs in a thread of its own while the calling thread waits, so that a
function that stops reporting cannot hold the trial past ``--timeout`` or a stop: after
the time limit (or ``grace`` seconds after a stop) the trial ends without it. A thread
cannot be killed, so the runner then marks itself :attr:`FunctionRunner.stuck` and the
worker stops taking trials; commands are the form for code that may hang.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from hypersweep.program import Trial, TrialStopped, _set_current
from hypersweep.worker.runners.base import RunResult, TrialRun, Watch, final_metrics, stopped_result

__all__ = ["FunctionRunner", "ProgramError", "load_function"]

logger = logging.getLogger(__name__)

#: Longest error text sent with a failed trial; the tail of a traceback is what matters.
MAX_ERROR_CHARS = 4096
#: How often the waiting thread looks for a stop that needs no report, in seconds.
POLL_SECONDS = 0.2


class ProgramError(Exception):
    """The program cannot be run at all (a function that cannot be imported, a command
    with a malformed placeholder): the worker refuses to start, with this message."""


def load_function(target: str) -> Callable[[Trial], Any]:
    """``pkg.module:callable`` imported, with the working directory on the import path."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ProgramError(f"--function takes MODULE:CALLABLE (for example train:main), not {target!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ProgramError(f"cannot import {module_name!r} for --function: {type(exc).__name__}: {exc}") from None
    function: Any = module
    for part in attribute.split("."):
        function = getattr(function, part, None)
        if function is None:
            raise ProgramError(f"module {module_name!r} has no {attribute!r} for --function")
    if not callable(function):
        raise ProgramError(f"{target} is not callable")
    return function  # type: ignore[no-any-return]


class FunctionRunner:
    """Calls ``function(trial)`` for each trial; see the module doc."""

    def __init__(self, function: Callable[[Trial], Any], *, grace: float = 10.0) -> None:
        self.function = function
        self.grace = grace
        #: Set once a function outlived its trial: its thread still runs.
        self.stuck = False

    def run(self, trial: TrialRun, watch: Watch) -> RunResult:
        def on_report(step: int, metrics: dict[str, Any]) -> None:
            stop = watch.observe(step, metrics)
            if stop is not None:
                raise TrialStopped(stop.cause.value, stop.detail)

        handle = Trial(
            id=trial.id,
            number=trial.number,
            stage=trial.stage,
            params=trial.params,
            settings=trial.settings,
            device=trial.device,
            on_report=on_report,
            checkpoint_dir=trial.checkpoint_dir,
        )
        outcome: dict[str, Any] = {}

        def call() -> None:
            _set_current(handle)
            try:
                outcome["returned"] = self.function(handle)
            except BaseException as exc:
                outcome["raised"] = exc
            finally:
                _set_current(None)

        thread = threading.Thread(target=call, name=f"trial-{trial.id}-function", daemon=True)
        thread.start()
        stopped_at: float | None = None
        while thread.is_alive():
            thread.join(POLL_SECONDS)
            if not thread.is_alive():
                break
            if watch.check() is not None and stopped_at is None:
                stopped_at = watch.elapsed
            if stopped_at is not None and watch.elapsed - stopped_at > self.grace:
                self.stuck = True
                logger.error(
                    "trial %s: the function did not return within %g s of being told to stop (%s); "
                    "this worker takes no more trials",
                    trial.id,
                    self.grace,
                    watch.stop.detail if watch.stop else "",
                )
                metrics = final_metrics(watch.latest, None, label=watch.label)
                return stopped_result(watch, metrics)
        return self._result(watch, outcome)

    @staticmethod
    def _result(watch: Watch, outcome: Mapping[str, Any]) -> RunResult:
        raised = outcome.get("raised")
        if watch.stop is not None:
            # Stopped by the watch: whatever the function did next (raised TrialStopped,
            # caught it and returned, or failed on the way out) the stop says how it ended.
            given = outcome.get("returned") if isinstance(outcome.get("returned"), Mapping) else None
            return stopped_result(watch, final_metrics(watch.latest, given, label=watch.label))
        if isinstance(raised, TrialStopped):
            # Raised by the function itself, not by a report: its own way to give up.
            return RunResult("failed", dict(watch.latest), error=f"the function raised TrialStopped({raised})")
        if raised is not None:
            return RunResult("failed", dict(watch.latest), error=_error_text(raised))
        returned = outcome.get("returned")
        if returned is not None and not isinstance(returned, Mapping):
            return RunResult(
                "failed",
                dict(watch.latest),
                error=f"the function returned {type(returned).__name__}, not a mapping of final metrics or None",
            )
        return RunResult("completed", final_metrics(watch.latest, returned, label=watch.label))


def _error_text(exc: BaseException) -> str:
    """The exception and the innermost frames that led to it, within MAX_ERROR_CHARS."""
    text = "".join(traceback.format_exception(exc, limit=-8))
    return text if len(text) <= MAX_ERROR_CHARS else "..." + text[-(MAX_ERROR_CHARS - 3) :]
