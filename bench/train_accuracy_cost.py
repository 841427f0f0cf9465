"""What does measuring ``train_accuracy`` every epoch cost the built-in trainer?

``trainer.train`` as it runs, against the same run with its per-epoch pass over the
training sample (``trainer.run.accuracy_sample``) skipped. Both sides run interleaved in
this process, one torch thread, after one untimed warm-up each; prints the best time of
each side and their ratio (1.0: free).

    python bench/train_accuracy_cost.py [--quick] [--epochs 5] [--hidden 128] [--repeats 7]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from hypersweep.trainer import TrainerConfig, train
from hypersweep.trainer import loop as trainer_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs, 3 repeats")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    epochs, repeats = (2, 3) if args.quick else (args.epochs, args.repeats)
    torch.set_num_threads(1)
    config = TrainerConfig(epochs=epochs, hidden=args.hidden, optimizer="momentum", lr=0.05)

    real = trainer_loop.evaluate

    def without_training_sample(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        # The training sample is a view into the training split; the other splits are not.
        return (math.nan, math.nan) if x._base is not None else real(model, x, y)

    sides = {"with": real, "without": without_training_sample}
    best = dict.fromkeys(sides, math.inf)
    for repeat in range(repeats + 1):
        for name, evaluate in sides.items():
            trainer_loop.evaluate = evaluate
            started = time.perf_counter()
            train(config, device="cpu")
            if repeat > 0:  # the first round warms up
                best[name] = min(best[name], time.perf_counter() - started)
    trainer_loop.evaluate = real
    print(f"digits, hidden {args.hidden}, 2 layers, batch 64, {epochs} epochs, best of {repeats}")
    print(f"with train_accuracy     {best['with']:.3f} s")
    print(f"without train_accuracy  {best['without']:.3f} s")
    print(f"ratio with/without = {best['with'] / best['without']:.3f}")


if __name__ == "__main__":
    main()
