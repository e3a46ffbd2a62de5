"""Plausible frozen-face fields for hand-made ImageRefs (tests that build protocols by hand).

The 68 anchors are one real dlib fit (an lfw-mini face) relative to its MTCNN box, scaled into
the box a test gives; the five points are derived from them as the protocol does for a
detector without points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mfrbench.faces import face_fields

TEMPLATE = (
    (-0.066, 0.320), (-0.055, 0.469), (-0.033, 0.611), (-0.010, 0.744),
    (0.058, 0.860), (0.159, 0.952), (0.294, 1.010), (0.441, 1.043),
    (0.576, 1.043), (0.700, 1.026), (0.790, 0.960), (0.858, 0.885),
    (0.914, 0.794), (0.936, 0.694), (0.948, 0.586), (0.959, 0.486),
    (0.959, 0.378), (0.159, 0.270), (0.238, 0.212), (0.328, 0.178),
    (0.429, 0.170), (0.520, 0.187), (0.734, 0.203), (0.801, 0.178),
    (0.869, 0.170), (0.925, 0.195), (0.959, 0.245), (0.621, 0.320),
    (0.632, 0.395), (0.644, 0.461), (0.666, 0.536), (0.520, 0.611),
    (0.576, 0.619), (0.632, 0.627), (0.677, 0.611), (0.711, 0.602),
    (0.272, 0.353), (0.339, 0.336), (0.396, 0.336), (0.441, 0.361),
    (0.396, 0.370), (0.339, 0.370), (0.722, 0.361), (0.779, 0.336),
    (0.835, 0.336), (0.869, 0.353), (0.835, 0.370), (0.779, 0.370),
    (0.351, 0.752), (0.463, 0.727), (0.553, 0.719), (0.610, 0.727),
    (0.666, 0.710), (0.722, 0.719), (0.767, 0.744), (0.722, 0.810),
    (0.666, 0.835), (0.610, 0.843), (0.542, 0.843), (0.452, 0.827),
    (0.396, 0.752), (0.542, 0.760), (0.610, 0.760), (0.666, 0.752),
    (0.734, 0.752), (0.666, 0.769), (0.610, 0.785), (0.553, 0.785),
)  # fmt: skip


def face(
    face_box: Sequence[int], *, detector: str = "mtcnn", landmarks: str = "dlib"
) -> dict[str, Any]:
    """The ImageRef face fields of a face filling ``face_box`` (det box = face box)."""
    x1, y1, x2, y2 = (float(v) for v in face_box)
    pts = np.asarray(TEMPLATE) * [x2 - x1, y2 - y1] + [x1, y1]
    return face_fields(
        face_box=[int(v) for v in face_box],
        det_box=[x1, y1, x2, y2],
        det_score=0.99,
        detector=detector,
        landmarks_backend=landmarks,
        landmarks68=pts.ravel().tolist(),
        det_points5=None,
    )
