"""What running your own code through a worker costs: the MNIST-1D example
(``examples/mnist1d``) trained by ``hypersweep worker --program`` as a command and as a
function, against the same training run bare, the same trials and epochs, in one run.

Each round times, as whole processes and in turn:

* **bare command**: ``python examples/mnist1d/train.py --seed S ...`` once per trial, one
  after the other (what a shell loop over the trials would do);
* **command**: ``hypersweep worker --program ... -- python examples/mnist1d/train.py {args}``
  running the same trials from a sweep, from the worker's start to its exit;
* **bare function**: one Python process that calls ``cnn.fit`` once per trial;
* **function**: ``hypersweep worker --program ... --function objective:train``.

The ratio bare / worker (1.0: no overhead) is printed per form, medians over the rounds,
of wall time and of CPU time (user + system of the process and all it started, as the
kernel accounts it: on a busy machine wall time swings with the neighbours, CPU time much
less). The server's own CPU is not counted: it can run anywhere.
A server on a temporary SQLite file serves the sweeps; every worker runs one trial at a
time, and every trial one torch thread, as the example's sweep sets.

    python bench/program_overhead.py --trials 4 --epochs 8 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "mnist1d"
HYPERSWEEP = [sys.executable, "-m", "hypersweep"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sweep_doc(program: str, trials: int, epochs: int) -> dict[str, Any]:
    """``trials`` trials that differ only in their seed, so each costs the same."""
    return {
        "name": f"overhead-{program}",
        "program": program,
        "objective": {"metric": "val_accuracy", "mode": "max"},
        "space": {"seed": {"type": "categorical", "values": list(range(trials))}},
        "search": {"kind": "grid"},
        "stages": [{"epochs": epochs}],
        "trainer": {"lr": 0.0035, "weight_decay": 0.1, "dropout": 0.1, "channels": 32, "threads": 1},
        "parallelism": 1,
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Wall and CPU seconds (of the processes this one started and waited for) over a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), _children_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, _children_cpu() - self.cpu


def timed(args: list[str], **kwargs: Any) -> Clock:
    with Clock() as clock:
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return clock


def bare_command(trials: int, epochs: int) -> Clock:
    clock = Clock().__enter__()
    for seed in range(trials):
        subprocess.run(
            [
                sys.executable,
                str(EXAMPLE / "train.py"),
                f"--seed={seed}",
                f"--epochs={epochs}",
                "--lr=0.0035",
                "--weight_decay=0.1",
                "--dropout=0.1",
                "--channels=32",
                "--threads=1",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    clock.__exit__()
    return clock


def bare_function(trials: int, epochs: int) -> Clock:
    code = (
        "import cnn\n"
        f"for seed in range({trials}):\n"
        f"    cnn.fit(cnn.Settings.from_mapping(dict(seed=seed, epochs={epochs}, lr=0.0035, weight_decay=0.1,"
        " dropout=0.1, channels=32, threads=1)), lambda step, **m: None)\n"
    )
    return timed([sys.executable, "-c", code], cwd=EXAMPLE)


def through_worker(url: str, form: str, trials: int, epochs: int, env: dict[str, str]) -> Clock:
    program = f"overhead-{form}"
    answer = httpx.post(f"{url}/api/v1/sweeps", json=sweep_doc(program, trials, epochs), timeout=30)
    answer.raise_for_status()
    sweep_id = answer.json()["id"]
    how = (
        ["--function", "objective:train"]
        if form == "function"
        else ["--", sys.executable, str(EXAMPLE / "train.py"), "{args}"]
    )
    args = [*HYPERSWEEP, "worker", "--program", program, "--sweep", str(sweep_id), *how]
    seconds = timed(args, env={**env, "PYTHONPATH": str(EXAMPLE)}, stderr=subprocess.DEVNULL)
    done = httpx.get(f"{url}/api/v1/sweeps/{sweep_id}", timeout=30).json()
    if done["counts"] != {"completed": trials}:
        raise SystemExit(f"the {form} sweep ended with {done['counts']}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="hypersweep-overhead-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "HYPERSWEEP_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
        "HYPERSWEEP_SERVER": url,
        "MNIST1D_CACHE_DIR": str(folder),
    }
    env.pop("HYPERSWEEP_TOKEN", None)
    server = subprocess.Popen(
        [*HYPERSWEEP, "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ["MNIST1D_CACHE_DIR"] = str(folder)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        # Warm-up: builds the data cache and the page cache for every side.
        bare_function(1, 1)
        times: dict[str, list[Clock]] = {"bare command": [], "command": [], "bare function": [], "function": []}
        for round_ in range(args.repeats):
            times["bare command"].append(bare_command(args.trials, args.epochs))
            times["command"].append(through_worker(url, "command", args.trials, args.epochs, env))
            times["bare function"].append(bare_function(args.trials, args.epochs))
            times["function"].append(through_worker(url, "function", args.trials, args.epochs, env))
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{k} {v[-1].wall:.2f} s (cpu {v[-1].cpu:.2f} s)" for k, v in times.items()),
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{args.trials} trials x {args.epochs} epochs, medians of {args.repeats} rounds:")
    for form in ("command", "function"):
        for what in ("wall", "cpu"):
            bare = statistics.median(getattr(c, what) for c in times[f"bare {form}"])
            ours = statistics.median(getattr(c, what) for c in times[form])
            print(f"  {form:<8} {what:<4}  bare {bare:7.2f} s   worker {ours:7.2f} s   bare/worker {bare / ours:.3f}")


if __name__ == "__main__":
    main()
