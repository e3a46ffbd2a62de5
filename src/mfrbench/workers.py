"""Worker processes: how many a command uses by default (the CPUs this process may run on),
and the one-thread-per-model pinning that keeps outputs the same for any worker count."""

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


def single_threaded() -> tuple[int, int]:
    """Run torch and OpenCV on one thread (same numerics for any worker count); returns the
    previous (torch, OpenCV) thread counts for :func:`restore_threads`."""
    import cv2
    import torch

    saved = (torch.get_num_threads(), cv2.getNumThreads())
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    return saved


def restore_threads(saved: tuple[int, int] | None) -> None:
    """Undo :func:`single_threaded` (in-process runs give the caller its threads back)."""
    if saved is None:
        return
    import cv2
    import torch

    torch.set_num_threads(saved[0])
    cv2.setNumThreads(saved[1])
