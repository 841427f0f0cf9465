"""Data sets for the built-in trainer: load, split (train/validation/test), standardise.

Three sources, named the way a sweep's ``trainer.dataset`` names them:

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 samples, 64 features,
  10 classes). No download.
* ``spiral``: the classic CS231n three-arm spiral (300 points in 2-D, 3 classes),
  generated from a fixed seed so that ``spiral`` always names the same points.
* ``npz:<path>``: a NumPy ``.npz`` archive holding ``x`` (samples first; trailing axes
  are flattened) and ``y`` (one label per sample, any sortable type), read only from
  inside the data directory.

Every source is split the same way: seeded and stratified, 60% train, 20% validation,
20% test. Inputs are standardised with the training split's per-feature mean and
standard deviation, so nothing about the validation or test samples leaks into training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

__all__ = [
    "DATA_DIR_ENV",
    "DatasetError",
    "Splits",
    "load_dataset",
    "resolve_data_dir",
]

#: Environment variable naming the directory that ``npz:<path>`` data sets are read from.
DATA_DIR_ENV = "HYPERSWEEP_DATA_DIR"
#: Fractions of the samples held out for validation and for test; the rest is training.
VAL_FRACTION = 0.2
TEST_FRACTION = 0.2
#: The spiral is one fixed data set; a run's seed changes its split, not its points.
SPIRAL_SEED = 0
SPIRAL_POINTS_PER_CLASS = 100
SPIRAL_CLASSES = 3


class DatasetError(ValueError):
    """A data set name that cannot be loaded: unknown, unreadable, or outside the data dir."""


@dataclass(frozen=True)
class Splits:
    """A data set split three ways. Inputs are float32 ``(samples, features)``, already
    standardised; labels are int64 class indices in ``[0, num_classes)``.

    ``mean`` and ``std`` are the training split's per-feature statistics that were applied
    (``x = (raw - mean) / std``); a feature constant in training keeps ``std == 1``.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    num_classes: int

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])

    def to(self, device: torch.device | str) -> Splits:
        """The same splits with every tensor on ``device``."""
        return Splits(
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_val=self.x_val.to(device),
            y_val=self.y_val.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
            mean=self.mean.to(device),
            std=self.std.to(device),
            num_classes=self.num_classes,
        )


def load_dataset(name: str, *, data_dir: Path | str | None = None, seed: int = 0) -> Splits:
    """Load the data set ``name`` and split it with ``seed`` (see the module docstring).

    ``data_dir`` is only used by ``npz:<path>``; it defaults to ``$HYPERSWEEP_DATA_DIR``,
    else ``./data``. Raises :class:`DatasetError` (a ``ValueError``) for an unknown name,
    a path that is absolute, contains ``..`` or resolves outside ``data_dir`` (through a
    symlink, say), a missing or malformed file (NaN or infinite inputs included), or
    classes too small to stratify.
    """
    if name == "digits":
        x, y = _digits_arrays()
    elif name == "spiral":
        x, y = _spiral_arrays()
    elif name.startswith("npz:"):
        x, y = _npz_arrays(name.removeprefix("npz:"), resolve_data_dir(data_dir))
    else:
        raise DatasetError(f"unknown data set {name!r}: expected digits, spiral or npz:<path>")
    return _split(name, x, y, seed=seed)


def resolve_data_dir(data_dir: Path | str | None = None) -> Path:
    """``data_dir`` if given, else ``$HYPERSWEEP_DATA_DIR``, else ``./data``."""
    if data_dir is None:
        data_dir = os.environ.get(DATA_DIR_ENV) or "data"
    return Path(data_dir)


# Workers train many trials in one process: keep the raw arrays, split per run. The cached
# arrays are shared by every run, so they are made read-only.
@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    x, y = load_digits(return_X_y=True)
    return _read_only(x.astype(np.float32), y.astype(np.int64))


