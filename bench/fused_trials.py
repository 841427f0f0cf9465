"""How much faster are fused trials than trials run one by one?

End to end: the same sweep (32 random trials on digits over ``lr``, ``reg`` and
``dropout``, 3 epochs each) submitted twice to a real ``hypersweep serve`` and run by one
worker agent in this process, once with ``fuse=1`` (one trial at a time, as
``hypersweep worker`` runs them) and once with ``fuse=16`` (``hypersweep worker --fuse
16``): claims, training, per-epoch reports, heartbeats and finishes over HTTP, from the
first claim to the sweep's end. ``--processes`` times real ``hypersweep worker``
processes instead, torch's import and start-up included.

Bare loops: K trials as K sequential hand-written loops (``trainer.MLP`` and
``torch.optim``, no evaluation) against one fused loop (``FusedMLP``, ``FusedOptimizer``)
over the same K trials and steps, for K in 1, 4, 16, 64; then the trainer itself, K calls
of ``trainer.train`` against one ``trainer.fused.train_fused``.

Both sides of every comparison run back to back, ``--repeats`` times after one untimed
warm-up, the first side alternating, with the same number of torch threads. The table
shows median times and the median of the paired ratios. Where CUDA is available the bare
loops and the trainer run on the GPU as well; otherwise the output says so.

    python bench/fused_trials.py [--repeats 3] [--threads N] [--skip-e2e] [--processes]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from hypersweep.trainer import MLP, TrainerConfig, load_dataset, set_threads, train
from hypersweep.trainer.fused import FusedMLP, FusedOptimizer, add_penalty_gradients, member_losses, train_fused
from hypersweep.trainer.loop import make_optimizer
from hypersweep.trainer.model import decayed_weights, weight_penalty
from hypersweep.worker.agent import Agent, IdleBackoff
from hypersweep.worker.client import ServiceClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trainer_overhead import running_server

TRIALS = 32
EPOCHS = 3
#: The search space of the end-to-end sweep, also used to draw the bare loops' trials.
SPACE: dict[str, dict[str, Any]] = {
    "lr": {"type": "float", "low": 1e-3, "high": 0.3, "scale": "log"},
    "reg": {"type": "float", "low": 1e-6, "high": 1e-2, "scale": "log"},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
}
TRAINER = {"dataset": "digits", "batch_size": 64, "optimizer": "momentum"}


def sweep_document(name: str, hidden: int) -> dict[str, object]:
    return {
        "name": name,
        "objective": {"metric": "val_accuracy", "mode": "max"},
        "space": SPACE,
        "search": {"kind": "random", "seed": 0},
        "stages": [{"trials": TRIALS, "epochs": EPOCHS}],
        "trainer": {**TRAINER, "hidden": hidden},
        # Room for every trial of the sweep to be claimed at once.
        "parallelism": TRIALS,
    }


def random_configs(count: int, seed: int, hidden: int) -> list[TrainerConfig]:
    """``count`` trials drawn from SPACE (log-uniform lr and reg, uniform dropout)."""
    rng = random.Random(seed)

    def draw(axis: str) -> float:
        low, high = SPACE[axis]["low"], SPACE[axis]["high"]
        if SPACE[axis].get("scale") == "log":
            return float(10 ** rng.uniform(math.log10(low), math.log10(high)))
        return rng.uniform(low, high)

    settings = {**TRAINER, "hidden": hidden, "epochs": EPOCHS}
    return [
        TrainerConfig.from_settings({**settings, "lr": draw("lr"), "reg": draw("reg"), "dropout": draw("dropout")})
        for _ in range(count)
    ]


# Bare loops: the same data, batches and steps on both sides, and nothing but training.


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timer stopped next counts all of it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_sequential(configs: list[TrainerConfig], device: torch.device) -> float:
    """Seconds for one hand-written loop per trial, one after the other."""
    started = time.perf_counter()
    splits = load_dataset("digits").to(device)
    for config in configs:
        torch.manual_seed(config.seed)
        model = MLP(splits.num_features, splits.num_classes, hidden=config.hidden, dropout=config.dropout)
        model = model.to(device)
        optimizer = make_optimizer(config.optimizer, model.parameters(), lr=config.lr, momentum=config.momentum)
        weights = decayed_weights(model)
        shuffle = torch.Generator().manual_seed(config.seed)
        model.train()
        for _ in range(config.epochs):
            order = torch.randperm(len(splits.y_train), generator=shuffle).to(device)
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                loss = F.cross_entropy(model(splits.x_train[batch]), splits.y_train[batch])
                loss = loss + config.reg * weight_penalty(weights)
                loss.item()  # the per-step divergence check's host sync
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
    synchronize(device)
    return time.perf_counter() - started


def bare_fused(configs: list[TrainerConfig], device: torch.device) -> float:
    """Seconds for one fused loop over all the trials."""
    started = time.perf_counter()
    splits = load_dataset("digits").to(device)
    first = configs[0]
    torch.manual_seed(first.seed)
    template = MLP(
        splits.num_features, splits.num_classes, hidden=first.hidden, dropout=max(c.dropout for c in configs)
    )

    def per_member(name: str) -> torch.Tensor:
        return torch.tensor([getattr(c, name) for c in configs], device=device)

    model = FusedMLP(template, len(configs), dropout=per_member("dropout")).to(device)
    optimizer = FusedOptimizer(first.optimizer, lr=per_member("lr"), momentum=per_member("momentum"))
    reg = per_member("reg")
    shuffle = torch.Generator().manual_seed(first.seed)
    model.train()
    for _ in range(first.epochs):
        order = torch.randperm(len(splits.y_train), generator=shuffle).to(device)
        for start in range(0, len(order), first.batch_size):
            batch = order[start : start + first.batch_size]
            losses = member_losses(model, splits.x_train[batch], splits.y_train[batch], reg)
            losses.tolist()
            model.zero_grad(set_to_none=True)
            losses.sum().backward()  # type: ignore[no-untyped-call]
            add_penalty_gradients(model, reg)
            optimizer.step(list(model.parameters()))
    synchronize(device)
    return time.perf_counter() - started


def trainer_sequential(configs: list[TrainerConfig], device: torch.device) -> float:
    started = time.perf_counter()
    for config in configs:
        train(config, device=device)
    synchronize(device)
    return time.perf_counter() - started


def trainer_fused(configs: list[TrainerConfig], device: torch.device) -> float:
    started = time.perf_counter()
    train_fused(configs, device=device)
    synchronize(device)
    return time.perf_counter() - started


Timed = Callable[[list[TrainerConfig], torch.device], float]


def compare(
    label: str, one_by_one: Timed, fused: Timed, sizes: list[int], device: torch.device, repeats: int, hidden: int
) -> list[str]:
    rows = []
    for size in sizes:
        configs = random_configs(size, seed=size, hidden=hidden)
        one_by_one(configs[:1], device)
        fused(configs[:2], device)  # warm-up
        sides = (functools.partial(one_by_one, configs, device), functools.partial(fused, configs, device))
        pairs = [paired(*sides, repeat) for repeat in range(repeats)]
        rows.append(row(f"{label} | {device.type} | {size}", size, pairs))
        print(rows[-1], flush=True)
    return rows


def paired(first: Callable[[], float], second: Callable[[], float], repeat: int) -> tuple[float, float]:
    """One timing of each side, back to back, the one that goes first alternating between
    repeats, so that a change in the machine's load hits both sides alike."""
    if repeat % 2:
        later = second()
        return first(), later
    earlier = first()
    return earlier, second()


