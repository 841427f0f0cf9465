"""What every training run is made of, whether one model (``trainer.loop.train``) or a
fused group (``trainer.fused.train_fused``): its set-up, its mini-batches, its watch on
the training loss, and the result it ends with.

Both loops build on these pieces so that a fused member starts, steps, stops and reports
exactly as its own run would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NotRequired, TypedDict

import torch

from hypersweep.cores import cpu_cores
from hypersweep.trainer.config import TrainerConfig
from hypersweep.trainer.data import Splits, load_dataset
from hypersweep.trainer.model import MLP

__all__ = [
    "Batches",
    "EpochCallback",
    "FinalMetrics",
    "Setup",
    "StopReason",
    "TrainLoss",
    "TrainResult",
    "accuracy_sample",
    "check_trainable",
    "default_device",
    "finish",
    "set_threads",
    "set_up",
]

#: Why a run ended: all epochs ran; the loss exceeded ``divergence_factor`` x the first
#: loss; the loss became NaN or infinite; or ``on_epoch`` returned False.
StopReason = Literal["completed", "diverged", "nan", "stopped"]
#: ``on_epoch(epoch, {"train_loss", "train_accuracy", "val_loss", "val_accuracy"})``;
#: epochs count from 1.
#: Returning False stops the run after that epoch.
EpochCallback = Callable[[int, dict[str, float]], bool]


class FinalMetrics(TypedDict):
    """What a run reports when it ends. Losses may be NaN or infinite floats; turning them
    into JSON is the caller's job."""

    #: Mean training objective (cross-entropy plus L2 penalty, nats) over the last
    #: epoch's steps, the diverging step included.
    train_loss: float
    #: Fraction in [0, 1] of the training samples of :func:`accuracy_sample` classified
    #: right, in eval mode (no dropout, BatchNorm on running statistics), after the last
    #: step.
    train_accuracy: float
    #: Mean cross-entropy (nats) on the validation split, after the last step.
    val_loss: float
    #: Fraction in [0, 1] of the validation split classified right.
    val_accuracy: float
    #: Fraction in [0, 1] of the test split classified right, measured once at the end.
    test_accuracy: float
    #: The training objective at the first step.
    initial_loss: float
    #: Epochs fully or partly run.
    epochs_run: int
    #: Mini-batches run, the diverging one included.
    steps: int
    stop_reason: StopReason
    #: Wall time of the whole ``train`` call (a fused member: from the start of
    #: ``train_fused`` to its end).
    seconds: float
    #: Only when the run diverged: the step (from 1) whose loss tripped the check.
    stopped_at_step: NotRequired[int]
    #: Only when the run went on from a checkpoint: the epoch that checkpoint was saved at.
    resumed_from_epoch: NotRequired[int]


