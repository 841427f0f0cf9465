"""The dashboard's aggregate endpoints, a sweep's points and a few of its curves, on every
backend: what they accept and answer. What the answers hold is ``test_queries``'s."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, update

from hypersweep.service.dashboard.queries import sweep_curves, sweep_points
from hypersweep.service.dashboard.schemas import MAX_CURVES
from hypersweep.service.models import CurvePoint, Trial, utcnow
from tests.conftest import sweep_doc
from tests.service.api.test_sweeps import API, claim, submit


def test_the_endpoints_answer_what_the_queries_read(client: TestClient) -> None:
    sweep = submit(client, stages=[{"trials": 3, "epochs": 1}])
    first, second = claim(client, sweep["id"], count=2)
    body = {"lease_token": first["lease_token"], "step": 1, "metrics": {"val_accuracy": 0.5}}
    assert client.post(f"{API}/trials/{first['id']}/report", json=body).status_code == 200
    db = client.app.state.db  # type: ignore[attr-defined]

    response = client.get(f"{API}/sweeps/{sweep['id']}/points")
    assert response.status_code == 200, response.text
    assert response.json() == sweep_points(db=db, sweep_id=sweep["id"]).model_dump(mode="json")
    ids = [second["id"], first["id"]]
    response = client.get(f"{API}/sweeps/{sweep['id']}/curves", params={"trials": f"{ids[0]},{ids[1]}"})
    assert response.status_code == 200, response.text
    assert response.json() == sweep_curves(db=db, sweep_id=sweep["id"], trial_ids=ids).model_dump(mode="json")


def test_curves_want_a_short_list_of_ids(client: TestClient) -> None:
    sweep = submit(client)
    url = f"{API}/sweeps/{sweep['id']}/curves"
    assert client.get(url, params={"trials": ",".join(["1"] * MAX_CURVES)}).status_code == 200
    for bad in (",".join(["1"] * (MAX_CURVES + 1)), "", "1,,2", "a", "-1", "1;2", "12345678901"):
        response = client.get(url, params={"trials": bad})
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["path"] == "trials"
    assert client.get(url).status_code == 422


def test_unknown_sweep_is_404(client: TestClient) -> None:
    assert client.get(f"{API}/sweeps/999/points").status_code == 404
    assert client.get(f"{API}/sweeps/999/curves", params={"trials": "1"}).status_code == 404


def test_the_endpoints_need_the_token_when_one_is_set(make_client: Any) -> None:
    secured: TestClient = make_client(token="s3cret")
    auth = {"Authorization": "Bearer s3cret"}
    sweep = secured.post(f"{API}/sweeps", json=sweep_doc(), headers=auth).json()
    for path in (f"/sweeps/{sweep['id']}/points", f"/sweeps/{sweep['id']}/curves?trials=1"):
        assert secured.get(f"{API}{path}").status_code == 401
        assert secured.get(f"{API}{path}", headers=auth).status_code == 200


def test_numbers_no_float_holds_stored_by_older_versions_read_as_null(client: TestClient, database_url: str) -> None:
    # Today such numbers are refused at the edge; older versions stored them as sent, and
    # a sweep holding one must still draw.
    sweep = submit(client, stages=[{"trials": 2, "epochs": 1}])
    first, second = claim(client, sweep["id"], count=2)
    huge = 10**400
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(update(Trial).where(Trial.id == first["id"]).values(metrics={"epochs_run": huge, "loss": huge}))
        conn.execute(update(Trial).where(Trial.id == second["id"]).values(metrics={"epochs_run": 3}))
        conn.execute(
            insert(CurvePoint).values(
                trial_id=first["id"], step=1, metrics={"loss": huge, "acc": 0.5}, created_at=utcnow()
            )
        )
    engine.dispose()
    points = client.get(f"{API}/sweeps/{sweep['id']}/points")
    assert points.status_code == 200, points.text
    assert points.json()["epochs_run"] == [None, 3]
    curves = client.get(f"{API}/sweeps/{sweep['id']}/curves", params={"trials": str(first["id"])})
    assert curves.status_code == 200, curves.text
    [curve] = curves.json()["trials"]
    assert (curve["metrics"], curve["final"]) == ({"loss": [None], "acc": [0.5]}, {"epochs_run": None, "loss": None})
