"""Train the MNIST-1D CNN once per trial, as a function: the form
``hypersweep worker --function objective:train`` calls.

The trial's settings (the sweep's ``trainer`` section, then the stage's ``epochs``, then
the trial's params) fill ``cnn.Settings``; names it does not know are the worker's and are
ignored. ``trial.report`` raises ``hypersweep.TrialStopped`` when the trial must end
(diverged, pruned, cancelled): it is left to propagate, and the worker records why.
``trial.checkpoint_dir`` (set when the worker has a checkpoint root) is where ``fit``
saves each epoch and where a trial that runs again after its worker was lost goes on from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from cnn import Settings, fit


class Trial(Protocol):
    """What this function uses of the trial the worker hands it."""

    @property
    def params(self) -> Mapping[str, Any]: ...
    @property
    def settings(self) -> Mapping[str, Any]: ...
    @property
    def device(self) -> Any: ...  # a torch device or its name; None for the CPU

    @property
    def checkpoint_dir(self) -> Any: ...  # a folder, or None without a checkpoint root

    def report(self, step: int, **metrics: float) -> None: ...


def train(trial: Trial) -> dict[str, float]:
    """Train with the trial's settings; return the final metrics (``test_accuracy`` too)."""
    settings = Settings.from_mapping({**trial.settings, **trial.params})
    # the worker owns device placement in this form: its choice, or the CPU
    settings.device = "cpu" if trial.device is None else str(trial.device)
    return fit(settings, trial.report, trial.checkpoint_dir)
