"""The cores a process may use: its affinity, narrowed by a cgroup CPU quota (a
container's CPU limit), read from cgroup files laid out as the kernel lays them out."""

from __future__ import annotations

import os
from pathlib import Path

from hypersweep.cores import cgroup_cpu_limit, cpu_cores

AFFINITY = len(os.sched_getaffinity(0))


def cgroup_v2(root: Path, relative: str, limits: dict[str, str]) -> Path:
    """A cgroup v2 tree with ``cpu.max`` set per folder, and a /proc/self/cgroup naming
    ``relative`` as this process's cgroup."""
    for folder, value in limits.items():
        path = root / folder.strip("/")
        path.mkdir(parents=True, exist_ok=True)
        (path / "cpu.max").write_text(value + "\n")
    proc = root.parent / "proc-self-cgroup"
    proc.write_text(f"0::{relative}\n")
    return proc


def test_a_quota_in_cpu_max_limits_the_cores(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    proc = cgroup_v2(root, "/", {"/": "150000 100000"})
    assert cgroup_cpu_limit(root, proc) == 1.5
    assert cpu_cores(root, proc) == min(AFFINITY, 2)  # rounded up


def test_no_quota_leaves_the_affinity(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    proc = cgroup_v2(root, "/", {"/": "max 100000"})
    assert cgroup_cpu_limit(root, proc) is None
    assert cpu_cores(root, proc) == AFFINITY
    assert cpu_cores(tmp_path / "nothing-here", tmp_path / "no-proc") == AFFINITY


def test_the_tightest_quota_on_the_way_up_counts(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    proc = cgroup_v2(
        root,
        "/system.slice/docker-abc.scope",
        {"/": "max 100000", "/system.slice": "100000 100000", "/system.slice/docker-abc.scope": "400000 100000"},
    )
    assert cgroup_cpu_limit(root, proc) == 1.0
    assert cpu_cores(root, proc) == 1


def test_a_cgroup_v1_quota_counts_and_unlimited_does_not(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    folder = root / "cpu,cpuacct"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    (folder / "cpu.cfs_quota_us").write_text("300000\n")
    assert cgroup_cpu_limit(root, tmp_path / "no-proc") == 3.0
    (folder / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(root, tmp_path / "no-proc") is None


def test_unreadable_or_odd_files_mean_no_limit(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    proc = cgroup_v2(root, "/", {"/": "garbage"})
    assert cgroup_cpu_limit(root, proc) is None
    assert cpu_cores(root, proc) == AFFINITY


def test_this_machine_gives_at_least_one_core_and_no_more_than_its_affinity() -> None:
    assert 1 <= cpu_cores() <= AFFINITY
