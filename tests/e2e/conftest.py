"""Real processes: a ``hypersweep serve`` on a free port and ``hypersweep worker``s.

Every process is started in its own session (process group) and killed with its whole
group when the test ends, whatever happened, so a failing test leaves nothing running.
Their output goes to files under the test's ``tmp_path``; :meth:`Processes.logs` shows it
in assertion messages.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hypersweep.worker.client import RetryPolicy, ServiceClient, ServiceError

#: How long a server may take to answer /healthz, and a bound on any other wait.
STARTUP_SECONDS = 60.0
TOKEN = "e2e-token"


def hypersweep_command() -> list[str]:
    """The installed console script, or the same entry point through this interpreter."""
    script = Path(sys.executable).with_name("hypersweep")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from hypersweep.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], *, what: str, timeout: float = STARTUP_SECONDS) -> None:
    """Poll ``check`` until it is true; fail the test with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.05)


@dataclass
class Processes:
    """The processes one test started, with their logs."""

    workdir: Path
    started: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                args,
                env={**os.environ, **env},
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((name, proc, log))
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} (exit {proc.poll()}) ---\n{log.read_text(errors='replace')[-4000:]}"
            for name, proc, log in self.started
        )

    def kill_all(self) -> None:
        for _, proc, _ in self.started:
            # Killing the whole group also takes a worker's children, which outlive a
            # leader that exited first.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@dataclass
class Server:
    url: str
    client: ServiceClient
    processes: Processes

    def start_worker(self, *args: str, name: str = "worker") -> subprocess.Popen[bytes]:
        """``hypersweep worker ARGS`` against this server; the server and token come
        from the environment, as in a container."""
        env = {"HYPERSWEEP_SERVER": self.url, "HYPERSWEEP_TOKEN": TOKEN}
        return self.processes.start(name, [*hypersweep_command(), "worker", *args], env)

    def wait_for_exit(self, proc: subprocess.Popen[bytes], *, timeout: float = 60) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"process {proc.args!r} still running after {timeout} s\n{self.processes.logs()}")


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.kill_all()


@pytest.fixture
def server(processes: Processes, tmp_path: Path) -> Iterator[Server]:
    """A real ``hypersweep serve`` on a temporary SQLite file, requiring a token."""
    yield from serve(processes, f"sqlite:///{tmp_path / 'hypersweep.db'}")


def serve(processes: Processes, database_url: str) -> Iterator[Server]:
    """Start ``hypersweep serve`` on ``database_url`` (migrated), requiring a token; yield
    it once it answers its health check, and close its client at the end."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"HYPERSWEEP_DATABASE_URL": database_url, "HYPERSWEEP_TOKEN": TOKEN, "HYPERSWEEP_LEASE_SECONDS": "60"}
    args = [*hypersweep_command(), "serve", "--port", str(port), "--log-level", "warning"]
    proc = processes.start("server", args, env)
    client = ServiceClient.connect(url, token=TOKEN, retry=RetryPolicy(attempts=1))

    def healthy() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}\n{processes.logs()}")
        try:
            return bool(client.healthz()["status"] == "ok")
        except ServiceError:
            return False

    wait_until(healthy, what="the server's /healthz")
    client.retry = RetryPolicy(attempts=5, base_delay=0.1, max_delay=1.0, deadline=10)
    try:
        yield Server(url=url, client=client, processes=processes)
    finally:
        client.close()
