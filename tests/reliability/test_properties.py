"""Property-based tests: random sweep documents never cause a server error and the valid
ones round-trip; narrowing a space always stays inside the original bounds."""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hypersweep.service.schemas import SweepSpec
from hypersweep.service.search.space import CategoricalParam, FloatParam, IntParam, Param, Space
from hypersweep.service.search.stages import narrow
from hypersweep.service.validation import check_spec
from tests.conftest import sweep_doc

API = "/api/v1"
EXAMPLES = 150

# -- random sweep documents ------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
junk = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
names = st.sampled_from(["lr", "reg", "dropout", "momentum", "hidden", "layers", "optimizer", "batchnorm", "seed"])
numbers = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(10**20), 10**20)
    | st.sampled_from([0, 1e-6, 0.5, 1.0, 64, 1e6])
)


def log_axis(low: float, high: float) -> st.SearchStrategy[dict[str, Any]]:
    exponents = st.lists(st.floats(math.log10(low), math.log10(high)), min_size=2, max_size=2, unique=True)
    return exponents.map(lambda e: {"type": "float", "low": 10 ** min(e), "high": 10 ** max(e), "scale": "log"})


def linear_axis(low: float, high: float) -> st.SearchStrategy[dict[str, Any]]:
    ends = st.lists(st.floats(low, high), min_size=2, max_size=2, unique=True)
    return ends.map(lambda e: {"type": "float", "low": min(e), "high": max(e)})


def int_axis(low: int, high: int) -> st.SearchStrategy[dict[str, Any]]:
    ends = st.lists(st.integers(low, high), min_size=2, max_size=2, unique=True)
    return st.tuples(ends, st.sampled_from(["linear", "log"])).map(
        lambda a: {"type": "int", "low": min(a[0]), "high": max(a[0]), "scale": a[1]}
    )


def categorical_axis(values: list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.lists(st.sampled_from(values), min_size=1, max_size=len(values), unique=True).map(
        lambda v: {"type": "categorical", "values": v}
    )


#: Axes the built-in trainer accepts, by parameter name.
AXES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "lr": log_axis(1e-6, 10.0),
    "reg": log_axis(1e-8, 1.0) | linear_axis(0.0, 1.0),
    "dropout": linear_axis(0.0, 0.9),
    "momentum": linear_axis(0.0, 0.99),
    "hidden": int_axis(1, 512),
    "layers": int_axis(1, 4),
    "optimizer": categorical_axis(["sgd", "momentum", "adam", "rmsprop"]),
    "batchnorm": categorical_axis([True, False]),
    "seed": int_axis(0, 10**6),
    "dataset": categorical_axis(["digits", "spiral", "npz:data/x.npz"]),
}


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(sorted(AXES)), min_size=1, max_size=4, unique=True))
    stages: list[dict[str, Any]] = []
    for index in range(draw(st.integers(1, 3))):
        stage: dict[str, Any] = {"trials": draw(st.integers(1, 20)), "epochs": draw(st.integers(1, 5))}
        if index:
            stage["top_k"] = draw(st.integers(1, stages[-1]["trials"]))
        stages.append(stage)
    return {
        "name": draw(st.text(min_size=1, max_size=200)),
        "objective": {"metric": draw(st.text(min_size=1, max_size=30)), "mode": draw(st.sampled_from(["max", "min"]))},
        "space": {name: draw(AXES[name]) for name in names},
        "search": {
            "kind": draw(st.sampled_from(["random", "grid"])),
            "seed": draw(st.integers(0, 2**31)),
            "grid_points": draw(st.integers(1, 4)),
        },
        "stages": stages,
        "trainer": {"dataset": draw(st.sampled_from(["digits", "spiral"])), "batch_size": draw(st.integers(1, 256))},
        "parallelism": draw(st.integers(1, 100)),
        "max_attempts": draw(st.integers(1, 10)),
    }


