"""The sanity checks with the built-in trainer (``trainer.sanity``): each passes on the
trainer as it is and fails on a set-up broken for it."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from hypersweep.sanity import REG
from hypersweep.trainer.config import TrainerConfig
from hypersweep.trainer.sanity import check_builtin, initial_loss, overfit

SETTINGS: dict[str, Any] = TrainerConfig().as_dict()


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Small tensors: more threads only contend for the cores.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Scaled(nn.Module):
    """A model whose output is multiplied by ``factor``."""

    def __init__(self, model: nn.Module, factor: float) -> None:
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(x) * self.factor
        return out


def test_the_built_in_trainer_passes_every_check() -> None:
    results = {r.name: r for r in check_builtin(SETTINGS)}
    assert all(r.passed for r in results.values()), results
    # digits has ten classes: the initial loss is about ln 10.
    assert results["initial_loss"].expected_value == math.log(10)
    assert abs((results["initial_loss"].measured or 0) - math.log(10)) < 0.1
    assert results["overfit"].measured == 1.0


def test_a_model_whose_output_is_scaled_up_fails_the_initial_loss_check() -> None:
    results = {r.name: r for r in check_builtin(SETTINGS, hook=lambda model: Scaled(model, 1000.0))}
    assert not results["initial_loss"].passed
    assert (results["initial_loss"].measured or 0) > 1.2 * math.log(10)


def test_the_regularization_check_measures_the_penalty() -> None:
    loss, classes = initial_loss(SETTINGS, reg=0.0)
    with_reg, _ = initial_loss(SETTINGS, reg=REG)
    assert classes == 10 and with_reg > loss


def test_a_learning_rate_of_zero_fails_the_overfitting_check() -> None:
    assert overfit(SETTINGS, lr=0.0) < 1.0
    [*_, fit] = check_builtin({**SETTINGS, "lr": 0.0})
    assert fit.name == "overfit" and not fit.passed
    assert "at lr 0 " in fit.detail
