"""A base install (server and client, without the ``worker`` extra) works without PyTorch
and scikit-learn, and says what to install where they are needed.

Each check runs in a fresh interpreter whose imports of ``torch`` and ``sklearn`` fail,
as they do where ``hypersweep[worker]`` was not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import sweep_doc

#: Run first in each interpreter: PyTorch and scikit-learn cannot be imported.
WITHOUT_WORKER_EXTRA = """
import importlib.abc, sys

class _NoWorkerExtra(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "sklearn"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoWorkerExtra())
"""

SERVER = """
import json, sys
from fastapi.testclient import TestClient
from hypersweep.service import migrate
from hypersweep.service.app import create_app
from hypersweep.service.config import Settings

url, documents = sys.argv[1], json.loads(sys.argv[2])
migrate.upgrade(url)
answers = {}
settings = Settings(database_url=url, token=None, lease_seconds=30, reaper_interval=3600)
with TestClient(create_app(settings)) as http:
    for name, document in documents.items():
        created = http.post("/api/v1/sweeps", json=document)
        answers[name] = {"submit": created.status_code, "body": created.json()}
        if created.status_code == 201:
            claim = {"worker_id": "w", "sweep_id": created.json()["id"], "count": 2}
            answers[name]["claimed"] = http.post("/api/v1/trials/claim", json=claim).json()["trials"]
try:
    import torch
except ModuleNotFoundError:
    blocked = True
else:
    blocked = False
answers["blocked"] = blocked
answers["loaded"] = sorted(m for m in sys.modules if m.partition(".")[0] in ("torch", "sklearn"))
print(json.dumps(answers))
"""


def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT_WORKER_EXTRA + code, *args], capture_output=True, text=True)


def bayes(sampler: str) -> dict[str, Any]:
    return sweep_doc(name=f"bayes-{sampler}", search={"kind": "bayes", "sampler": sampler, "seed": 0})


def test_the_server_runs_sweeps_without_torch_and_refuses_gp_with_the_remedy(database_url: str) -> None:
    documents = {"random": sweep_doc(), "tpe": bayes("tpe"), "gp": bayes("gp")}
    result = run(SERVER, database_url, json.dumps(documents))
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.splitlines()[-1])
    assert answers["blocked"] is True
    assert answers["loaded"] == []

    for name in ("random", "tpe"):
        assert answers[name]["submit"] == 201, answers[name]
        claimed = answers[name]["claimed"]
        assert len(claimed) == 2
        assert all(trial["trainer"]["lr"] == trial["params"]["lr"] for trial in claimed)

    refused = answers["gp"]
    assert refused["submit"] == 422
    [problem] = refused["body"]["detail"]
    assert problem["path"] == "search.sampler"
    assert "PyTorch" in problem["msg"] and "install hypersweep[worker] on the server" in problem["msg"]


def test_a_gp_sweep_is_taken_where_torch_is_installed(client: TestClient) -> None:
    assert client.post("/api/v1/sweeps", json=bayes("gp")).status_code == 201


WORKER = """
import sys
from hypersweep.cli import main
sys.argv = ["hypersweep", *sys.argv[1:]]
main()
"""


def test_a_worker_without_torch_exits_with_one_line_saying_what_to_install() -> None:
    result = run(WORKER, "worker", "--server", "http://127.0.0.1:9", "--sweep", "1")
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "PyTorch and scikit-learn" in line
    assert "pip install 'hypersweep[worker]'" in line


def test_the_command_line_works_without_torch() -> None:
    for args in (["--help"], ["worker", "--help"], ["submit", "--help"]):
        result = run(WORKER, *args)
        assert result.returncode == 0, (args, result.stderr)
