"""How many worker processes a command uses by default: the CPUs this process may run on."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs available to this process (``os.sched_getaffinity``: respects taskset, cgroups'
    cpusets and SLURM allocations), else ``os.cpu_count()``; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


#: The CLI's default ``--workers`` (read once at import; outputs never depend on it).
DEFAULT_WORKERS = usable_cpus()
