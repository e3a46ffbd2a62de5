"""Synth worker memory against dataset size: RSS after every chunk of an in-process run.

    .venv/bin/python bench/worker_memory.py --sizes 320,1280,2560 [--root ../shared/data/lfw]

One worker, in-process (so the driver's own memory is included), 3 colours, MTCNN + dlib.
Prints per size the wall time, RSS after a sample of chunks and the peak. Each size runs in a
fresh process (``--one N`` is the child's entry point).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one(n: int, root: str) -> dict:
    import mfrbench.synth as synth

    marks: list[float] = []
    run_chunk = synth._run_chunk

    def measured(chunk):  # in-process runs call the module's _run_chunk
        out = run_chunk(chunk)
        marks.append(_rss_mib())
        return out

    synth._run_chunk = measured
    config = synth.SynthConfig(dataset="lfw", root=root, limit=n, colors="black,white,blue")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        synth.run_synth(config, Path(tmp) / "out", workers=1)
        wall = time.perf_counter() - t0
    step = max(1, len(marks) // 10)
    return {
        "n": n,
        "s": round(wall, 1),
        "rss": [round(m) for m in marks[::step]],
        "peak": round(max(marks)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="320,1280,2560")
    default_root = os.environ.get(
        "MFRBENCH_DATA", str(Path(__file__).parents[1] / "../shared/data")
    )
    ap.add_argument("--root", default=str(Path(default_root) / "lfw"))
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.root)))
        return
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(n), "--root", args.root]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{r['n']:>6} images  {r['s']:>6.1f} s  peak {r['peak']:>5} MiB  by chunk {r['rss']}")


if __name__ == "__main__":
    main()
