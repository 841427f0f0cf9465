"""hypersweep: hyperparameter search for PyTorch, as a service.

The public Python API. ``Client`` talks to a running server; ``hypersweep.service``,
``hypersweep.worker`` and ``hypersweep.trainer`` are the server, the worker and the
built-in trainer. Your own training code receives a :class:`Trial` (a function program)
or reports with :func:`report` (a command program).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from hypersweep.program import Trial, TrialStopped, report, report_final

try:
    __version__ = version("hypersweep")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["Trial", "TrialStopped", "__version__", "report", "report_final"]
