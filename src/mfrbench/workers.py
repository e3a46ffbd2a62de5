"""Worker processes: how many a command uses by default (the CPUs this process may run on),
the one-thread-per-model pinning that keeps outputs the same for any worker count, the
spawned process pool every parallel stage runs on, and the thread map for work that releases
the GIL (hashing, image encoding)."""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing as mp
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, TypeVar

from mfrbench.errors import UserError

T = TypeVar("T")
R = TypeVar("R")

BROKEN_POOL = (
    "a worker process died ({why}); if this runs from a Python script with workers > 1, put the "
    'call under `if __name__ == "__main__":` (spawned workers re-import the main script), or '
    "use workers=1"
)


def usable_cpus() -> int:
    """CPUs available to this process (``os.sched_getaffinity``: respects taskset, cgroups'
    cpusets and SLURM allocations), else ``os.cpu_count()``; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows
        return max(1, os.cpu_count() or 1)


#: The CLI's default ``--workers`` (read once at import; outputs never depend on it).
DEFAULT_WORKERS = usable_cpus()


def single_threaded(torch: bool = True) -> tuple[int | None, int]:
    """Run OpenCV, and torch when the stage uses it, on one thread (same numerics for any worker
    count); returns the previous (torch, OpenCV) thread counts for :func:`restore_threads`.

    ``torch=False`` leaves torch unimported unless something already loaded it (then it is
    pinned too): a dlib-only synth does not pay torch's ~1.5 s import in every process.
    """
    import cv2

    saved_torch = None
    if torch or "torch" in sys.modules:
        import torch as _torch

        saved_torch = _torch.get_num_threads()
        _torch.set_num_threads(1)
    saved = (saved_torch, cv2.getNumThreads())
    cv2.setNumThreads(1)
    return saved


def restore_threads(saved: tuple[int | None, int] | None) -> None:
    """Undo :func:`single_threaded` (in-process runs give the caller its threads back)."""
    if saved is None:
        return
    import cv2

    if saved[0] is not None:
        import torch

        torch.set_num_threads(saved[0])
    cv2.setNumThreads(saved[1])


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with torch on ``n`` threads (None: leave them), then restore the count.
    Training pins one thread so a seeded run is bit-reproducible."""
    import torch

    saved = torch.get_num_threads()
    try:
        if n is not None:
            torch.set_num_threads(int(n))
        yield
    finally:
        torch.set_num_threads(saved)


#: RSS growth (bytes) past the last floor after which :func:`release_freed_memory` trims the heap.
HEAP_SLACK = 192 * 2**20
_heap_floor: list[int] = []  # RSS after the last trim (one per process)


def _rss() -> int | None:
    """Resident set size of this process in bytes (Linux ``/proc``), else None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _malloc_trim() -> bool:
    """glibc's ``malloc_trim(0)``: hand freed heap pages back to the OS (False elsewhere)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = getattr(libc, "malloc_trim", None)
    except OSError:
        return False
    if trim is None:
        return False
    trim(0)
    return True


def release_freed_memory(slack: int = HEAP_SLACK) -> bool:
    """Trim the heap once this process's RSS has grown ``slack`` past its last floor.

    Workers allocate and free images, tensors and rows of varying sizes chunk after chunk;
    glibc keeps the freed blocks, so a worker's RSS creeps up with the number of chunks it has
    run (measured: 600 -> 1,080 MiB over 2,560 LFW images) though nothing is alive. Trimming
    after every chunk keeps it flat but costs ~18% (pages faulted back in); trimming only past
    ``slack`` bounds it at floor + slack for a trim every several chunks. Returns whether it
    trimmed.
    """
    rss = _rss()
    if rss is None:
        return False
    if not _heap_floor:
        _heap_floor.append(rss)
        return False
    if rss - _heap_floor[0] < slack or not _malloc_trim():
        return False
    _heap_floor[0] = _rss() or rss
    return True


#: How often a pool worker checks that the process that spawned it is still there (seconds).
PARENT_POLL_S = 0.5


def _exit_with_parent(parent: int, poll_s: float) -> None:
    """End this worker process once ``parent`` is gone (it was re-parented)."""
    while os.getppid() == parent:
        time.sleep(poll_s)
    os._exit(1)


def _start_worker(parent: int, initializer: Callable[..., Any], initargs: tuple) -> None:
    """A pool worker's first step: watch the driver, then load the stage's models.

    A driver killed with SIGKILL (the OOM killer, ``kill -9``, a cancelled batch job) cannot
    shut its pool down, and ``ProcessPoolExecutor`` workers blocked in a model call or on the
    task queue would live on holding their memory; the watch thread ends them within
    :data:`PARENT_POLL_S` of the driver's death.
    """
    watch = threading.Thread(
        target=_exit_with_parent, args=(parent, PARENT_POLL_S), daemon=True, name="parent-watch"
    )
    watch.start()
    initializer(*initargs)


def spawn_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    initializer: Callable[..., Any],
    initargs: tuple = (),
) -> Iterator[R]:
    """``fn`` over ``items`` in ``workers`` spawned processes (no inherited torch, OpenCV or
    MediaPipe threads or state), results in input order.

    A worker that dies (a script without the ``__main__`` guard re-running itself in every
    worker, the out-of-memory killer) ends the run with one clear line: ``multiprocessing.Pool``
    would respawn such workers forever. Stopping early cancels the work not yet started.
    Workers end themselves when the driver dies (:func:`_start_worker`).
    """
    ctx = mp.get_context("spawn")
    ex = ProcessPoolExecutor(
        workers,
        mp_context=ctx,
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
    try:
        yield from ex.map(fn, items)
    except BrokenProcessPool as exc:
        raise UserError(BROKEN_POOL.format(why=exc)) from exc
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def thread_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``fn`` over ``items`` on ``workers`` threads, results lazily in input order.

    For work that releases the GIL (hashlib, image codecs). Items are submitted as results are
    taken, at most ``2 * workers`` ahead, so memory stays flat over any number of items (unlike
    ``Executor.map``, which submits everything at once). ``workers <= 1`` runs ``fn`` inline on
    the calling thread. An exception from ``fn`` is raised at its item's place in the order;
    stopping early cancels the work not yet started and waits for what is running.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    ahead = 2 * workers
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
