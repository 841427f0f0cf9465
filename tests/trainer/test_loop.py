"""trainer.loop: learning, per-step divergence and NaN stops, the epoch callback,
determinism, regularisation, and every optimizer, activation and init."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from hypersweep.trainer import ACTIVATIONS, INITS, OPTIMIZERS, TrainerConfig, load_dataset, loop, train
from hypersweep.trainer.model import MLP, decayed_weights, weight_penalty

#: Steps in one digits epoch at batch size 64: 1077 training samples.
DIGITS_STEPS_PER_EPOCH = math.ceil(1077 / 64)
FINAL_KEYS = {
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "test_accuracy",
    "initial_loss",
    "epochs_run",
    "steps",
    "stop_reason",
    "seconds",
}


def small(**settings: Any) -> TrainerConfig:
    """A quick config on digits: a narrow network, one epoch unless told otherwise."""
    return TrainerConfig(**{"hidden": 32, "epochs": 1, **settings})


def test_sane_config_learns_digits_in_a_few_epochs() -> None:
    result = train(small(optimizer="momentum", lr=0.05, epochs=3))

    assert result.status == "completed"
    assert set(result.metrics) == FINAL_KEYS
    assert result.metrics["stop_reason"] == "completed"
    assert result.metrics["epochs_run"] == 3
    assert result.metrics["steps"] == 3 * DIGITS_STEPS_PER_EPOCH
    assert result.metrics["val_accuracy"] > 0.9
    assert 0.8 < result.metrics["test_accuracy"] <= 1.0
    assert result.metrics["train_loss"] < result.metrics["initial_loss"]
    assert [point["epoch"] for point in result.curve] == [1, 2, 3]
    assert result.curve[-1]["val_accuracy"] == result.metrics["val_accuracy"]


def test_huge_learning_rate_diverges_within_the_first_epoch() -> None:
    epochs_seen: list[int] = []

    def on_epoch(epoch: int, metrics: dict[str, float]) -> bool:
        epochs_seen.append(epoch)
        return True

    result = train(small(optimizer="sgd", lr=100.0, epochs=3), on_epoch=on_epoch)

    assert result.status == "diverged"
    assert result.metrics["stop_reason"] in ("diverged", "nan")
    assert result.metrics["epochs_run"] == 1
    # Caught at the step it happened, not at the end of the epoch.
    assert result.metrics["stopped_at_step"] == result.metrics["steps"]
    assert result.metrics["steps"] < DIGITS_STEPS_PER_EPOCH
    assert epochs_seen == [] and result.curve == []


def test_nan_loss_stops_the_run_as_nan() -> None:
    # lr=1e30 overflows the weights after one update; the next loss is a real NaN.
    result = train(small(optimizer="sgd", lr=1e30, epochs=2))

    assert result.status == "diverged"
    assert result.metrics["stop_reason"] == "nan"
    assert result.metrics["epochs_run"] == 1
    assert result.metrics["stopped_at_step"] == 2
    assert math.isfinite(result.metrics["initial_loss"])
    train_loss = result.metrics["train_loss"]
    assert isinstance(train_loss, float) and math.isnan(train_loss)


def test_loss_above_divergence_factor_times_initial_loss_stops_the_run() -> None:
    # Plain SGD at lr 5 overshoots: its loss climbs past 3x the first loss, but not 100x.
    tolerant = train(small(lr=5.0, divergence_factor=100.0))
    strict = train(small(lr=5.0, divergence_factor=3.0))

    assert tolerant.metrics["stop_reason"] == "completed"
    assert strict.metrics["stop_reason"] == "diverged"
    assert strict.status == "diverged"
    assert 1 < strict.metrics["stopped_at_step"] < DIGITS_STEPS_PER_EPOCH
    assert math.isfinite(strict.metrics["train_loss"])


def test_on_epoch_gets_each_epochs_metrics_and_false_stops_the_run() -> None:
    calls: list[tuple[int, dict[str, float]]] = []

    def on_epoch(epoch: int, metrics: dict[str, float]) -> bool:
        calls.append((epoch, dict(metrics)))
        return epoch < 2

    result = train(small(epochs=5), on_epoch=on_epoch)

    assert [epoch for epoch, _ in calls] == [1, 2]
    assert set(calls[0][1]) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    assert result.status == "completed"
    assert result.metrics["stop_reason"] == "stopped"
    assert result.metrics["epochs_run"] == 2
    assert [{"epoch": e, **m} for e, m in calls] == result.curve


def test_same_seed_same_curve_other_seed_other_curve() -> None:
    config = small(epochs=2, dropout=0.2, optimizer="adam", lr=1e-3)
    first, again = train(config), train(config)
    other = train(small(epochs=2, dropout=0.2, optimizer="adam", lr=1e-3, seed=1))

    assert first.curve == again.curve
    assert first.metrics["test_accuracy"] == again.metrics["test_accuracy"]
    assert other.curve != first.curve


def test_reg_adds_reg_times_squared_weights_to_the_loss() -> None:
    reg = 0.01
    plain = train(small(reg=0.0))
    regularised = train(small(reg=reg))

    torch.manual_seed(0)  # the weights train() starts from with seed 0
    model = MLP(64, 10, hidden=32, layers=2)
    penalty = weight_penalty(decayed_weights(model)).item()
    added = float(regularised.metrics["initial_loss"]) - float(plain.metrics["initial_loss"])
    assert added == pytest.approx(reg * penalty, rel=1e-4)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_trains_an_epoch(optimizer: str) -> None:
    result = train(small(optimizer=optimizer))
    assert result.metrics["stop_reason"] == "completed"
    assert result.metrics["val_loss"] < result.metrics["initial_loss"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("init", INITS)
def test_every_activation_and_init_trains_an_epoch(activation: str, init: str) -> None:
    result = train(small(activation=activation, init=init, lr=0.05))
    assert result.metrics["stop_reason"] == "completed"
    assert result.metrics["val_loss"] < result.metrics["initial_loss"]


def test_batchnorm_and_dropout_train_even_with_a_one_sample_last_batch() -> None:
    # 1077 training samples = 4 x 269 + 1: the last batch would hold a single sample.
    result = train(small(batchnorm=True, dropout=0.3, batch_size=269, lr=0.1, epochs=2))
    assert result.metrics["stop_reason"] == "completed"
    assert result.metrics["steps"] == 2 * 4


def test_spiral_trains_on_an_explicit_cpu_device() -> None:
    result = train(small(dataset="spiral", optimizer="adam", lr=0.01, epochs=2), device="cpu")
    assert result.metrics["stop_reason"] == "completed"
    assert result.metrics["val_loss"] < result.metrics["initial_loss"]


def test_train_accuracy_is_measured_in_eval_mode_on_a_fixed_training_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    evaluated: list[tuple[torch.Tensor, bool, float]] = []  # (inputs, dropout active, accuracy)
    real = loop.evaluate

    def spy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        loss, accuracy = real(model, x, y)
        dropout = next(module for module in model.modules() if isinstance(module, torch.nn.Dropout))
        evaluated.append((x, dropout.training, accuracy))
        return loss, accuracy

    monkeypatch.setattr("hypersweep.trainer.loop.evaluate", spy)
    result = train(small(optimizer="momentum", lr=0.05, epochs=2, dropout=0.5))

    splits = load_dataset("digits", seed=0)
    # As many training samples as the validation split holds, the same ones every epoch.
    sample = splits.x_train[: len(splits.y_val)]
    on_train = [accuracy for x, _, accuracy in evaluated if x.shape == sample.shape and torch.equal(x, sample)]
    assert [point["train_accuracy"] for point in result.curve] == on_train
    assert result.metrics["train_accuracy"] == on_train[-1]
    assert not any(training for _, training, _ in evaluated)
    assert 0.7 < result.metrics["train_accuracy"] <= 1.0


def test_each_epoch_trains_at_the_rate_its_schedule_gives() -> None:
    # An exponential decay by 1e-9 leaves the second epoch a rate too small to move the
    # weights: its evaluation repeats the first's. Without decay the second epoch learns.
    decayed = train(small(lr=0.05, epochs=2, lr_schedule="exponential", lr_gamma=1e-9))
    constant = train(small(lr=0.05, epochs=2))

    assert decayed.curve[0] == {**constant.curve[0], "epoch": 1}
    assert decayed.curve[1]["val_loss"] == pytest.approx(decayed.curve[0]["val_loss"], rel=1e-6)
    assert constant.curve[1]["val_loss"] < constant.curve[0]["val_loss"] * 0.95
