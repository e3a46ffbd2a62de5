"""Faces of real images, found once when a protocol is made and frozen with it.

Synthetic images carry the face synth found on the photo before masking. Real images (``pairs
mfr2|rmfrd|folder``) get the same treatment here: the synth detector cascade (MTCNN, falling
back to dlib HOG and Haar) and landmark model run once per distinct source file, and each
ImageRef records box, detector box and score, five alignment points and the 68 anchors
(:func:`face_fields`), or ``face_status = "no_face"`` when no detector of the cascade found
one. The evaluator then prepares every model's input from these frozen points; what it does
with a ``no_face`` image is stated in ``evaluate.prepare`` and counted in the report.

Deterministic: models run single-threaded in every worker, sources are processed in path
order, and the frozen fields do not depend on ``workers``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from mfrbench.errors import ImageError, UserError
from mfrbench.records import ImageRef
from mfrbench.workers import restore_threads, single_threaded, spawn_map

#: face policies that fit a dataset when "auto" is asked for (as synth's --face-policy auto)
CENTRED_DATASETS = ("lfw", "mfr2", "rmfrd")
#: The real-image cascade, chosen by bench/detect_real.py (docs/benchmarks.md, issue 9): MTCNN
#: first (its boxes and five points are the synthetic protocols' own), then BlazeFace short
#: range, which finds masked faces MTCNN misses (26/26 real masked photos, 299/300 masked LFW,
#: no false faces), then dlib HOG and Haar.
REAL_IMAGE_CASCADE = "mtcnn,blazeface-short,dlib,haar"
_CHUNK = 16


class FaceFields(TypedDict):
    """The :class:`~mfrbench.records.ImageRef` fields that describe the face of its source photo."""

    face_status: str | None
    face_box: list[int] | None
    det_box: list[float] | None
    det_score: float | None
    detector: str | None
    landmarks: str | None
    points5: list[list[float]] | None
    points5_source: str | None
    landmarks68: list[list[int]] | None


@dataclass(frozen=True)
class FaceConfig:
    """How real images' faces are found: the same options as ``mfrbench synth``."""

    detector: str = REAL_IMAGE_CASCADE
    fallback: bool = True
    landmarks: str = "dlib"
    face_policy: str = "largest"
    margin: int = 15
    max_side: int | None = 1024

    def params(self) -> dict[str, Any]:
        """What goes into a protocol's generation params (it changes the frozen faces)."""
        return {
            "face_detector": self.detector,
            "face_fallback": self.fallback,
            "face_landmarks": self.landmarks,
            "face_policy": self.face_policy,
            "face_margin": self.margin,
            "face_max_side": self.max_side,
        }


def _r2(value: float) -> float:
    """A coordinate as frozen in a protocol: rounded to 0.01 px (short, exact JSON)."""
    return round(float(value), 2)


def _points(flat: Sequence[float] | np.ndarray) -> list[list[float]]:
    return [[_r2(flat[i]), _r2(flat[i + 1])] for i in range(0, len(flat) - 1, 2)]


def face_fields(
    *,
    face_box: Sequence[int],
    det_box: Sequence[float],
    det_score: float,
    detector: str,
    landmarks_backend: str,
    landmarks68: Sequence[float],
    det_points5: Sequence[float] | None,
) -> FaceFields:
    """The ImageRef fields of a face found on the source photo (before any mask).

    ``landmarks68`` and ``det_points5`` are flat ``x0, y0, ...`` lists in source pixels; the
    five alignment points are the detector's own when it gives them (MTCNN), else derived from
    the 68 anchors (``vision.align.points5_from_landmarks68``). Points and boxes are frozen at
    0.01 px; the 68 anchors at whole pixels (dlib's own resolution; a dlib shape holds integer
    points), which keeps a protocol small.
    """
    from mfrbench.vision.align import points5_from_landmarks68

    canon = np.asarray(landmarks68, dtype=np.float64).reshape(68, 2)
    if det_points5 is not None:
        points5, source = _points(det_points5), "mtcnn"
    else:
        points5, source = _points(points5_from_landmarks68(canon).ravel()), "landmarks68"
    return {
        "face_status": "ok",
        "face_box": [int(v) for v in face_box],
        "det_box": [_r2(v) for v in det_box],
        "det_score": round(float(det_score), 4),
        "detector": detector,
        "landmarks": landmarks_backend,
        "points5": points5,
        "points5_source": source,
        "landmarks68": np.rint(canon).astype(int).tolist(),
    }


def policy_for(dataset: str, policy: str) -> str:
    """``auto`` -> ``center`` for face-centred datasets, ``largest`` otherwise."""
    if policy != "auto":
        return policy
    return "center" if dataset in CENTRED_DATASETS else "largest"


