"""MTCNN: reproduces facenet-pytorch's detections; exact NMS and area resampling; weights lookup."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mfrbench.errors import UserError
from mfrbench.vision import mtcnn as mt
from mfrbench.vision.types import Face


@pytest.fixture(scope="module")
def detector() -> mt.MTCNN:
    try:
        return mt.MTCNN()
    except UserError as exc:
        pytest.skip(f"MTCNN weights unavailable: {exc}")


# --------------------------------------------------------------------------- golden reference


def _load_reference_image(ref: str, data_root: Path) -> np.ndarray:
    """Decode an image the way the golden file was made (PIL, convert('RGB'))."""
    if ref == "package:skimage.data.astronaut":
        skdata = pytest.importorskip("skimage.data")
        return np.asarray(skdata.astronaut())
    if ref.startswith("package:matplotlib/"):
        cbook = pytest.importorskip("matplotlib.cbook")
        name = ref.split("sample_data/", 1)[1]
        path = Path(cbook.get_sample_data(name, asfileobj=False))
    else:
        path = data_root / ref
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_matches_facenet_pytorch_golden(detector, golden_dir, data_root) -> None:
    golden = json.loads((golden_dir / "mtcnn_facenet_pytorch.json").read_text())
    assert len(golden["images"]) == 34
    for entry in golden["images"]:
        rgb = _load_reference_image(entry["image"], data_root)
        assert [rgb.shape[1], rgb.shape[0]] == entry["size"], entry["image"]
        faces = detector.detect(rgb)
        expected = entry["faces"]
        assert len(faces) == len(expected), entry["image"]
        for face, want in zip(faces, expected, strict=True):  # both largest box first
            np.testing.assert_allclose(face.box, want["box"], atol=2.0, err_msg=entry["image"])
            assert face.score == pytest.approx(want["prob"], abs=1e-3), entry["image"]
            np.testing.assert_allclose(
                face.landmarks5, want["landmarks5"], atol=2.0, err_msg=entry["image"]
            )


def test_face_contract(detector) -> None:
    skdata = pytest.importorskip("skimage.data")
    rgb = np.asarray(skdata.astronaut())
    faces = detector.detect(rgb)
    assert faces
    for face in faces:
        assert isinstance(face, Face)
        assert face.detector == "mtcnn"
        assert all(type(v) is float for v in face.box) and type(face.score) is float
        assert 0.7 < face.score <= 1.0
        assert face.landmarks5.shape == (5, 2) and face.landmarks5.dtype == np.float32
        x1, y1, x2, y2 = face.box
        assert x1 < x2 and y1 < y2
    areas = [f.area for f in faces]
    assert areas == sorted(areas, reverse=True)
    # same input, same bytes; and a read-only, non-contiguous view gives the same answer
    again = detector.detect(rgb.copy())
    assert [(f.box, f.score, f.landmarks5.tobytes()) for f in faces] == [
        (f.box, f.score, f.landmarks5.tobytes()) for f in again
    ]
    view = np.asfortranarray(rgb)
    view.flags.writeable = False
    assert [f.box for f in detector.detect(view)] == [f.box for f in faces]


def test_chunked_network_calls_give_the_same_faces(detector, lfw_mini, monkeypatch) -> None:
    with Image.open(lfw_mini / "Cesar_Gaviria" / "Cesar_Gaviria_0005.jpg") as im:
        rgb = np.asarray(im.convert("RGB"))
    whole = detector.detect(rgb)
    monkeypatch.setattr(mt, "_BATCH", 5)  # R-Net then sees dozens of chunks
    chunked = detector.detect(rgb)
    assert len(whole) == len(chunked) == 2
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(a.box, b.box, atol=1e-3)
        np.testing.assert_allclose(a.landmarks5, b.landmarks5, atol=1e-3)
        assert a.score == pytest.approx(b.score, abs=1e-6)


def test_blank_image_has_no_faces(detector) -> None:
    assert detector.detect(np.full((250, 250, 3), 128, np.uint8)) == []


def test_tiny_and_empty_images_have_no_faces(detector) -> None:
    rng = np.random.default_rng(0)
    assert detector.detect(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)) == []
    assert detector.detect(np.zeros((0, 0, 3), np.uint8)) == []
    assert isinstance(detector.detect(rng.integers(0, 256, (30, 400, 3), dtype=np.uint8)), list)


def test_rejects_non_rgb_uint8(detector) -> None:
    with pytest.raises(ValueError):
        detector.detect(np.zeros((50, 50, 3), np.float32))
    with pytest.raises(ValueError):
        detector.detect(np.zeros((50, 50), np.uint8))
    with pytest.raises(ValueError):
        detector.detect(np.zeros((50, 50, 4), np.uint8))


def test_pyramid_scales(detector) -> None:
    assert detector.scales(10, 10) == []  # smaller than the smallest face
    scales = detector.scales(250, 300)
    assert scales[0] == pytest.approx(12 / 20)  # min_face_size=20 maps to P-Net's 12 px
    assert all(b == pytest.approx(a * 0.709) for a, b in itertools.pairwise(scales))
    assert 250 * scales[-1] >= 12 > 250 * scales[-1] * 0.709  # stops at the last 12 px level


def test_custom_settings(detector) -> None:
    big = mt.MTCNN(detector.weights_dir, min_face_size=40, thresholds=(0.6, 0.7, 0.95))
    assert big.scales(250, 250)[0] == pytest.approx(12 / 40)
    assert len(big.scales(250, 250)) < len(detector.scales(250, 250))
    with pytest.raises(UserError):
        mt.MTCNN(detector.weights_dir, thresholds=(0.5, 0.5))


def test_auto_min_face_scales_with_the_image() -> None:
    assert mt.auto_min_face(250, 250) == 40  # LFW: the pyramid's two largest levels skipped
    assert mt.auto_min_face(112, 160) == mt.NATIVE_MIN_FACE  # small crops: facenet's 20 px
    assert mt.auto_min_face(1024, 768) == int(0.16 * 768)
    with pytest.raises(UserError, match="positive int or 'auto'"):
        mt.MTCNN(min_face_size="big")
    with pytest.raises(UserError, match="positive int or 'auto'"):
        mt.MTCNN(min_face_size=0)


def _lfw_image(lfw_mini: Path, k: int = 0) -> np.ndarray:
    path = sorted(lfw_mini.glob("*/*.jpg"))[k]
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_auto_first_pass_is_the_sized_pass(detector, lfw_mini) -> None:
    """On a 250 px LFW photo "auto" is min face 40, bit for bit; the face is found."""
    auto = mt.MTCNN(detector.weights_dir, min_face_size="auto")
    forty = mt.MTCNN(detector.weights_dir, min_face_size=40)
    images = [_lfw_image(lfw_mini, k) for k in range(4)]
    for got, want in zip(auto.detect_many(images), forty.detect_many(images), strict=True):
        assert got and [f.box for f in got] == [f.box for f in want]
        assert [f.landmarks5.tolist() for f in got] == [f.landmarks5.tolist() for f in want]


def test_auto_searches_again_at_20_px_where_the_first_pass_finds_none(
    detector, lfw_mini, monkeypatch
) -> None:
    """An image whose first pass finds nothing is detected again exactly as the native 20 px
    detector does; an image with a face in the same batch keeps its first-pass result.

    MTCNN's refinement finds even ~20 px faces from the coarse levels on LFW-like canvases
    (tried: 18-39 px faces on 600-1000 px textured canvases), so a first pass that finds
    nothing is forced here: a minimum face larger than the 600 px canvas (no pyramid level).
    """
    small = np.asarray(Image.fromarray(_lfw_image(lfw_mini)).resize((100, 100), Image.BILINEAR))
    canvas = np.full((600, 600, 3), 128, np.uint8)
    canvas[250:350, 250:350] = small
    monkeypatch.setattr(mt, "auto_min_face", lambda h, w: 10_000 if h == 600 else 40)
    auto = mt.MTCNN(detector.weights_dir, min_face_size="auto")
    assert auto.scales(600, 600) == []  # the first pass cannot find anything
    want = detector.detect(canvas)
    assert want and [f.box for f in auto.detect(canvas)] == [f.box for f in want]
    big = _lfw_image(lfw_mini)
    batch = auto.detect_many([canvas, big])
    assert [f.box for f in batch[0]] == [f.box for f in want]
    forty = mt.MTCNN(detector.weights_dir, min_face_size=40)
    assert [f.box for f in batch[1]] == [f.box for f in forty.detect(big)]
    assert auto.detect(np.full((600, 600, 3), 128, np.uint8)) == []  # nothing either way


# --------------------------------------------------------------------------- weights lookup


def test_find_weights_dir_bad_explicit_dir(tmp_path) -> None:
    with pytest.raises(UserError, match="pip install --no-deps facenet-pytorch"):
        mt.find_weights_dir(tmp_path / "missing")
    (tmp_path / "pnet.pt").write_bytes(b"")  # incomplete set
    with pytest.raises(UserError, match="MFRBENCH_MTCNN_WEIGHTS"):
        mt.find_weights_dir(tmp_path)


def test_find_weights_dir_env_var(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MFRBENCH_MTCNN_WEIGHTS", str(tmp_path))
    with pytest.raises(UserError):
        mt.find_weights_dir()
    for name in mt.WEIGHT_FILES:
        (tmp_path / name).write_bytes(b"")
    assert mt.find_weights_dir() == tmp_path
    # an explicit argument wins over the variable
    with pytest.raises(UserError):
        mt.find_weights_dir(tmp_path / "other")


def test_find_weights_dir_default_does_not_import_facenet(monkeypatch) -> None:
    monkeypatch.delenv("MFRBENCH_MTCNN_WEIGHTS", raising=False)
    monkeypatch.delitem(sys.modules, "facenet_pytorch", raising=False)
    try:
        folder = mt.find_weights_dir()
    except UserError:
        pytest.skip("facenet-pytorch (for its weights) is not installed")
    assert all((folder / name).is_file() for name in mt.WEIGHT_FILES)
    assert "facenet_pytorch" not in sys.modules


def test_corrupt_weights_are_a_user_error(tmp_path) -> None:
    for name in mt.WEIGHT_FILES:
        (tmp_path / name).write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="cannot load") as info:
        mt.MTCNN(tmp_path)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- exact building blocks


def _reference_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """torchvision's CPU nms kernel, transcribed loop for loop (float32 arithmetic)."""
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable, descending
    suppressed = [False] * len(order)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in order[pos + 1 :]:
            if suppressed[j]:
                continue
            w = max(np.float32(0), min(x2[i], x2[j]) - max(x1[i], x1[j]))
            h = max(np.float32(0), min(y2[i], y2[j]) - max(y1[i], y1[j]))
            inter = np.float32(w * h)
            with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 for empty boxes
                iou = np.float32(inter / np.float32(np.float32(areas[i] + areas[j]) - inter))
            if float(iou) > threshold:
                suppressed[j] = True
    return keep


