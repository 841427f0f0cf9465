"""trainer.data: sources, the seeded stratified split, train-only standardisation, and
the data directory boundary for npz files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from hypersweep.trainer.data import DATA_DIR_ENV, DatasetError, Splits, load_dataset

DIGITS_SAMPLES = 1797


def _ids_of(splits: Splits, part: str) -> set[int]:
    """The raw first feature of every sample in one split: an id, for the npz made below."""
    x = getattr(splits, f"x_{part}")
    raw = x[:, 0] * splits.std[0] + splits.mean[0]
    return {round(value) for value in raw.tolist()}


def _write_npz(path: Path, *, samples: int = 300, classes: int = 3, seed: int = 0) -> np.ndarray:
    """An npz whose first feature is a unique id (0..samples-1) and whose other features
    have mean 5 and standard deviation 3; returns the raw x."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.arange(samples), rng.normal(5.0, 3.0, (samples, 3))])
    y = np.arange(samples) % classes
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)
    return x


def test_digits_split_is_60_20_20_stratified_and_typed() -> None:
    splits = load_dataset("digits")

    sizes = (len(splits.y_train), len(splits.y_val), len(splits.y_test))
    assert sum(sizes) == DIGITS_SAMPLES
    assert sizes == (1077, 360, 360)
    assert splits.num_features == 64 and splits.num_classes == 10
    assert splits.x_train.dtype == torch.float32 and splits.y_train.dtype == torch.int64

    every = torch.cat([splits.y_train, splits.y_val, splits.y_test]).bincount()
    for labels, size in zip((splits.y_train, splits.y_val, splits.y_test), sizes, strict=True):
        expected = every.double() * size / DIGITS_SAMPLES
        assert (labels.bincount(minlength=10) - expected).abs().max() <= 1.0


def test_splits_share_no_samples_and_cover_them_all(tmp_path: Path) -> None:
    _write_npz(tmp_path / "ids.npz")
    splits = load_dataset("npz:ids.npz", data_dir=tmp_path)

    train, val, test = (_ids_of(splits, part) for part in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test
    assert train | val | test == set(range(300))


def test_standardisation_uses_training_statistics_only(tmp_path: Path) -> None:
    raw = _write_npz(tmp_path / "ids.npz")
    splits = load_dataset("npz:ids.npz", data_dir=tmp_path)

    train_rows = raw[sorted(_ids_of(splits, "train"))]
    np.testing.assert_allclose(splits.mean.numpy(), train_rows.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(splits.std.numpy(), train_rows.std(axis=0), rtol=1e-5)
    assert splits.x_train.mean(dim=0).abs().max() < 1e-4
    assert (splits.x_train.std(dim=0, unbiased=False) - 1).abs().max() < 1e-4
    # Validation is shifted by the training statistics, so it is not exactly centred.
    val_rows = raw[sorted(_ids_of(splits, "val"))]
    expected_val = (val_rows - train_rows.mean(axis=0)) / train_rows.std(axis=0)
    order = splits.x_val[:, 0].argsort()
    np.testing.assert_allclose(splits.x_val[order].numpy(), expected_val, atol=1e-4)
    assert splits.x_val.mean(dim=0).abs().max() > 1e-3


def test_constant_features_are_centred_not_divided_by_zero() -> None:
    splits = load_dataset("digits")
    for x in (splits.x_train, splits.x_val, splits.x_test):
        assert torch.isfinite(x).all()
    assert (splits.std == 1.0).any()  # digits has pixels that are blank in every image


def test_same_seed_same_split_other_seed_other_split() -> None:
    first, again, other = (load_dataset("digits", seed=s) for s in (0, 0, 1))
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_val, again.y_val)
    assert not torch.equal(first.x_train, other.x_train)


def test_spiral_is_three_classes_in_two_dimensions_and_fixed() -> None:
    splits = load_dataset("spiral")
    assert splits.num_features == 2 and splits.num_classes == 3
    assert len(splits.y_train) + len(splits.y_val) + len(splits.y_test) == 300
    assert torch.equal(splits.x_test, load_dataset("spiral").x_test)


def test_npz_is_read_from_the_data_dir_env_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = np.random.default_rng(0).normal(size=(60, 4, 4))
    labels = np.array(["cat", "dog", "eel"] * 20)
    (tmp_path / "nested").mkdir()
    np.savez(tmp_path / "nested" / "pets.npz", x=images, y=labels)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))

    splits = load_dataset("npz:nested/pets.npz")

    assert splits.num_features == 16  # trailing axes are flattened
    assert splits.num_classes == 3  # string labels become class indices
    assert set(splits.y_train.tolist()) == {0, 1, 2}


@pytest.mark.parametrize("path", ["../secret.npz", "sub/../../secret.npz", "sub/.."])
def test_npz_path_with_dot_dot_is_rejected(tmp_path: Path, path: str) -> None:
    data_dir = tmp_path / "data"
    _write_npz(tmp_path / "secret.npz")
    with pytest.raises(DatasetError, match=r"must not contain '\.\.'"):
        load_dataset(f"npz:{path}", data_dir=data_dir)


def test_npz_absolute_path_is_rejected(tmp_path: Path) -> None:
    _write_npz(tmp_path / "data" / "ok.npz")
    with pytest.raises(DatasetError, match="relative"):
        load_dataset(f"npz:{tmp_path / 'data' / 'ok.npz'}", data_dir=tmp_path / "data")


def test_npz_symlink_out_of_the_data_dir_is_rejected(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _write_npz(tmp_path / "secret.npz")
    _write_npz(data_dir / "real.npz")
    os.symlink(tmp_path / "secret.npz", data_dir / "escape.npz")
    os.symlink(tmp_path, data_dir / "parent")
    os.symlink(data_dir / "real.npz", data_dir / "alias.npz")

    with pytest.raises(DatasetError, match="outside"):
        load_dataset("npz:escape.npz", data_dir=data_dir)
    with pytest.raises(DatasetError, match="outside"):
        load_dataset("npz:parent/secret.npz", data_dir=data_dir)
    assert load_dataset("npz:alias.npz", data_dir=data_dir).num_classes == 3


def test_unknown_names_and_bad_files_raise_dataset_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "no_y.npz", x=np.zeros((10, 2)))
    np.savez(tmp_path / "nan.npz", x=np.array([[0.0], [np.nan]] * 5), y=np.arange(10) % 2)
    np.savez(tmp_path / "tiny_class.npz", x=np.zeros((10, 1)), y=np.array([0] * 9 + [1]))
    np.save(tmp_path / "plain.npy", np.zeros(3))
    np.savez(tmp_path / "objects.npz", x=np.array([{}, {}], dtype=object), y=np.arange(2))
    cases = {
        "mnist": "unknown data set",
        "npz:missing.npz": "no such file",
        "npz:no_y.npz": "missing array",
        "npz:plain.npy": "single array",
        "npz:nan.npz": "NaN",
        "npz:objects.npz": "cannot read x or y",
        "npz:tiny_class.npz": "stratified",
    }
    for name, message in cases.items():
        with pytest.raises(DatasetError, match=message):
            load_dataset(name, data_dir=tmp_path)
    assert issubclass(DatasetError, ValueError)
