"""Live progress of a sweep in a terminal: one bar per stage, with that stage's best value so far."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from hypersweep.worker.wire import Sweep

__all__ = ["SweepProgress"]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


class SweepProgress:
    """Bars drawn with rich while the ``with`` block runs; :meth:`update` them with each
    new look at the sweep (bars for its stages appear on the first)."""

    def __init__(self, console: Console | None = None) -> None:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self._progress = Progress(*columns, console=console, transient=False)
        self._tasks: dict[int, TaskID] = {}

    def __enter__(self) -> Self:
        self._progress.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.__exit__(exc_type, exc, tb)

    def update(self, sweep: Sweep) -> None:
        metric = sweep.objective.metric
        for stage in sweep.stages:
            # Each stage's own best: the sweep's may come from another stage.
            best_text = f"best {metric} {_fmt(stage.best_value)}" if stage.best_value is not None else "no result yet"
            task = self._tasks.get(stage.index)
            if task is None:
                task = self._tasks[stage.index] = self._progress.add_task(f"stage {stage.index}", total=stage.trials)
            running = stage.counts.get("running", 0)
            pruned = stage.counts.get("pruned", 0)
            pruned_text = f", {pruned} pruned" if pruned else ""
            self._progress.update(
                task,
                total=stage.trials,
                completed=stage.finished_trials,
                description=f"stage {stage.index} ({stage.status}, {running} running{pruned_text}) {best_text}",
            )