class FaceFinder:
    """Loads the cascade and landmark model once; finds the face of one decoded image."""

    def __init__(self, config: FaceConfig) -> None:
        from mfrbench.vision.detect import Cascade, cascade_names
        from mfrbench.vision.landmarks import make_landmarker

        self.config = config
        self.cascade = Cascade(
            cascade_names(config.detector, config.fallback), max_side=config.max_side
        )
        self.cascade.load_all()
        self.landmarker = make_landmarker(config.landmarks)

    def find(self, rgb: np.ndarray) -> FaceFields:
        """The frozen face fields of one image (:func:`face_fields`), or face_status no_face."""
        from mfrbench.vision.anchors import to_canonical68
        from mfrbench.vision.detect import select_face
        from mfrbench.vision.roi import expand_box

        c = self.config
        h, w = rgb.shape[:2]
        faces = self.cascade.detect_with_info(rgb).faces
        face, _ = select_face(faces, c.face_policy, (w, h)) if faces else (None, "")
        if face is None:
            return no_face()
        try:
            canon = to_canonical68(self.landmarker(rgb, face.box), c.landmarks)
        except ImageError:
            return no_face()
        return face_fields(
            face_box=expand_box(face.box, c.margin, (w, h)),
            det_box=face.box,
            det_score=face.score,
            detector=face.detector,
            landmarks_backend=c.landmarks,
            landmarks68=canon.ravel().tolist(),
            det_points5=(
                np.asarray(face.landmarks5).ravel().tolist()
                if face.landmarks5 is not None
                else None
            ),
        )


def no_face() -> FaceFields:
    """The face fields of an image where the cascade found no face (all null but the status)."""
    return {
        "face_box": None,
        "det_box": None,
        "det_score": None,
        "points5": None,
        "points5_source": None,
        "landmarks68": None,
        "detector": None,
        "landmarks": None,
        "face_status": "no_face",
    }


def _load(root: Path, rel: str, sha: str) -> np.ndarray:
    from mfrbench.vision.decode import decode_image

    data = root.joinpath(*rel.split("/")).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha:
        raise ImageError("changed", f"{rel} changed since it was listed")
    return decode_image(data, min_side=1).rgb


_WORKER: dict[str, Any] = {}


def _init(config: FaceConfig, root: str) -> None:
    single_threaded()
    _WORKER["finder"] = FaceFinder(config)
    _WORKER["root"] = Path(root)


def _find_chunk(chunk: list[tuple[str, str]]) -> list[FaceFields | tuple[str, str]]:
    finder, root = _WORKER["finder"], _WORKER["root"]
    out: list[FaceFields | tuple[str, str]] = []
    for rel, sha in chunk:
        try:
            out.append(finder.find(_load(root, rel, sha)))
        except (OSError, ImageError) as exc:
            status = exc.status if isinstance(exc, ImageError) else "read_error"
            out.append((status, str(getattr(exc, "reason", exc))))
    return out


def detect_faces(
    images: Sequence[ImageRef],
    root: Path,
    config: FaceConfig,
    *,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[ImageRef], Counter[str]]:
    """Real ImageRefs with their faces frozen; and counts by outcome (detector or no_face).

    Synthetic refs and refs of unreadable files (empty sha256) pass through unchanged; a file
    that cannot be read or decoded now raises UserError (a protocol cannot freeze it).
    """
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    root = Path(root)
    sources = sorted(
        {
            (im["src_path"], im["src_sha256"])
            for im in images
            if not im["synthetic"] and im["src_sha256"]
        }
    )
    chunks = [sources[i : i + _CHUNK] for i in range(0, len(sources), _CHUNK)]
    found: dict[str, FaceFields] = {}
    done = 0

    def take(chunk: list[tuple[str, str]], results: Sequence[FaceFields | tuple[str, str]]) -> None:
        nonlocal done
        for (rel, _), res in zip(chunk, results, strict=True):
            if isinstance(res, tuple):
                raise UserError(f"cannot read {rel} to find its face: {res[1]}")
            found[rel] = res
        done += len(chunk)
        if progress:
            progress(done, len(sources))

    if workers > 1 and len(chunks) > 1:
        results = spawn_map(_find_chunk, chunks, workers, _init, (config, str(root)))
        for chunk, found_in_chunk in zip(chunks, results, strict=True):
            take(chunk, found_in_chunk)
    elif chunks:
        saved = single_threaded()
        _init(config, str(root))
        try:
            for chunk in chunks:
                take(chunk, _find_chunk(chunk))
        finally:
            restore_threads(saved)
            _WORKER.clear()
    out: list[ImageRef] = []
    counts: Counter[str] = Counter()
    for im in images:
        ref = im.copy()
        if not ref["synthetic"] and ref["src_path"] in found:
            ref.update(found[ref["src_path"]])
            counts[ref["detector"] or "no_face"] += 1
        out.append(ref)
    return out, counts
