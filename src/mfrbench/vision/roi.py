"""Region-of-interest crops of a face (whole, upper half, eye band), resized without distortion.

A ROI box is first grown around its centre to the output's aspect ratio, then cropped with
zero padding wherever it leaves the image, then resized with ``cv2.INTER_AREA``. Boxes are
integer pixels ``(x1, y1, x2, y2)``, exclusive of x2/y2 (numpy slice convention).
"""

from __future__ import annotations

import cv2
import numpy as np

from mfrbench.errors import ImageError, UserError
from mfrbench.vision import anchors as A

ROI_KINDS = ("none", "upper-half", "eye-band")
IntBox = tuple[int, int, int, int]

# Output height as a fraction of the width, per kind: (size, size // divisor).
_HEIGHT_DIVISOR = {"none": 1, "upper-half": 2, "eye-band": 3}
# Eye band top: brow top raised by this share of the brow-top-to-nose-bridge distance.
EYE_BAND_ABOVE_BROWS = 0.25


def _check_kind(kind: str) -> str:
    if kind not in ROI_KINDS:
        raise UserError(f"unknown ROI {kind!r}; choose one of: {', '.join(ROI_KINDS)}")
    return kind


def _rint(value: float) -> int:
    return int(np.rint(value))


def expand_box(
    box: tuple[float, float, float, float], margin: int, image_wh: tuple[int, int]
) -> IntBox:
    """Grow a box by ``margin`` pixels on every side, round to integers, clip to the image."""
    w, h = image_wh
    x1, y1, x2, y2 = (float(v) for v in box)
    return (
        min(max(_rint(x1 - margin), 0), w),
        min(max(_rint(y1 - margin), 0), h),
        min(max(_rint(x2 + margin), 0), w),
        min(max(_rint(y2 + margin), 0), h),
    )


def output_size(kind: str, size: int) -> tuple[int, int]:
    """Output image size ``(w, h)`` for a ROI kind: square, 2:1 (upper half) or 3:1 (eye band)."""
    _check_kind(kind)
    size = int(size)
    height = size // _HEIGHT_DIVISOR[kind]
    if height < 1:
        raise UserError(f"output size {size} is too small for ROI {kind!r}")
    return size, height


def fit_aspect(box: tuple[float, float, float, float], aspect: float) -> IntBox:
    """Grow a box around its centre until width / height == aspect, never shrinking it.

    The result is rounded to integers and may extend beyond the image (crops pad with zeros).
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = x2 - x1, y2 - y1
    if bw <= 0 or bh <= 0:
        raise ImageError("bad_roi", f"empty ROI box {box}")
    if bw / bh < aspect:
        bw = bh * aspect
    else:
        bh = bw / aspect
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    nx1, ny1 = _rint(cx - bw / 2.0), _rint(cy - bh / 2.0)
    return nx1, ny1, nx1 + max(_rint(bw), 1), ny1 + max(_rint(bh), 1)


def roi_box(
    kind: str,
    face_box: tuple[float, float, float, float],
    canon68: np.ndarray | None,
    image_wh: tuple[int, int],
) -> IntBox:
    """The crop box of one ROI kind, already at the output aspect ratio.

    - ``none``: the face box (margin-expanded by the caller), made square around its centre.
    - ``upper-half``: the top half of the ``none`` box (the LFW masking paper's upper-face
      crop), so it is exactly the upper half of the ``none`` crop.
    - ``eye-band``: the face box's full width, from above the brows (brow top minus 25% of
      the brow-top-to-nose-bridge distance) down to the nose-bridge point 29, as the MediaPipe
      masked-face paper crops the eye region; grown to 3:1 around its centre.
      Needs ``canon68``.

    A box that does not overlap the image raises ImageError("bad_roi").
    """
    _check_kind(kind)
    aspect = float(_HEIGHT_DIVISOR[kind])  # width / height of the output
    x1, y1, x2, y2 = (float(v) for v in face_box)
    if kind == "none":
        box = fit_aspect((x1, y1, x2, y2), aspect)
    elif kind == "upper-half":
        sx1, sy1, sx2, sy2 = fit_aspect((x1, y1, x2, y2), 1.0)
        box = (sx1, sy1, sx2, sy1 + (sy2 - sy1) // 2)
    else:
        if canon68 is None:
            raise ValueError("the eye-band ROI needs canonical landmarks")
        canon = np.asarray(canon68, dtype=np.float64)
        brow_top = float(canon[list(A.BROWS), 1].min())
        bridge = float(canon[A.NOSE_MID, 1])
        if bridge <= brow_top:
            raise ImageError("bad_roi", "nose bridge is not below the eyebrows")
        top = brow_top - EYE_BAND_ABOVE_BROWS * (bridge - brow_top)
        box = fit_aspect((x1, top, x2, bridge), aspect)
    w, h = image_wh
    if box[2] <= 0 or box[3] <= 0 or box[0] >= w or box[1] >= h:
        raise ImageError("bad_roi", f"{kind} ROI {box} lies outside the {w}x{h} image")
    return box


def crop_resize(rgb: np.ndarray, box: IntBox, out_wh: tuple[int, int]) -> np.ndarray:
    """Crop ``box`` from ``rgb`` (zeros where it leaves the image) and resize to ``out_wh``.

    Uses ``cv2.INTER_AREA`` (area averaging: no aliasing when shrinking). Returns a new
    contiguous uint8 array of shape (out_h, out_w, channels).
    """
    x1, y1, x2, y2 = (int(v) for v in box)
    if x2 <= x1 or y2 <= y1:
        raise ImageError("bad_roi", f"empty crop box {box}")
    h, w = rgb.shape[:2]
    if x1 >= 0 and y1 >= 0 and x2 <= w and y2 <= h:
        crop = rgb[y1:y2, x1:x2]
    else:
        crop = np.zeros((y2 - y1, x2 - x1, *rgb.shape[2:]), dtype=rgb.dtype)
        ix1, iy1, ix2, iy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if ix2 > ix1 and iy2 > iy1:
            crop[iy1 - y1 : iy2 - y1, ix1 - x1 : ix2 - x1] = rgb[iy1:iy2, ix1:ix2]
    out_w, out_h = (int(v) for v in out_wh)
    if (crop.shape[1], crop.shape[0]) == (out_w, out_h):
        return np.ascontiguousarray(crop).copy()
    return cv2.resize(np.ascontiguousarray(crop), (out_w, out_h), interpolation=cv2.INTER_AREA)
