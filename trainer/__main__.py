"""``python -m hypersweep.trainer``: run the built-in trainer once and print JSON lines.

One line per epoch (``{"epoch": 1, "train_loss": ..., "val_loss": ..., "val_accuracy":
...}``), then a final line ``{"status": ..., "metrics": {...}}``. JSON has no NaN or
infinity, so those values are printed as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``. A bad setting or data set is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, NoReturn

from pydantic import TypeAdapter, ValidationError

from hypersweep.trainer.config import SETTINGS, TrainerConfig
from hypersweep.trainer.loop import train

PROG = "python -m hypersweep.trainer"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = _config(args)
    try:
        result = train(config, on_epoch=_print_epoch, data_dir=args.data_dir, device=args.device)
    except ValueError as error:  # a data set or setting the trainer cannot run (DatasetError included)
        _fail(str(error))
    _print_line({"status": result.status, "metrics": result.metrics})
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Train the built-in MLP once; print one JSON line per epoch."
    )
    parser.add_argument(
        "--params",
        default="{}",
        help=f"JSON object of trainer settings, e.g. '{{\"lr\": 0.01}}'. Names: {', '.join(SETTINGS)}",
    )
    parser.add_argument("--dataset", help="digits, spiral or npz:<path> (default: digits)")
    parser.add_argument("--epochs", type=int, help="number of epochs (default: 1)")
    parser.add_argument("--seed", type=int, help="seed for the split, weights and shuffling")
    parser.add_argument("--data-dir", help="where npz:<path> data sets live")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    return parser


def _config(args: argparse.Namespace) -> TrainerConfig:
    """The config from ``--params``, with ``--dataset``/``--epochs``/``--seed`` winning."""
    try:
        settings = json.loads(args.params)
    except json.JSONDecodeError as error:
        _fail(f"--params is not valid JSON: {error}")
    if not isinstance(settings, dict):
        _fail("--params must be a JSON object, e.g. '{\"lr\": 0.01}'")
    for name in ("dataset", "epochs", "seed"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        _fail(f"unknown trainer setting(s): {', '.join(unknown)} (known: {', '.join(SETTINGS)})")
    try:
        return TypeAdapter(TrainerConfig).validate_python(settings)
    except ValidationError as error:
        _fail(f"invalid trainer settings: {'; '.join(_problem(e['loc'], e['msg']) for e in error.errors())}")


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    """One validation error as a person reads it; a check spanning several settings (the
    learning-rate schedule's) has no single setting to name."""
    where = ".".join(str(part) for part in loc)
    message = message.removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _print_epoch(epoch: int, metrics: dict[str, float]) -> bool:
    _print_line({"epoch": epoch, **metrics})
    return True


def _print_line(record: dict[str, Any]) -> None:
    print(json.dumps(_finite(record), allow_nan=False), flush=True)


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by its JSON-ish string name."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


def _fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    sys.exit(main())
