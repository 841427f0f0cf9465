"""Small function programs that take part in the sanity checks (``hypersweep.sanity``):
an honest one, and ones broken for a check to catch. A softmax classifier with one hidden
layer on generated data with four classes."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hypersweep import Trial

CLASSES = 4


def _set_up(settings: dict[str, Any], *, scale: float = 1.0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.set_num_threads(1)  # tiny tensors: threads only contend
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=generator)
    y = x[:, :CLASSES].argmax(dim=1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, CLASSES))
    nn.init.normal_(model[2].weight, std=0.01 * scale)
    return model, x, y


def _penalty(model: nn.Module) -> torch.Tensor:
    return sum((m.weight.square().sum() for m in model.modules() if isinstance(m, nn.Linear)), torch.zeros(()))


def _program(trial: Trial, *, uses_reg: bool = True, scale: float = 1.0) -> dict[str, Any]:
    settings = trial.settings
    model, x, y = _set_up(settings, scale=scale)
    reg = float(settings.get("reg", 0.0)) if uses_reg else 0.0
    if settings.get("sanity") in ("initial_loss", "regularization"):
        with torch.no_grad():
            loss = F.cross_entropy(model(x), y) + reg * _penalty(model)
        return {"initial_loss": float(loss), "classes": CLASSES}
    if settings.get("sanity") == "overfit":
        xs, ys = x[: settings["subset"]], y[: settings["subset"]]
        optimizer = torch.optim.SGD(model.parameters(), lr=float(settings["lr"]), momentum=0.9)
        accuracy = 0.0
        for _ in range(settings["steps"]):
            logits = model(xs)
            accuracy = float((logits.argmax(dim=1) == ys).float().mean())
            if accuracy == 1.0:
                break
            loss = F.cross_entropy(logits, ys) + reg * _penalty(model)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return {"train_accuracy": accuracy}
    return {"val_accuracy": 0.5}


def honest(trial: Trial) -> dict[str, Any]:
    return _program(trial)


def ignores_reg(trial: Trial) -> dict[str, Any]:
    return _program(trial, uses_reg=False)


def scaled_output(trial: Trial) -> dict[str, Any]:
    return _program(trial, scale=1000.0)


def ignores_sanity(trial: Trial) -> dict[str, Any]:
    return {"val_accuracy": 0.5}
