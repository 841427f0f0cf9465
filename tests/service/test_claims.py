"""Claims (``service.claims``): the settings a claimed trial gets, and many workers
claiming from one sweep at once: no trial is held twice, the budget is exact, no grid point
runs twice, and claims that wait together are served together."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event

from hypersweep.service.claims import Claims, trial_settings
from hypersweep.service.db import Database
from hypersweep.service.errors import LeaseConflict
from hypersweep.service.schemas import FinishedIn, SweepSpec, TrialOut
from hypersweep.service.store import Store
from hypersweep.service.validation import check_spec
from hypersweep.trainer.config import TrainerConfig
from tests.conftest import sweep_doc

WORKERS = 16


def create(store: Store, **overrides: object) -> int:
    spec = SweepSpec.model_validate(sweep_doc(**overrides))
    return store.create_sweep(spec=spec, plan=check_spec(spec)).id


def run_workers(body: Callable[[int], None], workers: int = WORKERS) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def target(index: int) -> None:
        try:
            start.wait()
            body(index)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors[:3]


def release_when_queued(claims: Claims, sweep_id: int, waiting: int, release: threading.Event) -> threading.Thread:
    """A thread that sets ``release`` once ``waiting`` claims queue in the sweep's line."""

    def watch() -> None:
        while not release.is_set():
            line = claims._lines.get(sweep_id)
            if line is not None and len(line.waiting) >= waiting:
                release.set()
            threading.Event().wait(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    return watcher


def test_trial_settings_are_the_defaults_then_the_trainer_section_then_epochs_then_params() -> None:
    settings = trial_settings({"hidden": 16, "epochs": 7, "lr": 0.5}, 3, {"lr": 0.01})
    assert settings == {**TrainerConfig().as_dict(), "hidden": 16, "epochs": 3, "lr": 0.01}


def test_a_fresh_trial_and_the_same_trial_requeued_are_claimed_with_the_same_settings(database_url: str) -> None:
    db = Database(database_url)
    store = Store(db, lease_seconds=60)
    claims = Claims(store)
    trainer = {"dataset": "spiral", "batch_size": 32, "hidden": 16}
    space = {**sweep_doc()["space"], "batch_size": {"type": "int", "low": 8, "high": 256, "scale": "log"}}
    sweep_id = create(store, space=space, trainer=trainer, stages=[{"trials": 2, "epochs": 3}])
    try:
        # Nothing queued or expired, a designer that does not learn: the common claim.
        [fresh] = claims.claim(worker_id="w1", sweep_id=sweep_id)
        store.release(trial_id=fresh.id, lease_token=fresh.lease_token)
        # The released trial is queued again: this claim leases it instead of a new one.
        [again] = claims.claim(worker_id="w2", sweep_id=sweep_id)
        assert (again.id, again.attempt, again.params, again.worker_id) == (fresh.id, 2, fresh.params, "w2")
        assert again.trainer == fresh.trainer
        assert fresh.trainer == {**TrainerConfig().as_dict(), **trainer, "epochs": 3, **fresh.params}
        assert fresh.trainer["batch_size"] == fresh.params["batch_size"]
    finally:
        db.dispose()


def test_the_common_claim_runs_four_statements_after_the_sweeps_lock(database_url: str) -> None:
    db = Database(database_url)
    store = Store(db, lease_seconds=60)
    claims = Claims(store)
    sweep_id = create(store, stages=[{"trials": 40, "epochs": 1}], parallelism=10)
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()))

    try:
        claims.claim(worker_id="w", sweep_id=sweep_id)  # reads what a process keeps: the plan, the trainer
        event.listen(db.engine, "before_cursor_execute", seen)
        claimed = claims.claim(worker_id="w", sweep_id=sweep_id, count=3)
        event.remove(db.engine, "before_cursor_execute", seen)
        assert len(claimed) == 3
        lock = next(i for i, sql in enumerate(statements) if sql.startswith("SELECT sweeps.id"))
        # Count the active trials, take budget, insert the trials, count them on the sweep.
        # (SQLite's driver inserts row by row what PostgreSQL's takes in one statement: the
        # repeats of one statement are one execution of it.)
        after = [sql for i, sql in enumerate(statements) if i > lock and sql != statements[i - 1]]
        assert [sql.split()[0] for sql in after] == ["SELECT", "UPDATE", "INSERT", "UPDATE"], after
        assert "stages" in after[1] and "trials" in after[2] and "sweeps" in after[3]
    finally:
        db.dispose()


