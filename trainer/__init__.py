"""hypersweep's built-in trainer: an MLP classifier trained with plain PyTorch.

``train(TrainerConfig(...))`` runs one trial and returns a :class:`TrainResult`;
``python -m trainer`` does the same from the command line.
"""

from trainer.config import ACTIVATIONS, INITS, OPTIMIZERS, SETTINGS, TrainerConfig
from trainer.data import DatasetError, Splits, load_dataset
from trainer.model import MLP
from trainer.train import (
    EpochCallback,
    FinalMetrics,
    StopReason,
    TrainResult,
    default_device,
    evaluate,
    set_threads,
    train,
)

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "MLP",
    "OPTIMIZERS",
    "SETTINGS",
    "DatasetError",
    "EpochCallback",
    "FinalMetrics",
    "Splits",
    "StopReason",
    "TrainResult",
    "TrainerConfig",
    "default_device",
    "evaluate",
    "load_dataset",
    "set_threads",
    "train",
]
