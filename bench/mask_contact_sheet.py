"""Contact sheet of the procedural mask types on faces of varied pose, beside real masked photos.

    .venv/bin/python bench/mask_contact_sheet.py [--data ../shared/data] [--out PNG]
    .venv/bin/python bench/mask_contact_sheet.py --bundled   # writes docs/img/mask-types.png

Columns: lfw-mini faces picked by landmark geometry (two frontal, the most turned to each
side, the most rolled each way; dlib HOG or MTCNN box, dlib 68 landmarks). Rows: the photo,
then each procedural type (surgical, N95, KN95, cloth in every pattern; colours drawn per
face from a fixed seed), then the LFW masking paper's flat polygon for comparison. The last
row holds real masked photos from masked-real (MTCNN box), cropped the same way. Masks are
drawn on the full 250x250 photo, then each tile is the face box grown by 30%, squared (moved
inside the photo where it fits) and shrunk with INTER_AREA. This full sheet is for looking at
locally (default ``out/mask-types.png``, not committed): LFW and masked-real photos must never be
copied into the repository, thumbnails included.

``--bundled`` makes the committed sheet, ``docs/img/mask-types.png``, from the two real photos
that ship inside dependencies (scikit-image's astronaut, matplotlib's Grace Hopper), each upright
and rolled by -12 and +12 degrees; it has no real-masked row (no masked photo ships with a
dependency).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mask_types import load_faces

from mfrbench.colors import NAMED_COLORS
from mfrbench.vision.decode import decode_image
from mfrbench.vision.mask import draw_mask, mask_polygon
from mfrbench.vision.mask_styles import draw_style
from mfrbench.vision.mask_warp import render_mask
from mfrbench.vision.roi import crop_resize, fit_aspect

REPO = Path(__file__).resolve().parents[1]
TILE = 112
LABEL_W = 92
ROWS = [
    ("photo", None, None),
    ("surgical", "surgical", None),
    ("n95", "n95", None),
    ("kn95", "kn95", None),
    ("cloth solid", "cloth", "solid"),
    ("cloth stripes", "cloth", "stripes"),
    ("cloth dots", "cloth", "dots"),
    ("cloth checks", "cloth", "checks"),
    ("cloth motif", "cloth", "motif"),
    ("paper polygon", "paper", None),
]
#: Real photos, one of each kind where masked-real has it: N95, KN95, blue surgical, printed
#: cloth, black cloth, grey surgical.
REAL = ("0003_0001", "0003_0003", "0003_0005", "0003_0012", "0003_0013", "0004_0020")


def pose(canon: np.ndarray) -> tuple[float, float]:
    """(yaw share, roll degrees): the nose tip's position between the jaw ends along the eye
    line (0.5 frontal), and the eye line's angle."""
    eye_r, eye_l = canon[36:42].mean(axis=0), canon[42:48].mean(axis=0)
    ex = (eye_l - eye_r) / np.linalg.norm(eye_l - eye_r)
    nose, j0, j16 = canon[30] @ ex, canon[0] @ ex, canon[16] @ ex
    roll = float(np.degrees(np.arctan2(ex[1], ex[0])))
    return float((nose - j0) / (j16 - j0)), roll


def pick_columns(faces: list) -> list[int]:
    """Two frontal faces, the most turned each way, the most rolled each way (distinct)."""
    poses = [pose(canon) for _, _, _, canon in faces]
    share = np.array([p[0] for p in poses])
    roll = np.array([p[1] for p in poses])
    frontal = np.argsort(np.abs(share - 0.5) + np.abs(roll) / 30)
    picks: list[int] = []
    for order in (frontal, frontal, np.argsort(share), np.argsort(-share)):
        picks.append(next(int(i) for i in order if int(i) not in picks))
    for order in (np.argsort(roll), np.argsort(-roll)):
        picks.append(next(int(i) for i in order if int(i) not in picks))
    return picks


