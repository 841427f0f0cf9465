"""Soak: grid sweeps back to back under random faults, checked for lost or doubled work.

A real ``hypersweep serve`` and ``--workers`` worker processes (the real pull loop with
stand-in training, ``tests/reliability/agent.py``) run one sweep after another until
``--minutes`` have passed. Every few seconds a fault is injected: a worker killed with
SIGKILL (and replaced), a worker paused with SIGSTOP past its lease and resumed, or the
server killed with SIGKILL and started again on the same database. After each sweep:
every trial finished exactly once (completed, its result from its last holder), each
stage's budget exact, no grid point twice in a stage; at the end, no 5xx and no
"database is locked" in the server's logs. Prints one line per sweep and a summary;
exits 1 on any violation.

    python bench/soak.py --minutes 10 --workers 16
    python bench/soak.py --database-url postgresql+psycopg://postgres@127.0.0.1/soak
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hypersweep.worker.client import RetryPolicy, ServiceClient, ServiceError  # noqa: E402
from hypersweep.worker.wire import Trial  # noqa: E402

TOKEN = "soak-token"
SERVER_ERROR = re.compile(r'HTTP/1\.1" 5\d\d')
FAULTS = ("kill-worker", "pause-worker", "kill-server")


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.rng = random.Random(args.seed)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "HYPERSWEEP_DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'soak.db'}",
            "HYPERSWEEP_TOKEN": TOKEN,
            "HYPERSWEEP_LEASE_SECONDS": str(args.lease),
            "HYPERSWEEP_REAPER_INTERVAL": "0.25",
            "PYTHONPATH": str(REPO),
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self.server: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.client = ServiceClient.connect(self.url, token=TOKEN, retry=RetryPolicy(deadline=120))
        self.faults: Counter[str] = Counter()
        self.violations: list[str] = []

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                args, env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def hypersweep(self, *args: str) -> list[str]:
        return [sys.executable, "-c", "from hypersweep.cli import main; main()", *args]

    def start_server(self) -> None:
        self.starts += 1
        self.server = self.spawn(f"server-{self.starts}", self.hypersweep("serve", "--port", str(self.port)))
        deadline = time.monotonic() + 60
        probe = ServiceClient.connect(self.url, retry=RetryPolicy(attempts=1))
        while time.monotonic() < deadline:
            with contextlib.suppress(ServiceError):
                if probe.healthz()["status"] == "ok":
                    return
            time.sleep(0.1)
        raise SystemExit("the server did not start; see " + str(self.workdir))

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def agent(self, sweep_id: int, index: int) -> subprocess.Popen[bytes]:
        name = f"s{sweep_id}-w{index}"
        args = [sys.executable, "-m", "tests.reliability.agent", "--server", self.url, "--sweep", str(sweep_id)]
        return self.spawn(name, [*args, "--worker-id", name, "--epoch-seconds", str(self.args.epoch_seconds)])

    def sweep_doc(self, index: int) -> dict[str, Any]:
        axis = {"type": "float", "low": 0.0, "high": 0.5}
        first = self.rng.randint(100, 400)
        return {
            "name": f"soak-{index}",
            "space": {
                "lr": {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
                "dropout": axis,
                "momentum": axis,
            },
            "search": {"kind": "grid", "grid_points": 8},
            "stages": [{"trials": first, "epochs": 2}, {"trials": first // 4, "epochs": 2, "top_k": 5}],
            "trainer": {"dataset": "digits"},
            "parallelism": self.args.workers,
            "max_attempts": 50,
        }

    def run_sweep(self, index: int) -> None:
        doc = self.sweep_doc(index)
        sweep_id = self.client.submit_sweep(doc).id
        agents = {i: self.agent(sweep_id, i) for i in range(self.args.workers)}
        paused: dict[int, float] = {}
        started = time.monotonic()
        next_fault = started + self.rng.uniform(0.5, 2) * self.args.fault_every
        while any(proc.poll() is None for proc in agents.values()):
            time.sleep(0.1)
            now = time.monotonic()
            for i, until in list(paused.items()):
                if now >= until:
                    os.killpg(agents[i].pid, signal.SIGCONT)
                    del paused[i]
            if now < next_fault or not self.client.get_sweep(sweep_id).running:
                continue
            next_fault = now + self.rng.uniform(0.5, 1.5) * self.args.fault_every
            fault = self.rng.choice(FAULTS)
            self.faults[fault] += 1
            live = [i for i, proc in agents.items() if proc.poll() is None and i not in paused]
            if fault == "kill-server":
                assert self.server is not None
                self.kill(self.server)
                self.start_server()
            elif live and fault == "kill-worker":
                victim = self.rng.choice(live)
                self.kill(agents[victim])
                agents[victim] = self.agent(sweep_id, victim + 1000 * self.faults[fault])
            elif live:
                victim = self.rng.choice(live)
                os.killpg(agents[victim].pid, signal.SIGSTOP)
                paused[victim] = now + 1.5 * self.args.lease
        failed = [proc.args for proc in agents.values() if proc.returncode not in (0, -signal.SIGKILL)]
        self.check(sweep_id, doc, time.monotonic() - started, failed)

    def check(self, sweep_id: int, doc: dict[str, Any], seconds: float, failed: list[Any]) -> None:
        problems = [f"worker exited badly: {args}" for args in failed]
        sweep = self.client.get_sweep(sweep_id)
        trials: list[Trial] = []
        while page := self.client.list_trials(sweep_id, limit=1000, offset=len(trials)):
            trials += page
        budget = [stage["trials"] for stage in doc["stages"]]
        if sweep.status != "completed":
            problems.append(f"sweep {sweep_id} is {sweep.status}")
        if [s.counts for s in sweep.stages] != [{"completed": n} for n in budget]:
            problems.append(f"stage counts {[s.counts for s in sweep.stages]} != budget {budget}")
        if sorted(t.number for t in trials) != list(range(sum(budget))):
            problems.append("trial numbers are not 0..n-1 once each")
        for stage in range(len(budget)):
            points = [tuple(sorted(t.params.items())) for t in trials if t.stage == stage]
            if len(points) != len(set(points)):
                problems.append(f"a grid point ran twice in stage {stage}")
        mixed = [t.id for t in trials if t.metrics.get("worker") != t.worker_id]
        if mixed:
            problems.append(f"results not from the last holder: trials {mixed[:5]}")
        reruns = sum(t.attempt - 1 for t in trials)
        print(
            f"sweep {sweep_id:4d}: {len(trials):5d} trials in {seconds:6.1f} s, {reruns:4d} reruns, "
            f"{'ok' if not problems else '; '.join(problems)}",
            flush=True,
        )
        self.violations += problems

    def run(self) -> int:
        if self.args.database_url and not self.args.database_url.startswith("sqlite"):
            subprocess.run(self.hypersweep("db", "upgrade"), env=self.env, check=True)
        self.start_server()
        deadline = time.monotonic() + 60 * self.args.minutes
        index = 0
        while time.monotonic() < deadline:
            self.run_sweep(index)
            index += 1
        logs = "".join(p.read_text(errors="replace") for p in self.workdir.glob("server-*.log"))
        errors, locked = len(SERVER_ERROR.findall(logs)), logs.count("database is locked")
        print(
            f"\n{index} sweeps, faults: {dict(self.faults)}, server restarts: {self.starts - 1}, "
            f"5xx: {errors}, 'database is locked': {locked}, violations: {len(self.violations)}"
        )
        print(f"logs in {self.workdir}")
        return 1 if self.violations or errors or locked else 0

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)
        self.client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--lease", type=float, default=3.0, help="lease seconds")
    parser.add_argument("--fault-every", type=float, default=4.0, help="mean seconds between faults")
    parser.add_argument("--epoch-seconds", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    soak = Soak(args, Path(tempfile.mkdtemp(prefix="hypersweep-soak-")))
    try:
        return soak.run()
    finally:
        soak.close()


if __name__ == "__main__":
    sys.exit(main())
