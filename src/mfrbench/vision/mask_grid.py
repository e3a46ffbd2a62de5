"""Where a mask sits on a face: the anchor grid a mask template is warped onto, and its loops.

From the canonical 68 landmarks (`mfrbench.vision.anchors`) `anchor_grid` builds a GRID_ROWS x
GRID_COLS grid of image points in the face's own frame (x along the eye line, y down the face,
so a rolled head keeps the mask level). Node (r, c) receives template point (u, v) =
(c / (GRID_COLS - 1), r / (GRID_ROWS - 1)) of `mfrbench.vision.mask_textures`. The top row
runs over the nose bridge (between points 28 and 29), below the eyes and down to the cheeks at
the jaw; the bottom row follows the jaw (4 -> 8 -> 12) and passes under the chin; the side
columns follow the jaw between them. The centre column passes through the nose tip and each
half of a row is remapped between its side and the centre, so a yawed face's far side is
compressed as its landmarks are and a nose turned past the cheek line stays covered. Lengths
are in inter-ocular distances. `loop_lines` gives the ear loops, on the visible sides only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfrbench.vision import anchors as A

GRID_COLS = 13  # odd: the centre column runs down the nose
GRID_ROWS = 5
TOP_SIDE = 1.5  # jaw position (0..16, fractional) of the top corners
BOTTOM_SIDE = 4.0  # jaw position of the bottom corners; the bottom row runs 4 -> 8 -> 12
NOSE_TOP = 0.5  # top edge at 28 + NOSE_TOP * (29 - 28)
EYE_GAP = 0.2  # top edge below the lower eyelids, in inter-ocular distances
EYE_CLEAR = 0.1  # never closer to any eye landmark than this (inter-ocular distances)
EYE_NEAR = 0.2  # ... that is within this distance across the face from a top-edge node
TIP_MARGIN = 0.12  # top edge at least this far above the nose tip (unless an eye is closer)
COVER_MARGIN = 0.1  # sides at least this far out from the nose and mouth landmarks
SIDE_MIN = 0.25  # each half at least this wide beyond the (turned) nose tip
CHIN_DROP = 0.1  # bottom row below the chin, inter-ocular distances (less towards the sides)
SIDE_DROP = 0.03  # sides outside the jaw line, inter-ocular distances
LOOP_MIN_SHARE = 0.3  # no ear loop on a side whose nose-to-jaw share of the width is below this


@dataclass(frozen=True)
class FaceFrame:
    """The face's own frame: x along the eye line, y towards the chin, inter-ocular units.

    origin: mid-eyes in pixels; rot: rows are the x and y axes in pixels; iod: inter-ocular
    distance in pixels; f: the 68 landmarks in this frame.
    """

    origin: np.ndarray
    rot: np.ndarray
    iod: float
    f: np.ndarray

    def to_image(self, pts: np.ndarray) -> np.ndarray:
        return self.origin + (pts * self.iod) @ self.rot


def face_frame(canon: np.ndarray) -> FaceFrame:
    """The frame of a (68, 2) float64 canonical landmark array."""
    right_eye = canon[36:42].mean(axis=0)
    left_eye = canon[42:48].mean(axis=0)
    origin = (right_eye + left_eye) / 2
    ex = left_eye - right_eye
    iod = float(np.hypot(ex[0], ex[1]))
    ex = ex / iod if iod > 0 else np.array([1.0, 0.0])
    ey = np.array([-ex[1], ex[0]])
    if (canon[A.CHIN] - origin) @ ey < 0:
        ey = -ey
    rot = np.stack([ex, ey])
    iod = max(iod, 1.0)
    return FaceFrame(origin, rot, iod, (canon - origin) @ rot.T / iod)


def _jaw_weights(s: np.ndarray) -> np.ndarray:
    """(len(s), 17) weights giving the points at fractional positions s along the jaw."""
    s = np.clip(np.asarray(s, np.float64), 0.0, 16.0)
    i = np.minimum(np.floor(s).astype(int), 15)
    w = np.zeros((len(s), 17))
    w[np.arange(len(s)), i] = 1 - (s - i)
    w[np.arange(len(s)), i + 1] += s - i
    return w


def _catmull_rom(points: np.ndarray, per_segment: int) -> np.ndarray:
    """Uniform Catmull-Rom through `points` (ends repeated), `per_segment` steps per segment."""
    p = np.vstack([points[:1], points, points[-1:]])
    t = (np.arange(per_segment) / per_segment)[:, None]
    out = []
    for k in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[k - 1], p[k], p[k + 1], p[k + 2]
        out.append(
            0.5
            * (
                2 * p1
                + (p2 - p0) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (3 * p1 - p0 - 3 * p2 + p3) * t**3
            )
        )
    out.append(p[-2][None])
    return np.vstack(out)


# Everything below that depends only on the grid's layout is a constant matrix.
_U = np.linspace(0.0, 1.0, GRID_COLS)
_V = np.linspace(0.0, 1.0, GRID_ROWS)
_TOP = _catmull_rom(np.eye(5), (GRID_COLS - 1) // 4)  # (GRID_COLS, 5 control points)
_TOP_SIDES = _jaw_weights(np.array([TOP_SIDE, 16.0 - TOP_SIDE]))
_BOTTOM = _jaw_weights(BOTTOM_SIDE + (16.0 - 2 * BOTTOM_SIDE) * _U)
_BOTTOM_DROP = SIDE_DROP + (CHIN_DROP - SIDE_DROP) * (1.0 - np.abs(2 * _U - 1)) ** 2
_SIDES = (
    _jaw_weights(TOP_SIDE + (BOTTOM_SIDE - TOP_SIDE) * _V),
    _jaw_weights(16.0 - TOP_SIDE - (BOTTOM_SIDE - TOP_SIDE) * _V),
)
_NOSE_WU = np.clip(1 - np.abs(2 * _U - 1) / 0.35, 0, 1) ** 2
_EYES = list(A.EYES)
_COVER = [A.NOSE_TIP, *A.NOSE_BOTTOM, *A.MOUTH]


def _top_row(f: np.ndarray, jaw: np.ndarray) -> np.ndarray:
    """Top edge in face coordinates, GRID_COLS points: cheek, under the eye, nose, mirrored."""
    eyes = [
        (f[group, 0].mean(), max(f[group[4], 1], f[group[5], 1]) + EYE_GAP)  # lower eyelid
        for group in (list(A.RIGHT_EYE), list(A.LEFT_EYE))
    ]
    nose = f[28] + NOSE_TOP * (f[29] - f[28])
    nose[1] = min(nose[1], f[A.NOSE_TIP, 1] - TIP_MARGIN)
    sides = _TOP_SIDES @ jaw
    return _TOP @ np.stack([sides[0], eyes[0], nose, eyes[1], sides[1]])


def _clear_eyes(f: np.ndarray, top: np.ndarray) -> np.ndarray:
    """How far each top node must move down to stay EYE_CLEAR below the eye points near it."""
    eye = f[_EYES]
    near = np.abs(eye[None, :, 0] - top[:, None, 0]) < EYE_NEAR
    floor = np.where(near, eye[None, :, 1] + EYE_CLEAR, -np.inf).max(axis=1)
    return np.maximum(floor - top[:, 1], 0.0)


def _outward(points: np.ndarray, centre: np.ndarray, amount: np.ndarray | float) -> np.ndarray:
    d = points - centre
    n = np.hypot(d[:, 0], d[:, 1])[:, None]
    return points + d / np.maximum(n, 1e-6) * np.asarray(amount)[..., None]


def _reshape_halves(grid: np.ndarray, centre_x: np.ndarray, need: tuple[float, float]) -> None:
    """Move each row's centre node to `centre_x` and its sides out to at least `need`, in place.

    Each half of a row is remapped affinely between its (possibly moved) side and the moved
    centre, so its columns keep their order: no fold-over, however far the nose has turned.
    """
    mid = GRID_COLS // 2
    x = grid[..., 0]
    left, right, centre = x[:, 0].copy(), x[:, -1].copy(), x[:, mid].copy()
    new_left = np.minimum(left, np.minimum(need[0], centre_x - SIDE_MIN))
    new_right = np.maximum(right, np.maximum(need[1], centre_x + SIDE_MIN))
    for lo, hi, new_lo, new_hi, cols in (
        (left, centre, new_left, centre_x, slice(0, mid + 1)),
        (centre, right, centre_x, new_right, slice(mid, GRID_COLS)),
    ):
        span = np.maximum(hi - lo, 1e-6)[:, None]
        t = (x[:, cols] - lo[:, None]) / span
        x[:, cols] = new_lo[:, None] + t * (new_hi - new_lo)[:, None]


def face_grid(fr: FaceFrame) -> np.ndarray:
    """The anchor grid in face coordinates, (GRID_ROWS, GRID_COLS, 2) (see `anchor_grid`)."""
    f = fr.f
    jaw = f[:17]
    mouth = f[48:60].mean(axis=0)
    top = _top_row(f, jaw)
    bottom = _outward(_BOTTOM @ jaw, mouth, _BOTTOM_DROP)
    grid = top[None] * (1 - _V[:, None, None]) + bottom[None] * _V[:, None, None]
    # The side columns follow the jaw line from the top corners down to the bottom corners.
    grid[:, 0] = _outward(_SIDES[0] @ jaw, mouth, SIDE_DROP)
    grid[:, -1] = _outward(_SIDES[1] @ jaw, mouth, SIDE_DROP)
    # Over the nose: the centre column passes through the nose tip, fading towards the top
    # and bottom; horizontally each half is remapped so a turned nose stays inside the mask.
    mid = GRID_COLS // 2
    line_top = grid[0, mid]
    axis = grid[-1, mid] - line_top
    tip = f[A.NOSE_TIP]
    v_tip = float(np.clip((tip - line_top) @ axis / max(axis @ axis, 1e-9), 0.05, 0.95))
    shift = tip - (line_top + v_tip * axis)
    wv = np.where(v_tip > _V, _V / v_tip, (1 - _V) / (1 - v_tip))
    covered = f[_COVER, 0]
    need = (float(covered.min()) - COVER_MARGIN, float(covered.max()) + COVER_MARGIN)
    _reshape_halves(grid, grid[:, mid, 0] + shift[0] * wv, need)
    grid[..., 1] += shift[1] * (wv[:, None] * _NOSE_WU[None, :])
    # Finally the top edge drops where an eye is close, dragging the rows below it along.
    drop = _clear_eyes(f, grid[0])
    grid[..., 1] += drop[None, :] * (1 - _V[:, None])
    return grid


def anchor_grid(canon68: np.ndarray) -> np.ndarray:
    """(GRID_ROWS, GRID_COLS, 2) float64 image points the template's grid nodes land on.

    Node (r, c) receives template point (u, v) = (c / (GRID_COLS - 1), r / (GRID_ROWS - 1)).
    """
    fr = face_frame(np.asarray(canon68, np.float64))
    return fr.to_image(face_grid(fr))


def _triangles() -> np.ndarray:
    """(T, 3) node indices; diagonals mirror about the centre column for symmetric faces."""
    tris = []
    for r in range(GRID_ROWS - 1):
        for c in range(GRID_COLS - 1):
            a, b = r * GRID_COLS + c, r * GRID_COLS + c + 1
            d, e = a + GRID_COLS, b + GRID_COLS
            if c < GRID_COLS // 2:
                tris += [(a, b, e), (a, e, d)]
            else:
                tris += [(a, b, d), (b, e, d)]
    return np.array(tris, np.int64)


#: (T, 3) node indices (row-major node numbers) of the grid's triangles.
TRIANGLES = _triangles()


def grid_point(grid: np.ndarray, u: float, v: float) -> np.ndarray:
    """Bilinear position of template point (u, v) on a grid of nodes."""
    x, y = u * (GRID_COLS - 1), v * (GRID_ROWS - 1)
    c, r = min(int(x), GRID_COLS - 2), min(int(y), GRID_ROWS - 2)
    tx, ty = x - c, y - r
    top = grid[r, c] * (1 - tx) + grid[r, c + 1] * tx
    bot = grid[r + 1, c] * (1 - tx) + grid[r + 1, c + 1] * tx
    return top * (1 - ty) + bot * ty


_BEZIER_T = np.linspace(0.0, 1.0, 9)[:, None]


def loop_lines(
    grid: np.ndarray,
    fr: FaceFrame,
    anchors: tuple[tuple[float, float], tuple[float, float]],
    reach: float,
    rise: float,
) -> list[np.ndarray]:
    """Ear loops (or straps) as face-coordinate polylines, on the visible sides only.

    grid: `face_grid`'s nodes; anchors: (top, bottom) template (u, v) where the loops leave the
    image-left side (mirrored on the right); reach: how far beyond the jaw's end points (0, 16)
    they go; rise: how much the two strands spread apart there. A side is hidden when the head
    is turned so far that its nose-to-jaw width is under LOOP_MIN_SHARE of the face's width.
    """
    f = fr.f
    nose = f[A.NOSE_TIP, 0]
    widths = (nose - f[0, 0], f[16, 0] - nose)
    total = max(widths[0] + widths[1], 1e-6)
    (ut, vt), (ub, vb) = anchors
    t = _BEZIER_T
    out = []
    for side, (jaw_i, sign) in enumerate(((0, -1.0), (16, 1.0))):
        if widths[side] / total < LOOP_MIN_SHARE:
            continue
        ear = f[jaw_i] + np.array([sign * reach, 0.05])
        for u, v, lift in ((ut, vt, -0.12), (ub, vb, 0.1)):
            start = grid_point(grid, u if side == 0 else 1.0 - u, v)
            end = ear + np.array([0.0, lift * rise])
            ctrl = (start + end) / 2 + np.array([0.0, lift])
            out.append((1 - t) ** 2 * start + 2 * (1 - t) * t * ctrl + t**2 * end)
    return out
