"""hypersweep's built-in trainer: an MLP classifier trained with plain PyTorch.

``train(TrainerConfig(...))`` runs one trial and returns a :class:`TrainResult`;
``python -m trainer`` does the same from the command line. ``train_fused([...])`` trains
several trials that differ only in ``lr``, ``reg``, ``momentum`` and ``dropout`` as one
batched model (``trainer.fused``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trainer.config import ACTIVATIONS, INITS, OPTIMIZERS, SETTINGS, TrainerConfig

if TYPE_CHECKING:
    from trainer.data import DatasetError, Splits, load_dataset
    from trainer.fused import FUSED_SETTINGS, FusedMLP, FusedOptimizer, ResultCallback, fusion_key, train_fused
    from trainer.loop import (
        EpochCallback,
        FinalMetrics,
        StopReason,
        TrainResult,
        default_device,
        evaluate,
        set_threads,
        train,
    )
    from trainer.model import MLP

# The service imports ``trainer.config`` to validate sweeps; PyTorch is imported only when
# something that needs it is first used, so the server never pays for it.
_LAZY = {
    "DatasetError": "trainer.data",
    "Splits": "trainer.data",
    "load_dataset": "trainer.data",
    "MLP": "trainer.model",
    "FUSED_SETTINGS": "trainer.fused",
    "FusedMLP": "trainer.fused",
    "FusedOptimizer": "trainer.fused",
    "ResultCallback": "trainer.fused",
    "fusion_key": "trainer.fused",
    "train_fused": "trainer.fused",
    "EpochCallback": "trainer.loop",
    "FinalMetrics": "trainer.loop",
    "StopReason": "trainer.loop",
    "TrainResult": "trainer.loop",
    "default_device": "trainer.loop",
    "evaluate": "trainer.loop",
    "set_threads": "trainer.loop",
    "train": "trainer.loop",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trainer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ACTIVATIONS",
    "FUSED_SETTINGS",
    "INITS",
    "MLP",
    "OPTIMIZERS",
    "SETTINGS",
    "DatasetError",
    "EpochCallback",
    "FinalMetrics",
    "FusedMLP",
    "FusedOptimizer",
    "ResultCallback",
    "Splits",
    "StopReason",
    "TrainResult",
    "TrainerConfig",
    "default_device",
    "evaluate",
    "fusion_key",
    "load_dataset",
    "set_threads",
    "train",
    "train_fused",
]
