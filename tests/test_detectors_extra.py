"""dlib's MMOD CNN and MediaPipe's BlazeFace detectors, and the five-point false-face check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mfrbench.vision.align import iou
from mfrbench.vision.decode import decode_image
from mfrbench.vision.detect import Cascade, MmodCnn, make_detector, plausible_points5
from mfrbench.vision.types import Face


def _lfw(lfw_mini: Path, n: int = 4) -> list[np.ndarray]:
    return [decode_image(p.read_bytes()).rgb for p in sorted(lfw_mini.glob("*/*.jpg"))[:n]]


def test_plausible_points5() -> None:
    box = (0.0, 0.0, 100.0, 120.0)
    good = np.array([[30, 45], [70, 45], [50, 70], [35, 90], [65, 90]], dtype=np.float32)
    assert plausible_points5(Face(box, 0.9, "mtcnn", good))
    assert plausible_points5(Face(box, 0.9, "dlib"))  # nothing to check
    flipped = good[[1, 0, 2, 4, 3]]  # eyes swapped: not a face seen from the front
    upside = good.copy()
    upside[:, 1] = 120 - upside[:, 1]  # mouth above the eyes
    squeezed = good.copy()
    squeezed[1, 0] = 33  # eyes nearly on top of each other
    for pts in (flipped, upside, squeezed):
        assert not plausible_points5(Face(box, 0.9, "mtcnn", pts))


def test_mmod_finds_lfw_faces_where_mtcnn_does(lfw_mini: Path) -> None:
    pytest.importorskip("dlib")
    mmod, mtcnn = MmodCnn(upsample=0), Cascade(["mtcnn"])
    for rgb in _lfw(lfw_mini, 3):
        faces = mmod.detect(rgb)
        ref = mtcnn.detect(rgb)
        assert faces and faces[0].detector == "mmod"
        assert max(iou(f.box, ref[0].box) for f in faces) > 0.5


def test_blazeface_anchors_and_detections(lfw_mini: Path, masked_real: Path) -> None:
    pytest.importorskip("ai_edge_litert", reason="BlazeFace needs ai-edge-litert (dev extra)")
    from mfrbench.vision.blazeface import anchors, model_file, weighted_nms

    try:
        model_file("short")
    except Exception as exc:  # the model package is installed by the Makefile
        pytest.skip(str(exc))
    assert anchors(128, (8, 16, 16, 16), 2).shape == (896, 2)
    assert anchors(192, (4,), 1).shape == (2304, 2)
    # two overlapping boxes merge into their score-weighted mean; a far one stays
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=np.float64)
    merged = weighted_nms(boxes, np.zeros((3, 6, 2)), np.array([0.9, 0.3, 0.8]))
    assert len(merged) == 2 and np.allclose(merged[0][0], [0.25, 0, 10.25, 10])
    mtcnn = Cascade(["mtcnn"])
    for kind in ("short", "full"):
        det = make_detector(f"blazeface-{kind}")
        for rgb in _lfw(lfw_mini):
            faces = det.detect(rgb)
            assert faces and faces[0].detector == f"blazeface-{kind}"
            assert max(iou(f.box, mtcnn.detect(rgb)[0].box) for f in faces) > 0.5
    short = make_detector("blazeface-short")
    real = [decode_image(p.read_bytes()).rgb for p in sorted(masked_real.iterdir())]
    assert sum(bool(short.detect(rgb)) for rgb in real) >= 24
    assert short.detect(np.full((200, 200, 3), 127, np.uint8)) == []
