"""``hypersweep worker`` as a process, against servers whose answers it cannot use: it stops
with one line saying why and exit status 1, never a traceback, and does not retry what
asking again cannot mend."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from tests.conftest import _pg_admin, sweep_doc


def run_worker(server: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYPERSWEEP_SERVER": server}
    env.pop("HYPERSWEEP_TOKEN", None)
    env.pop("HYPERSWEEP_WORKER_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "hypersweep", "worker", "--worker-id", "w"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def errors_in(log: str) -> list[str]:
    return [line for line in log.splitlines() if " ERROR " in line]


@pytest.fixture
def garbage_server() -> Iterator[str]:
    """An HTTP server that answers every request 200 with a page that is not JSON, as a
    misconfigured proxy in front of the real one might."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            body = b"<html><body>Welcome!</body></html>"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_worker_given_answers_it_cannot_read_stops_with_one_line(garbage_server: str) -> None:
    done = run_worker(garbage_server)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    [error] = errors_in(done.stderr)
    assert "POST /trials/claim: the server's answer is not what this client expects" in error


def test_a_worker_stops_at_once_on_a_read_only_database(
    backend: str, database_url: str, client: TestClient, start_server: Callable[..., str]
) -> None:
    assert client.post("/api/v1/sweeps", json=sweep_doc()).status_code == 201  # work to claim
    if backend == "sqlite":
        read_only = f"sqlite:///file:{make_url(database_url).database}?mode=ro&uri=true"
    else:
        _pg_admin(f"ALTER DATABASE {make_url(database_url).database} SET default_transaction_read_only = on")
        read_only = database_url
    server = start_server(database_url=read_only)
    done = run_worker(server)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    # Not retried for a minute as if the database were restarting: told once, and why.
    assert "retrying" not in done.stderr
    [error] = errors_in(done.stderr)
    assert "answered 500" in error and "read-only" in error
