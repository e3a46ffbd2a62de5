"""dlib's HOG detector from the cache detects exactly as dlib's own, and a bad cache is rebuilt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mfrbench.vision import dlib_hog
from mfrbench.vision.decode import decode_image

dlib = pytest.importorskip("dlib")


def _photos(*folders: Path) -> list[np.ndarray]:
    paths = sorted(p for f in folders for p in f.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    return [decode_image(p.read_bytes()).rgb for p in paths]


def _runs(detector, images, upsample: int) -> list:
    out = []
    for rgb in images:
        boxes, scores, kinds = detector.run(rgb, upsample, 0.0)
        out.append(([(b.left(), b.top(), b.right(), b.bottom()) for b in boxes], scores, kinds))
    return out


def test_cached_detector_detects_as_dlibs_own(
    tmp_path: Path, lfw_mini: Path, masked_real: Path
) -> None:
    first = dlib_hog.frontal_face_detector(tmp_path)  # builds and stores
    path = dlib_hog.cached_path(tmp_path)
    assert path.is_file() and path.with_name(path.name + ".sha256").is_file()
    cached = dlib_hog.frontal_face_detector(tmp_path)  # loads
    assert cached is not first
    own = dlib.get_frontal_face_detector()
    images = _photos(lfw_mini, masked_real)
    assert len(images) > 300
    for upsample in (0, 1):
        want = _runs(own, images, upsample)
        assert _runs(cached, images, upsample) == want
    assert sum(bool(b) for b, _, _ in want) > 280  # they found faces: the check compares them


def test_bad_or_unwritable_cache_falls_back(tmp_path: Path) -> None:
    dlib_hog.frontal_face_detector(tmp_path)
    path = dlib_hog.cached_path(tmp_path)
    good = path.read_bytes()
    path.write_bytes(good[:-100] + b"x" * 100)  # corrupt: the sidecar no longer matches
    assert dlib_hog._load(path) is None
    dlib_hog.frontal_face_detector(tmp_path)  # rebuilt and stored again
    assert path.read_bytes() == good and dlib_hog._load(path) is not None
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    detector = dlib_hog.frontal_face_detector(blocked)  # cannot store under a file: still works
    assert len(detector(np.zeros((64, 64, 3), np.uint8), 0)) == 0
