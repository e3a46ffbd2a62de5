"""The spawned process pool: results in order, and a dying worker ends the run with one line;
the thread map: ordered, bounded, exceptions in place, inline for one worker."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mfrbench.errors import UserError
from mfrbench.workers import spawn_map, thread_map


def _square(x: int) -> int:
    return x * x


def _boom(x: int) -> int:
    import os

    if x == 3:
        os._exit(1)  # a worker killed mid-run (the OOM killer does this)
    return x


def test_results_in_input_order() -> None:
    assert list(spawn_map(_square, range(12), 2, int)) == [x * x for x in range(12)]


def test_dead_worker_is_a_clear_error_not_a_hang() -> None:
    with pytest.raises(UserError, match="a worker process died"):
        list(spawn_map(_boom, range(6), 2, int))


def test_script_without_main_guard_fails_fast(tmp_path: Path) -> None:
    """Spawned workers re-run an unguarded script; multiprocessing.Pool respawned them forever."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            """
            from mfrbench.workers import spawn_map, thread_map
            print(list(spawn_map(abs, [-1, -2, -3], 2, int)))
            """
        )
    )
    r = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert r.returncode != 0
    assert 'if __name__ == "__main__":' in r.stderr


def _slow_first(x: int) -> int:
    """Early items finish last, so completion order is the reverse of input order."""
    time.sleep(0.02 * (5 - x) if x < 5 else 0)
    return x * 10


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_thread_map_keeps_input_order(workers: int) -> None:
    assert list(thread_map(_slow_first, range(12), workers)) == [x * 10 for x in range(12)]


def test_thread_map_raises_at_the_failing_item() -> None:
    def fail_on_3(x: int) -> int:
        if x == 3:
            raise ValueError("item 3")
        return x

    got: list[int] = []
    with pytest.raises(ValueError, match="item 3"):
        for value in thread_map(fail_on_3, range(10), 3):
            got.append(value)
    assert got == [0, 1, 2]


def test_thread_map_one_worker_runs_inline_and_lazily() -> None:
    seen: list[tuple[int, str]] = []

    def record(x: int) -> int:
        seen.append((x, threading.current_thread().name))
        return x

    it = thread_map(record, range(5), 1)
    assert seen == []  # nothing runs before the first result is asked for
    assert next(it) == 0
    assert seen == [(0, threading.current_thread().name)]
    assert list(it) == [1, 2, 3, 4]
    assert {name for _, name in seen} == {threading.current_thread().name}


def test_thread_map_submits_a_bounded_window() -> None:
    """Items are taken from the input as results are consumed, at most 2 * workers ahead."""
    taken = 0

    def counted() -> Iterator[int]:
        nonlocal taken
        for x in range(1000):
            taken += 1
            yield x

    it = thread_map(lambda x: x, counted(), 2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    assert taken <= 3 + 2 * 2
    it.close()


def test_release_freed_memory_gives_freed_heap_back(monkeypatch) -> None:
    """Freed glibc heap blocks pinned under a live one stay in RSS until the heap is trimmed."""
    import numpy as np

    from mfrbench import workers

    if workers._rss() is None or not workers._malloc_trim():
        pytest.skip("needs Linux /proc and glibc malloc_trim")
    monkeypatch.setattr(workers, "_heap_floor", [])
    assert workers.release_freed_memory(slack=1) is False  # the first call sets the floor
    blocks = [np.ones(8192, dtype=np.float64) for _ in range(8000)]  # 64 KiB each: heap, not mmap
    keep = blocks[-1]
    grown = workers._rss()
    del blocks
    assert workers._rss() > grown - 64 * 2**20, "glibc kept the freed blocks under the live one"
    assert workers.release_freed_memory(slack=10 * 2**30) is False  # under the slack: no trim
    assert workers.release_freed_memory(slack=1) is True
    assert workers._rss() < grown - 256 * 2**20
    assert keep.sum() == 8192
