"""Occlusion masks in an output crop's coordinates: which output pixels a mask covers.

The source-image occlusion (from :func:`~mfrbench.vision.mask_mix.redraw_mask` or a filled
polygon) goes through the same crop as the image (``roi_box`` resized to the output size with
area averaging; a pixel is covered when at least half of its area is) and, for a rotation
augmentation, the same rotation; photometric augmentations leave it as it is. Written as a
0/255 single-channel PNG.
"""

from __future__ import annotations

import cv2
import numpy as np

from mfrbench.vision import augment
from mfrbench.vision.roi import crop_resize


def polygon_occlusion(shape: tuple[int, ...], polygon: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels a filled polygon mask covers (the fill ``draw_mask`` uses)."""
    occ = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(occ, [np.asarray(polygon, np.int32).reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8)
    return occ.astype(bool)


def crop_occlusion(
    occ: np.ndarray,
    roi_box: tuple[int, int, int, int],
    out_wh: tuple[int, int],
    aug: augment.AugParams | None = None,
) -> np.ndarray:
    """The source occlusion ``occ`` (H, W bool) in the output crop: (out_h, out_w) bool."""
    crop = crop_resize(occ.astype(np.uint8) * 255, roi_box, out_wh)
    if aug is not None and aug.kind == "rotate":
        crop = augment.rotate(np.repeat(crop[:, :, None], 3, axis=2), float(aug.params["angle"]))
        crop = crop[:, :, 0]
    return crop >= 128


def encode_occlusion(mask: np.ndarray) -> bytes:
    """A (H, W) bool mask as a 0/255 grayscale PNG (deterministic bytes)."""
    ok, buf = cv2.imencode(".png", mask.astype(np.uint8) * 255, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {mask.shape} occlusion mask")
    return buf.tobytes()