@pytest.mark.parametrize("seed", range(12))
def test_nms_equals_torchvision_kernel(seed) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    xy = rng.uniform(0, 100, (n, 2)).round(int(seed % 3))
    wh = rng.uniform(0, 40, (n, 2)).round(int(seed % 3))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    if n > 3:
        boxes[n // 2] = boxes[0]  # duplicates
    scores = rng.choice([0.5, 0.7, 0.9, 1.0], n) if seed % 2 else rng.uniform(0, 1, n)
    scores = scores.astype(np.float32)  # many exact ties when seed is odd
    for threshold in (0.3, 0.5, 0.7):
        want = _reference_nms(boxes, scores, threshold)
        assert mt.nms_numpy(boxes, scores, threshold).tolist() == want
        got = mt.nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold)
        assert got.dtype == torch.long and got.tolist() == want


def test_nms_blocks_and_empty(monkeypatch) -> None:
    assert mt.nms_numpy(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).size == 0
    rng = np.random.default_rng(7)
    n = 300
    xy = rng.uniform(0, 300, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 80, (n, 2))], axis=1).astype(np.float32)
    scores = rng.uniform(0, 1, n).astype(np.float32)
    want = _reference_nms(boxes, scores, 0.5)
    monkeypatch.setattr(mt, "_IOU_BLOCK", 7 * n)  # IoUs in blocks of 7 rows
    assert mt.nms_numpy(boxes, scores, 0.5).tolist() == want


