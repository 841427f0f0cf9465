"""Service throughput: hypersweep against Optuna's RDB storage, per trial, side by side.

For each database engine (a SQLite file and the local PostgreSQL), in one run:

- hypersweep: a real ``hypersweep serve`` and W worker processes that only claim and
  finish (no training), with ``count=1`` and with batched claims (``count=8``), each
  finishing its trials with a request per trial and, "carried", with the next claim (as
  ``hypersweep worker`` does: one request ends a trial and leases the next);
- Optuna: ``study.optimize`` with RandomSampler on RDBStorage at the same kind of URL,
  W processes, the same number of trials;
- the per-trial cost on a sweep that already holds 20,000 and 100,000 finished trials
  against a fresh one;
- claim latency p50/p99 with 16 workers: saturated (each claims again the moment its
  last trial is finished, so the figures are mostly time spent queueing behind the other
  15) and working (each holds its trial ``--hold`` seconds, as if training a small one),
  finishing each trial with its own request or with the claim (then the claim's time
  includes the finish's).

Prints trials per second and the ratios. Run: ``python bench/service_throughput.py``
(``--quick`` for a short run, ``--backends sqlite`` without PostgreSQL).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.engine import make_url

from hypersweep.service import migrate
from hypersweep.service.models import Stage, Sweep, Trial, utcnow

POSTGRES_ADMIN_URL = os.environ.get(
    "HYPERSWEEP_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SPACE = {"lr": {"type": "float", "low": 1e-5, "high": 1.0, "scale": "log"}}


# -- databases ---------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"hs_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(url: str, workdir: Path) -> Iterator[str]:
    migrate.upgrade(url)
    port = free_port()
    env = {**os.environ, "HYPERSWEEP_DATABASE_URL": url, "HYPERSWEEP_LEASE_SECONDS": "120"}
    env.pop("HYPERSWEEP_TOKEN", None)
    log = (workdir / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hypersweep", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


# -- hypersweep workers -------------------------------------------------------------------


def submit(base: str, trials: int) -> int:
    doc = {
        "name": "throughput",
        "space": SPACE,
        "search": {"kind": "random", "seed": 0},
        "stages": [{"trials": trials, "epochs": 1}],
        "parallelism": 100_000,
    }
    response = httpx.post(f"{base}/api/v1/sweeps", json=doc)
    response.raise_for_status()
    return int(response.json()["id"])


def _claim_finish_worker(
    base: str,
    sweep_id: int,
    count: int,
    index: int,
    start: Any,
    out: Any,
    hold: float = 0.0,
    carry: bool = False,
) -> None:
    """Claim ``count`` trials at a time and finish them: each with its own finish request,
    or, with ``carry``, all of them carried by the next claim (as ``hypersweep worker``
    finishes a trial and claims the next in one request)."""
    latencies: list[float] = []
    rng = random.Random(index)
    done = 0
    ended: list[dict[str, Any]] = []
    # The modules this process inherited (SQLAlchemy, Optuna, ...) are kept out of the
    # collector's full passes, which would otherwise pause it for a tenth of a second now
    # and then: the latencies are the service's, not this client's. Optuna's side does the same.
    gc.freeze()
    with httpx.Client(base_url=f"{base}/api/v1", timeout=60) as http:
        start.wait()
        while True:
            body: dict[str, Any] = {"worker_id": f"b{index}", "sweep_id": sweep_id, "count": count}
            if ended:
                body["finished"] = ended
            t0 = time.perf_counter()
            response = http.post("/trials/claim", json=body)
            latencies.append(time.perf_counter() - t0)
            if response.status_code == 204:
                break
            response.raise_for_status()
            answer = response.json()
            if any(outcome["code"] != 200 for outcome in answer["finished"]):
                raise RuntimeError(f"a carried finish was refused: {answer['finished']}")
            done += len(ended)
            trials = answer["trials"]
            if not trials:
                break
            if hold:
                time.sleep(rng.uniform(0.5 * hold, 1.5 * hold))
            results = [
                {"lease_token": t["lease_token"], "status": "completed", "metrics": {"val_accuracy": 0.5}}
                for t in trials
            ]
            if carry:
                ended = [{"trial_id": t["id"], **result} for t, result in zip(trials, results, strict=True)]
                continue
            ended = []
            for trial, result in zip(trials, results, strict=True):
                http.post(f"/trials/{trial['id']}/finish", json=result).raise_for_status()
                done += 1
    out.put((done, latencies))


@dataclass
class Run:
    trials: int
    seconds: float
    #: Every claim's round trip, in seconds.
    latencies: list[float]
    #: The same without each worker's first claim, which opens its connection and, as all
    #: workers start at once, queues behind all the others.
    steady: list[float]

    @property
    def rate(self) -> float:
        return self.trials / self.seconds


def run_workers(base: str, sweep_id: int, *, workers: int, count: int, hold: float = 0.0, carry: bool = False) -> Run:
    ctx = mp.get_context("fork")
    start = ctx.Event()
    out: Any = ctx.Queue()
    procs = [
        ctx.Process(target=_claim_finish_worker, args=(base, sweep_id, count, i, start, out, hold, carry))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    time.sleep(0.5)
    t0 = time.perf_counter()
    start.set()
    results = [out.get(timeout=1800) for _ in procs]
    seconds = time.perf_counter() - t0
    for p in procs:
        p.join()
    return Run(
        sum(r[0] for r in results),
        seconds,
        [lat for r in results for lat in r[1]],
        [lat for r in results for lat in r[1][1:]],
    )


def prepopulate(url: str, sweep_id: int, finished: int) -> None:
    """Insert ``finished`` completed trials into the sweep's first stage, as if run."""
    engine = create_engine(url)
    now = utcnow()
    with engine.begin() as conn:
        batch = 5000
        for start in range(0, finished, batch):
            rows = [
                {
                    "sweep_id": sweep_id,
                    "stage": 0,
                    "stage_index": i,
                    "number": i,
                    "params": {"lr": 0.01},
                    "status": "completed",
                    "attempt": 1,
                    "metrics": {"val_accuracy": 0.5},
                    "value": 0.5,
                    "created_at": now,
                    "started_at": now,
                    "finished_at": now,
                }
                for i in range(start, min(start + batch, finished))
            ]
            conn.execute(insert(Trial), rows)
        conn.execute(update(Stage).where(Stage.sweep_id == sweep_id).values(generated=finished))
        conn.execute(update(Sweep).where(Sweep.id == sweep_id).values(trials_created=finished))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    engine.dispose()