#: Numbers past what the fields, the databases or a float hold: beyond 64 bits, past 2**53,
#: past an id, at the ends of the float range.
huge_numbers = st.one_of(
    st.integers(min_value=2**63, max_value=10**400),
    st.integers(min_value=-(10**400), max_value=-(2**63) - 1),
    st.sampled_from([2**31, 2**53 + 1, 2**64, 1e308, -1.7976931348623157e308, 5e-324, math.inf, -math.inf]),
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | huge_numbers
    | st.text(max_size=20)
    | st.sampled_from(["npz:../x", "npz:/x"])
)
junk = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with up to three random changes: a field replaced by any JSON
    value, a field removed, or an unknown field added."""
    doc = draw(valid_documents())
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        change = draw(st.sampled_from(["replace", "remove", "add"]))
        if change == "replace":
            parent[path[-1]] = draw(junk)
        elif change == "remove" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(junk)
    return doc


def test_random_documents_get_201_or_a_clear_422_and_valid_ones_round_trip(client: TestClient) -> None:
    statuses: set[int] = set()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(doc=documents())
    def check(doc: dict[str, Any]) -> None:
        before = int(client.get(f"{API}/sweeps", params={"limit": 1}).headers["X-Total-Count"])
        # Python's JSON, so that NaN and infinities arrive as the bare words some clients send.
        response = client.post(f"{API}/sweeps", content=json.dumps(doc), headers={"content-type": "application/json"})
        assert response.status_code in (201, 422), response.text
        statuses.add(response.status_code)
        after = int(client.get(f"{API}/sweeps", params={"limit": 1}).headers["X-Total-Count"])
        if response.status_code == 422:
            body = response.json()
            assert body["message"]
            assert all(isinstance(e["path"], str) and e["msg"] for e in body["detail"])
            assert after == before, "a refused document was stored"
            return
        assert after == before + 1
        stored = client.get(f"{API}/sweeps/{response.json()['id']}").json()
        # What is stored is what was checked: the document as validated and normalised.
        checked = SweepSpec.model_validate(doc)
        check_spec(checked)
        assert stored["spec"] == checked.model_dump(mode="json")
        assert stored["name"] == doc["name"]
        assert len(stored["stages"]) == len(doc["stages"])
        assert stored["status"] == "running"
        # A stored sweep can be worked on: its first trial is handed out.
        claimed = client.post(f"{API}/trials/claim", json={"worker_id": "w", "sweep_id": stored["id"]})
        assert claimed.status_code == 200, claimed.text

    check()
    # Both kinds were tried, so neither half of the property was vacuous.
    assert statuses == {201, 422}


# -- numbers of any size in worker calls and query strings -------------------------------------

any_number = st.integers() | st.floats() | huge_numbers
metric_values = any_number | st.booleans() | st.none() | st.text(max_size=5)
metrics = st.dictionaries(st.sampled_from(["val_accuracy", "epochs_run", "train_loss", "x"]), metric_values, max_size=3)
points = st.lists(st.fixed_dictionaries({"step": st.integers() | huge_numbers, "metrics": metrics}), max_size=3)


def _still_readable(client: TestClient, sweep_id: int, trial_ids: list[int]) -> None:
    for path in (f"/sweeps/{sweep_id}", f"/sweeps/{sweep_id}/points", f"/sweeps/{sweep_id}/trials?sort=-metric"):
        assert client.get(f"{API}{path}").status_code == 200, path
    curves = client.get(f"{API}/sweeps/{sweep_id}/curves", params={"trials": ",".join(map(str, trial_ids))})
    assert curves.status_code == 200, curves.text
    assert client.get(f"{API}/sweeps/{sweep_id}/trials").headers["X-Total-Count"]


def test_worker_calls_with_numbers_of_any_size_are_taken_or_refused_and_the_sweep_stays_readable(
    client: TestClient,
) -> None:
    sweep = client.post(f"{API}/sweeps", json=sweep_doc(stages=[{"trials": 1000, "epochs": 1}])).json()
    codes: set[int] = set()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        verb=st.sampled_from(["report", "reports", "finish", "claim"]),
        step=st.integers() | huge_numbers,
        values=metrics,
        curve=points,
        count=st.integers(-5, 70) | huge_numbers,
    )
    def check(verb: str, step: Any, values: dict[str, Any], curve: list[dict[str, Any]], count: Any) -> None:
        [trial] = client.post(f"{API}/trials/claim", json={"worker_id": "w", "sweep_id": sweep["id"]}).json()["trials"]
        token = trial["lease_token"]
        if verb == "report":
            body: dict[str, Any] = {"lease_token": token, "step": step, "metrics": values}
        elif verb == "reports":
            body = {"lease_token": token, "points": curve}
        elif verb == "finish":
            body = {"lease_token": token, "status": "completed", "metrics": values, "points": curve}
        else:
            ended = {"trial_id": trial["id"], "lease_token": token, "status": "completed", "metrics": values}
            body = {"worker_id": "w", "sweep_id": sweep["id"], "count": count, "finished": [ended]}
        path = "/trials/claim" if verb == "claim" else f"/trials/{trial['id']}/{verb}"
        response = client.post(f"{API}{path}", content=json.dumps(body), headers={"content-type": "application/json"})
        assert response.status_code in (200, 204, 422), response.text
        codes.add(response.status_code)
        _still_readable(client, sweep["id"], [trial["id"]])
        # Whatever happened, the trial ends so that the sweep's parallelism is never used up.
        client.post(
            f"{API}/trials/{trial['id']}/finish", json={"lease_token": token, "status": "failed", "metrics": {}}
        )
        if verb == "claim" and response.status_code == 200:
            for extra in response.json()["trials"]:
                body = {"lease_token": extra["lease_token"], "status": "failed", "metrics": {}}
                client.post(f"{API}/trials/{extra['id']}/finish", json=body)

    check()
    assert {200, 422} <= codes


def test_query_strings_with_numbers_of_any_size_are_answered_200_or_422(client: TestClient) -> None:
    sweep = client.post(f"{API}/sweeps", json=sweep_doc()).json()
    query_values = st.integers() | huge_numbers | st.floats() | st.text(alphabet="0123456789-+.eE", max_size=30)

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        path=st.sampled_from(["/sweeps", f"/sweeps/{sweep['id']}/trials", f"/sweeps/{sweep['id']}/curves"]),
        name=st.sampled_from(["limit", "offset", "stage", "trials", "status"]),
        value=query_values,
        ident=st.integers() | huge_numbers,
    )
    def check(path: str, name: str, value: Any, ident: Any) -> None:
        response = client.get(f"{API}{path}", params={name: str(value)})
        assert response.status_code in (200, 422), response.text
        for template in ("/sweeps/{}", "/sweeps/{}/trials", "/sweeps/{}/points", "/trials/{}"):
            assert client.get(f"{API}{template.format(ident)}").status_code in (200, 404, 422)

    check()


# -- narrowing -----------------------------------------------------------------------------


@st.composite
def numeric_axes(draw: st.DrawFn) -> FloatParam | IntParam:
    scale = draw(st.sampled_from(["linear", "log"]))
    if draw(st.integers(0, 4)) == 0:
        # The extremes: an axis a few floats wide, or nearly as wide as the floats go.
        if draw(st.booleans()):
            low = draw(st.floats(1e-300 if scale == "log" else -1e300, 1e300))
            high = low
            for _ in range(draw(st.integers(1, 3))):
                high = math.nextafter(high, math.inf)
        else:
            low = draw(st.sampled_from([5e-324, 1e-300, 1.0])) if scale == "log" else draw(st.floats(-8e307, 0))
            high = draw(st.floats(1e300, 8e307))
        try:
            return FloatParam(type="float", low=low, high=high, scale=scale)
        except ValueError:
            assume(False)
    if draw(st.booleans()):
        start = draw(st.integers(1 if scale == "log" else -1000, 10_000))
        return IntParam(type="int", low=start, high=start + draw(st.integers(1, 10_000)), scale=scale)
    if scale == "log":
        exponent = draw(st.floats(-12, 6))
        width = draw(st.floats(1e-6, 12))
        return FloatParam(type="float", low=10.0**exponent, high=10.0 ** (exponent + width), scale="log")
    low = draw(st.floats(-1e6, 1e6))
    high = low + draw(st.floats(1e-6, 1e6))
    assume(low < high)
    return FloatParam(type="float", low=low, high=high)


categorical_axes = st.lists(st.sampled_from(["a", "b", "c", 1, 2.5, True]), min_size=1, max_size=5, unique_by=repr).map(
    lambda values: CategoricalParam(type="categorical", values=values)
)
spaces = st.dictionaries(st.sampled_from(["x", "y", "z", "w"]), numeric_axes() | categorical_axes, min_size=1)


def value_in(draw: st.DrawFn, param: Param) -> Any:
    if isinstance(param, CategoricalParam):
        return draw(st.sampled_from(param.values))
    value = param.from_unit(draw(st.floats(0, 1)))
    return param.cast(value) if isinstance(param, IntParam) else min(max(value, param.low), param.high)


@st.composite
def tops(draw: st.DrawFn, space: Space) -> list[dict[str, Any]]:
    return [{name: value_in(draw, p) for name, p in space.items()} for _ in range(draw(st.integers(1, 8)))]


def assert_inside(narrowed: Space, current: Space, original: Space, top: list[dict[str, Any]]) -> None:
    assert set(narrowed) == set(current)
    for name, new in narrowed.items():
        old, orig = current[name], original[name]
        assert type(new) is type(old)
        if isinstance(new, CategoricalParam):
            assert isinstance(old, CategoricalParam)
            assert new.values and set(map(repr, new.values)) <= set(map(repr, old.values))
            assert {repr(t[name]) for t in top} <= set(map(repr, new.values))
            continue
        assert isinstance(new, FloatParam | IntParam) and isinstance(orig, FloatParam | IntParam)
        assert new.scale == orig.scale
        assert orig.low <= new.low < new.high <= orig.high
        if new.scale == "log":
            assert new.low > 0
        # It still holds every top trial's value (up to rounding, in the axis's own scale).
        for trial in top:
            position = orig.to_unit(trial[name])
            assert orig.to_unit(new.low) - 1e-9 <= position <= orig.to_unit(new.high) + 1e-9
        # The narrowed axis is a valid axis of the sweep document.
        type(new).model_validate(new.model_dump())


@settings(max_examples=300, deadline=None)
@given(data=st.data(), original=spaces)
def test_narrowed_spaces_stay_inside_the_original_bounds_stage_after_stage(
    data: st.DataObject, original: Space
) -> None:
    current = original
    for stage in range(3):
        top = data.draw(tops(current))
        narrowed = narrow(current, original=original, top=top, stage=stage)
        assert_inside(narrowed.space, current, original, top)
        for warning in narrowed.warnings:
            assert warning.startswith(f"stage {stage}")
        current = narrowed.space
    assert all(
        math.isfinite(float(p.low)) and math.isfinite(float(p.high))
        for p in current.values()
        if not isinstance(p, CategoricalParam)
    )


def test_narrowing_with_no_completed_trial_keeps_the_space() -> None:
    space: Space = {"lr": FloatParam(type="float", low=1e-4, high=1.0, scale="log")}
    narrowed = narrow(space, original=space, top=[], stage=0)
    assert narrowed.space == space
    assert narrowed.warnings
