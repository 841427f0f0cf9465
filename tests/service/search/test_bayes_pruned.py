"""Bayesian search and pruning: a pruned trial is told as worse than every result."""

from __future__ import annotations

import pytest

from hypersweep.service.search.base import Observation
from tests.service.search.test_bayes import LR_ONLY, bayes, point, told


@pytest.mark.parametrize("minimize", [False, True])
def test_a_pruned_trial_is_told_as_worse_than_any_completed_one(minimize: bool) -> None:
    designer = bayes(LR_ONLY, minimize=minimize)
    # Pruned before any result: it waits for one, then ranks below the worst.
    designer.update([Observation(point(1e-1), 0.99, pruned=True)], [])
    assert told(designer) == []
    designer.update([Observation(point(1e-3), 0.4), Observation(point(1e-2), 0.9)], [])
    values = dict((params["lr"], value) for params, value in told(designer))
    worst = max(0.4, 0.9) if minimize else min(0.4, 0.9)
    pruned = values[1e-1]
    assert pruned is not None
    assert pruned > worst if minimize else pruned < worst
    # A later pruned trial too, however good its partial value looked.
    designer.update([Observation(point(1e-4), 0.999 if not minimize else 0.001, pruned=True)], [])
    later = dict((params["lr"], value) for params, value in told(designer))[1e-4]
    assert later is not None
    assert later > worst if minimize else later < worst
