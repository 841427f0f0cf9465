"""hypersweep: hyperparameter search for PyTorch, as a service.

The public Python API::

    import hypersweep

    with hypersweep.Client("http://127.0.0.1:8000") as client:
        sweep = client.wait(client.submit("sweep.yaml"), progress=True)
        print(sweep.best)

``Client`` talks to a running server and answers with typed objects: ``Sweep``,
``Stage``, ``FrozenTrial`` (a trial as the server recorded it; and ``CurvePoint``,
``Objective``); its errors are ``ServiceError`` and ``ServiceUnavailable``.

Your own training code gets a :class:`Trial` (a function program: ``trial.params``,
``trial.settings``, ``trial.report(step, **metrics)``, which raises :class:`TrialStopped`
when the trial must end) or reports with :func:`report` (a command program);
:func:`run` runs a whole sweep of a function from Python. ``hypersweep.service``,
``hypersweep.worker`` and ``hypersweep.trainer`` are the server, the worker and the
built-in trainer.

Importing ``hypersweep`` is light: the names above are loaded when first used, and none of
them imports PyTorch or the server.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypersweep.client import Client
    from hypersweep.documents import DocumentError
    from hypersweep.program import Trial, TrialStopped, report, report_final
    from hypersweep.running import run
    from hypersweep.worker.client import ServiceError, ServiceUnavailable
    from hypersweep.worker.wire import ClaimedTrial, CurvePoint, Objective, Stage, Sweep
    from hypersweep.worker.wire import Trial as FrozenTrial

try:
    __version__ = version("hypersweep")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0+unknown"

# Loaded on first use: the server imports this package too (as the parent of
# hypersweep.service), and must not pull in the client. Name: (module, attribute).
_LAZY = {
    "Client": ("hypersweep.client", "Client"),
    "DocumentError": ("hypersweep.documents", "DocumentError"),
    "ServiceError": ("hypersweep.worker.client", "ServiceError"),
    "ServiceUnavailable": ("hypersweep.worker.client", "ServiceUnavailable"),
    "ClaimedTrial": ("hypersweep.worker.wire", "ClaimedTrial"),
    "CurvePoint": ("hypersweep.worker.wire", "CurvePoint"),
    "FrozenTrial": ("hypersweep.worker.wire", "Trial"),
    "Objective": ("hypersweep.worker.wire", "Objective"),
    "Stage": ("hypersweep.worker.wire", "Stage"),
    "Sweep": ("hypersweep.worker.wire", "Sweep"),
    "Trial": ("hypersweep.program", "Trial"),
    "TrialStopped": ("hypersweep.program", "TrialStopped"),
    "report": ("hypersweep.program", "report"),
    "report_final": ("hypersweep.program", "report_final"),
    "run": ("hypersweep.running", "run"),
}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'hypersweep' has no attribute {name!r}")
    value = getattr(importlib.import_module(where[0]), where[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "ClaimedTrial",
    "Client",
    "CurvePoint",
    "DocumentError",
    "FrozenTrial",
    "Objective",
    "ServiceError",
    "ServiceUnavailable",
    "Stage",
    "Sweep",
    "Trial",
    "TrialStopped",
    "__version__",
    "report",
    "report_final",
    "run",
]
