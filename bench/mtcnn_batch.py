"""Batched MTCNN on CPU: detect vs detect_many, and synth throughput before/after (issue 13).

    .venv/bin/python bench/mtcnn_batch.py [--images 96] [--repeats 3] [--synth-repeats 3]

1. Milliseconds per image on lfw-mini (250x250 LFW images), one torch thread: ``detect`` per
   image, then ``detect_many`` on groups of 1, 8 and 32 images; median of ``--repeats``.
2. ``run_synth`` on lfw-mini, one worker, one colour, MTCNN cascade, fresh output each run:
   "before" replaces ``Cascade.detect_many`` by one ``detect_with_info`` per image (the
   pre-batching path, identical to it), "after" is the batched path. Median of runs,
   alternating the two so machine noise hits both alike; ratios are what to compare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    env = os.environ.get("MFRBENCH_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def per_image_ms(images: list, repeats: int) -> dict[str, float]:
    import torch

    from mfrbench.vision.mtcnn import MTCNN

    torch.set_num_threads(1)
    det = MTCNN()
    det.detect_many(images[:8])  # warm-up (pyramid cache, allocator)
    out: dict[str, list[float]] = {"detect": [], "many-1": [], "many-8": [], "many-32": []}
    for _ in range(repeats):
        t = time.perf_counter()
        for im in images:
            det.detect(im)
        out["detect"].append((time.perf_counter() - t) / len(images) * 1e3)
        for b in (1, 8, 32):
            t = time.perf_counter()
            for s in range(0, len(images), b):
                det.detect_many(images[s : s + b])
            out[f"many-{b}"].append((time.perf_counter() - t) / len(images) * 1e3)
    return {k: statistics.median(v) for k, v in out.items()}


def synth_once(batched: bool, mini: Path) -> tuple[float, float, int]:
    """Seconds for the whole run_synth, its detect stage seconds, and faces found."""
    from mfrbench.synth import SynthConfig, run_synth
    from mfrbench.vision import detect

    saved = detect.Cascade.detect_many
    if not batched:
        detect.Cascade.detect_many = lambda self, ims: [self.detect_with_info(i) for i in ims]  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = SynthConfig(dataset="folder", root=str(mini), colors="black")
            t = time.perf_counter()
            result = run_synth(config, Path(tmp) / "out", workers=1)
            elapsed = time.perf_counter() - t
    finally:
        detect.Cascade.detect_many = saved  # type: ignore[method-assign]
    return elapsed, result.stage_seconds.get("detect", 0.0), result.status_counts.get("ok", 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--synth-repeats", type=int, default=3)
    args = ap.parse_args()
    import numpy as np
    from PIL import Image

    mini = data_root() / "lfw-mini"
    if not mini.is_dir():
        sys.exit(f"lfw-mini not found at {mini} (set MFRBENCH_DATA)")
    paths = sorted(mini.glob("*/*.jpg"))
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths[: args.images]]
    ms = per_image_ms(images, args.repeats)
    print(f"MTCNN ms/image, {len(images)} lfw-mini images, 1 thread, median of {args.repeats}:")
    for k, v in ms.items():
        print(f"  {k:8s} {v:6.2f} ms  ({ms['detect'] / v:4.2f}x detect)")

    runs: dict[bool, list[tuple[float, float, int]]] = {False: [], True: []}
    for _ in range(args.synth_repeats):
        for batched in (False, True):
            runs[batched].append(synth_once(batched, mini))
    n = len(paths)
    print(f"synth lfw-mini ({n} images, 1 worker, 1 colour), median of {args.synth_repeats}:")
    for batched, label in ((False, "before"), (True, "after")):
        el = statistics.median(r[0] for r in runs[batched])
        dt = statistics.median(r[1] for r in runs[batched])
        ok = {r[2] for r in runs[batched]}
        print(
            f"  {label:6s} {el:6.2f} s  {n / el:6.1f} img/s  "
            f"detect {dt / n * 1e3:5.2f} ms/img  ok rows {ok}"
        )
    before = statistics.median(r[0] for r in runs[False])
    after = statistics.median(r[0] for r in runs[True])
    print(f"  speed-up (whole run): {before / after:.2f}x")


if __name__ == "__main__":
    main()
