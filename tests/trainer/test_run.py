"""trainer.run: the set-up, mini-batches, divergence check and result that ``train`` and
``train_fused`` share."""

from __future__ import annotations

import math

import pytest
import torch

from hypersweep.trainer import TrainerConfig, set_threads
from hypersweep.trainer.run import Batches, TrainLoss, finish, set_up

CPU = torch.device("cpu")


def test_set_threads_divides_the_cores_between_processes() -> None:
    before = torch.get_num_threads()
    try:
        assert set_threads(10_000) == 1 and torch.get_num_threads() == 1
        assert set_threads(1) >= 1
    finally:
        torch.set_num_threads(before)


def test_batches_cover_the_training_split_once_per_epoch_in_a_seeded_order() -> None:
    batches = Batches(10, batch_size=4, batchnorm=False, seed=3, device=CPU)
    again = Batches(10, batch_size=4, batchnorm=False, seed=3, device=CPU)

    first, second = batches.epoch(), batches.epoch()

    assert [len(batch) for batch in first] == [4, 4, 2]
    assert sorted(torch.cat(first).tolist()) == list(range(10))
    assert not torch.equal(torch.cat(first), torch.cat(second))
    assert all(torch.equal(a, b) for a, b in zip(first, again.epoch(), strict=True))


def test_a_one_sample_trailing_batch_is_skipped_only_with_batchnorm() -> None:
    assert [len(batch) for batch in Batches(9, batch_size=4, batchnorm=True, seed=0, device=CPU).epoch()] == [4, 4]
    assert [len(batch) for batch in Batches(9, batch_size=4, batchnorm=False, seed=0, device=CPU).epoch()] == [4, 4, 1]
    assert [len(batch) for batch in Batches(10, batch_size=4, batchnorm=True, seed=0, device=CPU).epoch()] == [4, 4, 2]


def test_train_loss_stops_above_the_factor_times_the_first_loss_or_when_not_finite() -> None:
    loss = TrainLoss(divergence_factor=3.0)
    assert loss.add(2.0) is None
    assert loss.add(6.0) is None  # equal to the limit is still fine
    assert loss.add(6.5) == "diverged"
    assert (loss.initial, loss.steps, loss.epoch_mean) == (2.0, 3, 14.5 / 3)
    loss.new_epoch()
    assert loss.add(1.0) is None and loss.epoch_mean == 1.0 and loss.steps == 4
    assert TrainLoss(divergence_factor=3.0).add(math.nan) == "nan"
    assert loss.add(math.inf) == "nan"


def test_finish_reports_a_diverged_run_with_the_step_that_stopped_it() -> None:
    loss = TrainLoss(divergence_factor=3.0)
    for value in (1.0, 2.0, 4.0):
        loss.add(value)

    diverged = finish(
        "diverged",
        loss=loss,
        val=(0.5, 0.75),
        train_accuracy=0.8,
        test_accuracy=0.7,
        epochs_run=1,
        started=0.0,
        curve=[],
    )
    stopped = finish(
        "stopped",
        loss=loss,
        val=(0.5, 0.75),
        train_accuracy=0.8,
        test_accuracy=0.7,
        epochs_run=1,
        started=0.0,
        curve=[],
    )

    assert diverged.status == "diverged" and diverged.metrics["stopped_at_step"] == 3
    assert diverged.metrics["train_loss"] == 7.0 / 3 and diverged.metrics["initial_loss"] == 1.0
    assert stopped.status == "completed" and "stopped_at_step" not in stopped.metrics


def test_set_up_with_one_seed_gives_the_same_split_and_initial_weights() -> None:
    config = TrainerConfig(dataset="spiral", hidden=8, seed=5)
    one = set_up(config, data_dir=None, device="cpu")
    two = set_up(config, data_dir=None, device="cpu", dropout=0.5)
    other = set_up(TrainerConfig(dataset="spiral", hidden=8, seed=6), data_dir=None, device="cpu")

    assert torch.equal(one.splits.x_train, two.splits.x_train)
    assert all(torch.equal(a, b) for a, b in zip(one.model.parameters(), two.model.parameters(), strict=True))
    assert not torch.equal(next(one.model.parameters()), next(other.model.parameters()))
    assert any(isinstance(module, torch.nn.Dropout) for module in two.model.modules())
    assert not any(isinstance(module, torch.nn.Dropout) for module in one.model.modules())


def test_set_up_refuses_batchnorm_with_batches_of_one() -> None:
    with pytest.raises(ValueError, match="batchnorm needs batch_size >= 2"):
        set_up(TrainerConfig(batchnorm=True, batch_size=1), data_dir=None, device="cpu")
