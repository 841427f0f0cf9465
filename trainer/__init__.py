"""hypersweep's built-in trainer: an MLP classifier trained with plain PyTorch.

``train(TrainerConfig(...))`` runs one trial and returns a :class:`TrainResult`;
``python -m hypersweep.trainer`` does the same from the command line. ``train_fused([...])`` trains
several trials that differ only in ``lr``, ``reg``, ``momentum``, ``dropout`` and the
learning-rate schedule as one batched model (``hypersweep.trainer.fused``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hypersweep.trainer.config import ACTIVATIONS, INITS, LR_SCHEDULES, OPTIMIZERS, SETTINGS, TrainerConfig

if TYPE_CHECKING:
    from hypersweep.trainer.data import DatasetError, Splits, load_dataset
    from hypersweep.trainer.fused import (
        FUSED_SETTINGS,
        FusedMLP,
        FusedOptimizer,
        ResultCallback,
        fusion_key,
        train_fused,
    )
    from hypersweep.trainer.loop import evaluate, train
    from hypersweep.trainer.model import MLP
    from hypersweep.trainer.run import (
        EpochCallback,
        FinalMetrics,
        StopReason,
        TrainResult,
        default_device,
        set_threads,
    )

# The service imports ``trainer.config`` to validate sweeps; PyTorch is imported only when
# something that needs it is first used, so the server never pays for it.
_LAZY = {
    "DatasetError": ".data",
    "Splits": ".data",
    "load_dataset": ".data",
    "MLP": ".model",
    "FUSED_SETTINGS": ".fused",
    "FusedMLP": ".fused",
    "FusedOptimizer": ".fused",
    "ResultCallback": ".fused",
    "fusion_key": ".fused",
    "train_fused": ".fused",
    "EpochCallback": ".run",
    "FinalMetrics": ".run",
    "StopReason": ".run",
    "TrainResult": ".run",
    "default_device": ".run",
    "set_threads": ".run",
    "evaluate": ".loop",
    "train": ".loop",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hypersweep.trainer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ACTIVATIONS",
    "FUSED_SETTINGS",
    "INITS",
    "LR_SCHEDULES",
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