def tile(rgb: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
    """The face box grown by 30%, squared, moved inside the photo where it fits, shrunk."""
    x1, y1, x2, y2 = box
    gx, gy = 0.15 * (x2 - x1), 0.15 * (y2 - y1)
    bx1, by1, bx2, by2 = fit_aspect((x1 - gx, y1 - gy, x2 + gx, y2 + gy), 1.0)
    h, w = rgb.shape[:2]
    dx = -bx1 if bx1 < 0 else min(w - bx2, 0)
    dy = -by1 if by1 < 0 else min(h - by2, 0)
    if bx2 - bx1 > w:  # wider than the photo: centre it
        dx = (w - bx1 - bx2) // 2
    if by2 - by1 > h:
        dy = (h - by1 - by2) // 2
    return crop_resize(rgb, (bx1 + dx, by1 + dy, bx2 + dx, by2 + dy), (TILE, TILE))


def label(text: str) -> np.ndarray:
    img = np.full((TILE, LABEL_W, 3), 255, np.uint8)
    for k, word in enumerate(text.split()):
        y = TILE // 2 - 6 + 16 * k - 8 * (len(text.split()) - 1)
        cv2.putText(img, word, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def real_tiles(root: Path) -> list[np.ndarray]:
    from mfrbench.vision.detect import Cascade

    cascade = Cascade(["mtcnn", "dlib"])
    tiles = []
    for stem in REAL:
        path = root / f"{stem}.jpg"
        if not path.is_file():
            continue
        rgb = decode_image(path.read_bytes()).rgb
        found = cascade.detect(rgb)
        if found:
            tiles.append(tile(rgb, max(found, key=lambda f: f.area).box))
    return tiles


def bundled_faces() -> list:
    """(name, rgb, box, canon) for the dependency-bundled photos, upright and rolled +-12 deg."""
    import matplotlib.cbook
    from skimage import data

    from mfrbench.vision import anchors as A
    from mfrbench.vision.detect import Cascade
    from mfrbench.vision.landmarks import make_landmarker

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = decode_image(f.read()).rgb
    cascade = Cascade(["dlib", "mtcnn"], dlib={"retry": True})
    landmarker = make_landmarker("dlib")
    out = []
    for name, rgb in (("astronaut", np.ascontiguousarray(data.astronaut())), ("hopper", hopper)):
        for angle in (0, -12, 12):
            h, w = rgb.shape[:2]
            face = max(cascade.detect(rgb), key=lambda f: f.area).box
            centre = ((face[0] + face[2]) / 2, (face[1] + face[3]) / 2)
            turn = cv2.getRotationMatrix2D(centre, angle, 1.0)
            img = cv2.warpAffine(
                rgb, turn, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
            found = cascade.detect(img)
            if not found:
                continue
            box = max(found, key=lambda f: f.area).box
            canon = A.to_canonical68(landmarker(img, box), "dlib").astype(np.float64)
            out.append((f"{name} {angle:+d}", img, box, canon))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, help="default: out/mask-types.png, --bundled: docs/img/")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--bundled", action="store_true", help="dependency-bundled photos only")
    args = ap.parse_args()
    if args.out is None:
        args.out = REPO / ("docs/img" if args.bundled else "out") / "mask-types.png"
    if args.bundled:
        faces = bundled_faces()
        cols = list(range(len(faces)))
    else:
        faces = load_faces(args.data / "lfw-mini", per_identity=8)
        cols = pick_columns(faces)
    for i in cols:
        share, roll = pose(faces[i][3])
        print(f"{faces[i][0]}: yaw share {share:.2f}, roll {roll:.1f} deg")
    rows = []
    for name, kind, pattern in ROWS:
        cells = [label(name)]
        for c, i in enumerate(cols):
            _, rgb, box, canon = faces[i]
            if kind is None:
                out = rgb
            elif kind == "paper":
                out = draw_mask(rgb, mask_polygon(canon, "paper"), NAMED_COLORS["blue"])
            else:
                rng = np.random.default_rng([args.seed, c, ROWS.index((name, kind, pattern))])
                out, _ = render_mask(rgb, canon, draw_style(kind, rng, pattern=pattern))
            cells.append(tile(out, box))
        rows.append(np.hstack(cells))
    if not args.bundled:
        real = real_tiles(args.data / "masked-real")
        blank = np.full((TILE, TILE, 3), 255, np.uint8)
        real += [blank] * (len(cols) - len(real))
        rows.append(np.hstack([label("real masked"), *real[: len(cols)]]))
    sheet = np.vstack(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(
        ".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]
    )
    assert ok
    tmp = args.out.with_suffix(".tmp.png")
    tmp.write_bytes(buf.tobytes())
    tmp.replace(args.out)
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]}, {len(buf) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
