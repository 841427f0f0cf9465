"""The built-in trainer's checkpoint: everything a run needs to go on after an epoch as if
it had never stopped.

:func:`train` (``trainer.loop``) with a ``checkpoint_dir`` saves one file there at the end
of every epoch it completes (the model's weights, the optimizer's state, the random
number generators that draw dropout masks and shuffle the batches, the training loss's
watch, the curve so far and the last validation scores), replacing the one before
atomically, so a run killed at any moment leaves the last complete epoch behind. A run
that finds a checkpoint saved with the same settings goes on from the epoch after it;
one saved with other settings (another trial's, under a reused id) is ignored and
overwritten.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hypersweep.trainer.config import TrainerConfig
from hypersweep.trainer.run import Batches, TrainLoss

__all__ = ["CHECKPOINT_FILE", "Checkpoint", "load_checkpoint", "save_checkpoint"]

logger = logging.getLogger(__name__)

#: The file the built-in trainer keeps in a trial's checkpoint folder.
CHECKPOINT_FILE = "trainer.pt"
_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A run's state at the end of ``epoch``, as :func:`load_checkpoint` read it."""

    epoch: int
    curve: list[dict[str, float]]
    val: tuple[float, float]
    state: dict[str, Any]

    def restore(
        self, *, model: nn.Module, optimizer: torch.optim.Optimizer, batches: Batches, train_loss: TrainLoss
    ) -> None:
        """Put the saved state into a run set up afresh with the same settings."""
        model.load_state_dict(self.state["model"])
        optimizer.load_state_dict(self.state["optimizer"])
        batches.shuffle.set_state(self.state["shuffle"])
        torch.set_rng_state(self.state["torch_rng"])
        if self.state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.state["cuda_rng"])
        for name, value in self.state["train_loss"].items():
            setattr(train_loss, name, value)


def save_checkpoint(
    folder: Path,
    *,
    config: TrainerConfig,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Batches,
    train_loss: TrainLoss,
    curve: list[dict[str, float]],
    val: tuple[float, float],
) -> None:
    """Save the run's state after ``epoch`` in ``folder``, replacing the last checkpoint
    only once the new one is whole."""
    state = {
        "version": _VERSION,
        "config": config.as_dict(),
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "shuffle": batches.shuffle.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if batches.device.type == "cuda" else [],
        "train_loss": dataclasses.asdict(train_loss),
        "curve": curve,
        "val": list(val),
    }
    target = folder / CHECKPOINT_FILE
    partial = folder / f".{CHECKPOINT_FILE}.{os.getpid()}.partial"
    torch.save(state, partial)
    os.replace(partial, target)


def load_checkpoint(folder: Path, config: TrainerConfig) -> Checkpoint | None:
    """The checkpoint in ``folder`` when there is one saved with ``config``; ``None`` when
    there is none, or it cannot be read, or it belongs to other settings (both logged)."""
    path = folder / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        logger.warning("ignoring the checkpoint %s, which cannot be read: %s", path, exc)
        return None
    if not isinstance(state, dict) or state.get("version") != _VERSION:
        logger.warning("ignoring the checkpoint %s: not one this trainer wrote", path)
        return None
    if state.get("config") != config.as_dict():
        logger.warning("ignoring the checkpoint %s: it was saved with other settings", path)
        return None
    val_loss, val_accuracy = state["val"]
    logger.info("resuming after epoch %d, from the checkpoint %s", state["epoch"], path)
    return Checkpoint(int(state["epoch"]), list(state["curve"]), (float(val_loss), float(val_accuracy)), state)