@pytest.mark.parametrize("carried", [False, True], ids=["finish", "carried-by-claim"])
def test_sixteen_workers_hold_each_trial_once_and_the_budget_is_exact(database_url: str, carried: bool) -> None:
    db = Database(database_url)
    store = Store(db, lease_seconds=60)
    claims = Claims(store)
    sweep_id = create(
        store,
        search={"kind": "grid", "grid_points": 8},
        stages=[{"trials": 64, "epochs": 1}, {"trials": 48, "epochs": 2, "top_k": 4}],
        parallelism=10,
    )
    holders: dict[int, str] = {}
    finished: Counter[int] = Counter()
    params_seen: dict[int, list[tuple[object, ...]]] = {0: [], 1: []}
    lock = threading.Lock()
    max_running = 0

    def worker(index: int) -> None:
        nonlocal max_running
        name = f"w{index}"
        idle = 0
        ended: list[FinishedIn] = []  # carried by the next claim
        while idle < 50:
            count = random.choice([1, 2, 3])
            if ended:
                outcomes, claimed = claims.finish_and_claim(
                    results=ended, worker_id=name, sweep_id=sweep_id, count=count
                )
                assert [type(o) for o in outcomes] == [TrialOut] * len(ended)
                with lock:
                    finished.update(e.trial_id for e in ended)
                ended = []
            else:
                claimed = claims.claim(worker_id=name, sweep_id=sweep_id, count=count)
            if not claimed:
                if store.get_sweep(sweep_id=sweep_id).status == "completed":
                    return
                idle += 1
                continue
            idle = 0
            with lock:
                for trial in claimed:
                    assert trial.id not in holders, f"trial {trial.id} held by {holders[trial.id]} and {name}"
                    holders[trial.id] = name
                    params_seen[trial.stage].append(tuple(sorted(trial.params.items())))
                running = len(holders)
                max_running = max(max_running, running)
            for trial in claimed:
                with lock:
                    del holders[trial.id]
                metrics = {"val_accuracy": random.random()}
                result = {"lease_token": trial.lease_token, "status": "completed", "metrics": metrics}
                if carried:
                    ended.append(FinishedIn.model_validate({"trial_id": trial.id, **result}))
                    continue
                store.finish(trial_id=trial.id, **result)
                with lock:
                    finished[trial.id] += 1

    try:
        run_workers(worker)
        sweep = store.get_sweep(sweep_id=sweep_id)
        assert sweep.status == "completed"
        assert sweep.counts == {"completed": 112}
        assert [s.counts for s in sweep.stages] == [{"completed": 64}, {"completed": 48}]
        assert set(finished.values()) == {1}
        assert len(finished) == 112
        # Grid points: never twice within a stage.
        for stage, seen in params_seen.items():
            assert len(seen) == len(set(seen)), f"stage {stage} ran a grid point twice"
        assert max_running <= 10
    finally:
        db.dispose()


def test_workers_that_vanish_are_covered_by_the_lease(database_url: str) -> None:
    db = Database(database_url)
    store = Store(db, lease_seconds=0.4)
    claims = Claims(store)
    sweep_id = create(store, stages=[{"trials": 40, "epochs": 1}], parallelism=40, max_attempts=50)
    completed: Counter[int] = Counter()
    stale = 0
    lock = threading.Lock()

    def worker(index: int) -> None:
        nonlocal stale
        rng = random.Random(index)
        idle = 0
        while idle < 400:
            claimed = claims.claim(worker_id=f"w{index}", sweep_id=sweep_id)
            if not claimed:
                if store.get_sweep(sweep_id=sweep_id).status == "completed":
                    return
                idle += 1
                threading.Event().wait(0.01)
                continue
            idle = 0
            trial = claimed[0]
            if rng.random() < 0.2:
                # This worker goes silent past its lease, then tries to finish anyway.
                threading.Event().wait(0.6)
            try:
                store.finish(
                    trial_id=trial.id, lease_token=trial.lease_token, status="completed", metrics={"val_accuracy": 0.5}
                )
            except LeaseConflict:
                with lock:
                    stale += 1
                continue
            with lock:
                completed[trial.id] += 1

    try:
        run_workers(worker, workers=16)
        sweep = store.get_sweep(sweep_id=sweep_id)
        assert sweep.status == "completed"
        assert sweep.counts == {"completed": 40}
        assert len(completed) == 40 and set(completed.values()) == {1}
        assert stale > 0
    finally:
        db.dispose()


