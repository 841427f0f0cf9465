"""``hypersweep.Client`` against the real app (Starlette's TestClient is an httpx.Client)."""

from __future__ import annotations

import csv
import io
import json
import math
import threading
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

import hypersweep
from hypersweep import Client, DocumentError, FrozenTrial, ServiceError, Stage, Sweep
from hypersweep.worker.client import ServiceClient
from tests.conftest import sweep_doc


@pytest.fixture
def api(client: TestClient) -> Iterator[Client]:
    with Client(http=client) as api:
        yield api


def run_trials(client: TestClient, sweep_id: int, values: list[float]) -> None:
    """Claim and finish trials in order, as a worker would, with these objective values."""
    service = ServiceClient(client)
    for value in values:
        [trial] = service.claim(worker_id="w", sweep_id=sweep_id)
        service.report(trial.id, lease_token=trial.lease_token, step=1, metrics={"val_accuracy": value / 2})
        metrics = {"val_accuracy": value, "test_accuracy": value - 0.01, "train_loss": math.inf}
        service.finish(trial.id, lease_token=trial.lease_token, status="completed", metrics=metrics)


def test_the_package_names_its_version_and_its_client() -> None:
    assert hypersweep.__version__ == version("hypersweep")
    assert hypersweep.Client is Client
    assert {"Client", "Sweep", "Stage", "FrozenTrial", "Trial", "TrialStopped", "run", "report", "ServiceError"} <= set(
        hypersweep.__all__
    )
    with pytest.raises(AttributeError, match="no attribute 'Clinet'"):
        _ = hypersweep.Clinet  # type: ignore[attr-defined]


def test_server_and_token_come_from_the_environment_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERSWEEP_SERVER", "http://sweeps.example:9000/")
    monkeypatch.setenv("HYPERSWEEP_TOKEN", "s3cret")
    with Client() as client:
        assert client.server == "http://sweeps.example:9000"
        assert str(client.service.http.base_url) == "http://sweeps.example:9000"
        assert client.service.http.headers["Authorization"] == "Bearer s3cret"
    with Client("http://other:1", token="mine") as client:
        assert str(client.service.http.base_url) == "http://other:1"
        assert client.service.http.headers["Authorization"] == "Bearer mine"
    monkeypatch.delenv("HYPERSWEEP_SERVER")
    monkeypatch.setenv("HYPERSWEEP_TOKEN", "")
    with Client() as client:
        assert client.server == "http://127.0.0.1:8000"
        assert "Authorization" not in client.service.http.headers


def test_a_sweep_is_submitted_from_a_dict_or_a_yaml_file(api: Client, tmp_path: Path) -> None:
    from_dict = api.submit(sweep_doc(name="from-dict", stages=[{"trials": 2, "epochs": 1}]))
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep_doc(name="from-yaml", stages=[{"trials": 3, "epochs": 2}])))
    from_yaml = api.submit(path)
    from_str = api.submit(str(path))

    assert isinstance(from_dict, Sweep)
    assert (from_dict.name, from_dict.status, from_dict.total_trials) == ("from-dict", "running", 2)
    assert (from_yaml.name, from_yaml.total_trials, from_yaml.stages[0].epochs) == ("from-yaml", 3, 2)
    assert from_str.id == from_yaml.id + 1
    assert [s.id for s in api.list_sweeps()] == [from_str.id, from_yaml.id, from_dict.id]
    assert [s.id for s in api.list_sweeps(limit=1, offset=1)] == [from_yaml.id]
    assert api.get_sweep(from_dict.id) == api.get_sweep(from_dict)


def test_a_bad_file_or_document_raises_and_stores_nothing(api: Client, tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="no such file"):
        api.submit(tmp_path / "missing.yaml")
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(DocumentError, match="must hold a sweep document"):
        api.submit(listed)
    with pytest.raises(ServiceError) as refused:
        api.submit(sweep_doc(space={"lr": {"type": "float", "low": 0, "high": 1, "scale": "log"}}))
    assert refused.value.status_code == 422
    assert "space.lr" in str(refused.value)
    assert api.list_sweeps() == []


