"""hypersweep: hyperparameter search for PyTorch, as a service.

The public Python API::

    import hypersweep

    with hypersweep.Client("http://127.0.0.1:8000") as client:
        sweep = client.wait(client.submit("sweep.yaml"), progress=True)
        print(sweep.best)

``Client`` talks to a running server and answers with typed objects: ``Sweep``,
``Stage``, ``Trial`` (and ``CurvePoint``, ``Objective``); its errors are ``ServiceError``
and ``ServiceUnavailable``. ``hypersweep.service``, ``hypersweep.worker`` and
``hypersweep.trainer`` are the server, the worker and the built-in trainer.

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
    from hypersweep.worker.client import ServiceError, ServiceUnavailable
    from hypersweep.worker.wire import ClaimedTrial, CurvePoint, Objective, Stage, Sweep, Trial

try:
    __version__ = version("hypersweep")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0+unknown"

# Loaded on first use: the server imports this package too (as the parent of
# hypersweep.service), and must not pull in the client.
_LAZY = {
    "Client": "hypersweep.client",
    "DocumentError": "hypersweep.documents",
    "ServiceError": "hypersweep.worker.client",
    "ServiceUnavailable": "hypersweep.worker.client",
    "ClaimedTrial": "hypersweep.worker.wire",
    "CurvePoint": "hypersweep.worker.wire",
    "Objective": "hypersweep.worker.wire",
    "Stage": "hypersweep.worker.wire",
    "Sweep": "hypersweep.worker.wire",
    "Trial": "hypersweep.worker.wire",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hypersweep' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "ClaimedTrial",
    "Client",
    "CurvePoint",
    "DocumentError",
    "Objective",
    "ServiceError",
    "ServiceUnavailable",
    "Stage",
    "Sweep",
    "Trial",
    "__version__",
]
