"""Synthetic face masks: named polygon shapes over canonical-68 landmarks, and their filling.

Every shape is computed from the canonical 68-point layout (`mfrbench.vision.anchors`), so it
works with any landmark backend. Polygons are convex hulls in integer pixels (``np.rint`` then
int32, so the same landmarks always give the same polygon), filled without anti-aliasing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from mfrbench.errors import UserError
from mfrbench.vision import anchors as A


@dataclass(frozen=True)
class MaskShape:
    """A named mask outline: ``points(canon68) -> (K, 2) float`` whose convex hull is filled."""

    name: str
    description: str
    points: Callable[[np.ndarray], np.ndarray]


#: The LFW masking paper's "14 points (3-15, 29)" on dlib's 68-point figure, which numbers the
#: points 1..68: 0-based jaw 2..14 (mirror pairs 2/14, 3/13, ... around the chin, 8) and 28, the
#: second nose-bridge point. Read as 0-based indices (3..15, 29) the hull is visibly slanted:
#: its top edge runs from jaw point 3 on one side to 15, near the ear, on the other
#: (docs/masks.md shows both).
PAPER_POINTS: tuple[int, ...] = (*range(2, 15), 28)


def _paper_points(canon: np.ndarray) -> np.ndarray:
    return canon[list(PAPER_POINTS)]


def _face_up(canon: np.ndarray) -> np.ndarray:
    """Unit vector pointing from the chin towards the eyes, perpendicular to the eye line.

    Using the eye line (not the image's y axis) keeps the mask's top edge level with the face
    when the head is rolled.
    """
    right_eye = canon[list(A.RIGHT_EYE)].mean(axis=0)
    left_eye = canon[list(A.LEFT_EYE)].mean(axis=0)
    eye_dir = left_eye - right_eye
    up = np.array([eye_dir[1], -eye_dir[0]], dtype=np.float64)
    norm = float(np.hypot(*up))
    if norm == 0.0:
        return np.array([0.0, -1.0])
    up /= norm
    if np.dot((right_eye + left_eye) / 2.0 - canon[A.CHIN], up) < 0:
        up = -up
    return up


def _clip_below(poly: np.ndarray, anchor: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Clip a closed polygon to the half-plane at or below the line through anchor ⟂ up."""
    side = (poly - anchor) @ up  # > 0 means above the line
    out: list[np.ndarray] = []
    n = len(poly)
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        sp, sq = side[i], side[(i + 1) % n]
        if sp <= 0:
            out.append(p)
        if (sp < 0 < sq) or (sq < 0 < sp):
            out.append(p + (q - p) * (sp / (sp - sq)))
    return np.array(out, dtype=np.float64).reshape(-1, 2)


def _nist_points(top: int) -> Callable[[np.ndarray], np.ndarray]:
    """Jaw 1..15 closed by a straight top edge at the height of canonical point ``top``.

    The jaw's two ends are raised along the face's vertical axis up to that height (when they
    lie below it) and everything above it is cut off, so the top edge is one straight line
    spanning the jaw's width, level with the face.
    """

    def points(canon: np.ndarray) -> np.ndarray:
        jaw = canon[list(range(1, 16))].astype(np.float64)
        anchor = canon[top].astype(np.float64)
        up = _face_up(canon)
        raised = [end + max(float((anchor - end) @ up), 0.0) * up for end in (jaw[0], jaw[-1])]
        poly = np.vstack([jaw, raised, anchor[None]])
        hull = cv2.convexHull(poly.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        return _clip_below(hull, anchor, up)

    return points


MASK_SHAPES: dict[str, MaskShape] = {
    shape.name: shape
    for shape in (
        MaskShape(
            "paper",
            "LFW masking paper: hull of dlib points 3..15 and 29 (1-based; 0-based 2..14, 28)",
            _paper_points,
        ),
        MaskShape(
            "nist-nose-tip",
            "NIST-style low coverage: jaw 1..15, top edge level with the nose tip (30)",
            _nist_points(A.NOSE_TIP),
        ),
        MaskShape(
            "nist-mid-nose",
            "NIST-style medium coverage: jaw 1..15, top edge level with mid-nose (29)",
            _nist_points(A.NOSE_MID),
        ),
        MaskShape(
            "nist-nose-bridge",
            "NIST-style high coverage: jaw 1..15, top edge level with the upper nose bridge (28)",
            _nist_points(28),
        ),
    )
}


def get_mask_shape(shape: str) -> MaskShape:
    """Look a shape up by name; an unknown name raises UserError listing the known ones."""
    try:
        return MASK_SHAPES[shape]
    except KeyError:
        raise UserError(
            f"unknown mask shape {shape!r}; choose one of: {', '.join(MASK_SHAPES)}"
        ) from None


def mask_polygon(canon68: np.ndarray, shape: str = "paper") -> np.ndarray:
    """Mask outline for one face: (K, 2) int32 convex-hull vertices in image pixels.

    ``canon68`` is the (68, 2) canonical landmark array. The default ``"paper"`` shape is the
    LFW masking paper's: the filled convex hull of its "14 points (3-15, 29)" on dlib's 1-based
    68-point figure, i.e. 0-based jaw points 2..14 and nose-bridge point 28
    (:data:`PAPER_POINTS`); mirror-symmetric on a frontal face. The ``nist-*`` shapes take jaw
    points 1..15 and cut them with a straight top edge, perpendicular to the face's vertical
    axis, at the nose tip, mid-nose or upper nose bridge (NIST IR 8311-style coverage levels).
    """
    spec = get_mask_shape(shape)
    canon = np.asarray(canon68, dtype=np.float64)
    if canon.shape != (68, 2):
        raise ValueError(f"canonical landmarks must be (68, 2), got {canon.shape}")
    points = np.rint(spec.points(canon)).astype(np.int32)
    return cv2.convexHull(points).reshape(-1, 2).astype(np.int32)


def draw_mask(rgb: np.ndarray, polygon: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """Return a copy of ``rgb`` with ``polygon`` filled in ``color`` (RGB), no anti-aliasing.

    The image is RGB and the colour is RGB, so the tuple is passed to OpenCV unchanged. The trap
    to avoid: OpenCV treats a colour tuple as channel values in the array's own order, so an RGB
    colour filled into a BGR image (or a BGR tuple into this RGB image) swaps red and blue —
    sky blue (135, 206, 250) would come out orange-ish (250, 206, 135).
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("expected an RGB uint8 image of shape (H, W, 3)")
    pts = np.asarray(polygon, dtype=np.int32).reshape(-1, 1, 2)
    if len(pts) < 3:
        raise ValueError("a mask polygon needs at least 3 vertices")
    fill = tuple(int(c) for c in color)
    if len(fill) != 3 or not all(0 <= c <= 255 for c in fill):
        raise ValueError(f"colour must be three 0..255 values, got {color}")
    out = np.ascontiguousarray(rgb).copy()
    cv2.fillPoly(out, [pts], color=fill, lineType=cv2.LINE_8)
    return out
