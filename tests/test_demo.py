"""`mfrbench demo`: the whole job on lfw-mini, and one line of guidance without data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mfrbench.protocol import load_protocol


def _demo(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mfrbench", "demo", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_demo_runs_the_whole_job(lfw_mini: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, "MFRBENCH_CACHE": str(tmp_path / "cache")}
    r = _demo("--root", str(lfw_mini), "--out", str(out), "--workers", "2", env=env)
    assert r.returncode == 0, r.stderr
    for stage in ("1/4 synth", "2/4 pairs", "3/4 eval", "4/4 compare", "demo done"):
        assert stage in r.stdout
    protocol = load_protocol(out / "lfw-mini-demo.json")
    assert {p["pair_type"] for p in protocol["pairs"]} == {"masked-unmasked", "unmasked-unmasked"}
    run = next((out / "results").glob("*/*/"))
    assert {
        "report.md",
        "report.json",
        "roc.png",
        "det.png",
        "scores_hist.png",
        "impostors.parquet",
        "report.html",
    } <= {p.name for p in run.iterdir()}
    html = (run / "report.html").read_text()
    assert "Worst false non-matches" in html and "http://" not in html and "https://" not in html
    report = json.loads((run / "report.json").read_text())
    by_type = report["verification"]["by_pair_type"]
    # a real model on real faces: the control is easier than masked probes, both far from chance
    control = by_type["unmasked-unmasked"]["accuracy"]["mean"]
    masked = by_type["masked-unmasked"]["accuracy"]["mean"]
    assert control > 0.95 and 0.75 < masked <= control
    assert "masked-unmasked" in (out / "comparison.md").read_text()


def test_demo_without_data_says_how_to_get_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MFRBENCH_DATA"}
    r = _demo("--out", str(tmp_path / "d"), env=env)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1
    assert "--root" in lines[0] and "MFRBENCH_DATA" in lines[0] and "--download" in lines[0]
    assert not (tmp_path / "d").exists()
