"""What a user's own training code sees of hypersweep: the trial it runs and how it reports.

A function program (``hypersweep worker --program NAME --function pkg.module:train``) is
called with a :class:`Trial` and reports with :meth:`Trial.report`, which raises
:class:`TrialStopped` once the trial must end (its loss exploded, it was cancelled or
pruned, its lease was lost, it ran past ``--timeout``, or the worker is stopping): user
code needs no checks of its own, it only lets the exception propagate.

A command program (``hypersweep worker --program NAME -- python train.py {args}``) reads
its settings from its arguments (or ``HYPERSWEEP_PARAMS``) and reports with
:func:`report`, which prints one line ``@hypersweep {"step": 3, "train_loss": 0.41}`` to
standard output; the worker reads those lines and leaves all other output alone. Any
language can print the same line. Called inside a function program, :func:`report` goes
to the running trial instead, so one training script serves both forms.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["MARKER", "Trial", "TrialStopped", "metric_value", "report", "report_final"]

#: What starts a report line on a command's standard output (then one space, one JSON object).
MARKER = "@hypersweep"


class TrialStopped(Exception):
    """The trial must end now; raised by :meth:`Trial.report`. ``reason`` is one of
    ``diverged``, ``nan``, ``stopped`` (cancelled or pruned by the server), ``lease_lost``,
    ``timeout`` and ``shutdown`` (the worker itself is stopping); ``detail`` says more."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def metric_value(value: Any) -> float | None:
    """A reported metric as a float: Python and NumPy numbers and one-element tensors (anything
    with ``__float__``); ``None`` for what is not a number (``bool`` included)."""
    if isinstance(value, bool) or value is None or isinstance(value, str | bytes):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class Trial:
    """One trial, as a function program receives it.

    ``params`` are the values the search chose; ``settings`` are the sweep's ``trainer``
    section, then ``epochs`` from the stage, then the params (a param wins over a setting of
    the same name). ``device`` is the device this worker slot was given with ``--devices``
    (``"cuda:0"`` inside a process that sees one GPU), or ``None``. ``checkpoint_dir`` is
    the trial's checkpoint folder when the worker has a checkpoint root (``--checkpoint-root``,
    ``HYPERSWEEP_CHECKPOINT_ROOT``), else ``None``: save there what the trial needs to go on,
    and a later attempt of the same trial (after its worker was lost) finds it there.
    """

    def __init__(
        self,
        *,
        id: int,
        number: int,
        stage: int,
        params: Mapping[str, Any],
        settings: Mapping[str, Any],
        device: str | None,
        on_report: Callable[[int, dict[str, Any]], None],
        checkpoint_dir: Path | None = None,
    ) -> None:
        self.id = id
        self.number = number
        self.stage = stage
        self.params = dict(params)
        self.settings = dict(settings)
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self._on_report = on_report

    def report(self, step: int, **metrics: Any) -> None:
        """Record one point of the curve at ``step`` (an epoch, or a training step: any
        integer that does not go backwards). Values are numbers (tensors and NumPy scalars
        are converted). Raises :class:`TrialStopped` when the trial must end."""
        self._on_report(step, metrics)

    def __repr__(self) -> str:
        return f"Trial(id={self.id}, number={self.number}, stage={self.stage}, params={self.params!r})"


_current = threading.local()


def _set_current(trial: Trial | None) -> None:
    _current.trial = trial


def report(step: int, **metrics: Any) -> None:
    """Report one point of the running trial's curve.

    Inside a function program this is :meth:`Trial.report` of the trial the calling thread
    runs (and may raise :class:`TrialStopped`). Anywhere else it prints the line a command
    program reports with, ``@hypersweep {"step": 3, "train_loss": 0.41}``, and returns."""
    trial: Trial | None = getattr(_current, "trial", None)
    if trial is not None:
        trial.report(step, **metrics)
        return
    _print_line({"step": int(step), **{name: _jsonable(value) for name, value in metrics.items()}})


def report_final(**metrics: Any) -> None:
    """Give final metrics (``test_accuracy`` measured once at the end, say): they update the
    last reported values. Inside a function program, return them from the function instead."""
    _print_line({"final": {name: _jsonable(value) for name, value in metrics.items()}})


def _jsonable(value: Any) -> Any:
    number = metric_value(value)
    if number is None:
        return value
    return int(number) if isinstance(value, int) and not isinstance(value, bool) else number


def _print_line(body: dict[str, Any]) -> None:
    # NaN and infinities print as JSON's common extension (NaN, Infinity): the worker reads
    # them, and a NaN loss is what the divergence rule must see.
    line = f"{MARKER} {json.dumps(body, allow_nan=True, separators=(',', ':'), default=str)}"
    print(line, file=sys.stdout, flush=True)
