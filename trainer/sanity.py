"""The sanity checks measured with the built-in trainer (see ``hypersweep.sanity`` for
what each check asks and how it is judged).

Every check starts from the run's own set-up (the same seed, so the same split and the
same initial weights as a trial with these settings): the initial loss is the mean
cross-entropy over the training split before any step, plus ``reg * sum(w**2)`` as in
training; the overfitting run trains on the first ``subset`` training examples, one full
batch per step, with no regularisation and no dropout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hypersweep.sanity import (
    REG,
    STEPS,
    SUBSET,
    CheckResult,
    judge_initial_loss,
    judge_overfit,
    judge_regularization,
)
from hypersweep.trainer.config import TrainerConfig
from hypersweep.trainer.loop import make_optimizer
from hypersweep.trainer.model import decayed_weights, weight_penalty
from hypersweep.trainer.run import set_up

__all__ = ["SANITY_KEYS", "check_builtin", "initial_loss", "overfit"]

#: Settings of a check's run that are not the trainer's.
SANITY_KEYS = ("sanity", "subset", "steps")
#: What a test may wrap the freshly built model in (to break it on purpose).
ModelHook = Callable[[nn.Module], nn.Module]


def _config(settings: Mapping[str, Any], **overrides: Any) -> TrainerConfig:
    plain = {k: v for k, v in settings.items() if k not in SANITY_KEYS}
    return TrainerConfig.from_settings({**plain, **overrides})


def initial_loss(
    settings: Mapping[str, Any],
    *,
    reg: float,
    data_dir: Path | str | None = None,
    device: str | torch.device | None = None,
    hook: ModelHook | None = None,
) -> tuple[float, int]:
    """The training objective at initialisation with regularisation ``reg``, over the
    whole training split (dropout off), and the number of classes."""
    config = _config(settings, reg=reg)
    setup = set_up(config, data_dir=data_dir, device=device)
    model = setup.model if hook is None else hook(setup.model)
    model = model.to(setup.device).eval()
    with torch.no_grad():
        loss = F.cross_entropy(model(setup.splits.x_train), setup.splits.y_train)
        if reg > 0:
            loss = loss + reg * weight_penalty(decayed_weights(model))
    return float(loss.item()), setup.splits.num_classes


def overfit(
    settings: Mapping[str, Any],
    *,
    lr: float | None = None,
    subset: int = SUBSET,
    steps: int = STEPS,
    data_dir: Path | str | None = None,
    device: str | torch.device | None = None,
    hook: ModelHook | None = None,
) -> float:
    """Training accuracy on the first ``subset`` training examples after ``steps`` full-batch
    steps at ``lr`` (the settings' own rate when ``None``), with ``reg`` and dropout off.
    Stops early once every example is classified right."""
    overrides: dict[str, Any] = {"reg": 0.0, "dropout": 0.0}
    if lr is not None:
        overrides["lr"] = lr
    config = _config(settings, **overrides)
    setup = set_up(config, data_dir=data_dir, device=device)
    model = setup.model if hook is None else hook(setup.model)
    model = model.to(setup.device)
    x, y = setup.splits.x_train[:subset], setup.splits.y_train[:subset]
    # A learning rate of 0 is what a broken set-up looks like; PyTorch refuses it only when negative.
    optimizer = make_optimizer(config.optimizer, model.parameters(), lr=config.lr, momentum=config.momentum)
    accuracy = 0.0
    for _ in range(steps):
        model.train()
        loss = F.cross_entropy(model(x), y)
        if not torch.isfinite(loss):
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        accuracy = _accuracy(model, x, y)
        if accuracy >= 1.0:
            break
    return accuracy


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return float((model(x).argmax(dim=1) == y).float().mean().item())


def check_builtin(
    settings: Mapping[str, Any],
    *,
    lrs: list[float | None] | None = None,
    data_dir: Path | str | None = None,
    device: str | torch.device | None = None,
    hook: ModelHook | None = None,
) -> list[CheckResult]:
    """The three checks with the built-in trainer and ``settings`` (a trial's resolved
    settings). The overfitting check tries each of ``lrs`` in turn (see
    ``hypersweep.sanity.lr_candidates``) and keeps the first that fits, else the last."""
    loss, classes = initial_loss(settings, reg=0.0, data_dir=data_dir, device=device, hook=hook)
    loss_reg, _ = initial_loss(settings, reg=REG, data_dir=data_dir, device=device, hook=hook)
    results = [judge_initial_loss(loss, classes), judge_regularization(loss, loss_reg)]
    fit = None
    for lr in lrs or [None]:
        accuracy = overfit(settings, lr=lr, data_dir=data_dir, device=device, hook=hook)
        fit = judge_overfit(accuracy, lr=lr if lr is not None else _config(settings).lr)
        if fit.passed:
            break
    assert fit is not None
    return [*results, fit]
