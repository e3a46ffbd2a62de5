"""Synth throughput and faces found for several option sets on (a sample of) LFW, side by side.

    .venv/bin/python bench/synth_variants.py [--every 5] [--workers 2] [--before SRC]
        [--runs "base=;mf40=--min-face 40;mf60=--min-face 60;dlib=--detector dlib"]

Every ``--every``-th image of LFW (sorted paths; 1 = all 13,233) is linked into a scratch LFW
tree, then each run is a fresh ``mfrbench synth lfw`` process (3 colours, ``--workers``).
``--before SRC`` adds a first run named ``before`` with the package from another source tree
(e.g. ``git archive HEAD src | tar -x -C /tmp/before`` then ``--before /tmp/before/src``):
today's code against the committed one. Printed per run: wall seconds, source images/s, images
with a face, and against the first run: images that gained or lost a face, images whose chosen
face is byte-identical (same detector, same box), and images where it moved (box IoU < 0.9) or
changed detector; then per run the faces per detector and how far the boxes moved (IoU and
largest coordinate shift quantiles, :func:`shifts`). The outputs stay in the printed scratch
folder.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    env = os.environ.get("MFRBENCH_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def faces(manifest: Path) -> dict[str, tuple[str, tuple[float, ...]] | None]:
    """src_path -> (detector, box) of the chosen face, or None when the image has none."""
    import pyarrow.parquet as pq

    cols = ["variant", "status", "src_path", "detector", "det_box"]
    out: dict[str, tuple[str, tuple[float, ...]] | None] = {}
    for r in pq.read_table(manifest, columns=cols).to_pylist():
        if r["variant"] == "unmasked":
            ok = r["status"] == "ok"
            out[r["src_path"]] = (r["detector"], tuple(r["det_box"])) if ok else None
    return out


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def compare(ref: dict, found: dict) -> tuple[int, int, int, int]:
    """(gained, lost, identical, moved) of ``found`` against ``ref`` (see the module doc)."""
    gained = lost = same = moved = 0
    for k, v in found.items():
        old = ref[k]
        gained += old is None and v is not None
        lost += old is not None and v is None
        if old and v:
            same += old == v
            moved += old[0] != v[0] or _iou(old[1], v[1]) < 0.9
    return gained, lost, same, moved


def shifts(ref: dict, found: dict) -> str:
    """Detector counts of ``found``, and where both runs chose a face with the same detector:
    the box IoU against ``ref`` (min, 1st percentile, median) and the largest coordinate
    shift in px (median, 99th percentile, max)."""
    import numpy as np

    detectors: dict[str, int] = {}
    ious, moves = [], []
    for k, v in found.items():
        if v is None:
            continue
        detectors[v[0]] = detectors.get(v[0], 0) + 1
        old = ref[k]
        if old is not None and old[0] == v[0]:
            ious.append(_iou(old[1], v[1]))
            moves.append(max(abs(x - y) for x, y in zip(old[1], v[1], strict=True)))
    if not ious:
        return f"detectors {detectors}"
    iou, move = np.asarray(ious), np.asarray(moves)
    return (
        f"detectors {dict(sorted(detectors.items()))}; same detector as the first run: "
        f"{len(iou)}, IoU min/p1/median {iou.min():.3f}/{np.percentile(iou, 1):.3f}/"
        f"{np.median(iou):.3f}, largest shift px median/p99/max {np.median(move):.2f}/"
        f"{np.percentile(move, 99):.2f}/{move.max():.2f}, IoU < 0.5 (another face): "
        f"{int((iou < 0.5).sum())}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=data_root() / "lfw")
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--before", type=Path, help="a src/ folder holding the package to compare")
    ap.add_argument(
        "--runs", default="base=;mf40=--min-face 40;mf60=--min-face 60;dlib=--detector dlib"
    )
    a = ap.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="synth-variants-"))
    tree = scratch / "lfw"
    paths = sorted(a.root.rglob("*.jpg"))[:: a.every]
    for p in paths:
        dst = tree / p.relative_to(a.root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(p)
    runs: list[tuple[str, list[str], dict[str, str]]] = []
    if a.before:
        runs.append(("before", [], {"PYTHONPATH": str(a.before.resolve())}))
    for spec in a.runs.split(";"):
        name, _, extra = spec.partition("=")
        runs.append((name, extra.split(), {}))

    print(f"{len(paths)} images (every {a.every} of {a.root}), {a.workers} workers, 3 colours")
    ref: dict[str, tuple[str, tuple[float, ...]] | None] | None = None
    details: list[str] = []
    print(
        f"{'run':8} {'wall s':>7} {'img/s':>6} {'faces':>6} {'+face':>6} {'-face':>6} {'same':>6} "
        f"{'moved':>6}"
    )
    for name, extra, env_extra in runs:
        out = scratch / f"out-{name}"
        cmd = [sys.executable, "-m", "mfrbench", "synth", "lfw", "--root", str(tree)]
        cmd += ["--workers", str(a.workers), "--out", str(out), *extra]
        t0 = time.perf_counter()
        r = subprocess.run(
            cmd, env={**os.environ, **env_extra}, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"{name}: {' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
        found = faces(out / "manifest.parquet")
        n_faces = sum(v is not None for v in found.values())
        if ref is None:
            ref = found
        gained, lost, same, moved = compare(ref, found)
        print(
            f"{name:8} {wall:7.1f} {len(paths) / wall:6.1f} {n_faces:6d} {gained:6d} {lost:6d} "
            f"{same:6d} {moved:6d}   {' '.join(extra)}",
            flush=True,
        )
        details.append(f"{name}: {shifts(ref, found)}")
    print("\n".join(details))


if __name__ == "__main__":
    main()
