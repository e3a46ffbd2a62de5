"""The spawned process pool: results in order, and a dying worker ends the run with one line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mfrbench.errors import UserError
from mfrbench.workers import spawn_map


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
            from mfrbench.workers import spawn_map
            print(list(spawn_map(abs, [-1, -2, -3], 2, int)))
            """
        )
    )
    r = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert r.returncode != 0
    assert 'if __name__ == "__main__":' in r.stderr
