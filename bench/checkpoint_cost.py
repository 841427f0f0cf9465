"""What does saving a checkpoint after every epoch cost the built-in trainer?

Trains the same trial with and without a checkpoint folder (``train(..., checkpoint_dir=)``),
the two runs alternating ``--repeats`` times so that both see the same machine, and prints
the median seconds per epoch of each, the ratio, and the checkpoint file's size. Two
models: the default MLP (``hidden: 128``) and a wide one (``hidden: 512``), both with Adam
(whose moments double the state saved) on ``digits``.

    python bench/checkpoint_cost.py [--epochs 10] [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from hypersweep.trainer import TrainerConfig, set_threads, train
from hypersweep.trainer.checkpoint import CHECKPOINT_FILE


def seconds_per_epoch(config: TrainerConfig, folder: Path | None) -> float:
    if folder is not None:
        (folder / CHECKPOINT_FILE).unlink(missing_ok=True)  # each run starts afresh
    started = time.perf_counter()
    train(config, checkpoint_dir=folder)
    return (time.perf_counter() - started) / config.epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 epochs, 2 repeats")
    args = parser.parse_args()
    epochs, repeats = (3, 2) if args.quick else (args.epochs, args.repeats)
    threads = set_threads(1)  # one process: every core
    print(f"digits, adam, {epochs} epochs, {repeats} alternating repeats, {threads} torch thread(s)")
    print(f"{'hidden':>6}  {'no checkpoint':>14}  {'checkpoint':>11}  {'ratio':>6}  {'file':>8}")
    for hidden in (128, 512):
        config = TrainerConfig(dataset="digits", hidden=hidden, optimizer="adam", lr=1e-3, epochs=epochs)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            plain, saving = [], []
            for _ in range(repeats):
                plain.append(seconds_per_epoch(config, None))
                saving.append(seconds_per_epoch(config, folder))
            size = (folder / CHECKPOINT_FILE).stat().st_size
        base, with_saves = statistics.median(plain), statistics.median(saving)
        print(
            f"{hidden:>6}  {base * 1000:>11.1f} ms  {with_saves * 1000:>8.1f} ms  "
            f"{with_saves / base:>5.2f}x  {size / 1024:>5.0f} KiB"
        )


if __name__ == "__main__":
    main()
