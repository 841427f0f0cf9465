"""The docker-compose topology, run for real without Docker: PostgreSQL, the migration
command, the api command and three worker commands taken from docker-compose.yml itself
(same commands, same environment from .env.example, service hosts mapped to localhost,
the workers' data volume mapped to a local folder)."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.conftest import BACKENDS, POSTGRES_ADMIN_URL, _pg_admin
from tests.e2e.conftest import Processes, free_port, hypersweep_command, wait_until

ROOT = Path(__file__).resolve().parents[2]
_VAR = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")

pytestmark = pytest.mark.skipif("postgresql" not in BACKENDS, reason="the compose topology runs on PostgreSQL")


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg
        if op == ":?":
            raise AssertionError(f"compose would refuse to start: {arg}")
        return ""

    return _VAR.sub(substitute, value)


def service(compose: dict[str, Any], name: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    spec = compose["services"][name]
    environment = {k: interpolate(str(v), env) for k, v in spec.get("environment", {}).items()}
    return [interpolate(str(part), env) for part in spec["command"]], environment


def test_compose_topology_runs_a_sweep_to_completion(processes: Processes, tmp_path: Path) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = read_env_file(ROOT / ".env.example")
    assert {"postgres", "migrate", "api", "worker"} <= set(compose["services"])
    worker_spec = compose["services"]["worker"]
    assert "container_name" not in worker_spec and "ports" not in worker_spec, "workers must scale"
    # Least privilege: workers hold neither the database URL nor the user token.
    _, worker_environment = service(compose, "worker", env)
    assert not {"HYPERSWEEP_DATABASE_URL", "HYPERSWEEP_TOKEN"} & set(worker_environment)
    assert worker_environment["HYPERSWEEP_WORKER_TOKEN"] == env["HYPERSWEEP_WORKER_TOKEN"] != env["HYPERSWEEP_TOKEN"]
    # Their share of the host, and the data volume they read `npz:` data sets from.
    assert float(interpolate(str(worker_spec["cpus"]), env)) == float(env["HYPERSWEEP_WORKER_CPUS"])
    [volume] = [interpolate(v, env) for v in worker_spec["volumes"]]
    host_folder, mount, mode = volume.split(":")
    assert (host_folder, mount, mode) == (env["HYPERSWEEP_DATA"], worker_environment["HYPERSWEEP_DATA_DIR"], "ro")
    data = tmp_path / "data"
    data.mkdir()
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(data / "digits.npz", x=digits.data, y=digits.target)

    # The postgres service: its user and a fresh database on the local server.
    postgres = compose["services"]["postgres"]["environment"]
    user = interpolate(postgres["POSTGRES_USER"], env)
    database = f"hs_compose_{uuid.uuid4().hex[:10]}"
    _pg_admin(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}') "
        f"THEN CREATE ROLE {user} LOGIN; END IF; END $$"
    )
    _pg_admin(f"CREATE DATABASE {database} OWNER {user}")
    local = make_url(POSTGRES_ADMIN_URL)
    port = free_port()

    def to_localhost(environment: dict[str, str]) -> dict[str, str]:
        mapped = dict(environment)
        if "HYPERSWEEP_DATABASE_URL" in mapped:
            url = make_url(mapped["HYPERSWEEP_DATABASE_URL"])
            assert url.host == "postgres" and url.database == interpolate(postgres["POSTGRES_DB"], env)
            mapped["HYPERSWEEP_DATABASE_URL"] = url.set(
                host=local.host, port=local.port, database=database
            ).render_as_string(hide_password=False)
        if "HYPERSWEEP_SERVER" in mapped:
            assert mapped["HYPERSWEEP_SERVER"] == "http://api:8000"
            mapped["HYPERSWEEP_SERVER"] = f"http://127.0.0.1:{port}"
        if "HYPERSWEEP_DATA_DIR" in mapped:
            mapped["HYPERSWEEP_DATA_DIR"] = str(data)
        return mapped

    def local_command(command: list[str]) -> list[str]:
        assert command[0] == "hypersweep"
        args = ["127.0.0.1" if a == "0.0.0.0" else str(port) if a == "8000" else a for a in command[1:]]
        return [*hypersweep_command(), *args]

    try:
        command, environment = service(compose, "migrate", env)
        migrated = subprocess.run(
            local_command(command), env={**os.environ, **to_localhost(environment)}, capture_output=True, text=True
        )
        assert migrated.returncode == 0, migrated.stderr

        command, environment = service(compose, "api", env)
        processes.start("api", local_command(command), to_localhost(environment))
        token = environment["HYPERSWEEP_TOKEN"]
        assert token == env["HYPERSWEEP_TOKEN"]
        url = f"http://127.0.0.1:{port}"
        health = compose["services"]["api"]["healthcheck"]["test"]
        probe = [health[1], *[part.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for part in health[2:]]]

        def healthy() -> bool:
            return subprocess.run(probe, capture_output=True).returncode == 0

        wait_until(healthy, what=f"the api's healthcheck\n{processes.logs()}")
        assert httpx.get(f"{url}/api/v1/sweeps").status_code == 401

        command, environment = service(compose, "worker", env)
        for i in range(3):
            processes.start(f"worker-{i}", local_command(command), to_localhost(environment))

        auth = {"Authorization": f"Bearer {token}"}
        doc = {
            "name": "compose",
            "space": {"lr": {"type": "float", "low": 1e-3, "high": 0.3, "scale": "log"}},
            "search": {"kind": "random", "seed": 1},
            "stages": [{"trials": 9, "epochs": 1}],
            "trainer": {"hidden": 32, "dataset": "npz:digits.npz"},
        }
        sweep = httpx.post(f"{url}/api/v1/sweeps", json=doc, headers=auth).json()

        def done() -> bool:
            return httpx.get(f"{url}/api/v1/sweeps/{sweep['id']}", headers=auth).json()["status"] != "running"

        wait_until(done, what=f"the sweep to finish\n{processes.logs()}", timeout=240)
        final = httpx.get(f"{url}/api/v1/sweeps/{sweep['id']}", headers=auth).json()
        assert final["status"] == "completed"
        assert sum(final["counts"].values()) == 9
        assert set(final["counts"]) <= {"completed", "diverged"}
        trials = httpx.get(f"{url}/api/v1/sweeps/{sweep['id']}/trials", headers=auth).json()
        assert all(t["attempt"] == 1 and t["worker_id"] for t in trials)
        assert final["best"] is not None
    finally:
        processes.kill_all()
        _pg_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
