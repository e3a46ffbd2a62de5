"""Landmark backends (dlib 68, MediaPipe 478), canonical anchors, and MediaPipe model resolution."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from mfrbench.errors import ImageError, UserError
from mfrbench.vision import anchors as A
from mfrbench.vision.landmarks import (
    MEDIAPIPE_MODEL_ENV,
    MEDIAPIPE_MODEL_FLAG,
    MEDIAPIPE_MODEL_SHA256,
    Dlib68,
    MediaPipe478,
    make_landmarker,
    resolve_mediapipe_model,
)
from mfrbench.vision.mask import MASK_SHAPES, mask_polygon

Box = tuple[int, int, int, int]


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def hog():
    import dlib

    detector = dlib.get_frontal_face_detector()

    def detect(rgb: np.ndarray) -> Box | None:
        """The dlib HOG face nearest the image centre (LFW's subject), or None."""
        rects = detector(rgb, 1)
        if not rects:
            return None
        cx, cy = rgb.shape[1] / 2, rgb.shape[0] / 2
        r = min(rects, key=lambda r: (r.center().x - cx) ** 2 + (r.center().y - cy) ** 2)
        return r.left(), r.top(), r.right(), r.bottom()

    return detect


@pytest.fixture(scope="module")
def dlib68() -> Dlib68:
    return Dlib68()


@pytest.fixture(scope="module")
def mp478(mediapipe_model: Path) -> Iterator[MediaPipe478]:
    landmarker = MediaPipe478(mediapipe_model)
    yield landmarker
    landmarker.close()


@pytest.fixture(scope="module")
def one_per_identity(lfw_mini: Path) -> list[Path]:
    return [sorted(d.glob("*.jpg"))[0] for d in sorted(p for p in lfw_mini.iterdir() if p.is_dir())]


def raster(polygon: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    out = np.zeros(hw, np.uint8)
    cv2.fillPoly(out, [polygon.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8)
    return out.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def check_points(points: np.ndarray, n: int, rgb: np.ndarray, box: Box) -> None:
    assert points.shape == (n, 2) and points.dtype == np.float32
    h, w = rgb.shape[:2]
    assert (points >= 0).all() and (points[:, 0] < w).all() and (points[:, 1] < h).all()
    x1, y1, x2, y2 = box
    pad = 0.35 * max(x2 - x1, y2 - y1)
    assert (points[:, 0] > x1 - pad).all() and (points[:, 0] < x2 + pad).all()
    assert (points[:, 1] > y1 - pad).all() and (points[:, 1] < y2 + pad).all()
    cx, cy = points.mean(axis=0)
    assert x1 < cx < x2 and y1 < cy < y2


def test_make_landmarker_unknown_name() -> None:
    with pytest.raises(UserError) as info:
        make_landmarker("openface")
    assert "dlib" in str(info.value) and "mediapipe" in str(info.value)


def test_make_landmarker_dlib() -> None:
    assert isinstance(make_landmarker("dlib"), Dlib68)


def test_canonical_table_is_well_formed() -> None:
    table = A.MEDIAPIPE_TO_DLIB68
    assert len(table) == 68 and len(set(table)) == 68 and all(0 <= i < 478 for i in table)
    pts = np.arange(478 * 2, dtype=np.float32).reshape(478, 2)
    canon = A.to_canonical68(pts, "mediapipe")
    assert canon.shape == (68, 2) and np.array_equal(canon[8], pts[table[8]])
    d = np.random.default_rng(0).random((68, 2)).astype(np.float32)
    assert np.array_equal(A.to_canonical68(d, "dlib"), d)
    with pytest.raises(ValueError):
        A.to_canonical68(pts, "dlib")
    with pytest.raises(ValueError):
        A.to_canonical68(d, "openface")


def test_groups_cover_all_68_points() -> None:
    groups = [A.JAW, A.BROWS, A.NOSE_BRIDGE, A.NOSE_BOTTOM, A.EYES, A.MOUTH]
    assert sorted(i for g in groups for i in g) == list(range(68))
    assert A.CHIN in A.JAW and A.NOSE_TIP in A.NOSE_BRIDGE and A.SUBNASALE in A.NOSE_BOTTOM


def test_dlib_on_real_faces(dlib68, hog, one_per_identity) -> None:
    for path in one_per_identity[:8]:
        rgb = read_rgb(path)
        box = hog(rgb)
        assert box is not None, path
        points = dlib68(rgb, box)
        check_points(points, 68, rgb, box)
        assert np.array_equal(points, dlib68(rgb.copy(), box))


def test_mediapipe_on_real_faces(mp478, hog, one_per_identity) -> None:
    for path in one_per_identity[:8]:
        rgb = read_rgb(path)
        box = hog(rgb)
        assert box is not None, path
        points = mp478(rgb, box)
        check_points(points, 478, rgb, box)
        assert np.array_equal(points, mp478(rgb.copy(), box))


def test_invalid_boxes_are_image_errors(dlib68, mp478) -> None:
    rgb = np.zeros((100, 100, 3), np.uint8)
    for landmarker in (dlib68, mp478):
        with pytest.raises(ImageError) as info:
            landmarker(rgb, (50, 50, 50, 80))
        assert info.value.status == "no_landmarks"


def test_mediapipe_without_a_face_is_an_image_error(mp478) -> None:
    rgb = np.full((200, 200, 3), 127, np.uint8)
    with pytest.raises(ImageError) as info:
        mp478(rgb, (50, 50, 150, 150))
    assert info.value.status == "no_landmarks"


def test_mediapipe_picks_the_face_in_the_box(mp478, hog, one_per_identity) -> None:
    """Two faces side by side, each within the other's crop: each box gets its own face."""
    left, right = read_rgb(one_per_identity[0]), read_rgb(one_per_identity[1])
    pair = np.ascontiguousarray(np.hstack([left, right]))
    lbox, rbox = hog(left), hog(right)
    assert lbox is not None and rbox is not None
    w = left.shape[1]
    rbox = (rbox[0] + w, rbox[1], rbox[2] + w, rbox[3])
    wide = MediaPipe478(mp478.model_path, crop_expand=4.0)
    try:
        for box in (lbox, rbox):
            # Both faces are inside the region MediaPipe sees.
            assert wide.crop_box(box, (pair.shape[1], pair.shape[0])) == (0, 0, 500, 250)
            cx, cy = wide(pair, box).mean(axis=0)
            assert box[0] < cx < box[2] and box[1] < cy < box[3]
    finally:
        wide.close()


def backend_mask_ious(paths, dlib68, mp478, hog) -> dict[str, list[float]]:
    """IoU of each mask shape drawn from dlib vs MediaPipe landmarks, per face both handle."""
    scores: dict[str, list[float]] = {shape: [] for shape in MASK_SHAPES}
    for path in paths:
        rgb = read_rgb(path)
        box = hog(rgb)
        if box is None:
            continue
        try:
            d = A.to_canonical68(dlib68(rgb, box), "dlib")
            m = A.to_canonical68(mp478(rgb, box), "mediapipe")
        except ImageError:
            continue
        hw = rgb.shape[:2]
        for shape in MASK_SHAPES:
            a, b = raster(mask_polygon(d, shape), hw), raster(mask_polygon(m, shape), hw)
            scores[shape].append(iou(a, b))
    summary = {s: (round(min(v), 3), round(float(np.median(v)), 3)) for s, v in scores.items()}
    print(f"\ndlib vs MediaPipe mask IoU (min, median), {len(scores['paper'])} faces: {summary}")
    return scores


def test_paper_masks_agree_across_backends(dlib68, mp478, hog, one_per_identity) -> None:
    """THE check that the MediaPipe->dlib table is right: both backends draw the same masks."""
    scores = backend_mask_ious(one_per_identity, dlib68, mp478, hog)
    assert len(scores["paper"]) >= 35
    assert np.median(scores["paper"]) >= 0.85  # the brief asks >= 0.7; 0.91 measured here
    for shape, values in scores.items():
        assert np.median(values) >= 0.8, shape


@pytest.mark.slow
def test_masks_agree_on_all_of_lfw_mini(dlib68, mp478, hog, lfw_mini) -> None:
    scores = backend_mask_ious(sorted(lfw_mini.rglob("*.jpg")), dlib68, mp478, hog)
    assert len(scores["paper"]) >= 280
    assert np.median(scores["paper"]) >= 0.85
    for shape, values in scores.items():
        assert np.median(values) >= 0.8, shape
        assert np.percentile(values, 5) >= 0.7, shape


# --- model resolution -----------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch, tmp_path) -> Path:
    monkeypatch.delenv(MEDIAPIPE_MODEL_ENV, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("MFRBENCH_CACHE", str(cache))
    return cache


def test_explicit_path_wins(clean_env, tmp_path, mediapipe_model, monkeypatch) -> None:
    monkeypatch.setenv(MEDIAPIPE_MODEL_ENV, str(tmp_path / "elsewhere.task"))
    assert resolve_mediapipe_model(mediapipe_model) == mediapipe_model


def test_missing_explicit_path_names_flag_and_env(clean_env, tmp_path) -> None:
    with pytest.raises(UserError) as info:
        resolve_mediapipe_model(tmp_path / "nope.task")
    assert MEDIAPIPE_MODEL_FLAG in str(info.value) and MEDIAPIPE_MODEL_ENV in str(info.value)


def test_env_var_then_cache(clean_env, tmp_path, monkeypatch) -> None:
    model = tmp_path / "m.task"
    model.write_bytes(b"x")
    monkeypatch.setenv(MEDIAPIPE_MODEL_ENV, str(model))
    assert resolve_mediapipe_model() == model
    monkeypatch.setenv(MEDIAPIPE_MODEL_ENV, str(tmp_path / "missing.task"))
    with pytest.raises(UserError, match=MEDIAPIPE_MODEL_ENV):
        resolve_mediapipe_model()
    monkeypatch.delenv(MEDIAPIPE_MODEL_ENV)
    with pytest.raises(UserError, match=MEDIAPIPE_MODEL_FLAG):
        resolve_mediapipe_model(download=False)
    cached = clean_env / "models" / "face_landmarker.task"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"y")
    assert resolve_mediapipe_model(download=False) == cached


@pytest.fixture
def http_root(tmp_path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on 127.0.0.1 serving files from a temporary folder."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_into_cache(clean_env, http_root, mediapipe_model) -> None:
    base, root = http_root
    (root / "face_landmarker.task").write_bytes(mediapipe_model.read_bytes())
    got = resolve_mediapipe_model(url=f"{base}/face_landmarker.task")
    assert got == clean_env / "models" / "face_landmarker.task"
    assert hashlib.sha256(got.read_bytes()).hexdigest() == MEDIAPIPE_MODEL_SHA256
    assert [p.name for p in got.parent.iterdir()] == ["face_landmarker.task"]
    # Second call: served from the cache, no server needed.
    assert resolve_mediapipe_model(url=f"{base}/gone.task") == got


def test_wrong_checksum_caches_nothing(clean_env, http_root, mediapipe_model) -> None:
    base, root = http_root
    data = bytearray(mediapipe_model.read_bytes())
    data[1000] ^= 0xFF  # tampered copy
    (root / "face_landmarker.task").write_bytes(bytes(data))
    with pytest.raises(UserError) as info:
        resolve_mediapipe_model(url=f"{base}/face_landmarker.task")
    message = str(info.value)
    assert (
        "checksum" in message and MEDIAPIPE_MODEL_FLAG in message and MEDIAPIPE_MODEL_ENV in message
    )
    assert not clean_env.exists() or not any(p.is_file() for p in clean_env.rglob("*"))


def test_failed_download_is_a_user_error(clean_env, http_root) -> None:
    base, _ = http_root
    with pytest.raises(UserError, match=MEDIAPIPE_MODEL_ENV):
        resolve_mediapipe_model(url=f"{base}/missing.task")
    assert not clean_env.exists() or not any(p.is_file() for p in clean_env.rglob("*"))


def test_process_exits_cleanly_with_a_live_landmarker(mediapipe_model) -> None:
    """MediaPipe prints tracebacks at exit when a landmarker is still open; ours closes first."""
    code = (
        "from mfrbench.vision.landmarks import MediaPipe478\n"
        f"m = MediaPipe478({str(mediapipe_model)!r})\n"
    )
    env = {k: v for k, v in os.environ.items() if k != MEDIAPIPE_MODEL_ENV}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr


def test_degenerate_landmarks_are_rejected() -> None:
    from mfrbench.vision.landmarks import _check_points

    box = (10.0, 10.0, 110.0, 110.0)
    good = np.random.default_rng(1).uniform(20, 100, (68, 2)).astype(np.float32)
    assert _check_points(good, box, "dlib") is good
    for bad in (np.full((68, 2), 50, np.float32), good + 200, np.where(good > 90, np.nan, good)):
        with pytest.raises(ImageError) as info:
            _check_points(bad, box, "dlib")
        assert info.value.status == "no_landmarks"
