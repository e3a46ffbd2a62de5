"""Procedural mask speed: milliseconds per face per mask type, on one core.

    .venv/bin/python bench/mask_types.py [--data ../shared/data/lfw-mini] [--faces 40] [--repeat 7]

Faces: the first photo of each lfw-mini identity (dlib HOG box, MTCNN where HOG finds none,
dlib's 68 landmarks), rendered at two sizes: the full 250x250 LFW image, and a 112x112 crop
(the face box grown by 30% and squared, INTER_AREA, landmarks mapped into it) as a training
loop would see it. The process is pinned to one CPU and OpenCV to one thread.

Per kind and size it prints the median over faces of each face's median of --repeat calls of
`render_mask`, twice: with the style's template cached (the same style reused, as when a
loop reuses a fixed set of styles) and with a fresh style per call (a new seed each time, so
the template is drawn anew: the cost of a style drawn per image). A second table splits the
cached time into its parts: the anchor grid, the warp (triangle raster, inverse maps, remap),
lighting and blending, the loops' geometry, the rest (checks, copies, drawing the loops);
and gives the template's drawing time per level.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from mfrbench.vision import anchors as A
from mfrbench.vision.decode import decode_image
from mfrbench.vision.mask_styles import KINDS, draw_style
from mfrbench.vision.roi import crop_resize, fit_aspect

REPO = Path(__file__).resolve().parents[1]
Face = tuple[str, np.ndarray, tuple[float, float, float, float], np.ndarray]


def load_faces(root: Path, limit: int | None = None, per_identity: int = 1) -> list[Face]:
    """(name, rgb, box, canonical 68 landmarks) for the first photos of each identity."""
    from mfrbench.vision.detect import Cascade
    from mfrbench.vision.landmarks import make_landmarker

    cascade = Cascade(["dlib", "mtcnn"], dlib={"retry": True})
    landmarker = make_landmarker("dlib")
    out: list[Face] = []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(person.glob("*.jpg"))[:per_identity]:
            rgb = decode_image(path.read_bytes()).rgb
            found = cascade.detect(rgb)
            if not found:
                continue
            box = max(found, key=lambda f: f.area).box
            canon = A.to_canonical68(landmarker(rgb, box), "dlib").astype(np.float64)
            out.append((path.name, rgb, box, canon))
        if limit is not None and len(out) >= limit:
            break
    return out[:limit]


def crop112(rgb: np.ndarray, box: tuple[float, ...], canon: np.ndarray, size: int = 112):
    """A square crop around the face box grown by 30%, and the landmarks mapped into it."""
    x1, y1, x2, y2 = box
    gx, gy = 0.15 * (x2 - x1), 0.15 * (y2 - y1)
    b = fit_aspect((x1 - gx, y1 - gy, x2 + gx, y2 + gy), 1.0)
    crop = crop_resize(rgb, b, (size, size))
    s = size / (b[2] - b[0])
    return crop, (canon - (b[0], b[1]) + 0.5) * s - 0.5


def pin_one_core() -> int:
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    cv2.setNumThreads(1)
    return cpu


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm: caches, first-call allocations
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def cached_ms(rgb: np.ndarray, canon: np.ndarray, style, repeat: int) -> float:
    """Median ms of `render_mask` with one style (its template cached after the first call)."""
    from mfrbench.vision.mask_warp import render_mask

    return _median_ms(lambda: render_mask(rgb, canon, style), repeat)


def fresh_ms(rgb: np.ndarray, canon: np.ndarray, kind: str, rng, repeat: int) -> float:
    """Median ms of drawing a new style and rendering it (its template drawn anew each time)."""
    from mfrbench.vision.mask_warp import render_mask

    return _median_ms(lambda: render_mask(rgb, canon, draw_style(kind, rng)), repeat)


def parts_ms(rgb: np.ndarray, canon: np.ndarray, style, repeat: int) -> dict[str, float]:
    """Median ms of each stage of `render_mask`, calling the stages as it does."""
    from mfrbench.vision import mask_warp as W
    from mfrbench.vision.mask_grid import face_frame, face_grid

    fr = face_frame(canon)
    nodes = face_grid(fr)
    grid = fr.to_image(nodes)
    h, w = rgb.shape[:2]
    flat = grid.reshape(-1, 2)
    x0, y0 = np.maximum(np.floor(flat.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(flat.max(axis=0)).astype(int) + 3, (w, h))
    box = (int(x0), int(y0), int(x1), int(y1))

    def paint() -> None:
        W._paint(rgb.copy(), np.zeros((h, w), np.uint8), grid, box, style)

    def loops() -> None:
        W.loop_lines(nodes, fr, W.LOOP_ANCHORS[style.kind], *W.LOOP_SHAPES[style.kind])

    copy = _median_ms(lambda: (rgb.copy(), np.zeros((h, w), np.uint8)), repeat)
    grid_ms = _median_ms(lambda: face_grid(face_frame(canon)), repeat)
    paint_ms = _median_ms(paint, repeat) - copy
    loops_ms = _median_ms(loops, repeat)
    total = _median_ms(lambda: W.render_mask(rgb, canon, style), repeat)
    return {
        "grid": grid_ms,
        "warp+light": paint_ms,
        "loop geometry": loops_ms,
        "rest": total - grid_ms - paint_ms - loops_ms,
        "total": total,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "lfw-mini")
    ap.add_argument("--faces", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    from mfrbench.vision.mask_textures import LEVELS, template

    cpu = pin_one_core()
    faces = load_faces(args.data, args.faces)
    sizes = {
        "112x112": [crop112(rgb, box, canon) for _, rgb, box, canon in faces],
        "250x250": [(rgb, canon) for _, rgb, _, canon in faces],
    }
    print(f"{len(faces)} lfw-mini faces, CPU {cpu}, OpenCV threads {cv2.getNumThreads()}\n")
    print("| kind | size | cached style ms | fresh style ms |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    for kind in KINDS:
        for size, items in sizes.items():
            cached = [cached_ms(im, lm, draw_style(kind, rng), args.repeat) for im, lm in items]
            fresh = [fresh_ms(im, lm, kind, rng, args.repeat) for im, lm in items]
            print(f"| {kind} | {size} | {np.median(cached):.2f} | {np.median(fresh):.2f} |")
    print("\nWhere the time goes (cached style, median over faces, ms):\n")
    names = ["grid", "warp+light", "loop geometry", "rest", "total"]
    print("| kind | size | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for kind in KINDS:
        for size, items in sizes.items():
            rows = [parts_ms(im, lm, draw_style(kind, rng), args.repeat) for im, lm in items]
            cells = " | ".join(f"{np.median([r[n] for r in rows]):.2f}" for n in names)
            print(f"| {kind} | {size} | {cells} |")
    print("\nTemplate drawing (uncached, one style, ms per level):\n")
    print("| kind | " + " | ".join(f"level {lv}" for lv in range(LEVELS)) + " |")
    print("|---|" + "---|" * LEVELS)
    for kind in KINDS:
        cells = []
        for level in range(LEVELS):
            styles = [draw_style(kind, rng) for _ in range(args.repeat + 1)]
            it = iter(styles)
            cells.append(_median_ms(lambda: template(next(it), level), args.repeat))  # noqa: B023
        print(f"| {kind} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
