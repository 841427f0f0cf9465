"""A small 1-D CNN on MNIST-1D, in plain PyTorch: the data, the model and one training run.

``fit(settings, report)`` is the whole run, shared by both ways hypersweep can drive it:
``train.py`` (a command; reports are printed lines) and ``objective.py`` (a function;
reports go to ``trial.report``). It reads top to bottom: seed, load the data, build the
model and optimizer, then per epoch shuffle, step through mini-batches, evaluate on the
validation split and report; finally evaluate once on the test split.

Given a checkpoint folder (``trial.checkpoint_dir``, or ``HYPERSWEEP_CHECKPOINT_DIR`` for
the command), ``fit`` saves its state there after every epoch and, when it finds a state
saved by an earlier attempt of the same trial, goes on from there instead of starting over.

MNIST-1D (Greydanus, 2020) is 5000 one-dimensional signals of length 40, ten classes.
It is generated here, offline, with the ``mnist1d`` package's own generator and default
arguments (the published data set), and cached as a ``.npz`` so trials do not rebuild it.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

__all__ = ["CACHE_ENV", "CHECKPOINT_FILE", "CNN", "Report", "Settings", "Splits", "fit", "load_splits"]

#: Environment variable naming the folder that holds the cached data set; by default a
#: ``data/`` folder next to this file.
CACHE_ENV = "MNIST1D_CACHE_DIR"
#: ``report(step, **metrics)``: ``hypersweep.report`` for a command, ``trial.report`` for
#: a function. It may raise (``hypersweep.TrialStopped``) to end the run; ``fit`` lets it.
Report = Callable[..., None]
#: The file ``fit`` keeps in a checkpoint folder.
CHECKPOINT_FILE = "cnn.pt"


@dataclass
class Settings:
    """One run's settings. Tuned by the sweeps: ``lr``, ``weight_decay``, ``dropout``,
    ``channels``; the rest are fixed in the sweep's ``trainer`` section.

    ``lr`` is AdamW's peak learning rate, decayed to zero over the run on a cosine;
    ``weight_decay`` is AdamW's decoupled decay; ``threads`` is torch's intra-op thread
    count (1, so that trials running side by side do not fight over cores); ``device``
    is ``auto`` (CUDA when ``CUDA_VISIBLE_DEVICES`` names a GPU, else the CPU), ``cpu``,
    ``cuda`` or ``cuda:N``.
    """

    lr: float = 3e-3
    weight_decay: float = 1e-3
    dropout: float = 0.1
    channels: int = 32
    epochs: int = 15
    batch_size: int = 64
    val_fraction: float = 0.2
    seed: int = 0
    threads: int = 1
    device: str = "auto"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Settings from a trial's settings, each value converted to its field's type.
        Names this program does not know (``divergence_factor``, ...) are the worker's and
        are ignored."""
        # field types are strings here (postponed annotations): "float", "int" or "str"
        types = {f.name: f.type if isinstance(f.type, str) else f.type.__name__ for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            if types.get(name) == "float":
                kwargs[name] = float(value)
            elif types.get(name) == "int":
                kwargs[name] = _integer(name, value)
            elif types.get(name) == "str":
                kwargs[name] = str(value)
        return cls(**kwargs)


def _integer(name: str, value: Any) -> int:
    """``value`` as an int: 24, "24", 24.0 and "24.0" are 24; 24.5 is an error."""
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(number)


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Splits:
    """Signals ``(samples, 1, 40)`` float32 and labels int64, split three ways."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def cache_path() -> Path:
    folder = os.environ.get(CACHE_ENV) or Path(__file__).resolve().parent / "data"
    return Path(folder) / "mnist1d.npz"


def generate_arrays() -> dict[str, NDArray[Any]]:
    """Build MNIST-1D with its generator's default arguments (seed 42: 4000 train and
    1000 test signals). Never downloads: ``get_dataset`` would."""
    import mnist1d.data  # imported here: it is slow to import and needed once per cache

    data = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    return {
        "x": data["x"].astype(np.float32),
        "y": data["y"].astype(np.int64),
        "x_test": data["x_test"].astype(np.float32),
        "y_test": data["y_test"].astype(np.int64),
    }


def load_arrays() -> dict[str, NDArray[Any]]:
    """The data set from the cache, generated and cached on first use. The cache file is
    written under a temporary name and renamed, so trials starting side by side never read
    half a file."""
    path = cache_path()
    if not path.exists():
        arrays = generate_arrays()
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as handle:
            np.savez(handle, **arrays)
        os.replace(handle.name, path)
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}


def stratified_split(y: NDArray[np.int64], fraction: float, seed: int) -> tuple[NDArray[Any], NDArray[Any]]:
    """Indices (kept, held out), holding out ``fraction`` of each class, seeded."""
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        cut = round(len(members) * fraction)
        held.append(members[:cut])
        kept.append(members[cut:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def load_splits(val_fraction: float, seed: int, device: torch.device) -> Splits:
    """Train and validation split from the data set's training part (stratified, seeded);
    test is the data set's own test part, untouched."""
    arrays = load_arrays()
    train, val = stratified_split(arrays["y"], val_fraction, seed)

    def signals(x: NDArray[Any]) -> torch.Tensor:
        return torch.from_numpy(x).unsqueeze(1).to(device)  # (samples, 1 channel, length)

    def labels(y: NDArray[Any]) -> torch.Tensor:
        return torch.from_numpy(y).to(device)

    return Splits(
        x_train=signals(arrays["x"][train]),
        y_train=labels(arrays["y"][train]),
        x_val=signals(arrays["x"][val]),
        y_val=labels(arrays["y"][val]),
        x_test=signals(arrays["x_test"]),
        y_test=labels(arrays["y_test"]),
    )


