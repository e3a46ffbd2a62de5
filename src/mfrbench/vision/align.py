"""Face alignment as each model family was trained: ArcFace 112, FaceNet 160, dlib's chip.

Pure geometry over an RGB uint8 image and frozen face points (``points5``: image-left eye
centre, image-right eye centre, nose tip, image-left and image-right mouth corner, MTCNN's and
insightface's order; ``landmarks68``: the canonical 68 anchors of ``vision.anchors``):

- :func:`arcface_crop`: the least-squares similarity transform (rotation, uniform scale,
  translation; Umeyama 1991, no reflection) of the five points onto insightface's 112x112
  template :data:`ARCFACE_112`, then ``cv2.warpAffine`` (bilinear, zero border): the crop every
  ArcFace-family model is trained on.
- :func:`facenet_crop`: facenet-pytorch's ``extract_face``: the MTCNN box grown by ``margin``
  pixels *of the output* (``margin * box_size / (size - margin)`` in the source), cut to integer
  pixels inside the image, then resized to size x size with area interpolation (not aspect
  preserving, exactly as facenet-pytorch does).
- :func:`dlib_chip`: dlib's ``get_face_chip`` (150 px, padding 0.25) from a
  ``full_object_detection`` of 68 or 5 points, as ``compute_face_descriptor`` aligns.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mfrbench.vision import anchors as A

#: insightface's ``arcface_dst`` for a 112x112 crop (x, y), in :data:`POINTS5_ORDER`.
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
POINTS5_ORDER = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # image left/right
DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25


def points5_from_landmarks68(canon: np.ndarray) -> np.ndarray:
    """The five alignment points from canonical 68 anchors: eye centres (mean of each eye's six
    points), nose tip (30), mouth corners (48, 54); (5, 2) float64 in :data:`POINTS5_ORDER`."""
    c = np.asarray(canon, dtype=np.float64).reshape(68, 2)
    return np.stack(
        [
            c[list(A.RIGHT_EYE)].mean(axis=0),  # the subject's right eye is on the image's left
            c[list(A.LEFT_EYE)].mean(axis=0),
            c[A.NOSE_TIP],
            c[48],
            c[54],
        ]
    )


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity mapping ``src`` points onto ``dst`` (Umeyama, det > 0).

    Minimises sum ||s R src_i + t - dst_i||^2 over rotation R, scale s > 0 and translation t.
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need matching point sets of >= 2 points, got {src.shape}, {dst.shape}")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = float((xs**2).sum()) / len(src)
    if var_s == 0.0:
        raise ValueError("source points coincide")
    cov = xd.T @ xs / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.array([1.0, 1.0])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum()) / var_s
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def arcface_crop(
    rgb: np.ndarray, points5: np.ndarray, size: tuple[int, int] = (112, 112)
) -> np.ndarray:
    """The ArcFace-aligned crop: ``points5`` mapped onto :data:`ARCFACE_112` (scaled to ``size``).

    Other sizes scale the template (insightface's 128 variant shifts x by 8; here the template
    is scaled by ``size / 112`` on both axes, which is the same for square 112 and the usual
    choice for other inputs).
    """
    w, h = int(size[0]), int(size[1])
    template = ARCFACE_112 * np.array([w / 112.0, h / 112.0])
    matrix = similarity_transform(points5, template)
    return cv2.warpAffine(
        np.ascontiguousarray(rgb), matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0
    )


def facenet_box(
    det_box: Sequence[float], image_wh: tuple[int, int], size: int = 160, margin: float = 0.0
) -> tuple[int, int, int, int]:
    """facenet-pytorch's crop box: ``det_box`` grown by ``margin`` output pixels, clipped."""
    x1, y1, x2, y2 = (float(v) for v in det_box)
    mx = margin * (x2 - x1) / (size - margin)
    my = margin * (y2 - y1) / (size - margin)
    w, h = image_wh
    return (
        int(max(x1 - mx / 2, 0)),
        int(max(y1 - my / 2, 0)),
        int(min(x2 + mx / 2, w)),
        int(min(y2 + my / 2, h)),
    )


def facenet_crop(
    rgb: np.ndarray, det_box: Sequence[float], size: int = 160, margin: float = 0.0
) -> np.ndarray:
    """The size x size face facenet-pytorch's MTCNN hands to InceptionResnetV1 (module doc)."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = facenet_box(det_box, (w, h), size, margin)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"empty face box {tuple(det_box)}")
    crop = np.ascontiguousarray(rgb[y1:y2, x1:x2])
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def dlib_shape(points: np.ndarray, box: Sequence[float]):  # -> dlib.full_object_detection
    """A dlib ``full_object_detection`` of 68 or 5 points (rounded to integers) in ``box``."""
    import dlib

    pts = np.rint(np.asarray(points, dtype=np.float64).reshape(-1, 2)).astype(int)
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    rect = dlib.rectangle(x1, y1, x2 - 1, y2 - 1)
    return dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in pts])


def dlib_chip(rgb: np.ndarray, shape) -> np.ndarray:  # shape: dlib.full_object_detection
    """dlib's aligned 150x150 chip (``get_face_chip``, padding 0.25) for a 68- or 5-point shape."""
    import dlib

    return dlib.get_face_chip(
        np.ascontiguousarray(rgb), shape, size=DLIB_CHIP_SIZE, padding=DLIB_CHIP_PADDING
    )


def inset_box(image_wh: tuple[int, int], inset: float = 0.1) -> tuple[int, int, int, int]:
    """The image frame shrunk by ``inset`` of its size on every side (the no-face fallback)."""
    w, h = image_wh
    dx, dy = round(w * inset), round(h * inset)
    return dx, dy, max(w - dx, dx + 1), max(h - dy, dy + 1)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes (0 when either is empty)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def pick_detection(hint: Sequence[float], boxes: Sequence[Sequence[float]]) -> int | None:
    """Index of the box whose centre lies inside ``hint`` and overlaps it most (None if none).

    Ties go to the smaller box tuple, so the choice never depends on detector output order.
    """
    x1, y1, x2, y2 = hint
    inside = [
        i
        for i, b in enumerate(boxes)
        if x1 <= (b[0] + b[2]) / 2 <= x2 and y1 <= (b[1] + b[3]) / 2 <= y2
    ]
    if not inside:
        return None
    return min(inside, key=lambda i: (-iou(hint, boxes[i]), tuple(boxes[i])))
