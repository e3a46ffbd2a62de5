"""The LFW masking paper's polygon read two ways, on real faces: figures and a contact sheet.

The paper: "dlib ... 68 keypoints ... 14 points (3-15, 29)". Read as 0-based indices the hull
is slanted; read on dlib's usual 1-based figure (0-based 2..14 and 28) it is symmetric. For
each lfw-mini face (MTCNN box, dlib 68 landmarks, as synth finds them) this measures

- top-edge slant: the angle between the hull's top edge ends (the two highest jaw points used)
  and the eye line, in degrees;

and writes a contact sheet (old outline red, new outline green) to docs/img/paper-polygon.png
drawn on the two real photos that ship inside dependencies (scikit-image's astronaut,
matplotlib's Grace Hopper; both public domain), so no dataset image enters the repository.

    .venv/bin/python bench/paper_polygon.py [--data ../shared/data/lfw-mini] [--out docs/img]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from mfrbench.vision import anchors as A
from mfrbench.vision.decode import decode_image
from mfrbench.vision.detect import Cascade, cascade_names, select_face
from mfrbench.vision.landmarks import Dlib68

OLD = (*range(3, 16), 29)  # the 0-based reading
NEW = (*range(2, 15), 28)  # dlib's 1-based figure: points 3..15 and 29


def slant(canon: np.ndarray, idx: tuple[int, ...]) -> float:
    eye_r, eye_l = canon[list(A.RIGHT_EYE)].mean(0), canon[list(A.LEFT_EYE)].mean(0)
    first, last = canon[idx[0]], canon[idx[12]]  # the jaw ends the top edge runs between
    edge = np.degrees(np.arctan2(last[1] - first[1], last[0] - first[0]))
    eyes = np.degrees(np.arctan2(eye_l[1] - eye_r[1], eye_l[0] - eye_r[0]))
    return abs(edge - eyes)


def package_photos() -> list[np.ndarray]:
    """The real photos inside dependencies: scikit-image's astronaut, matplotlib's Grace Hopper."""
    import matplotlib.cbook
    from skimage import data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = decode_image(f.read()).rgb
    return [np.ascontiguousarray(data.astronaut()), hopper]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("../shared/data/lfw-mini"))
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args()
    cascade, dlib68 = Cascade(cascade_names("mtcnn", True)), Dlib68()

    def anchors(rgb: np.ndarray) -> np.ndarray | None:
        face, _ = select_face(cascade.detect(rgb), "center", (rgb.shape[1], rgb.shape[0]))
        if face is None:
            return None
        return A.to_canonical68(dlib68(rgb, face.box), "dlib").astype(np.float64)

    rows = []
    for path in sorted(args.data.glob("*/*.jpg")):
        canon = anchors(decode_image(path.read_bytes()).rgb)
        if canon is not None:
            rows.append((slant(canon, OLD), slant(canon, NEW)))
    tiles = []
    for rgb in package_photos():
        canon = anchors(rgb)
        tile = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        for idx, colour in ((OLD, (0, 0, 255)), (NEW, (0, 200, 0))):
            hull = cv2.convexHull(np.rint(canon[list(idx)]).astype(np.int32))
            cv2.polylines(tile, [hull], True, colour, max(2, tile.shape[0] // 150), cv2.LINE_AA)
        x1, y1 = canon.min(0) - 0.4 * np.ptp(canon, 0)
        x2, y2 = canon.max(0) + 0.4 * np.ptp(canon, 0)
        h, w = tile.shape[:2]
        crop = tile[max(int(y1), 0) : min(int(y2), h), max(int(x1), 0) : min(int(x2), w)]
        tiles.append(cv2.resize(crop, (300, 300), interpolation=cv2.INTER_AREA))
    r = np.asarray(rows)
    print(f"{len(r)} lfw-mini faces (median, 90th percentile)")
    for name, k in (("0-based 3..15, 29", 0), ("1-based 3..15, 29", 1)):
        med, p90 = np.median(r[:, k]), np.percentile(r[:, k], 90)
        print(f"  {name}: top-edge slant against the eye line {med:.1f} / {p90:.1f} deg")
    args.out.mkdir(parents=True, exist_ok=True)
    sheet = np.hstack(tiles)
    cv2.imwrite(str(args.out / "paper-polygon.png"), sheet)
    print(f"contact sheet: {args.out / 'paper-polygon.png'} (red: 0-based, green: 1-based)")


if __name__ == "__main__":
    main()
