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

from hypersweep.trainer.checkpoint import load_checkpoint, save_checkpoint
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
    checkpoint_dir: Path | str | None = None,
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

    With ``checkpoint_dir`` the run saves its state there after every epoch it completes
    (``trainer.checkpoint``) and, when it finds a checkpoint saved with the same config,
    goes on from the epoch after it: it first passes the checkpoint's curve to
    ``on_epoch`` again (whoever keeps the curve gets it whole), then trains the remaining
    epochs; the final metrics then carry ``resumed_from_epoch``. A resumed run ends as
    the run would have had it never stopped (on the CPU, with the same thread count).

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
    epochs = range(1, config.epochs + 1)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    saved = load_checkpoint(folder, config) if folder is not None else None
    if saved is not None:
        # Go on after the saved epoch; its curve is told again first.
        saved.restore(model=model, optimizer=optimizer, batches=setup.batches, train_loss=train_loss)
        curve, epoch, (val_loss, val_accuracy) = saved.curve, saved.epoch, saved.val
        train_accuracy = float(curve[-1].get("train_accuracy", math.nan)) if curve else math.nan
        epochs = range(epoch + 1, config.epochs + 1)
        answers = [on_epoch(int(p["epoch"]), _without_epoch(p)) for p in curve] if on_epoch is not None else []
        if False in answers:
            stop_reason, epochs = "stopped", range(0)
    for epoch in epochs:
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
        if folder is not None:
            save_checkpoint(
                folder,
                config=config,
                epoch=epoch,
                model=model,
                optimizer=optimizer,
                batches=setup.batches,
                train_loss=train_loss,
                curve=curve,
                val=(val_loss, val_accuracy),
            )
        if on_epoch is not None and on_epoch(epoch, point) is False:
            stop_reason = "stopped"
            break

    # The test split is looked at once, at the very end, and never steers the run.
    _, test_accuracy = evaluate(model, splits.x_test, splits.y_test)
    result = finish(
        stop_reason,
        loss=train_loss,
        val=(val_loss, val_accuracy),
        train_accuracy=train_accuracy,
        test_accuracy=test_accuracy,
        epochs_run=epoch,
        started=started,
        curve=curve,
    )
    if saved is not None:
        result.metrics["resumed_from_epoch"] = saved.epoch
    return result


def _without_epoch(point: dict[str, float]) -> dict[str, float]:
    return {name: value for name, value in point.items() if name != "epoch"}