def test_a_sweep_reads_as_typed_objects(api: Client, client: TestClient) -> None:
    sweep = api.submit(
        sweep_doc(
            stages=[{"trials": 3, "epochs": 1}, {"trials": 2, "epochs": 2, "top_k": 2}], search={"kind": "random"}
        )
    )
    run_trials(client, sweep.id, [0.5, 0.9, 0.7])

    now = api.get_sweep(sweep)
    assert now.objective.metric == "val_accuracy" and now.objective.mode == "max"
    assert now.counts == {"completed": 3}
    first, second = now.stages
    assert isinstance(first, Stage)
    assert (first.index, first.status, first.finished_trials, first.trials) == (0, "completed", 3, 3)
    assert (second.index, second.status, second.trials, second.epochs, second.top_k) == (1, "running", 2, 2, 2)
    assert second.space is not None and set(second.space) == {"lr", "dropout"}

    best = api.best_trial(sweep)
    assert isinstance(best, FrozenTrial)
    assert best == now.best
    assert (best.number, best.value, best.status, best.finished) == (1, 0.9, "completed", True)
    assert best.metrics["train_loss"] == math.inf  # sent as "Infinity", read as a float

    trials = api.trials(sweep)
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(t.curve is None for t in trials)  # lists leave curves out
    assert [t.value for t in api.trials(sweep, sort="-metric")] == [0.9, 0.7, 0.5]
    assert [t.number for t in api.trials(sweep, sort="-metric", limit=2)] == [1, 2]
    assert api.trials(sweep, status="running") == []
    assert [t.stage for t in api.trials(sweep, stage=0)] == [0, 0, 0]

    detail = api.get_trial(best.id)
    assert detail.curve is not None
    assert [(p.step, p.metrics) for p in detail.curve] == [(1, {"val_accuracy": 0.45})]


def test_trials_pages_through_more_than_one_answer_holds(
    api: Client, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = api.submit(sweep_doc(stages=[{"trials": 5, "epochs": 1}]))
    run_trials(client, sweep.id, [0.1, 0.2, 0.3, 0.4, 0.5])
    monkeypatch.setattr("hypersweep.client._PAGE", 2)
    offsets: list[object] = []
    list_trials = api.service.list_trials

    def recording(sweep_id: int, **kwargs: Any) -> list[FrozenTrial]:
        offsets.append(kwargs["offset"])
        return list_trials(sweep_id, **kwargs)

    monkeypatch.setattr(api.service, "list_trials", recording)
    assert [t.number for t in api.trials(sweep)] == [0, 1, 2, 3, 4]
    assert offsets == [0, 2, 4]
    offsets.clear()
    assert [t.number for t in api.trials(sweep, limit=3)] == [0, 1, 2]
    assert offsets == [0, 2]


def test_wait_returns_the_sweep_once_it_has_ended(
    api: Client, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = api.submit(sweep_doc(stages=[{"trials": 2, "epochs": 1}]))
    # A worker in another thread runs the trials once the client has had its first look.
    looked = threading.Event()
    seen: list[int] = []
    get_sweep = api.service.get_sweep

    def watched(sweep_id: int) -> Sweep:
        answer = get_sweep(sweep_id)
        seen.append(answer.counts.get("completed", 0))
        looked.set()
        return answer

    monkeypatch.setattr(api.service, "get_sweep", watched)

    def worker() -> None:
        looked.wait()
        run_trials(client, sweep.id, [0.4, 0.6])

    thread = threading.Thread(target=worker)
    thread.start()
    done = api.wait(sweep, interval=0.01, progress=True)
    thread.join()
    assert (done.status, done.counts) == ("completed", {"completed": 2})
    assert done.best is not None and done.best.value == 0.6
    assert seen[0] == 0 and seen[-1] == 2


def test_wait_gives_up_after_its_timeout_and_the_sweep_goes_on(api: Client) -> None:
    sweep = api.submit(sweep_doc())
    with pytest.raises(TimeoutError, match=f"sweep {sweep.id} is still running after 0.05 s"):
        api.wait(sweep.id, interval=0.01, timeout=0.05)
    assert api.get_sweep(sweep).running


def test_cancel_ends_a_running_sweep_and_refuses_a_finished_one(api: Client, client: TestClient) -> None:
    running = api.submit(sweep_doc())
    cancelled = api.cancel(running)
    assert (cancelled.id, cancelled.status, cancelled.running) == (running.id, "cancelled", False)
    assert api.wait(running).status == "cancelled"  # an ended sweep returns at once

    done = api.submit(sweep_doc(stages=[{"trials": 1, "epochs": 1}]))
    run_trials(client, done.id, [0.5])
    with pytest.raises(ServiceError) as refused:
        api.cancel(done.id)
    assert refused.value.status_code == 409


def test_export_writes_what_the_command_line_writes(api: Client, client: TestClient) -> None:
    sweep = api.submit(sweep_doc(stages=[{"trials": 2, "epochs": 1}]))
    run_trials(client, sweep.id, [0.5, 0.9])

    table = list(csv.DictReader(io.StringIO(api.export(sweep, "csv"))))
    assert [(row["number"], row["status"], row["val_accuracy"]) for row in table] == [
        ("0", "completed", "0.5"),
        ("1", "completed", "0.9"),
    ]
    assert table[0]["train_loss"] == "Infinity"
    assert {"id", "lr", "dropout", "test_accuracy", "error"} <= set(table[0])

    rows = json.loads(api.export(sweep.id, "json"))
    raw = client.get(f"/api/v1/sweeps/{sweep.id}/trials", params={"sort": "number"}).json()
    assert rows == raw  # the server's own JSON, non-finite metrics as strings
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        api.export(sweep, "xml")  # type: ignore[arg-type]