@pytest.mark.parametrize("seed", range(6))
def test_area_resampling_is_bit_identical_to_interpolate(seed) -> None:
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(15, 200, 2))
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    table = mt._integral(rgb)
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()

    scale = float(rng.uniform(0.05, 0.9))
    level = mt._Level(scale, h, w)
    want = F.interpolate(image, size=(level.height, level.width), mode="area")
    assert torch.equal(level.resample(table), (want - 127.5) * 0.0078125)

    k = 7
    y0 = rng.integers(0, h - 1, k)
    x0 = rng.integers(0, w - 1, k)
    y1 = np.minimum(y0 + rng.integers(1, 120, k), h)
    x1 = np.minimum(x0 + rng.integers(1, 120, k), w)
    for size in (24, 48):
        got = mt._crops(table, np.stack([y0, y1], 1), np.stack([x0, x1], 1), size)
        want = torch.cat(
            [
                F.interpolate(image[:, :, a:b, c:d], size=(size, size), mode="area")
                for a, b, c, d in zip(y0, y1, x0, x1, strict=True)
            ]
        )
        assert torch.equal(got, (want - 127.5) * 0.0078125)


def test_fast_max_pool_equals_torch() -> None:
    rng = np.random.default_rng(3)
    for h, w in ((149, 149), (20, 21), (7, 6), (1, 1)):
        x = torch.from_numpy(rng.standard_normal((1, 10, h, w)).astype(np.float32))
        want = F.max_pool2d(x, 2, 2, ceil_mode=True)
        assert torch.equal(mt._max_pool_2x2(x), want)
