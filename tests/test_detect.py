"""Detectors on real faces and non-faces, the fallback cascade, downscaling, face policies."""

from __future__ import annotations

from pathlib import Path

import badimages
import numpy as np
import pytest
from PIL import Image

from mfrbench.errors import UserError
from mfrbench.vision import detect as det
from mfrbench.vision.detect import (
    DETECTOR_NAMES,
    FACE_POLICIES,
    Cascade,
    DlibHog,
    FullFrame,
    Haar,
    cascade_names,
    make_detector,
    select_face,
)
from mfrbench.vision.types import Face

ASTRONAUT_FACE = (175.0, 76.0, 266.0, 167.0)  # her face, checked by eye


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def contains_centre(box: tuple[float, ...], w: int, h: int) -> bool:
    return box[0] < w / 2 < box[2] and box[1] < h / 2 < box[3]


@pytest.fixture(scope="module")
def dlib_hog() -> DlibHog:
    return DlibHog()


@pytest.fixture(scope="module")
def haar() -> Haar:
    return Haar()


@pytest.fixture(scope="module")
def lfw_images(lfw_mini: Path) -> list[np.ndarray]:
    people = sorted(p for p in lfw_mini.iterdir() if p.is_dir())[:12]
    return [np.asarray(Image.open(sorted(p.glob("*.jpg"))[0]).convert("RGB")) for p in people]


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (250, 250, 3), dtype=np.uint8)


# --- real detectors -------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["dlib", "haar"])
def test_finds_the_face_on_lfw(which: str, request: pytest.FixtureRequest, lfw_images) -> None:
    detector = request.getfixturevalue("dlib_hog" if which == "dlib" else "haar")
    for rgb in lfw_images:
        faces = detector.detect(rgb)
        assert faces, "no face found on an LFW image"
        best = faces[0]
        assert best.detector == which
        assert contains_centre(best.box, 250, 250)  # LFW is centred on the face
        assert 50 < best.width < 200


@pytest.mark.parametrize("which", ["dlib", "haar"])
def test_finds_astronaut_face(which: str, request: pytest.FixtureRequest, astronaut) -> None:
    detector = request.getfixturevalue("dlib_hog" if which == "dlib" else "haar")
    faces = detector.detect(astronaut)
    assert max(iou(f.box, ASTRONAUT_FACE) for f in faces) > 0.6


@pytest.mark.parametrize("which", ["dlib", "haar"])
def test_no_face_on_noise_or_flat(which: str, request: pytest.FixtureRequest, noise) -> None:
    detector = request.getfixturevalue("dlib_hog" if which == "dlib" else "haar")
    assert detector.detect(noise) == []
    assert detector.detect(np.full((200, 160, 3), 128, np.uint8)) == []


def test_dlib_box_is_exclusive_and_scored(dlib_hog: DlibHog, lfw_images) -> None:
    import dlib

    rects, scores, _ = dlib.get_frontal_face_detector().run(lfw_images[0], 1, 0.0)
    face = dlib_hog.detect(lfw_images[0])[0]
    r = rects[0]
    assert face.box == (r.left(), r.top(), r.right() + 1, r.bottom() + 1)
    assert face.score == pytest.approx(scores[0])


def test_dlib_upsamples_small_images_only(dlib_hog: DlibHog) -> None:
    auto = dlib_hog
    assert auto.upsample_for(250, 250) == 1
    assert auto.upsample_for(1024, 700) == 0
    assert DlibHog(upsample=2).upsample_for(1024, 700) == 2


def test_detectors_are_deterministic(dlib_hog: DlibHog, haar: Haar, astronaut) -> None:
    import cv2

    for detector in (dlib_hog, haar):
        a, b = detector.detect(astronaut), detector.detect(astronaut.copy())
        assert [(f.box, f.score) for f in a] == [(f.box, f.score) for f in b]
    threads = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        one = haar.detect(astronaut)
        cv2.setNumThreads(4)
        four = haar.detect(astronaut)
    finally:
        cv2.setNumThreads(threads)
    assert [(f.box, f.score) for f in one] == [(f.box, f.score) for f in four]


def test_full_frame() -> None:
    faces = FullFrame().detect(np.zeros((30, 40, 3), np.uint8))
    assert faces == [Face(box=(0.0, 0.0, 40.0, 30.0), score=1.0, detector="none")]


def test_rejects_non_rgb(dlib_hog: DlibHog) -> None:
    with pytest.raises(ValueError):
        dlib_hog.detect(np.zeros((20, 20), np.uint8))
    with pytest.raises(ValueError):
        FullFrame().detect(np.zeros((20, 20, 3), np.float32))


def test_make_detector() -> None:
    assert isinstance(make_detector("dlib", upsample=0), DlibHog)
    assert isinstance(make_detector("haar"), Haar)
    assert isinstance(make_detector("none"), FullFrame)
    with pytest.raises(UserError, match="mtcnn, dlib, mmod, blazeface-short, blazeface-full, haar"):
        make_detector("retinaface")
    with pytest.raises(UserError):
        make_detector("none", upsample=1)


