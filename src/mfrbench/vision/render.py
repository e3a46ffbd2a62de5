"""Render one output image from frozen geometry: mask polygon, colour, ROI box, augmentation.

This is a pure function of the source pixels and the recorded geometry, so anyone holding the
source image and a manifest row (or a protocol) renders byte-identical images, whatever detector
or landmark numerics their machine would produce.
"""

from __future__ import annotations

import cv2
import numpy as np

from mfrbench.vision import augment
from mfrbench.vision.mask import draw_mask
from mfrbench.vision.roi import crop_resize


def render(
    rgb: np.ndarray,
    roi_box: tuple[int, int, int, int],
    out_wh: tuple[int, int],
    polygon: np.ndarray | None = None,
    color: tuple[int, int, int] | None = None,
    aug: augment.AugParams | None = None,
) -> np.ndarray:
    """Mask (if ``polygon``), crop ``roi_box`` resized to ``out_wh``, then augment (if ``aug``)."""
    if polygon is not None:
        if color is None:
            raise ValueError("a mask polygon needs a colour")
        rgb = draw_mask(rgb, polygon, color)
    out = crop_resize(rgb, roi_box, out_wh)
    if aug is not None:
        out = augment.apply(out, aug)
    return out


def encode(rgb: np.ndarray, fmt: str, jpeg_quality: int = 95) -> bytes:
    """Encode an RGB image as JPEG or PNG bytes (deterministic for the same pixels)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # OpenCV boundary: RGB -> BGR
    if fmt == "jpg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {rgb.shape} image as {fmt}")
    return buf.tobytes()