@lru_cache(maxsize=1)
def _spiral_arrays() -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    rng = np.random.default_rng(SPIRAL_SEED)
    n = SPIRAL_POINTS_PER_CLASS
    xs, ys = [], []
    for arm in range(SPIRAL_CLASSES):
        radius = np.linspace(0.0, 1.0, n)
        theta = np.linspace(arm * 4.0, (arm + 1) * 4.0, n) + rng.normal(0.0, 0.2, n)
        xs.append(np.column_stack([radius * np.sin(theta), radius * np.cos(theta)]))
        ys.append(np.full(n, arm))
    return _read_only(np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64))


def _read_only(x: NDArray[np.float32], y: NDArray[np.int64]) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _npz_arrays(relative: str, data_dir: Path) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    path = _safe_path(relative, data_dir)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DatasetError(f"npz:{relative}: not a readable .npz file ({error})") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(f"npz:{relative}: holds a single array, expected an .npz with x and y")
    with archive:
        missing = {"x", "y"} - set(archive.files)
        if missing:
            raise DatasetError(f"npz:{relative}: missing array(s) {', '.join(sorted(missing))}")
        try:
            x, labels = archive["x"], archive["y"]
        except (OSError, ValueError) as error:  # object arrays need pickle, which is refused
            raise DatasetError(f"npz:{relative}: cannot read x or y ({error})") from error
    if x.ndim == 0 or x.dtype.kind not in "biuf":
        raise DatasetError(
            f"npz:{relative}: x must be a numeric array with samples first, got dtype {x.dtype} and shape {x.shape}"
        )
    if not np.isfinite(x).all():
        # Would make every trial "nan" and blame its hyperparameters for the data.
        raise DatasetError(f"npz:{relative}: x contains NaN or infinite values")
    if labels.ndim != 1 or len(labels) != len(x):
        raise DatasetError(
            f"npz:{relative}: y must be one label per sample, got shape {labels.shape} for x of shape {x.shape}"
        )
    # Any label values (ints, floats, strings) become class indices 0..K-1 in sorted order.
    _, y = np.unique(labels, return_inverse=True)
    return x.reshape(len(x), -1).astype(np.float32), y.astype(np.int64)


def _safe_path(relative: str, data_dir: Path) -> Path:
    """``data_dir / relative`` after checking that it cannot leave ``data_dir``."""
    path = Path(relative)
    if path.is_absolute():
        raise DatasetError(f"npz:{relative}: the path must be relative to the data directory")
    if ".." in path.parts:
        raise DatasetError(f"npz:{relative}: the path must not contain '..'")
    root = data_dir.resolve()
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise DatasetError(f"npz:{relative}: resolves outside the data directory {root}")
    if not resolved.is_file():
        raise DatasetError(f"npz:{relative}: no such file in the data directory {root}")
    return resolved


def _split(name: str, x: NDArray[np.float32], y: NDArray[np.int64], *, seed: int) -> Splits:
    try:
        x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=TEST_FRACTION, stratify=y, random_state=seed)
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest,
            y_rest,
            test_size=VAL_FRACTION / (1.0 - TEST_FRACTION),
            stratify=y_rest,
            random_state=seed,
        )
    except ValueError as error:
        raise DatasetError(f"{name}: cannot make a stratified split ({error})") from error

    # Statistics from the training split only: validation and test stay unseen.
    mean = x_train.mean(axis=0, dtype=np.float64)
    std = x_train.std(axis=0, dtype=np.float64)
    std[std < 1e-8] = 1.0  # constant features (blank pixels) are centred, not scaled

    def standardise(part: NDArray[np.float32]) -> torch.Tensor:
        return torch.from_numpy(((part - mean) / std).astype(np.float32))

    def labels(part: NDArray[np.int64]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(part, dtype=np.int64))

    return Splits(
        x_train=standardise(x_train),
        y_train=labels(y_train),
        x_val=standardise(x_val),
        y_val=labels(y_val),
        x_test=standardise(x_test),
        y_test=labels(y_test),
        mean=torch.from_numpy(mean.astype(np.float32)),
        std=torch.from_numpy(std.astype(np.float32)),
        num_classes=int(y.max()) + 1,
    )
