"""Worker command lines from the deployment files, parsed by the real ``hypersweep`` CLI:
the same parser, option names, types and ranges as ``hypersweep worker`` on a node."""

from __future__ import annotations

import functools
from typing import Any

import typer
import typer.main

from hypersweep.cli import app


@functools.cache
def worker_command() -> Any:
    """``hypersweep worker`` as the CLI defines it (a command of Typer's own click)."""
    group: Any = typer.main.get_command(app)
    return group.commands["worker"]


def worker_has_option(name: str) -> bool:
    """Whether ``hypersweep worker`` takes the option ``name`` (``--exit-when-idle``)."""
    return any(name in param.opts for param in worker_command().params)


def parse_worker_command(args: list[str]) -> dict[str, Any]:
    """The parameters ``hypersweep worker ARGS`` starts with, parsed and checked (types,
    ranges) as on the command line, without running it; ``typer.TyperException`` (a usage
    error, a bad value) for a line the CLI would refuse."""
    with worker_command().make_context("hypersweep worker", list(args)) as context:
        params: dict[str, Any] = dict(context.params)
    return params
