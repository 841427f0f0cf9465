"""The client's typed answers hold to the server's response models, field for field.

The client keeps its own models (``hypersweep.worker.wire``) so that it imports neither
SQLAlchemy nor the server's search code; these tests are what keeps the two in step.
"""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from hypersweep.service import models, schemas
from hypersweep.worker import wire

#: (the client's model, the server's, names the client may add as optional)
PAIRS: list[tuple[type[BaseModel], type[BaseModel], set[str]]] = [
    (wire.Trial, schemas.TrialOut, {"curve", "settings"}),
    (wire.Trial, schemas.TrialDetail, set()),
    (wire.ClaimedTrial, schemas.ClaimedTrial, {"curve"}),
    (wire.CurvePoint, schemas.CurvePointOut, set()),
    (wire.Stage, schemas.StageOut, set()),
    (wire.Sweep, schemas.SweepOut, set()),
    (wire.Objective, schemas.Objective, set()),
    (wire.Action, schemas.ActionOut, {"reason", "detail"}),
    (wire.FinishOutcome, schemas.FinishOutcome, set()),
    (wire.ClaimAnswer, schemas.ClaimOut, set()),
]


def wire_names(model: type[BaseModel]) -> dict[str, bool]:
    """The model's fields as named in JSON, each with whether it is required."""
    return {field.alias or name: field.is_required() for name, field in model.model_fields.items()}


@pytest.mark.parametrize(("ours", "theirs", "additions"), PAIRS, ids=lambda p: getattr(p, "__name__", ""))
def test_the_client_reads_every_field_the_server_sends(
    ours: type[BaseModel], theirs: type[BaseModel], additions: set[str]
) -> None:
    client, server = wire_names(ours), wire_names(theirs)
    assert set(server) <= set(client), f"{ours.__name__} misses {set(server) - set(client)}"
    extra = set(client) - set(server)
    assert extra <= additions, f"{ours.__name__} expects fields the server never sends: {extra - additions}"
    assert not any(client[name] for name in extra), "an addition must be optional"


def test_statuses_are_the_servers() -> None:
    assert set(typing.get_args(wire.TrialStatus)) == {status.value for status in models.TrialStatus}
    assert set(typing.get_args(wire.SweepStatus)) == {status.value for status in models.SweepStatus}
    stage_status = schemas.StageOut.model_fields["status"].annotation
    assert set(typing.get_args(wire.StageStatus)) == set(typing.get_args(stage_status))
    assert {"queued", "running"} == wire.UNFINISHED
    assert {status.value for status in models.TrialStatus} - wire.UNFINISHED == set(map(str, models.FINISHED))


def test_an_answer_with_fields_this_client_does_not_know_still_parses() -> None:
    answer = {"action": "stop", "lease_expires_at": None, "reason": "pruned", "new_in_a_later_server": 1}
    parsed = wire.Action.model_validate(answer)
    assert (parsed.stop, parsed.reason) == (True, "pruned")
