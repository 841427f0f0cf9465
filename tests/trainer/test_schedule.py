"""trainer.schedule: each learning-rate schedule gives, epoch by epoch, the rate that the
matching ``torch.optim.lr_scheduler`` gives when it steps once per epoch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler

from hypersweep.trainer.config import LR_SCHEDULES, TrainerConfig
from hypersweep.trainer.schedule import epoch_lr

EPOCHS = 12
LR = 0.3

SchedulerFactory = Callable[[torch.optim.Optimizer], lr_scheduler.LRScheduler]

#: (settings, the torch scheduler that should agree with them)
CASES: dict[str, tuple[dict[str, Any], SchedulerFactory]] = {
    "constant": ({}, lambda opt: lr_scheduler.LambdaLR(opt, lambda t: 1.0)),
    "step": (
        {"lr_schedule": "step", "lr_step_epochs": 3, "lr_gamma": 0.1},
        lambda opt: lr_scheduler.StepLR(opt, step_size=3, gamma=0.1),
    ),
    "step_uneven": (
        {"lr_schedule": "step", "lr_step_epochs": 5, "lr_gamma": 0.5},
        lambda opt: lr_scheduler.StepLR(opt, step_size=5, gamma=0.5),
    ),
    "exponential": (
        {"lr_schedule": "exponential", "lr_gamma": 0.7},
        lambda opt: lr_scheduler.ExponentialLR(opt, gamma=0.7),
    ),
    "inverse_time": (
        {"lr_schedule": "inverse_time", "lr_gamma": 2.5},
        lambda opt: lr_scheduler.LambdaLR(opt, lambda t: 1 / (1 + 2.5 * t)),
    ),
    "cosine": (
        {"lr_schedule": "cosine"},
        lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS, eta_min=0.0),
    ),
}


def test_every_schedule_has_a_case() -> None:
    assert {settings.get("lr_schedule", "constant") for settings, _ in CASES.values()} == set(LR_SCHEDULES)


@pytest.mark.parametrize("case", CASES)
def test_schedule_matches_torch_lr_scheduler_epoch_by_epoch(case: str) -> None:
    settings, make_scheduler = CASES[case]
    config = TrainerConfig(lr=LR, epochs=EPOCHS, **settings)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    scheduler = make_scheduler(optimizer)

    torch_rates, ours = [], []
    for epoch in range(1, EPOCHS + 1):
        # The torch way: train the epoch at the group's rate, then step the scheduler.
        torch_rates.append(optimizer.param_groups[0]["lr"])
        ours.append(epoch_lr(config, epoch))
        optimizer.step()
        scheduler.step()

    assert ours == pytest.approx(torch_rates, rel=1e-12, abs=0.0)
    if case != "constant":
        # Each one decays, and starts at lr.
        assert ours[0] == LR and ours[-1] < LR


def test_cosine_anneals_over_the_runs_own_epochs() -> None:
    short = [epoch_lr(TrainerConfig(lr=1.0, epochs=4, lr_schedule="cosine"), e) for e in range(1, 5)]
    assert short == pytest.approx([1.0, (1 + 2**-0.5) / 2, 0.5, (1 - 2**-0.5) / 2])


def test_step_without_lr_step_epochs_or_a_growing_gamma_is_refused() -> None:
    with pytest.raises(ValueError, match="needs lr_step_epochs"):
        TrainerConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="between 0 and 1"):
        TrainerConfig(lr_schedule="exponential", lr_gamma=1.5)
    # inverse_time's lr_gamma is a rate of decay, not a factor: any positive value.
    assert epoch_lr(TrainerConfig(lr_schedule="inverse_time", lr_gamma=4.0), 2) == pytest.approx(0.01 / 5)
