"""trainer.checkpoint through trainer.loop.train: a run stopped after an epoch and started
again on its checkpoint folder goes on from there and ends as an uninterrupted run does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hypersweep.trainer import TrainerConfig, train
from hypersweep.trainer.checkpoint import CHECKPOINT_FILE, load_checkpoint

#: Everything that draws at random between epochs: dropout masks, the shuffle, momentum.
CONFIG = TrainerConfig(hidden=32, epochs=4, optimizer="adam", lr=3e-3, dropout=0.3, batchnorm=True, batch_size=128)


def comparable(metrics: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in metrics.items() if name not in ("seconds", "resumed_from_epoch")}


def test_a_run_resumed_from_its_checkpoint_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = train(CONFIG)

    seen: list[int] = []

    def stop_after_two(epoch: int, metrics: dict[str, float]) -> bool:
        seen.append(epoch)
        return epoch < 2

    first = train(CONFIG, on_epoch=stop_after_two, checkpoint_dir=tmp_path)
    assert first.metrics["stop_reason"] == "stopped"
    saved = load_checkpoint(tmp_path, CONFIG)
    assert saved is not None and saved.epoch == 2

    told: list[tuple[int, dict[str, float]]] = []

    def record(epoch: int, metrics: dict[str, float]) -> bool:
        told.append((epoch, metrics))
        return True

    resumed = train(CONFIG, on_epoch=record, checkpoint_dir=tmp_path)
    # The saved epochs are told again first, then the run goes on from epoch 3.
    assert [epoch for epoch, _ in told] == [1, 2, 3, 4]
    assert [metrics for _, metrics in told[:2]] == [
        {name: value for name, value in point.items() if name != "epoch"} for point in first.curve
    ]
    assert resumed.metrics["resumed_from_epoch"] == 2
    assert resumed.curve == whole.curve
    assert comparable(dict(resumed.metrics)) == comparable(dict(whole.metrics))
    last = load_checkpoint(tmp_path, CONFIG)
    assert last is not None and last.epoch == 4


def test_a_checkpoint_of_other_settings_is_ignored_and_replaced(tmp_path: Path) -> None:
    train(TrainerConfig(hidden=32, epochs=1, lr=0.05), checkpoint_dir=tmp_path)
    other = TrainerConfig(hidden=32, epochs=2, lr=0.01)
    assert load_checkpoint(tmp_path, other) is None
    result = train(other, checkpoint_dir=tmp_path)
    assert "resumed_from_epoch" not in result.metrics
    assert result.metrics["epochs_run"] == 2
    saved = load_checkpoint(tmp_path, other)
    assert saved is not None and saved.epoch == 2


def test_an_unreadable_checkpoint_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    result = train(TrainerConfig(hidden=32, epochs=1), checkpoint_dir=tmp_path)
    assert result.metrics["epochs_run"] == 1 and "resumed_from_epoch" not in result.metrics
    assert "cannot be read" in caplog.text


def test_a_diverged_epoch_is_not_saved(tmp_path: Path) -> None:
    result = train(TrainerConfig(hidden=32, epochs=3, lr=100.0), checkpoint_dir=tmp_path)
    assert result.status == "diverged"
    assert not (tmp_path / CHECKPOINT_FILE).exists()