def row(what: str, trials: int, pairs: list[tuple[float, float]]) -> str:
    """A table row: median times, trials per second, and the median of the paired ratios
    (more robust than the ratio of medians when other work comes and goes)."""
    one = statistics.median(a for a, _ in pairs)
    fused = statistics.median(b for _, b in pairs)
    speedup = statistics.median(a / b for a, b in pairs)
    return f"| {what} | {one:.3f} s | {fused:.3f} s | {trials / one:.1f} | {trials / fused:.1f} | **{speedup:.2f}x** |"


# End to end.


def run_agent(client: ServiceClient, fuse: int, hidden: int) -> tuple[float, dict[str, int]]:
    """Seconds for one in-process agent to run a fresh sweep to its end, and its counts."""
    sweep = client.submit_sweep(sweep_document(f"fused-bench-{fuse}", hidden))
    agent = Agent(client, worker_id=f"bench-fuse-{fuse}", sweep_id=sweep.id, fuse=fuse, backoff=IdleBackoff())
    started = time.perf_counter()
    agent.run()
    return time.perf_counter() - started, client.get_sweep(sweep.id).counts


def run_process(client: ServiceClient, url: str, fuse: int, hidden: int) -> tuple[float, dict[str, int]]:
    """Seconds for ``hypersweep worker --sweep ID --fuse K`` to run a fresh sweep and exit."""
    sweep = client.submit_sweep(sweep_document(f"fused-bench-{fuse}", hidden))
    script = Path(sys.executable).with_name("hypersweep")
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from hypersweep.cli import main; main()"]
    env = {**os.environ, "HYPERSWEEP_SERVER": url}
    started = time.perf_counter()
    subprocess.run(
        [*command, "worker", "--sweep", str(sweep.id), "--fuse", str(fuse)],
        env=env,
        check=True,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started, client.get_sweep(sweep.id).counts


def end_to_end(repeats: int, processes: bool, hidden: int) -> list[str]:
    rows = []
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(running_server())
        client = stack.enter_context(ServiceClient.connect(url))

        def run(fuse: int) -> tuple[float, dict[str, int]]:
            return run_process(client, url, fuse, hidden) if processes else run_agent(client, fuse, hidden)

        def timed(fuse: int) -> float:
            took, counts = run(fuse)
            if sum(counts.values()) != TRIALS or counts.get("failed"):
                raise SystemExit(f"the sweep with fuse={fuse} did not run cleanly: {counts}")
            print(f"  end to end, fuse {fuse:2d}: {took:.2f} s  {counts}", flush=True)
            return took

        run(16)  # warm-up: the server, the cached data set, torch's kernels
        pairs = [paired(lambda: timed(1), lambda: timed(16), repeat) for repeat in range(repeats)]
        how = "worker processes" if processes else "agent in-process"
        rows.append(row(f"end to end ({how}), {TRIALS} trials | cpu | --fuse 1 vs 16", TRIALS, pairs))
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    # By default as many threads as ``hypersweep worker`` gives its one process (every core
    # it may run on); both sides get the same number either way.
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: as hypersweep worker)")
    parser.add_argument("--sizes", default="1,4,16,64", help="Group sizes K for the bare loops.")
    parser.add_argument("--hidden", type=int, default=128, help="Width of the MLP's hidden layers.")
    parser.add_argument("--skip-e2e", action="store_true", help="Only the bare loops.")
    parser.add_argument("--skip-bare", action="store_true", help="Only the end-to-end sweep.")
    parser.add_argument("--processes", action="store_true", help="End to end with real worker processes.")
    args = parser.parse_args(argv)

    if args.threads is None:
        set_threads(1)
    else:
        torch.set_num_threads(args.threads)
    sizes = [int(size) for size in args.sizes.split(",")]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"digits, MLP 2x{args.hidden}, batch 64, {EPOCHS} epochs, momentum SGD, random lr/reg/dropout; "
        f"{cores} CPU cores, {torch.get_num_threads()} torch thread(s), medians of {args.repeats}"
    )
    header = [
        "| what | device | K | one by one | fused | trials/s one by one | trials/s fused | speedup (median of pairs) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    print("\n".join(header), flush=True)
    rows: list[str] = []
    if not args.skip_e2e:
        rows += end_to_end(args.repeats, args.processes, args.hidden)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if not args.skip_bare:
        for device in devices:
            for label, one_by_one, fused in (
                ("bare loops", bare_sequential, bare_fused),
                ("trainer", trainer_sequential, trainer_fused),
            ):
                rows += compare(label, one_by_one, fused, sizes, device, args.repeats, args.hidden)
    print("\n" + "\n".join(header + rows))
    if not torch.cuda.is_available():
        print("\nNo CUDA device here: the GPU rows were not run.")


if __name__ == "__main__":
    main()
