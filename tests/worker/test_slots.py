"""Where a worker's agents run: the device each is given, and its token's source."""

from __future__ import annotations

import os
from typing import Any

import pytest
import typer.main

from hypersweep.cli import app
from hypersweep.worker.slots import _take_device


@pytest.mark.parametrize(
    ("inherited", "device", "visible"),
    [
        (None, "cuda:1", "1"),
        ("3,5", "cuda:0", "3"),  # Slurm gave this job GPUs 3 and 5: cuda:N counts among them
        ("3,5", "cuda:1", "5"),
        ("GPU-1a2b,GPU-3c4d", "cuda:1", "GPU-3c4d"),
        ("3,5", "cpu", ""),
    ],
)
def test_a_slot_gets_its_device_among_those_this_process_sees(
    monkeypatch: pytest.MonkeyPatch, inherited: str | None, device: str, visible: str
) -> None:
    if inherited is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", inherited)
    assert _take_device(device) == ("cpu" if device == "cpu" else "cuda:0")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == visible


def worker_token(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], args: list[str] | None = None) -> Any:
    for name in ("HYPERSWEEP_WORKER_TOKEN", "HYPERSWEEP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    command: Any = typer.main.get_command(app)
    with command.commands["worker"].make_context("hypersweep worker", args or []) as context:
        return context.params["token"]


def test_the_worker_reads_the_worker_token_first_then_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    both = {"HYPERSWEEP_WORKER_TOKEN": "w0rker", "HYPERSWEEP_TOKEN": "us3r"}
    assert worker_token(monkeypatch, both) == "w0rker"
    assert worker_token(monkeypatch, {"HYPERSWEEP_TOKEN": "us3r"}) == "us3r"
    assert worker_token(monkeypatch, {"HYPERSWEEP_WORKER_TOKEN": "w0rker"}) == "w0rker"
    assert worker_token(monkeypatch, both, ["--token", "fl4g"]) == "fl4g"
    assert worker_token(monkeypatch, {}) is None
