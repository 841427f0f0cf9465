"""One training run of the built-in trainer: a :class:`TrainerConfig` in, a
:class:`TrainResult` out.

The loop reads top to bottom: seed, load the data, build the model and optimizer; then
per epoch shuffle, step through mini-batches (checking every step for divergence),
evaluate on the validation split and report; finally evaluate once on the test split.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NotRequired, TypedDict

import torch
import torch.nn.functional as F
from torch import nn

from hypersweep.trainer.config import TrainerConfig
from hypersweep.trainer.data import load_dataset
from hypersweep.trainer.model import MLP, decayed_weights, weight_penalty

__all__ = [
    "EpochCallback",
    "FinalMetrics",
    "StopReason",
    "TrainResult",
    "default_device",
    "evaluate",
    "make_optimizer",
    "set_threads",
    "train",
]

#: Why a run ended: all epochs ran; the loss exceeded ``divergence_factor`` x the first
#: loss; the loss became NaN or infinite; or ``on_epoch`` returned False.
StopReason = Literal["completed", "diverged", "nan", "stopped"]
#: ``on_epoch(epoch, {"train_loss", "val_loss", "val_accuracy"})``; epochs count from 1.
#: Returning False stops the run after that epoch.
EpochCallback = Callable[[int, dict[str, float]], bool]

#: Samples per forward pass when evaluating; bounds memory on large validation splits.
EVAL_BATCH = 8192


class FinalMetrics(TypedDict):
    """What a run reports when it ends. Losses may be NaN or infinite floats; turning them
    into JSON is the caller's job."""

    #: Mean training objective (cross-entropy plus L2 penalty, nats) over the last
    #: epoch's steps, the diverging step included.
    train_loss: float
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
    #: Wall time of the whole ``train`` call.
    seconds: float
    #: Only when the run diverged: the step (from 1) whose loss tripped the check.
    stopped_at_step: NotRequired[int]


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
    ``max(1, cores // share)`` intra-op threads. Returns the number set."""
    # The cores this process may run on, which a container can limit below cpu_count().
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, (cores or 1) // max(1, share))
    torch.set_num_threads(threads)
    return threads


def make_optimizer(name: str, params: Iterable[nn.Parameter], *, lr: float, momentum: float) -> torch.optim.Optimizer:
    """The optimizer called ``name`` (one of ``trainer.config.OPTIMIZERS``) at rate ``lr``.

    ``momentum`` is used by ``momentum`` and ``nesterov`` only; the others keep PyTorch's
    defaults (RMSprop alpha 0.99, Adam betas (0.9, 0.999)).
    """
    match name:
        case "sgd":
            return torch.optim.SGD(params, lr=lr)
        case "momentum":
            return torch.optim.SGD(params, lr=lr, momentum=momentum)
        case "nesterov":
            # PyTorch refuses Nesterov without momentum; with none it is plain SGD anyway.
            return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0)
        case "adagrad":
            return torch.optim.Adagrad(params, lr=lr)
        case "rmsprop":
            return torch.optim.RMSprop(params, lr=lr)
        case "adam":
            return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}")


@torch.inference_mode()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy (nats) and accuracy (fraction in [0, 1]) of ``model`` on
    ``(x, y)``, in eval mode (dropout off, BatchNorm on running statistics)."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    for start in range(0, len(y), EVAL_BATCH):
        logits = model(x[start : start + EVAL_BATCH])
        targets = y[start : start + EVAL_BATCH]
        loss_sum += F.cross_entropy(logits, targets, reduction="sum")
        correct += (logits.argmax(dim=1) == targets).sum()
    # One transfer for both numbers; dividing in Python keeps the accuracy an exact fraction.
    total_loss, total_correct = torch.stack([loss_sum, correct]).tolist()
    return total_loss / len(y), total_correct / len(y)


def check_trainable(config: TrainerConfig) -> None:
    """Raise ``ValueError`` for settings no loop can train with."""
    if config.epochs < 1 or config.batch_size < 1:
        raise ValueError("epochs and batch_size must be at least 1")
    if config.batchnorm and config.batch_size < 2:
        raise ValueError("batchnorm needs batch_size >= 2 (it normalises over the batch)")