# -- Optuna ---------------------------------------------------------------------------------


def _optuna_worker(url: str, study_name: str, n_trials: int, start: Any, out: Any) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url)
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=optuna.samplers.RandomSampler())
    gc.freeze()
    start.wait()
    study.optimize(lambda trial: trial.suggest_float("lr", 1e-5, 1.0, log=True), n_trials=n_trials)
    out.put(n_trials)


def run_optuna(url: str, *, trials: int, workers: int) -> Run:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = "throughput"
    optuna.create_study(study_name=name, storage=optuna.storages.RDBStorage(url), direction="maximize")
    ctx = mp.get_context("fork")
    start = ctx.Event()
    out: Any = ctx.Queue()
    share = [trials // workers + (1 if i < trials % workers else 0) for i in range(workers)]
    procs = [ctx.Process(target=_optuna_worker, args=(url, name, n, start, out)) for n in share]
    for p in procs:
        p.start()
    time.sleep(2.0)
    t0 = time.perf_counter()
    start.set()
    done = sum(out.get(timeout=3600) for _ in procs)
    seconds = time.perf_counter() - t0
    for p in procs:
        p.join()
    return Run(done, seconds, [], [])


# -- the report ------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


#: The hypersweep sides of the throughput table: (label, claim count, finishes carried by the next claim).
SIDES = (
    ("count=1", 1, False),
    ("count=1 carried", 1, True),
    ("count=8", 8, False),
    ("count=8 carried", 8, True),
)


def throughput_row(backend: str, workdir: Path, *, trials: int, workers: int, repeats: int) -> tuple[str, ...]:
    """Trials per second of Optuna and of each of hypersweep's SIDES, each the median of
    ``repeats`` rounds (all sides take turns within a round), and the ratios to Optuna."""
    rates: dict[str, list[float]] = {label: [] for label, _, _ in SIDES}
    rates["optuna"] = []
    for _ in range(repeats):
        with fresh_database(backend, workdir) as url, server(url, workdir) as base:
            for label, count, carry in SIDES:
                run = run_workers(base, submit(base, trials), workers=workers, count=count, carry=carry)
                rates[label].append(run.rate)
        with fresh_database(backend, workdir) as url:
            rates["optuna"].append(run_optuna(url, trials=trials, workers=workers).rate)
    medians = {label: statistics.median(values) for label, values in rates.items()}
    row = [backend, f"{medians['optuna']:.0f}"]
    for label, _, _ in SIDES:
        row += [f"{medians[label]:.0f}", f"{medians[label] / medians['optuna']:.1f}x"]
    return tuple(row)


def scale_table(backend: str, workdir: Path, sizes: list[int], *, trials: int, workers: int) -> list[tuple[str, ...]]:
    """Per-trial cost on a sweep that already holds each of ``sizes`` finished trials, each
    trial finished with the next claim, as the worker does."""
    costs = {}
    for size in [0, *sizes]:
        with fresh_database(backend, workdir) as url, server(url, workdir) as base:
            sweep_id = submit(base, size + trials)
            prepopulate(url, sweep_id, size)
            costs[size] = run_workers(base, sweep_id, workers=workers, count=1, carry=True)
    fresh = costs[0].seconds / costs[0].trials
    rows = []
    for size, run in costs.items():
        per = run.seconds / run.trials
        rows.append((backend, f"{size:,}", f"{per * 1000:.2f}", f"{per / fresh:.2f}x"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--sizes", default="20000,100000", help="finished trials already in the sweep")
    parser.add_argument("--hold", type=float, default=1.0, help="mean seconds a working worker holds a trial")
    parser.add_argument("--hold-trials", type=int, default=480, help="trials of the working latency run")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the throughput comparison")
    parser.add_argument("--parts", default="throughput,scale,latency", help="which measurements to run")
    parser.add_argument("--quick", action="store_true", help="400 trials, sizes 2000,10000")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.sizes, args.hold_trials = 400, "2000,10000", 160
    sizes = [int(s) for s in args.sizes.split(",") if s]
    parts = set(args.parts.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="hs-bench-"))
    rows: list[tuple[str, ...]] = []
    scale_rows: list[tuple[str, ...]] = []
    latency_rows: list[tuple[str, ...]] = []
    try:
        for backend in args.backends.split(","):
            if "throughput" in parts:
                rows.append(
                    throughput_row(backend, workdir, trials=args.trials, workers=args.workers, repeats=args.repeats)
                )
            if "scale" in parts:
                scale_rows += scale_table(backend, workdir, sizes, trials=args.trials, workers=args.workers)
            if "latency" not in parts:
                continue
            for hold, trials in ((0.0, args.trials), (args.hold, args.hold_trials)):
                for carry in (False, True):
                    with fresh_database(backend, workdir) as url, server(url, workdir) as base:
                        run = run_workers(base, submit(base, trials), workers=16, count=1, hold=hold, carry=carry)
                    lat, steady = run.latencies, run.steady
                    latency_rows.append(
                        (
                            backend,
                            f"{hold:g} s" if hold else "none (saturated)",
                            "with the claim" if carry else "own request",
                            f"{percentile(lat, 0.5) * 1000:.1f}",
                            f"{percentile(lat, 0.99) * 1000:.1f}",
                            f"{percentile(steady, 0.99) * 1000:.1f}",
                            f"{run.rate:.0f}",
                        )
                    )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"\nThroughput, {args.trials} trials, {args.workers} processes, median of {args.repeats} rounds "
        "(trials/s; claim + finish, no training)"
    )
    header = ["database", "optuna RDB"]
    for label, _, _ in SIDES:
        header += [label, "ratio"]
    print_table(tuple(header), rows)
    print("\nPer-trial cost as the sweep grows (count=1, finished with the next claim)")
    print_table(("database", "finished trials", "ms/trial", "vs fresh"), scale_rows)
    print("\nClaim latency with 16 workers (count=1)")
    print_table(
        ("database", "trial held", "finish", "p50 ms", "p99 ms", "p99 ms after first claims", "trials/s"), latency_rows
    )


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    if not rows:
        print("(not measured)")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
