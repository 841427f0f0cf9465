"""Prometheus metrics: counters kept by this process, and gauges read from the database
at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hypersweep.service.store import Store

__all__ = ["ServiceMetrics"]


class _StatusCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sweeps, trials = self.store.status_counts()
        sweep_gauge = GaugeMetricFamily("hypersweep_sweeps", "Sweeps by status.", labels=["status"])
        for status, n in sorted(sweeps.items()):
            sweep_gauge.add_metric([status], n)
        trial_gauge = GaugeMetricFamily("hypersweep_trials", "Trials by status.", labels=["status"])
        for status, n in sorted(trials.items()):
            trial_gauge.add_metric([status], n)
        yield sweep_gauge
        yield trial_gauge
        slots = GaugeMetricFamily(
            "hypersweep_worker_slots_wanted",
            "Trial slots the running sweeps can keep busy now, by the program they run ('' for the built-in "
            "trainer): queued and running trials plus those still to create, each sweep at most its parallelism. "
            "What an autoscaler divides by the trials each worker runs at once.",
            labels=["program"],
        )
        for program, n in sorted(self.store.slots_wanted().items(), key=lambda item: item[0] or ""):
            slots.add_metric([program or ""], n)
        yield slots


class ServiceMetrics:
    """One registry per app, so that several apps in one process never collide."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self.claimed = Counter("hypersweep_trials_claimed", "Trials handed to workers.", registry=self.registry)
        self.finished = Counter(
            "hypersweep_trials_finished",
            "Trials ended by their workers' finish, by the status they ended with; a finish sent again, "
            "or one of a trial cancelled meanwhile, does not count.",
            ["status"],
            registry=self.registry,
        )
        self.expired = Counter(
            "hypersweep_leases_expired", "Leases that ran out and were re-queued or failed.", registry=self.registry
        )
        self.registry.register(_StatusCollector(store))