@dataclass
class TrainResult:
    """How a run ended.

    ``status`` is ``"diverged"`` when ``metrics["stop_reason"]`` is ``diverged`` or
    ``nan``, else ``"completed"`` (a run stopped by ``on_epoch`` ran cleanly as far as it
    went; whoever stopped it decides what to call it).

    ``curve`` has one entry per completed epoch: ``epoch`` and the values passed to
    ``on_epoch``. An epoch cut short by divergence has no entry; ``metrics`` carries it.
    """

    status: Literal["completed", "diverged"]
    metrics: FinalMetrics
    curve: list[dict[str, float]] = field(default_factory=list)


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_threads(share: int) -> int:
    """Give this process its part of the CPU when ``share`` processes train side by side:
    ``max(1, cores // share)`` intra-op threads, ``cores`` as :func:`hypersweep.cores.cpu_cores`
    counts them (a container's CPU limit included). Returns the number set."""
    # The cores this process may use, which a container limits below cpu_count().
    threads = max(1, cpu_cores() // max(1, share))
    torch.set_num_threads(threads)
    return threads


def check_trainable(config: TrainerConfig) -> None:
    """Raise ``ValueError`` for settings no loop can train with."""
    if config.epochs < 1 or config.batch_size < 1:
        raise ValueError("epochs and batch_size must be at least 1")
    if config.batchnorm and config.batch_size < 2:
        raise ValueError("batchnorm needs batch_size >= 2 (it normalises over the batch)")


class Batches:
    """The mini-batches of a run: each call of :meth:`epoch` shuffles the training split
    with a generator seeded once with ``seed`` and cuts it into batches of ``batch_size``
    sample indices (on ``device``), the last one possibly smaller.

    BatchNorm cannot normalise a batch of one sample: with ``batchnorm`` such a trailing
    batch is skipped for that epoch.
    """

    def __init__(self, samples: int, *, batch_size: int, batchnorm: bool, seed: int, device: torch.device) -> None:
        self.samples = samples
        self.batch_size = batch_size
        self.used = samples - 1 if batchnorm and samples % batch_size == 1 else samples
        self.device = device
        # Its own generator: the order depends on the seed alone, not on what else drew.
        self.shuffle = torch.Generator().manual_seed(seed)

    def epoch(self) -> tuple[torch.Tensor, ...]:
        """The next epoch's batches, in order."""
        order = torch.randperm(self.samples, generator=self.shuffle).to(self.device)
        return torch.split(order[: self.used], self.batch_size)


@dataclass(frozen=True)
class Setup:
    """What a run starts from (see :func:`set_up`)."""

    device: torch.device
    #: The data set, split with the run's seed, on ``device``.
    splits: Splits
    #: The model with its initial weights, still on the CPU.
    model: MLP
    batches: Batches


def set_up(
    config: TrainerConfig,
    *,
    data_dir: Path | str | None,
    device: str | torch.device | None,
    dropout: float | None = None,
) -> Setup:
    """Check ``config`` (:func:`check_trainable`), pick the device (``device``, else
    :func:`default_device`), then draw in a fixed order: seed PyTorch with ``config.seed``,
    split the data set, build the model. Every run with the same seed therefore starts
    from the same split and the same initial weights. ``dropout`` overrides the model's
    dropout rate (a fused group builds its layers at the largest of its members' rates).

    Raises ``ValueError`` (:class:`~trainer.data.DatasetError` included) for a config that
    cannot run or a data set that cannot be loaded.
    """
    check_trainable(config)
    resolved = torch.device(device) if device is not None else default_device()
    torch.manual_seed(config.seed)
    splits = load_dataset(config.dataset, data_dir=data_dir, seed=config.seed).to(resolved)
    model = MLP(
        splits.num_features,
        splits.num_classes,
        hidden=config.hidden,
        layers=config.layers,
        activation=config.activation,
        dropout=config.dropout if dropout is None else dropout,
        batchnorm=config.batchnorm,
        init=config.init,
    )
    batches = Batches(
        len(splits.y_train),
        batch_size=config.batch_size,
        batchnorm=config.batchnorm,
        seed=config.seed,
        device=resolved,
    )
    return Setup(device=resolved, splits=splits, model=model, batches=batches)


def accuracy_sample(splits: Splits) -> tuple[torch.Tensor, torch.Tensor]:
    """The training samples ``train_accuracy`` is measured on: the first as many as the
    validation split holds (all of them when there are fewer).

    The split shuffles with the run's seed, so these are a fixed random sample. Measured
    on as many samples as the validation accuracy, the training accuracy carries the same
    sampling noise and costs what the validation pass costs, however large the training
    split (on a large one, a pass over all of it would add a third of an epoch's work).
    """
    count = min(len(splits.y_train), len(splits.y_val))
    return splits.x_train[:count], splits.y_train[:count]


@dataclass
class TrainLoss:
    """One model's training loss, step by step: the first value, the divergence check
    against it, and the mean over the current epoch."""

    #: A step's loss above this multiple of the first step's loss ends the run.
    divergence_factor: float
    #: The loss at the first step.
    initial: float = math.nan
    #: Steps recorded, from the start of the run.
    steps: int = 0
    epoch_sum: float = 0.0
    epoch_steps: int = 0

    def new_epoch(self) -> None:
        self.epoch_sum = 0.0
        self.epoch_steps = 0

    def add(self, value: float) -> StopReason | None:
        """Record one step's loss and say whether it ends the run: ``"nan"`` when it is
        not finite, ``"diverged"`` when it exceeds ``divergence_factor`` x the first
        step's loss, else None."""
        self.steps += 1
        self.epoch_steps += 1
        self.epoch_sum += value
        if self.steps == 1:
            self.initial = value
        if not math.isfinite(value):
            return "nan"
        if value > self.divergence_factor * self.initial:
            return "diverged"
        return None

    @property
    def epoch_mean(self) -> float:
        """The mean loss over the current epoch's steps so far."""
        return self.epoch_sum / self.epoch_steps


def finish(
    reason: StopReason,
    *,
    loss: TrainLoss,
    val: tuple[float, float],
    train_accuracy: float,
    test_accuracy: float,
    epochs_run: int,
    started: float,
    curve: list[dict[str, float]],
) -> TrainResult:
    """The result of a run that ended for ``reason``: ``val`` is its last validation loss
    and accuracy, ``train_accuracy`` its last on the training split, ``started`` the
    :func:`time.perf_counter` reading when it began."""
    diverged = reason in ("diverged", "nan")
    metrics: FinalMetrics = {
        "train_loss": loss.epoch_mean,
        "train_accuracy": train_accuracy,
        "val_loss": val[0],
        "val_accuracy": val[1],
        "test_accuracy": test_accuracy,
        "initial_loss": loss.initial,
        "epochs_run": epochs_run,
        "steps": loss.steps,
        "stop_reason": reason,
        "seconds": time.perf_counter() - started,
    }
    if diverged:
        metrics["stopped_at_step"] = loss.steps
    return TrainResult(status="diverged" if diverged else "completed", metrics=metrics, curve=curve)
