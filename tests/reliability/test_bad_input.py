"""Bad input is refused cleanly: oversized bodies (with or without Content-Length), NUL
characters, ``npz:`` paths that leave the data directory; and non-finite metrics never
break a page, a sort or the sweep's best trial."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import sweep_doc
from tests.reliability.conftest import on_backend

API = "/api/v1"
JSON = {"content-type": "application/json"}


def submit(client: TestClient, **overrides: Any) -> dict[str, Any]:
    response = client.post(f"{API}/sweeps", json=sweep_doc(**overrides))
    assert response.status_code == 201, response.text
    return dict(response.json())


def claim(client: TestClient, sweep_id: int, count: int = 1) -> list[dict[str, Any]]:
    response = client.post(f"{API}/trials/claim", json={"worker_id": "w", "sweep_id": sweep_id, "count": count})
    assert response.status_code == 200, response.text
    return list(response.json()["trials"])


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A JSON document of about ``total`` bytes, sent in pieces (no Content-Length)."""
    doc = json.dumps(sweep_doc(name="chunked")).encode()
    padding = max(0, total - len(doc))
    yield doc[:-1] + b", " + b'"pad": "'
    while padding > 0:
        piece = min(size, padding)
        yield b"x" * piece
        padding -= piece
    yield b'"}'


@on_backend("sqlite")
def test_bodies_over_the_limit_are_413_with_or_without_content_length(start_server: Callable[..., str]) -> None:
    url = start_server()
    with httpx.Client(base_url=url, timeout=30) as http:
        chunked = http.post(f"{API}/sweeps", content=chunks(2 << 20), headers=JSON)
        assert chunked.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in chunked.request.headers
        assert chunked.status_code == 413, chunked.text
        declared = http.post(f"{API}/sweeps", content=b"{" + b" " * (1 << 20) + b"}", headers=JSON)
        assert declared.status_code == 413
        # Under the limit, chunked is fine (the padding field is then refused as unknown).
        small = http.post(f"{API}/sweeps", content=chunks(4096), headers=JSON)
        assert small.status_code == 422
        assert small.json()["detail"][0]["path"] == "pad"
        assert http.get(f"{API}/sweeps").json() == []
        assert http.get("/healthz").json()["status"] == "ok"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"name": "a\x00b"}, "name"),
        ({"objective": {"metric": "acc\x00", "mode": "max"}}, "objective.metric"),
        ({"space": {"dataset": {"type": "categorical", "values": ["digits", "npz:a\x00.npz"]}}}, "space.dataset"),
        ({"trainer": {"dataset": "npz:x\x00.npz"}}, "trainer.dataset"),
    ],
)
def test_nul_characters_in_a_sweep_are_422_and_nothing_is_stored(
    client: TestClient, body: dict[str, Any], where: str
) -> None:
    response = client.post(f"{API}/sweeps", json=sweep_doc(**body))
    assert response.status_code == 422, response.text
    assert where in response.json()["message"]
    assert "NUL" in response.json()["message"]
    assert client.get(f"{API}/sweeps").json() == []


def test_nul_characters_in_worker_calls_are_422_and_change_nothing(client: TestClient) -> None:
    sweep = submit(client)
    assert client.post(f"{API}/trials/claim", json={"worker_id": "w\x00", "sweep_id": sweep["id"]}).status_code == 422
    [trial] = claim(client, sweep["id"])
    before = client.get(f"{API}/trials/{trial['id']}").json()
    token = trial["lease_token"]
    bad = [
        ("report", {"lease_token": token, "step": 1, "metrics": {"loss\x00": 1.0}}),
        ("report", {"lease_token": token, "step": 1, "metrics": {"note": "a\x00"}}),
        ("finish", {"lease_token": token, "status": "failed", "error": "boom\x00"}),
        ("heartbeat", {"lease_token": token + "\x00"}),
    ]
    for verb, body in bad:
        response = client.post(f"{API}/trials/{trial['id']}/{verb}", json=body)
        assert response.status_code == 422, (verb, response.text)
    after = client.get(f"{API}/trials/{trial['id']}").json()
    assert after == before
    assert client.get(f"{API}/sweeps/{sweep['id']}").json()["counts"] == {"running": 1}