# ----------------------------------------------------------------------------- model


class CNN(nn.Module):
    """Three convolutions (kernel 5; the last two halve the length), batch norm and ReLU,
    then the largest response of each channel (so a digit counts wherever it sits in the
    signal), dropout and a linear classifier."""

    def __init__(self, channels: int, dropout: float, classes: int = 10) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv1d(cin, cout, kernel_size=5, stride=stride, padding=2, bias=False),
                nn.BatchNorm1d(cout),
                nn.ReLU(),
            )

        self.features = nn.Sequential(
            block(1, channels, 1),
            block(channels, channels, 2),
            block(channels, 2 * channels, 2),
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x).amax(dim=2)
        return self.classifier(self.dropout(h))


# ----------------------------------------------------------------------------- training


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy in nats, accuracy in [0, 1]) over a whole split."""
    model.eval()
    logits = model(x)
    model.train()
    loss = F.cross_entropy(logits, y).item()
    accuracy = (logits.argmax(dim=1) == y).sum().item() / len(y)
    return loss, accuracy


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        wants_gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "") not in ("", "-1")
        name = "cuda" if wants_gpu and torch.cuda.is_available() else "cpu"
    return torch.device(name)


# ----------------------------------------------------------------------------- checkpoints


def _trained_settings(settings: Settings) -> dict[str, Any]:
    """What decides the training: where it runs (``device``, ``threads``) does not."""
    return {f.name: getattr(settings, f.name) for f in fields(settings) if f.name not in ("device", "threads")}


def save_checkpoint(folder: Path, settings: Settings, **state: Any) -> None:
    """Save ``state`` in ``folder``, replacing the last checkpoint only once this one is whole."""
    partial = folder / f".{CHECKPOINT_FILE}.{os.getpid()}.partial"
    torch.save({"settings": _trained_settings(settings), **state}, partial)
    os.replace(partial, folder / CHECKPOINT_FILE)


def load_checkpoint(folder: Path, settings: Settings) -> dict[str, Any] | None:
    """The state saved in ``folder`` by a run with the same settings, or None."""
    path = folder / CHECKPOINT_FILE
    if not path.exists():
        return None
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state if state.get("settings") == _trained_settings(settings) else None


def fit(settings: Settings, report: Report, checkpoint_dir: str | Path | None = None) -> dict[str, float]:
    """Train one model and return its final metrics.

    Calls ``report(step, train_loss=, val_loss=, val_accuracy=)`` once before training
    (step 0: the untrained model, the baseline of hypersweep's divergence rule) and after
    every epoch (step = epochs done). Losses are mean cross-entropy in nats; accuracies
    fractions in [0, 1]. The test split is evaluated once, at the end. A non-finite
    training loss is reported and ends the run.

    With ``checkpoint_dir``, the model, the optimizer, the random number generator and
    the curve are saved there after every epoch; a run that finds them goes on from the
    epoch after, reporting the saved curve again first (a trial that runs again starts
    with an empty curve on the server), so it ends as the run would have had it never
    stopped.
    """
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    device = resolve_device(settings.device)
    data = load_splits(settings.val_fraction, settings.seed, device)
    model = CNN(settings.channels, settings.dropout).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    samples = len(data.y_train)
    steps_per_epoch = math.ceil(samples / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch

    def lr_at(step: int) -> float:
        # cosine from the peak to zero over the whole run: the last epochs settle in
        return settings.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))

    folder = Path(checkpoint_dir) if checkpoint_dir else None
    saved = load_checkpoint(folder, settings) if folder else None
    if saved is None:
        train_loss, _ = evaluate(model, data.x_train, data.y_train)
        val_loss, val_accuracy = evaluate(model, data.x_val, data.y_val)
        curve = [{"step": 0, "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy}]
        report(**curve[0])
        done, step = 0, 0
    else:  # an earlier attempt's state: go on after its last epoch
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        if device.type == "cuda" and saved["cuda_rng"] is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        curve, done, step = saved["curve"], saved["epoch"], saved["step"]
        for point in curve:
            report(**point)
        train_loss, val_loss, val_accuracy = (curve[-1][name] for name in ("train_loss", "val_loss", "val_accuracy"))

    epoch = done
    for epoch in range(done + 1, settings.epochs + 1):
        order = torch.randperm(samples, device=device)
        loss_sum = torch.zeros((), device=device)
        for start in range(0, samples, settings.batch_size):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            batch = order[start : start + settings.batch_size]
            loss = F.cross_entropy(model(data.x_train[batch]), data.y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(batch)
            step += 1
        train_loss = loss_sum.item() / samples
        val_loss, val_accuracy = evaluate(model, data.x_val, data.y_val)
        curve.append({"step": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy})
        report(**curve[-1])
        if not math.isfinite(train_loss):
            break
        if folder:
            cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "curve": curve}
            save_checkpoint(
                folder, settings, epoch=epoch, step=step, rng=torch.get_rng_state(), cuda_rng=cuda_rng, **state
            )

    test_loss, test_accuracy = evaluate(model, data.x_test, data.y_test)
    return {
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "epochs_run": epoch,
        "seconds": round(time.perf_counter() - started, 3),
    }
