"""A sweep's curves as TensorBoard event files: one run per trial, so TensorBoard's
Scalars page overlays the curves and its HParams page tabulates params against results.

``DIRECTORY/trial-NNNN/`` holds, for trial number NNNN, one scalar series per numeric
metric of its curve (the tag is the metric's name, the step its epoch) and an HParams
record: the trial's params plus ``stage`` and ``status``, with its final numeric metrics
under ``hparam/<name>``. Writing needs ``tensorboardX`` (MIT licence), which
``pip install 'hypersweep[tensorboard]'`` brings; TensorBoard itself is needed only to look.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hypersweep.worker.wire import Trial, TrialCurve

__all__ = ["MISSING_WRITER", "export_tensorboard", "run_name"]

MISSING_WRITER = "writing TensorBoard files needs tensorboardX: pip install 'hypersweep[tensorboard]'"


def run_name(trial: Trial) -> str:
    """The run (sub-directory) a trial's events go to."""
    return f"trial-{trial.number:04d}"


def export_tensorboard(trials: Sequence[Trial], curves: Iterable[TrialCurve], directory: Path) -> int:
    """Write one TensorBoard run per trial under ``directory``; returns how many runs were
    written. Raises ``ModuleNotFoundError`` with :data:`MISSING_WRITER` when tensorboardX
    is not installed."""
    try:
        from tensorboardX import SummaryWriter
        from tensorboardX.summary import hparams
    except ModuleNotFoundError:
        raise ModuleNotFoundError(MISSING_WRITER) from None

    by_id = {curve.id: curve for curve in curves}
    for trial in trials:
        with SummaryWriter(logdir=str(directory / run_name(trial)), flush_secs=3600) as writer:
            curve = by_id.get(trial.id)
            if curve is not None:
                for metric, values in curve.metrics.items():
                    for step, value in zip(curve.step, values, strict=False):
                        if value is not None:
                            writer.add_scalar(metric, value, step)
            results = {f"hparam/{key}": value for key, value in _finite(trial.metrics).items()}
            settings: dict[str, Any] = {**trial.params, "stage": trial.stage, "status": trial.status}
            for summary in hparams(settings, results):
                writer.file_writer.add_summary(summary)
            for key, value in results.items():
                writer.add_scalar(key, value, 0)
    return len(trials)


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }
