"""dlib HOG on LFW: faces found and time with upsample 0, upsample 1, and the retry rule.

    .venv/bin/python bench/hog_upsample.py [--root ../shared/data/lfw] [--every 1] [--json F]

Every image (or every Nth, ``--every``) is decoded the way synth decodes it and given to dlib's
frontal face detector twice, single-threaded: once with upsample 0, once with upsample 1. Printed:
images with at least one face for each, the retry rule (upsample 0, then 1 only when 0 found
nothing: what :class:`mfrbench.vision.detect.DlibHog` does for small images), images where the
two disagree, whether the centre face (synth's LFW face policy) is the same face (IoU >= 0.5),
and the median milliseconds per image of each. ``--json`` keeps the per-image counts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    env = os.environ.get("MFRBENCH_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=data_root() / "lfw")
    ap.add_argument("--every", type=int, default=1, help="take every Nth image (sorted paths)")
    ap.add_argument("--json", type=Path, help="write per-image counts here")
    a = ap.parse_args()

    import dlib

    from mfrbench.vision.decode import decode_image
    from mfrbench.vision.detect import select_face
    from mfrbench.vision.types import Face
    from mfrbench.workers import single_threaded

    single_threaded()
    det = dlib.get_frontal_face_detector()
    paths = sorted(a.root.rglob("*.jpg"))[:: a.every]
    if not paths:
        sys.exit(f"no .jpg images under {a.root}")
    rows = []
    ms: dict[int, list[float]] = {0: [], 1: []}
    t_all = time.perf_counter()
    for i, p in enumerate(paths):
        rgb = decode_image(p.read_bytes(), min_side=32).rgb
        found = {}
        for up in (0, 1):
            t = time.perf_counter()
            rects = det(rgb, up)
            ms[up].append(1000 * (time.perf_counter() - t))
            faces = [
                Face(
                    box=(r.left(), r.top(), r.right() + 1.0, r.bottom() + 1.0),
                    score=1.0,
                    detector="dlib",
                )
                for r in rects
            ]
            chosen, _ = select_face(faces, "center", (rgb.shape[1], rgb.shape[0]))
            found[up] = (len(faces), chosen.box if chosen else None)
        rows.append(
            {
                "path": str(p.relative_to(a.root)),
                "wh": [rgb.shape[1], rgb.shape[0]],
                "n0": found[0][0],
                "n1": found[1][0],
                "box0": found[0][1],
                "box1": found[1][1],
            }
        )
        if (i + 1) % 1000 == 0:
            print(f"{i + 1}/{len(paths)} {time.perf_counter() - t_all:.0f} s", file=sys.stderr)

    n = len(rows)
    any0 = sum(r["n0"] > 0 for r in rows)
    any1 = sum(r["n1"] > 0 for r in rows)
    retry = sum(r["n0"] > 0 or r["n1"] > 0 for r in rows)
    only1 = sum(r["n0"] == 0 and r["n1"] > 0 for r in rows)
    only0 = sum(r["n0"] > 0 and r["n1"] == 0 for r in rows)
    count_diff = sum(r["n0"] != r["n1"] for r in rows)
    both = [r for r in rows if r["box0"] and r["box1"]]
    same_face = sum(_iou(r["box0"], r["box1"]) >= 0.5 for r in both)
    retried = n - any0
    med0, med1 = statistics.median(ms[0]), statistics.median(ms[1])
    retry_ms = (sum(ms[0]) + sum(m for m, r in zip(ms[1], rows, strict=True) if r["n0"] == 0)) / n
    print(f"images: {n} under {a.root} (every {a.every})")
    print(f"face found, upsample 0:          {any0} ({100 * any0 / n:.2f}%)")
    print(f"face found, upsample 1:          {any1} ({100 * any1 / n:.2f}%)")
    print(f"face found, retry (0, then 1):   {retry} ({100 * retry / n:.2f}%)")
    print(f"found only by upsample 1: {only1}; only by upsample 0: {only0}")
    print(f"images whose face count differs (0 vs 1): {count_diff}")
    print(f"centre face the same (IoU >= 0.5) where both found one: {same_face} of {len(both)}")
    print(f"ms/image median: upsample 0 {med0:.1f}, upsample 1 {med1:.1f} ({med1 / med0:.1f}x)")
    print(f"ms/image mean, retry rule: {retry_ms:.1f} (retried {retried} images)")
    if a.json:
        a.json.write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