# --- cascade names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fallback", "expected"),
    [
        ("mtcnn", True, ["mtcnn", "dlib", "haar"]),
        ("dlib", True, ["dlib", "haar"]),
        ("haar", True, ["haar"]),
        ("none", True, ["none"]),
        ("mtcnn,haar", True, ["mtcnn", "haar"]),
        (" Haar , dlib ", True, ["haar", "dlib"]),
        ("dlib,none", True, ["dlib", "none"]),
        ("mtcnn", False, ["mtcnn"]),
        ("haar,dlib", False, ["haar"]),
    ],
)
def test_cascade_names(spec: str, fallback: bool, expected: list[str]) -> None:
    assert cascade_names(spec, fallback) == expected


@pytest.mark.parametrize("spec", ["", "mtcnn,", "yolo", "dlib,dlib", "none,dlib"])
def test_cascade_names_rejects(spec: str) -> None:
    with pytest.raises(UserError):
        cascade_names(spec)


# --- cascade logic with fake detectors ------------------------------------------------------


class Fake:
    """A detector that returns fixed faces and records the images it saw."""

    def __init__(self, name: str, faces: list[Face]) -> None:
        self.name = name
        self.faces = faces
        self.seen: list[tuple[int, ...]] = []

    def detect(self, rgb: np.ndarray) -> list[Face]:
        self.seen.append(rgb.shape)
        return list(self.faces)


def _face(box: tuple[float, float, float, float], score: float = 0.9, name: str = "f") -> Face:
    return Face(box=box, score=score, detector=name)


def test_cascade_stops_at_first_detector_with_a_face() -> None:
    a = Fake("a", [])
    b = Fake("b", [_face((1, 2, 30, 40), name="b")])
    c = Fake("c", [_face((5, 5, 9, 9), name="c")])
    cascade = Cascade([a, b, c])
    info = cascade.detect_with_info(np.zeros((100, 80, 3), np.uint8))
    assert info.detector == "b" and info.tried == ("a", "b")
    assert info.faces == b.faces and info.scale == (1.0, 1.0)
    assert len(a.seen) == len(b.seen) == 1 and c.seen == []
    assert cascade.names == ["a", "b", "c"]


def test_cascade_returns_empty_when_all_fail() -> None:
    fakes = [Fake("a", []), Fake("b", [])]
    info = Cascade(fakes).detect_with_info(np.zeros((50, 50, 3), np.uint8))
    assert info.faces == [] and info.detector is None and info.tried == ("a", "b")


def test_cascade_falls_back_to_real_detectors(noise, lfw_images) -> None:
    cascade = Cascade([Fake("blind", []), "dlib", "haar"])
    info = cascade.detect_with_info(lfw_images[0])
    assert info.detector == "dlib" and info.faces[0].detector == "dlib"
    assert Cascade(["dlib", "haar"]).detect_with_info(noise).tried == ("dlib", "haar")
    assert Cascade(["dlib", "none"]).detect(noise)[0].detector == "none"


def test_cascade_builds_first_eagerly_and_fallbacks_once(monkeypatch) -> None:
    built: list[str] = []

    def factory(name: str, **kwargs) -> Fake:
        built.append(name)
        return Fake(name, [] if name == "dlib" else [_face((0, 0, 5, 5))])

    monkeypatch.setattr(det, "make_detector", factory)
    cascade = Cascade(["dlib", "haar"])
    assert built == ["dlib"]
    for _ in range(3):
        cascade.detect(np.zeros((40, 40, 3), np.uint8))
    assert built == ["dlib", "haar"]


def test_cascade_passes_options_per_detector() -> None:
    cascade = Cascade(["dlib", "haar"], dlib={"upsample": 0}, haar={"min_neighbors": 7})
    assert cascade._get(0).upsample == 0
    assert cascade._get(1).min_neighbors == 7
    with pytest.raises(UserError, match="unknown detector"):
        Cascade(["dlib"], yolo={"x": 1})
    with pytest.raises(UserError):
        Cascade(["retinaface"])
    with pytest.raises(UserError):
        Cascade([])


def test_downscale_maps_boxes_and_landmarks_back_exactly() -> None:
    h, w = 2000, 3001
    small_h, small_w = 682, 1024  # round(2000 * 1024 / 3001) = 682
    lm = np.array([[10.0, 20.0], [30.0, 20.0], [20.0, 30.0], [12.0, 40.0], [28.0, 40.0]])
    whole = Face((0.0, 0.0, float(small_w), float(small_h)), 0.5, "fake")
    inner = Face((100.0, 50.0, 300.0, 250.0), 0.9, "fake", lm)
    fake = Fake("fake", [inner, whole])
    info = Cascade([fake], max_side=1024).detect_with_info(np.zeros((h, w, 3), np.uint8))
    assert fake.seen == [(small_h, small_w, 3)]
    sx, sy = w / small_w, h / small_h
    assert info.scale == (sx, sy)
    got_inner, got_whole = info.faces
    assert got_whole.box == (0.0, 0.0, float(w), float(h))  # edges land on the edges
    assert got_inner.box == (100 * sx, 50 * sy, 300 * sx, 250 * sy)
    np.testing.assert_array_equal(got_inner.landmarks5, lm * [sx, sy])
    assert got_inner.score == 0.9


