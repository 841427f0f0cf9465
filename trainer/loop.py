"""One training run of the built-in trainer: a :class:`TrainerConfig` in, a
:class:`TrainResult` out.

The loop reads top to bottom: set up (seed, data, model), build the optimizer; then per
epoch set the epoch's learning rate, shuffle, step through mini-batches (checking every
step for divergence), evaluate on the training and validation splits and report; finally
evaluate once on the test split.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hypersweep.trainer.config import TrainerConfig
from hypersweep.trainer.model import decayed_weights, weight_penalty
from hypersweep.trainer.run import (
    EpochCallback,
    StopReason,
    TrainLoss,
    TrainResult,
    accuracy_sample,
    finish,
    set_up,
)
from hypersweep.trainer.schedule import epoch_lr

__all__ = ["EVAL_BATCH", "evaluate", "make_optimizer", "train"]

#: Samples per forward pass when evaluating; bounds memory on large validation splits.
EVAL_BATCH = 8192


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
    weight matrix (biases, BatchNorm and PReLU parameters are not regularised). Every
    step, before its update, the loss is checked: not finite stops the run with
    ``stop_reason="nan"``; above ``divergence_factor`` x the first step's loss stops it
    with ``"diverged"``. Each epoch trains at the rate ``config.lr_schedule`` gives it
    (:func:`trainer.schedule.epoch_lr`), set before its first step.

    At each epoch's end the model is evaluated, in eval mode, on a fixed sample of the
    training split as large as the validation split (``train_accuracy``, see
    :func:`trainer.run.accuracy_sample`) and on the validation split (``val_loss``,
    ``val_accuracy``).

    After each full epoch ``on_epoch(epoch, metrics)`` is called (epochs count from 1);
    returning False stops the run there. ``data_dir`` is where ``npz:`` data sets live
    (see :func:`trainer.data.load_dataset`). ``device`` defaults to CUDA when available.

    Deterministic on the CPU for a given ``config`` (``config.seed`` seeds the split, the
    initial weights, dropout and the shuffling) and thread count. Raises ``ValueError``
    (:class:`~trainer.data.DatasetError` included) for a config it cannot run.
    """
    started = time.perf_counter()
    setup = set_up(config, data_dir=data_dir, device=device)
    splits = setup.splits
    model = setup.model.to(setup.device)
    optimizer = make_optimizer(config.optimizer, model.parameters(), lr=config.lr, momentum=config.momentum)
    regularised = decayed_weights(model)
    x_fit, y_fit = accuracy_sample(splits)
    train_loss = TrainLoss(config.divergence_factor)

    curve: list[dict[str, float]] = []
    stop_reason: StopReason = "completed"
    val_loss = val_accuracy = train_accuracy = math.nan
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        for group in optimizer.param_groups:
            group["lr"] = epoch_lr(config, epoch)
        model.train()
        train_loss.new_epoch()
        for batch in setup.batches.epoch():
            logits = model(splits.x_train[batch])
            loss = F.cross_entropy(logits, splits.y_train[batch])
            if config.reg > 0:
                loss = loss + config.reg * weight_penalty(regularised)

            # The one host sync per step: divergence must be caught at the step it happens.
            ending = train_loss.add(loss.item())
            if ending is not None:
                stop_reason = ending
                break

            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()

        # In eval mode, like the validation split, so that the two accuracies differ by
        # what the model learnt of its training data, not by dropout or batch statistics.
        _, train_accuracy = evaluate(model, x_fit, y_fit)
        val_loss, val_accuracy = evaluate(model, splits.x_val, splits.y_val)
        if stop_reason != "completed":
            break
        point = {
            "train_loss": train_loss.epoch_mean,
            "train_accuracy": train_accuracy,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        curve.append({"epoch": epoch, **point})
        if on_epoch is not None and on_epoch(epoch, point) is False:
            stop_reason = "stopped"
            break

    # The test split is looked at once, at the very end, and never steers the run.
    _, test_accuracy = evaluate(model, splits.x_test, splits.y_test)
    return finish(
        stop_reason,
        loss=train_loss,
        val=(val_loss, val_accuracy),
        train_accuracy=train_accuracy,
        test_accuracy=test_accuracy,
        epochs_run=epoch,
        started=started,
        curve=curve,
    )
