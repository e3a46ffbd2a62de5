"""MTCNN detection time per image for several minimum face sizes, interleaved on the same images.

    .venv/bin/python bench/min_face_speed.py [--sizes 20,40,60,80] [--every 50]

Every ``--every``-th LFW image (sorted paths) is decoded once; then, image by image, each
``MTCNN(min_face_size=m)`` detects on it in turn (one thread), so machine noise hits all sizes
alike. Printed per size: median and mean milliseconds per image, ratio to the first size's
mean, images with a face, and P-Net pyramid levels on a 250 x 250 image.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    env = os.environ.get("MFRBENCH_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=data_root() / "lfw")
    ap.add_argument("--sizes", default="20,40,60,80")
    ap.add_argument("--every", type=int, default=50)
    a = ap.parse_args()

    from mfrbench.vision.decode import decode_image
    from mfrbench.vision.mtcnn import MTCNN
    from mfrbench.workers import single_threaded

    single_threaded()
    sizes = [int(s) for s in a.sizes.split(",")]
    detectors = {m: MTCNN(min_face_size=m) for m in sizes}
    images = [
        decode_image(p.read_bytes(), min_side=32).rgb
        for p in sorted(a.root.rglob("*.jpg"))[:: a.every]
    ]
    ms: dict[int, list[float]] = {m: [] for m in sizes}
    found = dict.fromkeys(sizes, 0)
    for rgb in images[:3]:  # warm-up: first calls allocate
        for d in detectors.values():
            d.detect(rgb)
    for rgb in images:
        for m, d in detectors.items():
            t = time.perf_counter()
            faces = d.detect(rgb)
            ms[m].append(1000 * (time.perf_counter() - t))
            found[m] += bool(faces)
    base = statistics.mean(ms[sizes[0]])
    print(f"{len(images)} images (every {a.every} of {a.root}), one thread, interleaved")
    print(
        f"{'min face':>8} {'median ms':>9} {'mean ms':>8} {'x faster':>8} "
        f"{'faces':>6} {'levels':>6}"
    )
    for m in sizes:
        mean = statistics.mean(ms[m])
        levels = len(detectors[m].scales(250, 250))
        print(
            f"{m:8d} {statistics.median(ms[m]):9.1f} {mean:8.1f} {base / mean:8.2f} "
            f"{found[m]:6d} {levels:6d}"
        )


if __name__ == "__main__":
    main()
