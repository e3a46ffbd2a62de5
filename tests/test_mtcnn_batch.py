"""Batched MTCNN (detect_many, Cascade.detect_many, synth's chunk processing) and devices.

Batching changes only which crops share a network call, so on CPU the batched result equals
the one-image result to float rounding (oneDNN picks kernels by batch shape; see the MTCNN
class docstring), not bit for bit; one image through detect_many is detect itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mfrbench.errors import UserError
from mfrbench.vision import mtcnn as mt
from mfrbench.vision.detect import Cascade
from mfrbench.vision.device import resolve_device
from mfrbench.vision.types import Face

NO_CUDA = not torch.cuda.is_available()
# Far inside the golden tolerance (2 px, 1e-3); measured differences are ~5e-5 px, 1e-7.
COORD_ATOL, SCORE_ATOL = 1e-3, 1e-5


@pytest.fixture(scope="module")
def detector() -> mt.MTCNN:
    torch.set_num_threads(1)  # as synth's workers run it
    try:
        return mt.MTCNN()
    except UserError as exc:
        pytest.skip(f"MTCNN weights unavailable: {exc}")


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def images(lfw_mini: Path) -> list[np.ndarray]:
    """Real LFW images: 250x250 ones (one with two faces), rescaled and cropped sizes, and
    one face-free crop; equal sizes repeat so P-Net passes are shared."""
    import cv2

    paths = sorted(lfw_mini.glob("*/*_0001.jpg"))[:10]
    base = [_rgb(p) for p in paths]
    two = _rgb(lfw_mini / "Cesar_Gaviria" / "Cesar_Gaviria_0005.jpg")
    out = [*base, two]
    out += [cv2.resize(im, (320, 320), interpolation=cv2.INTER_LINEAR) for im in base[:3]]
    out += [np.ascontiguousarray(im[20:220, 35:215]) for im in base[3:6]]  # 180x200
    out.append(np.ascontiguousarray(base[0][:40, :40]))  # a corner: no face
    out.append(np.full((250, 250, 3), 128, np.uint8))
    return out


def _same(a: list[Face], b: list[Face]) -> None:
    assert len(a) == len(b)
    for f, g in zip(a, b, strict=True):
        np.testing.assert_allclose(f.box, g.box, atol=COORD_ATOL)
        np.testing.assert_allclose(f.landmarks5, g.landmarks5, atol=COORD_ATOL)
        assert f.score == pytest.approx(g.score, abs=SCORE_ATOL)
        assert f.detector == g.detector == "mtcnn"


def test_detect_many_equals_per_image_detect(detector, images) -> None:
    single = [detector.detect(im) for im in images]
    counts = [len(f) for f in single]
    assert counts[10] == 2 and counts[-2] == 0 and counts[-1] == 0  # several faces, none
    assert all(c >= 1 for c in counts[:10])
    batched = detector.detect_many(images)
    assert len(batched) == len(images)
    for a, b in zip(single, batched, strict=True):
        _same(a, b)
    # deterministic: the same call gives the same bytes
    again = detector.detect_many(images)
    assert [[(f.box, f.score) for f in fs] for fs in again] == [
        [(f.box, f.score) for f in fs] for fs in batched
    ]


def test_batch_limits_do_not_change_faces(detector, images, monkeypatch) -> None:
    want = detector.detect_many(images)
    small = mt.MTCNN(detector.weights_dir, pnet_batch=3)
    monkeypatch.setattr(mt, "_BATCH", 7)  # R-Net/O-Net chunks that straddle images
    for a, b in zip(want, small.detect_many(images), strict=True):
        _same(a, b)


def test_one_image_batch_is_detect_and_empty_batch(detector, images) -> None:
    im = images[10]
    a, b = detector.detect(im), detector.detect_many([im])[0]
    assert [(f.box, f.score, f.landmarks5.tobytes()) for f in a] == [
        (f.box, f.score, f.landmarks5.tobytes()) for f in b
    ]
    assert detector.detect_many([]) == []
    with pytest.raises(ValueError):
        detector.detect_many([im, np.zeros((5, 5), np.uint8)])


def test_cascade_detect_many_equals_detect_with_info(detector, images) -> None:
    cascade = Cascade([detector, "haar"], max_side=300)  # the 320 px images are downscaled
    single = [cascade.detect_with_info(im) for im in images]
    batched = cascade.detect_many(images)
    assert [d.tried for d in single] == [d.tried for d in batched]
    assert [d.detector for d in single] == [d.detector for d in batched]
    assert [d.scale for d in single] == [d.scale for d in batched]
    assert single[-1].tried == ("mtcnn", "haar") and single[-1].detector is None
    assert any(d.scale != (1.0, 1.0) for d in batched)
    for a, b in zip(single, batched, strict=True):
        if a.detector == "mtcnn":
            _same(a.faces, b.faces)
        else:  # per-image fallbacks: exactly the same call
            assert [f.box for f in a.faces] == [f.box for f in b.faces]


def test_cascade_without_batching_detector_falls_back_per_image(images) -> None:
    cascade = Cascade(["haar"])
    single = [cascade.detect_with_info(im) for im in images[:4]]
    assert cascade.detect_many(images[:4]) == single


# --------------------------------------------------------------------------- devices


def test_cpu_device_outputs_unchanged(detector, images) -> None:
    cpu = mt.MTCNN(detector.weights_dir, device="cpu")
    assert cpu.device == torch.device("cpu")
    for im in images[9:12]:
        assert [(f.box, f.score) for f in cpu.detect(im)] == [
            (f.box, f.score) for f in detector.detect(im)
        ]


def test_bad_device_names_are_user_errors() -> None:
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    for bad in ("gpu", "cuda:x", "mps", ""):
        with pytest.raises(UserError, match="unknown device"):
            resolve_device(bad)


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA device")
def test_cuda_refused_cleanly_without_a_gpu(detector, tmp_path) -> None:
    for name in ("cuda", "cuda:1"):
        with pytest.raises(UserError, match=r"torch.cuda.is_available\(\) is False") as info:
            mt.MTCNN(detector.weights_dir, device=name)
        assert "\n" not in str(info.value)
    from mfrbench.models.facenet import FaceNet
    from mfrbench.models.resnet50 import ResNet50

    junk = tmp_path / "w.pth"
    junk.write_bytes(b"not read: the device is checked first")
    for cls in (ResNet50, FaceNet):
        with pytest.raises(UserError, match="is_available"):
            cls(weights=str(junk), device="cuda")


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA device")
def test_synth_device_refused_and_not_recorded() -> None:
    from mfrbench.synth import SynthConfig

    with pytest.raises(UserError, match="is_available"):
        SynthConfig(dataset="lfw", device="cuda").validate()
    with pytest.raises(UserError, match="unknown device"):
        SynthConfig(dataset="lfw", device="tpu").validate()
    cpu, gpu = SynthConfig(dataset="lfw"), SynthConfig(dataset="lfw", device="cuda")
    assert "device" not in cpu.params()
    assert cpu.digest() == gpu.digest()  # the manifest records the detector, not the device


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA device")
def test_synth_cli_device_cuda_is_one_line_exit_2(tmp_path, lfw_mini) -> None:
    import subprocess
    import sys

    out = tmp_path / "o"
    args = ["synth", "folder", "--root", str(lfw_mini), "--out", str(out), "--device", "cuda"]
    r = subprocess.run(
        [sys.executable, "-m", "mfrbench", *args], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "is_available() is False" in lines[0]
    assert not out.exists()  # refused before any work


# --------------------------------------------------------------------------- synth


def test_synth_chunk_rows_equal_per_image_rows(lfw_mini, tmp_path) -> None:
    from mfrbench.datasets import get_dataset
    from mfrbench.synth import SynthConfig, SynthPipeline

    records = sorted(get_dataset("folder", root=str(lfw_mini)).records(), key=lambda r: r.rel_path)
    records = records[:6]
    config = SynthConfig(dataset="folder", root=str(lfw_mini), colors="black", image_format="png")
    pipe = SynthPipeline(config, lfw_mini, tmp_path)
    items = [(r, r.rel_path.replace(".jpg", ".png")) for r in records]
    batched = pipe.process_many(items)
    single = [pipe.process(r, out) for r, out in items]
    assert len(batched) == len(single) == 6
    for rows_a, rows_b in zip(single, batched, strict=True):
        for a, b in zip(rows_a, rows_b, strict=True):
            assert a.keys() == b.keys() and a["status"] == b["status"] == "ok"
            np.testing.assert_allclose(a["det_box"], b["det_box"], atol=COORD_ATOL)
            assert a["detector"] == b["detector"] == "mtcnn"
            assert a["key"] == b["key"] and a["faces_found"] == b["faces_found"]


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA device")
def test_gpu_check_script_starts_and_refuses_cleanly() -> None:
    import subprocess

    script = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.sh"
    r = subprocess.run([str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "available False" in r.stdout  # it started: torch imported, device reported
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "cuda" in lines[0], r.stderr
