"""What does training inside a worker cost, next to a bare PyTorch loop?

"ours" is one trial run the way a worker runs it: ``Agent.run`` against a real
``hypersweep serve`` (claim over HTTP, ``trainer.train`` with the agent's callback that
queues each epoch's point for its sending thread, which sends them at most every
``--report-every`` seconds, heartbeats, finish). It includes
everything the trainer does besides training: a loss check every step, a pass over a
training sample and a validation pass every epoch, and a test pass at the end.

"bare" is the loop a person would write by hand: the same model (``trainer.MLP``, same
seed, so the same initial weights), the same data split, the same optimizer and learning
rate, the same shuffling and the same number of steps, and nothing else. "bare+eval" adds
what any loop must do to produce the metrics a trial reports: a pass over a training sample
and one over the validation split after each epoch, and a test pass at the end.

"trainer alone" is ``trainer.train`` with no worker and no server around it; it splits
the gap into what the trainer adds (evaluation) and what the worker adds (HTTP).

All run in this process, interleaved, with the same number of torch threads; medians
of ``--repeats`` runs are compared, after one untimed warm-up of each. Prints the times
and ``bare / ours`` (1.0 means no overhead; the target is >= 0.95). The server runs on
the same machine, so on a small one its work per report competes with training.

    python bench/trainer_overhead.py [--epochs 20] [--hidden 256] [--repeats 7]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from hypersweep.trainer import MLP, TrainerConfig, load_dataset, train
from hypersweep.worker.agent import Agent, IdleBackoff
from hypersweep.worker.client import REPORT_EVERY_SECONDS, RetryPolicy, ServiceClient, ServiceError


def bare_loop(config: TrainerConfig, *, evaluate: bool = False) -> tuple[float, int]:
    """Seconds and steps for the hand-written loop (data loading and model set-up included,
    as they are in ``train``). With ``evaluate``, it also computes what the trainer must
    report: training accuracy (on as many training samples as the validation split holds),
    validation loss and accuracy after every epoch and test accuracy at the end."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    splits = load_dataset(config.dataset, seed=config.seed)
    model = MLP(splits.num_features, splits.num_classes, hidden=config.hidden, layers=config.layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    shuffle = torch.Generator().manual_seed(config.seed)
    n_train = len(splits.y_train)
    steps = 0
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(n_train, generator=shuffle)
        for start in range(0, n_train, config.batch_size):
            batch = order[start : start + config.batch_size]
            loss = F.cross_entropy(model(splits.x_train[batch]), splits.y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            steps += 1
        if evaluate:
            sample = len(splits.y_val)
            _accuracy_and_loss(model, splits.x_train[:sample], splits.y_train[:sample])
            _accuracy_and_loss(model, splits.x_val, splits.y_val)
    if evaluate:
        _accuracy_and_loss(model, splits.x_test, splits.y_test)
    return time.perf_counter() - started, steps


def _accuracy_and_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        result = (logits.argmax(1) == y).float().mean().item(), F.cross_entropy(logits, y).item()
    model.train()
    return result


def worker_trial(client: ServiceClient, config: TrainerConfig, *, report_every: float) -> tuple[float, int]:
    """Seconds and steps for one trial run by an agent, from its claim to its finish."""
    sweep = client.submit_sweep(
        {
            "name": "trainer-overhead",
            "space": {"lr": {"type": "categorical", "values": [config.lr]}},
            "search": {"kind": "grid"},
            "stages": [{"trials": 1, "epochs": config.epochs}],
            "trainer": {
                "dataset": config.dataset,
                "batch_size": config.batch_size,
                "hidden": config.hidden,
                "layers": config.layers,
                "optimizer": config.optimizer,
                "seed": config.seed,
            },
        }
    )
    agent = Agent(
        client, worker_id="bench", sweep_id=sweep.id, once=True, backoff=IdleBackoff(), report_every=report_every
    )
    started = time.perf_counter()
    ran = agent.run()
    seconds = time.perf_counter() - started
    [trial] = client.list_trials(sweep.id)
    if ran != 1 or trial.status != "completed":
        raise SystemExit(f"the benchmark trial did not complete: {trial}")
    return seconds, int(trial.metrics["steps"])


def trainer_alone(config: TrainerConfig) -> tuple[float, int]:
    """Seconds and steps for ``trainer.train`` called directly, with a no-op callback."""
    started = time.perf_counter()
    result = train(config, on_epoch=lambda epoch, metrics: True)
    return time.perf_counter() - started, int(result.metrics["steps"])


@contextlib.contextmanager
def running_server() -> Iterator[str]:
    """A ``hypersweep serve`` on a free port and a temporary SQLite file, for the block."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = Path(sys.executable).with_name("hypersweep")
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from hypersweep.cli import main; main()"]
    with tempfile.TemporaryDirectory() as workdir:
        env = {**os.environ, "HYPERSWEEP_DATABASE_URL": f"sqlite:///{workdir}/bench.db"}
        env.pop("HYPERSWEEP_TOKEN", None)
        server = subprocess.Popen(
            [*command, "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            cwd=workdir,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            probe = ServiceClient.connect(url, retry=RetryPolicy(attempts=1))
            deadline = time.monotonic() + 60
            while True:
                try:
                    probe.healthz()
                    break
                except ServiceError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.1)
            probe.close()
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=7)
    # One thread by default: on small models extra threads add more noise than speed,
    # and both sides get the same number either way.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--server", help="Use this running server instead of starting one.")
    parser.add_argument(
        "--report-every",
        type=float,
        default=REPORT_EVERY_SECONDS,
        help="The worker's report interval in seconds (0: a request per epoch).",
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    config = TrainerConfig(
        dataset=args.dataset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        hidden=args.hidden,
        layers=args.layers,
        lr=args.lr,
        optimizer="sgd",
    )
    print(
        f"{config.dataset}, MLP {config.layers}x{config.hidden}, batch {config.batch_size}, "
        f"{config.epochs} epochs, SGD lr {config.lr}, {torch.get_num_threads()} torch thread(s), "
        f"worker reports every {args.report_every:g} s"
    )

    with contextlib.ExitStack() as stack:
        url = args.server or stack.enter_context(running_server())
        client = stack.enter_context(ServiceClient.connect(url, token=os.environ.get("HYPERSWEEP_TOKEN")))
        runs: dict[str, Callable[[TrainerConfig], tuple[float, int]]] = {
            "bare": bare_loop,
            "bare+eval": functools.partial(bare_loop, evaluate=True),
            "trainer": trainer_alone,
            "ours": functools.partial(worker_trial, client, report_every=args.report_every),
        }
        for run in runs.values():
            run(config)  # warm-up: imports, allocator, the cached data set, the server
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for repeat in range(args.repeats):
            steps: dict[str, int] = {}
            for name, run in runs.items():
                took, steps[name] = run(config)
                seconds[name].append(took)
            if len(set(steps.values())) != 1:
                raise SystemExit(f"step counts differ: {steps}")
            times = "   ".join(f"{name} {seconds[name][-1]:.3f} s" for name in runs)
            print(f"  run {repeat + 1}: {times}   ({steps['ours']} steps)")

    bare, bare_eval, trainer, ours = (statistics.median(seconds[name]) for name in runs)
    print(f"bare PyTorch loop                  median {bare:.3f} s")
    print(f"bare loop + the same evaluation    median {bare_eval:.3f} s")
    print(f"trainer alone                      median {trainer:.3f} s   (bare+eval/trainer {bare_eval / trainer:.3f})")
    print(f"trainer inside a worker            median {ours:.3f} s")
    print(f"ratio bare/ours = {bare / ours:.3f}; bare+eval/ours = {bare_eval / ours:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
