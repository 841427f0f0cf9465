"""``hypersweep serve`` and ``hypersweep worker`` refuse to start on a setting outside its
range, with one line naming the variable and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SERVE: list[tuple[str, str]] = [
    ("HYPERSWEEP_TOKEN", ""),
    ("HYPERSWEEP_LEASE_SECONDS", "inf"),
    ("HYPERSWEEP_LEASE_SECONDS", "1e12"),
    ("HYPERSWEEP_REAPER_INTERVAL", "0"),
    ("HYPERSWEEP_REAPER_INTERVAL", "-2"),
    ("HYPERSWEEP_MAX_BODY_BYTES", "-1"),
    ("HYPERSWEEP_DATABASE_URL", "nonsense"),
]
WORKER: list[tuple[str, str]] = [
    ("HYPERSWEEP_SERVER", "127.0.0.1:8000"),
    ("HYPERSWEEP_SERVER", "http://127.0.0.1:99999"),
    ("HYPERSWEEP_REPORT_EVERY", "inf"),
    ("HYPERSWEEP_REPORT_EVERY", "-1"),
    ("HYPERSWEEP_REPORT_EVERY", "soon"),
    ("HYPERSWEEP_TOKEN", "two words"),
    ("HYPERSWEEP_WORKER_TOKEN", "two words"),
    ("HYPERSWEEP_CHECKPOINT_ROOT", "/proc/self/status"),
]


def start(command: str, name: str, value: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HYPERSWEEP_DATABASE_URL": "sqlite:///never.db", name: value}
    # The server is never reached: a worker that got past its settings would wait for it,
    # so --sweep makes it give up at once; a server that got past them would serve.
    args = [sys.executable, "-m", "hypersweep", command, *(["--sweep", "1"] if command == "worker" else [])]
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("command", "name", "value"),
    [("serve", n, v) for n, v in SERVE] + [("worker", n, v) for n, v in WORKER],
    ids=[f"serve-{n}={v!r}" for n, v in SERVE] + [f"worker-{n}={v!r}" for n, v in WORKER],
)
def test_a_setting_outside_its_range_stops_the_start_with_one_line(
    tmp_path: Path, command: str, name: str, value: str
) -> None:
    result = start(command, name, value, tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error:") and name in line
    assert "Traceback" not in result.stderr
