"""How many CPU cores this process may use, so that trials side by side, or workers in
containers side by side, each take their share of a machine and not all of it.

A container's CPU limit (``docker compose``'s ``cpus``, a Kubernetes CPU limit) is a
cgroup quota, not an affinity: ``os.sched_getaffinity`` still lists every core of the host,
and a worker that started one thread per listed core would have them fight over the few
the quota allows. So the quota counts too."""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["cgroup_cpu_limit", "cpu_cores"]

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cpu_cores(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """The cores this process may use: those it may run on (its affinity, which a cpuset
    narrows), or fewer when a CPU quota allows less (rounded up); at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit(cgroup_root, proc_cgroup)
    if limit is not None:
        cores = min(cores, math.ceil(limit))
    return max(1, cores)


def cgroup_cpu_limit(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores (``1.5`` for a limit of one and a
    half cores), the tightest along its path up to the root; ``None`` when there is none
    or it cannot be read. Reads cgroup v2's ``cpu.max``, or v1's ``cpu.cfs_quota_us`` and
    ``cpu.cfs_period_us``."""
    limits = [
        limit
        for folder in _cgroup_folders(cgroup_root, proc_cgroup)
        if (limit := _v2_limit(folder / "cpu.max")) is not None
    ]
    for v1 in ("cpu", "cpu,cpuacct"):
        limit = _v1_limit(cgroup_root / v1)
        if limit is not None:
            limits.append(limit)
    return min(limits) if limits else None


def _cgroup_folders(root: Path, proc_cgroup: Path) -> list[Path]:
    """This process's cgroup v2 folder and its parents up to ``root``. Inside a container
    with its own cgroup namespace the path is ``/`` and ``root`` is the container's own."""
    relative = "/"
    try:
        for line in proc_cgroup.read_text().splitlines():
            if line.startswith("0::"):
                relative = line[3:]
    except OSError:
        pass
    folder = root / relative.strip("/")
    folders = [folder]
    while folder != root and root in folder.parents:
        folder = folder.parent
        folders.append(folder)
    return folders


def _v2_limit(path: Path) -> float | None:
    try:
        quota, _, period = path.read_text().strip().partition(" ")
        if quota == "max":
            return None
        return int(quota) / int(period or "100000")
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _v1_limit(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period