def test_claims_that_wait_together_are_served_together_each_with_its_own_trials(database_url: str) -> None:
    db = Database(database_url)
    store = Store(db, lease_seconds=60)
    claims = Claims(store)
    sweep_id = create(store, stages=[{"trials": 40, "epochs": 1}], parallelism=10)
    workers = 8
    batches: list[int] = []
    serve = claims._claim_batch
    release = threading.Event()

    def held_first_batch(sweep: int, asks: Any) -> Any:
        # The first claim to lead waits until every other claim queues behind it.
        if not batches:
            release.wait(timeout=30)
        batches.append(len(asks))
        return serve(sweep, asks)

    claims._claim_batch = held_first_batch  # type: ignore[method-assign]
    got: dict[str, list[int]] = {}
    lock = threading.Lock()

    def worker(index: int) -> None:
        claimed = claims.claim(worker_id=f"w{index}", sweep_id=sweep_id, count=2)
        with lock:
            got[f"w{index}"] = [t.id for t in claimed]
            assert all(t.worker_id == f"w{index}" for t in claimed)

    watcher = release_when_queued(claims, sweep_id, workers - 1, release)
    try:
        run_workers(worker, workers=workers)
        watcher.join()
        # One claim alone, then the seven that queued behind it in one transaction.
        assert batches == [1, workers - 1]
        # Parallelism 10: the first claim got 2, the batch the other 8, in the order they came.
        handed = sorted(len(ids) for ids in got.values())
        assert sum(handed) == 10 and handed.count(0) == 3
        trials = {t.id: t for t in store.list_trials(sweep_id=sweep_id)[0]}
        assert len(trials) == 10
        assert sorted(t.number for t in trials.values()) == list(range(10))
        for name, ids in got.items():
            assert {trials[i].worker_id for i in ids} <= {name}
    finally:
        db.dispose()


def test_a_claim_that_fails_fails_every_claim_of_its_batch_and_frees_the_line(database_url: str) -> None:
    db = Database(database_url)
    store = Store(db, lease_seconds=60)
    claims = Claims(store)
    sweep_id = create(store, stages=[{"trials": 40, "epochs": 1}], parallelism=40)
    workers = 8
    batches: list[int] = []
    serve = claims._claim_batch
    release = threading.Event()

    def second_batch_fails(sweep: int, asks: Any) -> Any:
        batches.append(len(asks))
        if len(batches) == 1:
            release.wait(timeout=30)  # until the other claims queue behind this one
        elif len(batches) == 2:
            raise RuntimeError("the database went away")
        return serve(sweep, asks)

    claims._claim_batch = second_batch_fails  # type: ignore[method-assign]
    failed: list[str] = []
    served: dict[str, int] = {}
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            claimed = claims.claim(worker_id=f"w{index}", sweep_id=sweep_id)
        except RuntimeError:
            with lock:
                failed.append(f"w{index}")
        else:
            with lock:
                served[f"w{index}"] = len(claimed)

    watcher = release_when_queued(claims, sweep_id, workers - 1, release)
    try:
        run_workers(worker, workers=workers)
        watcher.join()
        assert batches == [1, workers - 1]
        # The batch's failure is each of its claims': none is answered as if it got nothing.
        assert len(failed) == workers - 1
        assert list(served.values()) == [1]
        # The line is free again: the next claim of the sweep leads and goes through.
        assert len(claims.claim(worker_id="w", sweep_id=sweep_id)) == 1
        assert batches == [1, workers - 1, 1]
        assert store.get_sweep(sweep_id=sweep_id).counts == {"running": 2}
    finally:
        db.dispose()


def test_a_finish_that_commits_while_a_carried_one_runs_still_ends_the_stage(database_url: str) -> None:
    db = Database(database_url)
    if db.engine.dialect.name == "sqlite":
        db.dispose()
        pytest.skip("SQLite runs one writing transaction at a time: the two finishes cannot overlap")
    store = Store(db, lease_seconds=60)
    claims = Claims(store)
    sweep_id = create(store, stages=[{"trials": 2, "epochs": 1}], parallelism=2)
    first, second = claims.claim(worker_id="w", sweep_id=sweep_id, count=2)
    serve = claims._serve
    counted = threading.Event()
    go_on = threading.Event()

    def held_before_commit(*args: Any) -> Any:
        # The carried finish has seen the other trial still running; hold its transaction
        # open while that trial's own finish commits.
        served = serve(*args)
        counted.set()
        go_on.wait(timeout=30)
        return served

    claims._serve = held_before_commit  # type: ignore[method-assign]
    answers: list[Any] = []
    result = {"lease_token": first.lease_token, "status": "completed", "metrics": {"val_accuracy": 0.5}}
    carried = FinishedIn.model_validate({"trial_id": first.id, **result})
    thread = threading.Thread(
        target=lambda: answers.append(claims.finish_and_claim(results=[carried], worker_id="w", sweep_id=sweep_id))
    )
    thread.start()
    try:
        assert counted.wait(timeout=30)
        store.finish(
            trial_id=second.id, lease_token=second.lease_token, status="completed", metrics={"val_accuracy": 0.7}
        )
        # Its own check ran before the carried finish committed: the stage is not ended yet.
        assert store.get_sweep(sweep_id=sweep_id).status == "running"
        go_on.set()
        thread.join(timeout=30)
        [(outcomes, trials)] = answers
        assert [type(o) for o in outcomes] == [TrialOut] and trials == []
        sweep = store.get_sweep(sweep_id=sweep_id)
        assert sweep.status == "completed"
        assert sweep.counts == {"completed": 2}
    finally:
        go_on.set()
        db.dispose()
