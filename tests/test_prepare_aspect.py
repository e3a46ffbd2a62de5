"""No silent aspect change: crops of another aspect than the model's size are padded (letterbox),
never stretched, and report.json's ``model.preprocess`` says so; ``preprocess_text`` renders it.

Real lfw-mini photos through synth (dlib detector, 2:1 upper-half ROI at 112x56, as the shipped
protocols), so the geometry is what a user's protocol freezes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mfrbench.digest import ascii_json, sha256_text
from mfrbench.evaluate import prepare as prep
from mfrbench.evaluate.prepare import (
    PREPARE_VERSION,
    aspect_record,
    content_key,
    crop_aspect,
    prepare,
    same_aspect,
)
from mfrbench.evaluate.preprocess_text import normalisation_text, preprocess_text
from mfrbench.models.base import Preprocess
from mfrbench.protocol import render_image
from mfrbench.vision.roi import crop_resize, roi_box


def _pre(crop: str, size: tuple[int, int] | None) -> Preprocess:
    return Preprocess(size, "rgb", (0.5,), (0.5,), crop)


@pytest.fixture(scope="module")
def synth(lfw_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from mfrbench.pairs.refs import images_from_manifest
    from mfrbench.synth import SynthConfig, run_synth

    out = tmp_path_factory.mktemp("synth")
    config = SynthConfig(
        dataset="lfw",
        root=str(lfw_mini),
        limit=2,
        image_format="png",
        detector="dlib",
        colors="blue",
    )
    run_synth(config, out, workers=1)
    refs = images_from_manifest(out / "manifest.parquet")
    masked = next(r for r in refs if r["masked"])
    assert masked["out_wh"] == [112, 56]  # synth's default: the 2:1 upper half
    return {"refs": refs, "masked": masked, "root": lfw_mini}


def _bands_are_zero(img: np.ndarray, top: int, bottom: int) -> bool:
    return not img[:top].any() and not img[img.shape[0] - bottom :].any()


def test_protocol_crop_is_letterboxed_into_a_square_input(synth: dict[str, Any]) -> None:
    img, root = synth["masked"], synth["root"]
    render = render_image(img, root)  # exactly what the protocol renders: 112x56
    got, _ = prepare(img, root, _pre("protocol", (112, 112)))
    assert got.shape == (112, 112, 3)
    # 2:1 into 1:1 at the same width: 28 black rows above and below, the render unscaled between
    assert _bands_are_zero(got, 28, 28)
    assert np.array_equal(got[28:84], render)
    record = aspect_record(_pre("protocol", (112, 112)), synth["refs"])
    assert record == {"aspect": "padded", "crop_aspect": ["2:1"]}


def test_upper_half_into_a_square_is_padded_not_stretched(synth: dict[str, Any]) -> None:
    img, root = synth["masked"], synth["root"]
    frame = prep.masked_frame(img, prep.load_source(img, root))
    box = roi_box("upper-half", img["face_box"], None, (frame.shape[1], frame.shape[0]))
    stretched = crop_resize(frame, box, (112, 112))  # what version 3 handed the model
    got, _ = prepare(img, root, _pre("upper-half", (112, 112)))
    assert got.shape == (112, 112, 3) and not np.array_equal(got, stretched)
    assert _bands_are_zero(got, 27, 27)  # the 2:1 crop is 56 +- 1 rows high in the middle
    same_shape, _ = prepare(img, root, _pre("upper-half", (112, 56)))
    middle = got[28:84].astype(int)  # the face band, resampled once either way
    assert np.abs(middle - same_shape.astype(int)).mean() < 12
    assert aspect_record(_pre("upper-half", (112, 112)), synth["refs"])["aspect"] == "padded"


def test_a_size_of_the_crops_aspect_only_scales_and_keeps_its_cache_key(
    synth: dict[str, Any],
) -> None:
    img, root = synth["masked"], synth["root"]
    frame = prep.masked_frame(img, prep.load_source(img, root))
    box = roi_box("upper-half", img["face_box"], None, (frame.shape[1], frame.shape[0]))
    for pre in (_pre("upper-half", (112, 56)), _pre("upper-half", (113, 56))):
        got, _ = prepare(img, root, pre)
        assert np.array_equal(got, crop_resize(frame, box, pre.size))  # unchanged pixels
        # the key is the one version 3 gave these pixels: their cached embeddings stay valid
        body = {
            "v": PREPARE_VERSION,
            "image": prep._relevant(img, pre),
            "crop": pre.crop,
            "size": list(pre.size),
        }
        assert content_key(img, pre) == sha256_text(ascii_json(body))
        assert aspect_record(pre, synth["refs"]) == {"aspect": "kept", "crop_aspect": ["2:1"]}
    padded = _pre("upper-half", (112, 112))
    old = {
        "v": PREPARE_VERSION,
        "image": prep._relevant(img, padded),
        "crop": "upper-half",
        "size": [112, 112],
    }
    # the padded pixels never reuse an embedding cached for the stretched ones
    assert content_key(img, padded) != sha256_text(ascii_json(old))


def test_eye_band_and_dlib_chip_pad_too(synth: dict[str, Any]) -> None:
    img, root = synth["masked"], synth["root"]
    band, _ = prepare(img, root, _pre("eye-band", (96, 96)))
    assert band.shape == (96, 96, 3) and _bands_are_zero(band, 30, 30)  # 3:1 = 32 rows of 96
    assert aspect_record(_pre("eye-band", (96, 96)), synth["refs"])["crop_aspect"] == ["3:1"]
    pytest.importorskip("dlib")
    chip, _ = prepare(img, root, _pre("dlib-chip", (96, 112)))
    assert chip.shape == (112, 96, 3) and _bands_are_zero(chip, 7, 7)  # 1:1 into 96x112
    square, _ = prepare(img, root, _pre("dlib-chip", (112, 112)))
    assert square.shape == (150, 150, 3)  # a square size: the model scales the chip itself


def test_aspect_record_kinds(synth: dict[str, Any]) -> None:
    refs = synth["refs"]
    assert aspect_record(_pre("protocol", (64, 32)), refs)["aspect"] == "kept"
    assert aspect_record(_pre("protocol", None), refs) == {
        "aspect": "native",
        "crop_aspect": ["2:1"],
    }
    assert aspect_record(_pre("frame", (112, 112)), refs) == {
        "aspect": "padded where needed",
        "crop_aspect": ["frame"],
    }
    assert aspect_record(_pre("arcface-112", (112, 112)), refs)["aspect"] == "kept"
    # without images, a protocol crop's aspect is unknown: said, not guessed
    assert aspect_record(_pre("protocol", (64, 32)), None)["aspect"] == "padded where needed"
    real = {**refs[0], "synthetic": False, "face_status": None}
    assert crop_aspect(real, _pre("protocol", (64, 32))) == (1, 1)  # its square fallback face
    assert crop_aspect(real, _pre("eye-band", (96, 32))) == (1, 1)
    assert same_aspect((2, 1), (224, 112)) and same_aspect((3, 1), (112, 38))
    assert not same_aspect((2, 1), (112, 112)) and not same_aspect((1, 1), (113, 112))


def test_preprocess_text_says_every_step() -> None:
    record = {
        **_pre("protocol", (112, 112)).to_dict(),
        "aspect": "padded",
        "crop_aspect": ["2:1"],
    }
    text = preprocess_text(json.loads(json.dumps(record)))  # as read back from report.json
    assert text == (
        "RGB; (x - 127.5) / 127.5; crop protocol (the protocol's own ROI render), not aligned; "
        "input 112x112; 2:1 crop padded into 112x112 with zero borders (letterbox, no stretch)"
    )
    aligned = {
        **Preprocess((112, 112), "bgr", (0.0,), (1.0,), "arcface-112", "detect").to_dict(),
        "aspect": "kept",
        "crop_aspect": ["1:1"],
    }
    text = preprocess_text(aligned)
    for part in (
        "BGR",
        "no mean/std",
        "crop arcface-112",
        "re-detected on the masked image",
        "aspect kept",
    ):
        assert part in text, (part, text)
    # an older report (no aspect fields), a score file's record, an empty one
    old = {k: v for k, v in aligned.items() if k not in ("aspect", "crop_aspect")}
    assert preprocess_text(old).endswith("input 112x112; aspect handling not recorded")
    assert preprocess_text({"crop": "n/a", "size": None}) == "preprocessing not recorded (crop n/a)"
    assert preprocess_text({}) == "preprocessing not recorded"


def test_normalisation_reads_as_papers_write_it() -> None:
    imagenet = normalisation_text((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert imagenet == "(x/255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]"
    assert normalisation_text((0.5,), (128 / 255,)) == "(x - 127.5) / 128"  # facenet-pytorch
    vgg = tuple(m / 255 for m in (91.4953, 103.8827, 131.0912))
    assert normalisation_text(vgg, (1 / 255,) * 3) == (
        "x - [91.4953, 103.8827, 131.0912] (0-255, not scaled)"
    )
    assert normalisation_text((0.0,), (1.0,)) == "no mean/std"


def test_report_records_the_aspect_and_the_full_spec(lfw_mini: Path, tmp_path: Path) -> None:
    from test_evaluate import _images

    from mfrbench.evaluate.runner import evaluate
    from mfrbench.pairs import lfw_folds
    from mfrbench.protocol import freeze, write_protocol

    pairset = lfw_folds(
        _images(lfw_mini, n_ids=8, per_id=3),
        n_folds=2,
        per_fold=4,
        pair_types=["masked-unmasked"],
        seed=0,
    )
    path = tmp_path / "p.json"
    write_protocol(freeze(pairset, name="aspect", dataset="lfw-mini"), path)
    run = evaluate(
        path,
        "eigenface",
        {"size": "64x64", "n_components": "8"},
        root=lfw_mini,
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        n_boot=20,
        plots=False,
    )
    model = json.loads((run.out_dir / "report.json").read_text())["model"]
    assert model["spec"] == "plugin:eigenface"  # a bare name, recorded in full
    pre = model["preprocess"]
    assert (pre["size"], pre["aspect"], pre["crop_aspect"]) == ([64, 64], "padded", ["2:1"])
    assert preprocess_text(pre) == (
        "grey (ITU-R 601 luma); no mean/std; crop protocol (the protocol's own ROI render), not "
        "aligned; input 64x64; 2:1 crop padded into 64x64 with zero borders (letterbox, no "
        "stretch)"
    )