@pytest.mark.parametrize("path", ["npz:../secret.npz", "npz:/etc/passwd", "npz:data/../../secret.npz", "npz:.."])
def test_npz_paths_that_leave_the_data_directory_are_422_in_the_trainer_and_in_the_space(
    client: TestClient, path: str
) -> None:
    as_setting = client.post(f"{API}/sweeps", json=sweep_doc(trainer={"dataset": path}))
    assert as_setting.status_code == 422
    assert "trainer.dataset" in [e["path"] for e in as_setting.json()["detail"]]
    tuned = sweep_doc(space={"dataset": {"type": "categorical", "values": ["digits", path]}})
    as_axis = client.post(f"{API}/sweeps", json=tuned)
    assert as_axis.status_code == 422, as_axis.text
    assert "space.dataset.values.1" in [e["path"] for e in as_axis.json()["detail"]]
    assert "without '..'" in as_axis.json()["message"]
    assert client.get(f"{API}/sweeps").json() == []


def test_npz_paths_inside_the_data_directory_are_accepted(client: TestClient) -> None:
    submit(client, trainer={"dataset": "npz:sets/x.npz"})
    submit(client, space={"dataset": {"type": "categorical", "values": ["npz:a.npz", "npz:b/c..d.npz"]}})


def test_non_finite_metrics_never_break_a_page_a_sort_or_the_best_trial(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 4, "epochs": 1}])
    trials = claim(client, sweep["id"], count=4)
    finals: list[str] = ['{"val_accuracy": NaN}', '{"val_accuracy": Infinity}', '{"val_accuracy": 0.5}', "{}"]
    for trial, final in zip(trials, finals, strict=True):
        token = trial["lease_token"]
        report = '{"lease_token": "%s", "step": 1, "metrics": {"val_accuracy": -Infinity, "train_loss": NaN}}'
        sent = client.post(f"{API}/trials/{trial['id']}/report", content=report % token, headers=JSON)
        assert sent.status_code == 200, sent.text
        finish = f'{{"lease_token": "{token}", "status": "completed", "metrics": {final}}}'
        done = client.post(f"{API}/trials/{trial['id']}/finish", content=finish, headers=JSON)
        assert done.status_code == 200, done.text

    got = client.get(f"{API}/sweeps/{sweep['id']}")
    assert got.status_code == 200
    assert got.json()["status"] == "completed"
    assert got.json()["best"]["id"] == trials[2]["id"]
    assert got.json()["best"]["value"] == 0.5
    for sort in ("metric", "-metric", "value", "-value", "finished_at", "-number"):
        page = client.get(f"{API}/sweeps/{sweep['id']}/trials", params={"sort": sort})
        assert page.status_code == 200, (sort, page.text)
        assert len(page.json()) == 4
        if "metric" in sort or "value" in sort:
            # The one finite value first, whatever the direction; the rest have none.
            assert [t["value"] for t in page.json()] == [0.5, None, None, None]
    stored = {t["id"]: t for t in client.get(f"{API}/sweeps/{sweep['id']}/trials").json()}
    assert stored[trials[0]["id"]]["metrics"]["val_accuracy"] == "NaN"
    assert stored[trials[1]["id"]]["metrics"]["val_accuracy"] == "Infinity"
    assert stored[trials[3]["id"]]["metrics"]["val_accuracy"] == "-Infinity"
    for trial in trials:
        detail = client.get(f"{API}/trials/{trial['id']}")
        assert detail.status_code == 200
        assert detail.json()["curve"][0]["metrics"] == {"val_accuracy": "-Infinity", "train_loss": "NaN"}
    assert client.get("/metrics").status_code == 200
    assert client.get(f"{API}/sweeps").status_code == 200
