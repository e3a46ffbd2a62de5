"""Synth throughput and peak memory on real LFW images.

    .venv/bin/python bench/synth_throughput.py [--limit 1000] [--workers 1,2] [--sizes 250,1000]

Each configuration runs in a fresh subprocess (so peak RSS is its own): three colours, dlib
landmarks, MTCNN with fallbacks, upper-half ROI. Prints source images/s, per-stage milliseconds
per image (summed over workers), peak RSS of the main process and of the largest worker, and
(1 worker) the RSS every ~10% of the run, which must flatten rather than grow with the images.
`--sizes` repeats the 1-worker run at several dataset sizes to show that memory does not grow with
the dataset (rows stream to disk in 32-image parts).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    env = os.environ.get("MFRBENCH_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def one(limit: int, workers: int, out: Path) -> dict:
    """Run synth once in this process and report its figures."""
    from mfrbench.synth import STAGES, SynthConfig, run_synth

    config = SynthConfig(dataset="lfw", root=str(data_root() / "lfw"), limit=limit)
    trace: list[tuple[int, int]] = []  # (images done, main-process RSS MiB), every ~10%

    def sample(done: int, _failed: int) -> None:
        if workers == 1 and (not trace or done - trace[-1][0] >= max(limit // 10, 32)):
            trace.append((done, _rss_mib()))

    result = run_synth(config, out, workers=workers, on_progress=sample)
    n = result.sources
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "limit": limit,
        "workers": workers,
        "seconds": round(result.elapsed, 2),
        "images_per_s": round(n / result.elapsed, 1),
        "rows": result.rows,
        "ok_rows": result.status_counts.get("ok", 0),
        "stage_ms_per_image": {
            s: round(1000 * result.stage_seconds.get(s, 0.0) / n, 2) for s in STAGES
        },
        "peak_rss_main_mib": round(self_kb / 1024, 1),
        "peak_rss_worker_mib": round(child_kb / 1024, 1),
        "detectors": result.detector_counts,
        "rss_mib_trace": trace,
    }


def _rss_mib() -> int:
    """Current resident set size of this process (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return -1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--sizes", default="", help="extra 1-worker runs at these sizes (memory)")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.limit, int(args.workers), args.out)))
        return
    if not (data_root() / "lfw").is_dir():
        sys.exit(f"LFW not found under {data_root()} (set MFRBENCH_DATA)")
    runs = [(args.limit, int(w)) for w in args.workers.split(",")]
    runs += [(int(s), 1) for s in args.sizes.split(",") if s]
    for limit, workers in runs:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, __file__, "--one", "--limit", str(limit)]
            cmd += ["--workers", str(workers), "--out", str(Path(tmp) / "out")]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            print(res.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