def train(
    config: TrainerConfig,
    *,
    on_epoch: EpochCallback | None = None,
    data_dir: Path | str | None = None,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train an :class:`~trainer.model.MLP` on ``config.dataset`` and report how it went.

    The objective minimised, and the loss checked and reported as ``train_loss``, is the
    mean cross-entropy of the mini-batch plus ``reg * sum(w**2)`` over every ``Linear``
    weight matrix (biases and BatchNorm parameters are not regularised). Every step, before
    its update, the loss is checked: not finite stops the run with ``stop_reason="nan"``;
    above ``divergence_factor`` x the first step's loss stops it with ``"diverged"``.

    After each full epoch ``on_epoch(epoch, metrics)`` is called (epochs count from 1);
    returning False stops the run there. ``data_dir`` is where ``npz:`` data sets live
    (see :func:`trainer.data.load_dataset`). ``device`` defaults to CUDA when available.

    Deterministic on the CPU for a given ``config`` (``config.seed`` seeds the split, the
    initial weights, dropout and the shuffling) and thread count. Raises ``ValueError``
    (:class:`~trainer.data.DatasetError` included) for a config it cannot run.
    """
    started = time.perf_counter()
    check_trainable(config)
    device = torch.device(device) if device is not None else default_device()

    torch.manual_seed(config.seed)
    splits = load_dataset(config.dataset, data_dir=data_dir, seed=config.seed).to(device)
    model = MLP(
        splits.num_features,
        splits.num_classes,
        hidden=config.hidden,
        layers=config.layers,
        activation=config.activation,
        dropout=config.dropout,
        batchnorm=config.batchnorm,
        init=config.init,
    ).to(device)
    optimizer = make_optimizer(config.optimizer, model.parameters(), lr=config.lr, momentum=config.momentum)
    regularised = decayed_weights(model)
    shuffle = torch.Generator().manual_seed(config.seed)

    n_train = len(splits.y_train)
    batch_size = config.batch_size
    # BatchNorm cannot normalise a batch of one sample: skip such a trailing batch.
    n_used = n_train - 1 if config.batchnorm and n_train % batch_size == 1 else n_train

    curve: list[dict[str, float]] = []
    stop_reason: StopReason = "completed"
    initial_loss = math.nan
    loss_limit = math.inf
    step = 0
    epoch = 0
    train_loss = val_loss = val_accuracy = math.nan
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(n_train, generator=shuffle).to(device)
        loss_sum = 0.0
        epoch_steps = 0
        for start in range(0, n_used, batch_size):
            batch = order[start : start + batch_size]
            logits = model(splits.x_train[batch])
            loss = F.cross_entropy(logits, splits.y_train[batch])
            if config.reg > 0:
                loss = loss + config.reg * weight_penalty(regularised)

            # The one host sync per step: divergence must be caught at the step it happens.
            loss_value = loss.item()
            step += 1
            epoch_steps += 1
            loss_sum += loss_value
            if step == 1:
                initial_loss = loss_value
                loss_limit = config.divergence_factor * initial_loss
            if not math.isfinite(loss_value):
                stop_reason = "nan"
                break
            if loss_value > loss_limit:
                stop_reason = "diverged"
                break

            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()

        train_loss = loss_sum / epoch_steps
        val_loss, val_accuracy = evaluate(model, splits.x_val, splits.y_val)
        if stop_reason != "completed":
            break
        point = {"train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy}
        curve.append({"epoch": epoch, **point})
        if on_epoch is not None and on_epoch(epoch, point) is False:
            stop_reason = "stopped"
            break

    # The test split is looked at once, at the very end, and never steers the run.
    _, test_accuracy = evaluate(model, splits.x_test, splits.y_test)
    diverged = stop_reason in ("diverged", "nan")
    metrics: FinalMetrics = {
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
        "test_accuracy": test_accuracy,
        "initial_loss": initial_loss,
        "epochs_run": epoch,
        "steps": step,
        "stop_reason": stop_reason,
        "seconds": time.perf_counter() - started,
    }
    if diverged:
        metrics["stopped_at_step"] = step
    return TrainResult(status="diverged" if diverged else "completed", metrics=metrics, curve=curve)
