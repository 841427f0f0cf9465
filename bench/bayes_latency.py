"""How long does a Bayesian suggestion take once a sweep is large?

Fills a bayes sweep (``--sampler tpe`` by default) on the README's space (lr, reg, dropout,
hidden, optimizer) with ``--trials`` finished trials (default 1,000; one in twenty
diverged), claimed eight at a time through the store as workers would, and keeps eight
running. Then, over ``--repeats`` rounds of "one trial finishes, one is claimed", it times:

* suggestion: the designer's part of a claim, ``update`` (one new result, eight running)
  then ``suggest`` of one trial, on a designer that mirrors the same sweep;
* claim: the whole ``Claims.claim`` of one trial (the sweep's lock, the queries that bring
  the kept designer up to date, the suggestion, the insert and the commit);
* rebuild: once, the first claim of a fresh ``Claims`` and ``Store`` (a restarted service), whose
  designer is rebuilt from every finished trial.

Medians in milliseconds. The target is a TPE suggestion under 50 ms at 1,000 finished
trials. The store runs on a SQLite file unless ``--database-url`` names another database
(it must be empty or migrated; the sweep is left there).

    python bench/bayes_latency.py [--trials 1000] [--repeats 50] [--sampler tpe|gp] [--database-url URL]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypersweep.service import migrate
from hypersweep.service.claims import Claims
from hypersweep.service.db import Database
from hypersweep.service.schemas import ClaimedTrial, SweepSpec
from hypersweep.service.search.base import Observation, SearchConfig
from hypersweep.service.search.registry import make_designer
from hypersweep.service.store import Store
from hypersweep.service.validation import check_spec

SPACE: dict[str, Any] = {
    "lr": {"type": "float", "low": 1e-6, "high": 1.0, "scale": "log"},
    "reg": {"type": "float", "low": 1e-6, "high": 1e-1, "scale": "log"},
    "dropout": {"type": "float", "low": 0.0, "high": 0.7},
    "hidden": {"type": "int", "low": 32, "high": 512, "scale": "log"},
    "optimizer": {"type": "categorical", "values": ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]},
}
RUNNING = 8


def outcome(params: dict[str, Any]) -> tuple[str, float]:
    """A made-up validation loss; learning rates near the top diverge."""
    lr = float(params["lr"])
    if lr > 0.4:
        return "diverged", 1e3
    loss = (
        (math.log10(lr) + 2.5) ** 2 + (math.log10(float(params["reg"])) + 4) ** 2 / 4 + (params["dropout"] - 0.2) ** 2
    )
    return "completed", loss + (0.0 if params["optimizer"] == "adam" else 0.3)


def finish(store: Store, trial: ClaimedTrial) -> Observation:
    status, value = outcome(trial.params)
    store.finish(trial_id=trial.id, lease_token=trial.lease_token, status=status, metrics={"val_loss": value})
    return Observation(trial.params, value, diverged=status == "diverged")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=1000, help="finished trials before timing")
    parser.add_argument("--repeats", type=int, default=50, help="timed claims")
    parser.add_argument("--sampler", choices=["tpe", "gp"], default="tpe")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'latency.db'}"
        migrate.upgrade(url)
        db = Database(url)
        try:
            run(db, args.trials, args.repeats, args.sampler)
        finally:
            db.dispose()


def run(db: Database, trials: int, repeats: int, sampler: str) -> None:
    search = {"kind": "bayes", "sampler": sampler, "seed": 0}
    doc = {
        "name": "latency",
        "objective": {"metric": "val_loss", "mode": "min"},
        "space": SPACE,
        "search": search,
        "stages": [{"trials": trials + repeats + 2 * RUNNING, "epochs": 1}],
        "parallelism": RUNNING,
    }
    spec = SweepSpec.model_validate(doc)
    store = Store(db, lease_seconds=3600)
    claims = Claims(store)
    sweep_id = store.create_sweep(spec=spec, plan=check_spec(spec)).id

    started = time.perf_counter()
    finished: list[Observation] = []
    while len(finished) < trials:
        batch = claims.claim(worker_id="bench", sweep_id=sweep_id, count=min(RUNNING, trials - len(finished)))
        finished += [finish(store, trial) for trial in batch]
    running = claims.claim(worker_id="bench", sweep_id=sweep_id, count=RUNNING)
    print(f"{trials} finished trials in {time.perf_counter() - started:.1f} s ({sampler}, claims of {RUNNING})")

    # A designer mirroring the same sweep, to time the suggestion apart from the database.
    designer = make_designer(spec.space, config=SearchConfig(**search), stage=0, minimize=True)
    designer.update(finished, [t.params for t in running])

    suggestion_ms: list[float] = []
    claim_ms: list[float] = []
    for i in range(repeats):
        done = finish(store, running.pop(0))
        active = [t.params for t in running]
        t0 = time.perf_counter()
        designer.update([done], active)
        designer.suggest(trials + RUNNING + i, 1)
        suggestion_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        running += claims.claim(worker_id="bench", sweep_id=sweep_id, count=1)
        claim_ms.append((time.perf_counter() - t0) * 1000)

    finish(store, running.pop(0))
    t0 = time.perf_counter()
    Claims(Store(db, lease_seconds=3600)).claim(worker_id="bench", sweep_id=sweep_id, count=1)
    rebuild_ms = (time.perf_counter() - t0) * 1000

    n = trials + repeats
    print(f"suggestion (update + suggest 1), {sampler} at {trials}..{n} finished: median {_ms(suggestion_ms)}")
    print(f"claim of one trial through the store ({db.engine.dialect.name}):        median {_ms(claim_ms)}")
    print(f"first claim of a restarted store (designer rebuilt from {n} trials):    {rebuild_ms:.1f} ms")


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{statistics.median(values):.1f} ms (p90 {p90:.1f} ms)"


if __name__ == "__main__":
    main()