def test_no_downscale_at_or_below_max_side() -> None:
    fake = Fake("fake", [_face((1, 1, 2, 2))])
    rgb = np.zeros((1024, 700, 3), np.uint8)
    assert Cascade([fake], max_side=1024).detect_with_info(rgb).scale == (1.0, 1.0)
    assert Cascade([fake], max_side=None).detect_with_info(
        np.zeros((2000, 30, 3), np.uint8)
    ).scale == (
        1.0,
        1.0,
    )
    assert fake.seen == [(1024, 700, 3), (2000, 30, 3)]


@pytest.mark.parametrize("which", ["dlib", "haar"])
def test_large_image_face_maps_back(which: str, lfw_images) -> None:
    """A face found in a 16x upscaled (4000 px) image lands where it is in the original."""
    rgb = lfw_images[0]
    big = np.asarray(Image.fromarray(rgb).resize((4000, 4000), Image.Resampling.BICUBIC))
    reference = make_detector(which).detect(rgb)[0]
    info = Cascade([which], max_side=1024).detect_with_info(big)
    assert info.scale == (4000 / 1024, 4000 / 1024)
    found = info.faces[0]
    expected = tuple(v * 16 for v in reference.box)
    assert iou(found.box, expected) > 0.7
    centre = ((found.box[0] + found.box[2]) / 2, (found.box[1] + found.box[3]) / 2)
    ref_centre = ((expected[0] + expected[2]) / 2, (expected[1] + expected[3]) / 2)
    assert np.hypot(centre[0] - ref_centre[0], centre[1] - ref_centre[1]) < 0.1 * found.width


def test_mtcnn_first_in_cascade(lfw_images) -> None:
    pytest.importorskip("mfrbench.vision.mtcnn", reason="MTCNN module not available yet")
    cascade = Cascade(cascade_names("mtcnn"))
    info = cascade.detect_with_info(lfw_images[0])
    assert info.detector == "mtcnn" and info.tried == ("mtcnn",)
    face = info.faces[0]
    assert contains_centre(face.box, 250, 250)
    assert face.landmarks5 is not None and face.landmarks5.shape == (5, 2)
    big = np.asarray(Image.fromarray(lfw_images[0]).resize((2000, 2000), Image.Resampling.BICUBIC))
    mapped = Cascade(["mtcnn"], max_side=500).detect_with_info(big).faces[0]
    np.testing.assert_allclose(mapped.landmarks5, face.landmarks5 * 8, atol=0.05 * mapped.width)


# --- face policies --------------------------------------------------------------------------


def test_select_face_policies() -> None:
    big = _face((0, 0, 100, 100), 0.5)
    small_centre = _face((90, 90, 110, 110), 0.99)
    faces = [small_centre, big]
    assert select_face(faces, "largest", (200, 200)) == (big, "")
    assert select_face(faces, "center", (200, 200)) == (small_centre, "")
    face, reason = select_face(faces, "skip", (200, 200))
    assert face is None and "2 faces" in reason
    assert select_face([big], "skip", (200, 200)) == (big, "")
    for policy in FACE_POLICIES:
        face, reason = select_face([], policy, (200, 200))
        assert face is None and reason == "no face detected"
    with pytest.raises(UserError, match="largest, center, skip"):
        select_face(faces, "biggest", (200, 200))


def test_select_face_ties_are_deterministic() -> None:
    a = _face((0, 0, 10, 10), 0.8)
    b = _face((50, 50, 60, 60), 0.9)  # same area, higher score
    c = _face((20, 20, 30, 30), 0.9)  # same area and score, smaller box tuple
    for order in ([a, b, c], [c, b, a], [b, a, c]):
        assert select_face(order, "largest", (100, 100))[0] == c
    left = _face((30, 45, 40, 55), 0.5)  # centres equally far from (50, 50)
    right = _face((60, 45, 70, 55), 0.5)
    for order in ([left, right], [right, left]):
        assert select_face(order, "center", (100, 100))[0] == left


def test_names_constants() -> None:
    assert DETECTOR_NAMES == (
        "mtcnn",
        "dlib",
        "mmod",
        "blazeface-short",
        "blazeface-full",
        "haar",
        "none",
    )
    assert FACE_POLICIES == ("largest", "center", "skip")


def test_bad_images_detection_outcomes(tmp_path: Path, lfw_mini: Path) -> None:
    """Decoded awkward inputs: a face where the builder says so, none on noise/flat."""
    from mfrbench.vision.decode import decode_image

    cascade = Cascade(["dlib", "haar"])
    cases = badimages.write_bad_images(tmp_path, lfw_mini)
    for name, (path, expected) in cases.items():
        if expected.status != "ok":
            continue
        rgb = decode_image(path.read_bytes()).rgb
        assert bool(cascade.detect(rgb)) == expected.face, name
