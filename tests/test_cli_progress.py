"""Progress lines when the output is a log, not a terminal."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from mfrbench.cli.progress import LogProgress


def test_log_progress_lines() -> None:
    out = io.StringIO()
    with LogProgress(out, interval=0.0) as progress:
        task = progress.add_task("embed", total=200, completed=50, failed=0)
        progress.update(task, completed=150, failed=2)
        progress.update(task, completed=200, failed=2)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("embed: 150/200 (75.0%), ") and "failed 2" in lines[0]
    assert "ETA" in lines[0] and "elapsed" in lines[0]
    assert lines[-1].startswith("embed: 200/200 (100.0%)") and "ETA" not in lines[-1]
    assert len(lines) == 2  # the finished line is not printed twice on exit


def test_log_progress_waits_for_its_interval() -> None:
    out = io.StringIO()
    with LogProgress(out, interval=3600) as progress:
        task = progress.add_task("synth", total=10)
        for k in range(1, 10):
            progress.update(task, completed=k)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synth: 9/10")  # only the line on exit


def test_synth_prints_progress_lines_into_a_log(lfw_mini: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MFRBENCH_PROGRESS_SECONDS": "0"}
    cmd = [sys.executable, "-m", "mfrbench", "synth", "lfw", "--root", str(lfw_mini)]
    cmd += ["--out", str(tmp_path / "out"), "--limit", "64", "--colors", "black", "--workers", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("synth: ")]
    assert lines[0].startswith("synth: 32/64 (50.0%)") and lines[-1].startswith("synth: 64/64")
