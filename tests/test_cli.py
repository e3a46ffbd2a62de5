"""The command line: version, help, module entry, and one-line exit-2 user errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mfrbench import __version__


def mfrbench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mfrbench", *args], capture_output=True, text=True, timeout=timeout
    )


def test_version_and_help() -> None:
    r = mfrbench("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"mfrbench {__version__}"
    r = mfrbench("--help")
    assert r.returncode == 0 and "synth" in r.stdout
    r = mfrbench("synth", "--help")
    assert r.returncode == 0 and "--colors" in r.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["synth", "lfw", "--root", "/nonexistent/lfw"], "/nonexistent/lfw"),
        (["synth", "lfw", "--colors", "black,mauve"], "mauve"),
        (["synth", "lfw", "--roi", "chin"], "--roi"),
        (["synth", "lfw", "--detector", "yolo"], "yolo"),
        (["synth", "nosuchset"], "nosuchset"),
        (["synth", "lfw", "--bogus"], "--bogus"),
        (["synth", "lfw", "--workers", "0"], "--workers"),
        (["nosuchcommand"], "nosuchcommand"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(args: list[str], needle: str, tmp_path: Path) -> None:
    r = mfrbench(*args, "--out", str(tmp_path / "o")) if args[0] == "synth" else mfrbench(*args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error:") and needle in lines[0]
    assert "Traceback" not in r.stderr


def test_synth_cli_end_to_end(lfw_mini: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = mfrbench(
        "synth",
        "lfw",
        "--root",
        str(lfw_mini),
        "--out",
        str(out),
        "--limit",
        "8",
        "--colors",
        "black,white,blue",
        "--roi",
        "upper-half",
    )
    assert r.returncode == 0, r.stderr
    assert "manifest" in r.stdout and "ok" in r.stdout
    table = pq.read_table(out / "manifest.parquet")
    assert table.num_rows == 8 * 4
    assert (out / "images" / "mask-blue").is_dir()
