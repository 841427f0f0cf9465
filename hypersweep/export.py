"""A sweep's trials as a file: CSV with one column per parameter and metric, or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any, Literal

from hypersweep.worker.wire import Trial

__all__ = ["FORMATS", "ExportFormat", "export_trials"]

ExportFormat = Literal["csv", "json"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "json")

#: The trial's own columns, first in a CSV row.
_TRIAL_COLUMNS = ["id", "number", "stage", "status", "attempt", "value", "worker_id", "started_at", "finished_at"]


def export_trials(trials: Sequence[Trial], format: ExportFormat = "csv") -> str:
    """``trials`` as text in ``format``.

    JSON: a list of the trials as the server sends them (non-finite metrics as the strings
    ``"NaN"``, ``"Infinity"``, ``"-Infinity"``). CSV: a header, then one row per trial with
    the columns id, number, stage, status, attempt, value, worker_id, started_at,
    finished_at, one per parameter, one per metric (``metric_<name>`` where a name is
    taken already) and error. Raises ``ValueError`` for another format."""
    rows = [trial.as_json() for trial in trials]
    if format == "json":
        return json.dumps(rows, indent=2) + "\n"
    if format == "csv":
        return _csv(rows)
    raise ValueError(f"unknown format {format!r}; use csv or json")


def _csv(rows: list[dict[str, Any]]) -> str:
    params = list(dict.fromkeys(name for row in rows for name in row["params"]))
    metrics = list(dict.fromkeys(name for row in rows for name in row["metrics"]))
    taken = set(_TRIAL_COLUMNS) | set(params)
    metric_columns = {m: (f"metric_{m}" if m in taken else m) for m in metrics}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*_TRIAL_COLUMNS, *params, *metric_columns.values(), "error"])
    for row in rows:
        writer.writerow(
            [
                *(row.get(c) for c in _TRIAL_COLUMNS),
                *(row["params"].get(p) for p in params),
                *(row["metrics"].get(m) for m in metrics),
                row.get("error"),
            ]
        )
    return buffer.getvalue()
