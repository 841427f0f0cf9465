"""Real processes for the fault tests: a ``hypersweep serve`` that a test may kill and
start again on the same port and database, and workers (the real ``hypersweep worker``,
or :mod:`tests.reliability.agent`, the real pull loop with training stubbed out).

Leases are short (``LEASE_SECONDS``) and the reaper fast, so that expiry happens within a
test. Processes are started through :class:`tests.e2e.conftest.Processes`, each in its own
process group, and killed with their group when the test ends, whatever happened.
The server logs at ``info``, so its access log shows every answer's status code.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hypersweep.worker.client import RetryPolicy, ServiceClient, ServiceError
from hypersweep.worker.wire import Trial
from tests.conftest import BACKENDS
from tests.e2e.conftest import TOKEN, Processes, free_port, hypersweep_command, wait_until
from tests.e2e.conftest import processes as processes  # the same process-group fixture as the e2e tests

LEASE_SECONDS = 2.0
REAPER_INTERVAL = 0.2
REPO = Path(__file__).resolve().parents[2]
#: ``hypersweep serve ARGS`` with every logger at DEBUG (SQLAlchemy sets its own to WARNING).
DEBUG_SERVE = (
    "import logging, sys; "
    "logging.basicConfig(level=logging.DEBUG, format='%(levelname)s %(name)s %(message)s'); "
    "logging.getLogger('sqlalchemy').setLevel(logging.DEBUG); "
    "from hypersweep.cli import main; sys.argv[0] = 'hypersweep'; main()"
)
#: A 5xx in uvicorn's access log: `"POST /api/v1/trials/claim HTTP/1.1" 500`.
SERVER_ERROR = re.compile(r'HTTP/1\.1" 5\d\d')


def on_backend(name: str) -> pytest.MarkDecorator:
    """Run a test on one backend only; skipped when that backend is not under test."""
    marks = () if name in BACKENDS else (pytest.mark.skip(reason=f"{name} is not under test"),)
    return pytest.mark.parametrize("backend", [pytest.param(name, marks=marks)], indirect=True)


@dataclass
class Service:
    """One ``hypersweep serve`` on ``database_url`` at a fixed port, with the token set.
    :meth:`kill` and :meth:`start` may be called again and again; each start logs to a
    file of its own."""

    processes: Processes
    database_url: str
    env: dict[str, str] = field(default_factory=dict)
    token: str = TOKEN
    port: int = field(default_factory=free_port)
    log_level: str = "info"
    #: Every logger of the server process at DEBUG (SQLAlchemy's statements and rows too).
    debug_logging: bool = False
    #: Names its log files (``NAME-1.log``, ...): two services in one test need two names.
    name: str = "server"
    starts: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.client = ServiceClient.connect(
            self.url, token=self.token, retry=RetryPolicy(attempts=20, base_delay=0.1, max_delay=1.0, deadline=30)
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        env = {
            "HYPERSWEEP_DATABASE_URL": self.database_url,
            "HYPERSWEEP_TOKEN": self.token,
            "HYPERSWEEP_LEASE_SECONDS": str(LEASE_SECONDS),
            "HYPERSWEEP_REAPER_INTERVAL": str(REAPER_INTERVAL),
            **self.env,
        }
        args = [*hypersweep_command(), "serve", "--port", str(self.port), "--log-level", self.log_level]
        if self.debug_logging:
            args = [sys.executable, "-c", DEBUG_SERVE, *args[-5:]]
        proc = self.processes.start(f"{self.name}-{self.starts}", args, env)
        self.proc = proc
        probe = ServiceClient.connect(self.url, retry=RetryPolicy(attempts=1))

        def healthy() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}\n{self.processes.logs()}")
            try:
                return bool(probe.healthz()["status"] == "ok")
            except ServiceError:
                return False

        try:
            wait_until(healthy, what="the server's /healthz")
        finally:
            probe.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def log(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")
            for name, _, path in self.processes.started
            if name.startswith(f"{self.name}-")
        )

    def start_agent(
        self, name: str, sweep_id: int | None, *, epoch_seconds: float = 0.0, token: str | None = None
    ) -> subprocess.Popen[bytes]:
        """A :mod:`tests.reliability.agent` process for one sweep (``None``: every sweep, until
        stopped), with the server's token (or ``token``) in its environment."""
        args = [sys.executable, "-m", "tests.reliability.agent", "--server", self.url]
        args += ["--sweep", str(sweep_id)] if sweep_id is not None else []
        args += ["--worker-id", name, "--epoch-seconds", str(epoch_seconds)]
        env = {"PYTHONPATH": str(REPO), "HYPERSWEEP_TOKEN": token or self.token}
        return self.processes.start(name, args, env)

    def start_worker(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """The real ``hypersweep worker ARGS``, with the real trainer."""
        env = {"HYPERSWEEP_SERVER": self.url, "HYPERSWEEP_TOKEN": self.token}
        return self.processes.start(name, [*hypersweep_command(), "worker", "--worker-id", name, *args], env)

    def wait_for_exit(self, proc: subprocess.Popen[bytes], *, timeout: float = 120) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"process {proc.args!r} still running after {timeout} s\n{self.processes.logs()}")

    def trials(self, sweep_id: int) -> list[Trial]:
        """Every trial of the sweep, by number, paging through the list."""
        found: list[Trial] = []
        while True:
            page = self.client.list_trials(sweep_id, limit=1000, offset=len(found))
            found += page
            if len(page) < 1000:
                return found

    def counter(self, name: str) -> float:
        """The sum of a Prometheus counter over its labels."""
        text = self.client.http.get("/metrics").raise_for_status().text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and line[len(name)] in "{ "
        )


@pytest.fixture
def service(processes: Processes, database_url: str) -> Iterator[Service]:
    """A started server on this test's database (each backend in turn)."""
    svc = Service(processes, database_url)
    svc.start()
    try:
        yield svc
    finally:
        svc.client.close()
