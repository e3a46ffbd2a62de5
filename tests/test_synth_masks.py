"""synth --masks (a drawn mask per image) and --occlusion-masks, on real LFW photos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from mfrbench.errors import UserError
from mfrbench.manifest import read_metadata
from mfrbench.pairs.refs import images_from_manifest
from mfrbench.pairs.sources import pick_colors
from mfrbench.protocol import load_protocol, validate
from mfrbench.protocol.render import render_image
from mfrbench.synth import MIX_VARIANT, SynthConfig, run_synth
from mfrbench.vision.decode import decode_image
from mfrbench.vision.mask_mix import redraw_mask
from mfrbench.vision.occlusion import crop_occlusion, polygon_occlusion
from mfrbench.vision.roi import crop_resize

MIX = "surgical:0.4,cloth:0.3,n95:0.2,paper:0.1"


def _config(lfw_mini: Path, **kw) -> SynthConfig:
    base = dict(  # the whole face box as output (roi none), so crops show the mask
        dataset="lfw", root=str(lfw_mini), limit=8, image_format="png", detector="dlib", roi="none"
    )
    return SynthConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def mixed(lfw_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("mix")
    run_synth(_config(lfw_mini, masks=MIX, occlusion_masks=True), out, workers=1)
    return out, pq.read_table(out / "manifest.parquet").to_pylist()


def _png(path: Path) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)


def test_one_drawn_mask_per_image_redrawn_from_its_row(mixed, lfw_mini: Path) -> None:
    """Each mask-mix output is the recorded mask on the source, cropped: pixel for pixel."""
    out, rows = mixed
    assert {r["variant"] for r in rows} == {"unmasked", MIX_VARIANT}
    kinds = set()
    for row in rows:
        assert row["status"] == "ok", row["reason"]
        if row["variant"] == "unmasked":
            assert row["mask_style"] is None and row["occlusion_path"] is None
            continue
        record = json.loads(row["mask_style"])
        kinds.add(record["mask_type"])
        assert row["mask_shape"] == record["mask_type"] and row["masked"]
        assert (row["mask_polygon"] is None) == (record["style"] is not None)
        src = decode_image((lfw_mini / row["src_path"]).read_bytes()).rgb
        canon = np.rint(np.asarray(row["landmarks"], np.float64).reshape(68, 2))  # as frozen
        masked, occ = redraw_mask(src, canon, record)
        size = (row["out_width"], row["out_height"])
        got = decode_image((out / row["out_path"]).read_bytes()).rgb
        assert np.array_equal(crop_resize(masked, row["roi_box"], size), got)
        occ_png = _png(out / row["occlusion_path"])
        assert occ_png.shape == (size[1], size[0]) and set(np.unique(occ_png)) <= {0, 255}
        assert np.array_equal(occ_png == 255, crop_occlusion(occ, row["roi_box"], size))
        assert 0.15 < (occ_png == 255).mean() < 0.95  # a mask, in the crop, not everything
    assert len(kinds) >= 2  # seed 0 over 8 photos draws several kinds from the mix


def test_same_bytes_with_two_workers(mixed, lfw_mini: Path, tmp_path: Path) -> None:
    out, _ = mixed
    run_synth(_config(lfw_mini, masks=MIX, occlusion_masks=True), tmp_path, workers=2)
    assert (tmp_path / "manifest.parquet").read_bytes() == (out / "manifest.parquet").read_bytes()
    occ = sorted(p.relative_to(out) for p in (out / "occlusion").rglob("*.png"))
    assert occ and occ == sorted(
        p.relative_to(tmp_path) for p in (tmp_path / "occlusion").rglob("*.png")
    )
    assert all((out / p).read_bytes() == (tmp_path / p).read_bytes() for p in occ)


def test_options_recorded_only_when_used(mixed, lfw_mini: Path, tmp_path: Path) -> None:
    out, _ = mixed
    params = read_metadata(out / "manifest.parquet")["params"]
    assert params["masks"] == "surgical:0.4,cloth:0.3,n95:0.2,paper:0.1"
    assert params["occlusion_masks"] is True
    plain = SynthConfig(dataset="lfw").params()
    assert "masks" not in plain and "occlusion_masks" not in plain
    run_synth(_config(lfw_mini, limit=2, colors="black"), tmp_path, workers=1)
    names = pq.read_schema(tmp_path / "manifest.parquet").names
    assert "mask_style" not in names and "occlusion_path" not in names
    with pytest.raises(UserError, match="unknown mask kind 'hat'"):
        SynthConfig(dataset="lfw", masks="hat:1").validate()


def test_polygon_variants_get_occlusion_masks_too(lfw_mini: Path, tmp_path: Path) -> None:
    import cv2

    run_synth(_config(lfw_mini, limit=3, colors="blue", occlusion_masks=True), tmp_path, workers=1)
    for row in pq.read_table(tmp_path / "manifest.parquet").to_pylist():
        if row["variant"] != "mask-blue":
            assert row["occlusion_path"] is None
            continue
        src = decode_image((lfw_mini / row["src_path"]).read_bytes()).rgb
        poly = np.asarray(row["mask_polygon"]).reshape(-1, 2)
        size = (row["out_width"], row["out_height"])
        want = crop_occlusion(polygon_occlusion(src.shape, poly), row["roi_box"], size)
        assert np.array_equal(_png(tmp_path / row["occlusion_path"]) == 255, want)
        got = decode_image((tmp_path / row["out_path"]).read_bytes()).rgb
        inner = cv2.erode(want.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert inner.any() and (got[inner] == (135, 206, 250)).all()  # blue inside the edge
        assert not (got[~want] == (135, 206, 250)).all(axis=1).any()  # and nowhere else


def test_protocol_images_redraw_synth_pixels(mixed, lfw_mini: Path) -> None:
    """The frozen mask-mix images carry mask_style (and mask_type); rendering them from the
    protocol's geometry gives synth's output pixels."""
    out, rows = mixed
    refs = [r for r in images_from_manifest(out / "manifest.parquet") if r["masked"]]
    by_src = {r["src_path"]: r for r in rows if r["variant"] == MIX_VARIANT}
    assert len(refs) == len(by_src) > 0
    for ref in refs:
        assert ref["variant"] == MIX_VARIANT and ref["mask_type"] == ref["mask_style"]["mask_type"]
        assert ref["mask_style"] == json.loads(by_src[ref["src_path"]]["mask_style"])
        got = decode_image((out / by_src[ref["src_path"]]["out_path"]).read_bytes()).rgb
        assert np.array_equal(render_image(ref, lfw_mini), got), ref["id"]


def test_eval_prepares_the_drawn_mask(mixed, lfw_mini: Path) -> None:
    """eval's prepare draws a mask-mix image's recorded mask (its protocol crop is synth's
    output pixel for pixel, its aligned crops are masked too), and the embedding cache key
    follows the record, so two looks of one face never share an embedding."""
    from mfrbench.evaluate.prepare import content_key, prepare
    from mfrbench.models.base import Preprocess

    out, rows = mixed
    refs = [r for r in images_from_manifest(out / "manifest.parquet") if r["masked"]]
    by_src = {r["src_path"]: r for r in rows if r["variant"] == MIX_VARIANT}
    protocol_crop = Preprocess(None, "rgb", (0.0,), (1.0,), "protocol")
    chip = Preprocess((112, 112), "rgb", (0.0,), (1.0,), "arcface-112")
    for ref in refs:
        got = decode_image((out / by_src[ref["src_path"]]["out_path"]).read_bytes()).rgb
        assert np.array_equal(prepare(ref, lfw_mini, protocol_crop)[0], got), ref["id"]
        bare = {k: v for k, v in ref.items() if k != "mask_style"}
        bare.update(mask_polygon=None, color_rgb=None)
        assert not np.array_equal(prepare(ref, lfw_mini, chip)[0], prepare(bare, lfw_mini, chip)[0])
        other = json.loads(json.dumps(ref["mask_style"]))
        if other["style"]:  # a drawn look: its whole style decides the pixels
            other["style"]["seed"] += 1
        else:  # paper: its colour
            other["color_rgb"] = [(c + 40) % 256 for c in other["color_rgb"]]
        for pre in (protocol_crop, chip):
            assert content_key(ref, pre) != content_key(dict(ref, mask_style=other), pre)


def test_mix_protocol_through_the_cli(mixed, lfw_mini: Path, tmp_path: Path) -> None:
    out, _ = mixed
    cmd = [sys.executable, "-m", "mfrbench", "pairs", "manifest", str(out / "manifest.parquet")]
    cmd += ["--name", "mix-test", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    protocol = load_protocol(tmp_path / "mix-test.json")  # validated on load
    mixed_images = [im for im in protocol["images"] if im["variant"] == MIX_VARIANT]
    assert mixed_images and all("mask_style" in im for im in mixed_images)
    assert all("mask_style" not in im for im in protocol["images"] if im not in mixed_images)
    bad = dict(mixed_images[0], mask_style={**mixed_images[0]["mask_style"], "mask_type": "hat"})
    with pytest.raises(UserError, match=r"mask_style\.mask_type"):
        validate({**protocol, "images": [bad, *protocol["images"][1:]]})
    unmasked = next(im for im in protocol["images"] if im["variant"] == "unmasked")
    with pytest.raises(UserError, match="mask_style is on mask-mix images"):
        validate({**protocol, "images": [dict(unmasked, mask_style={}), *protocol["images"]]})
    with pytest.raises(UserError, match="--colors does not apply"):
        pick_colors(protocol["images"], ["blue"], True)


def test_cli_bad_mix_is_one_line(lfw_mini: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "mfrbench", "synth", "lfw", "--root", str(lfw_mini)]
    cmd += ["--masks", "surgical:0.5,hat:0.5", "--out", str(tmp_path / "o")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown mask kind 'hat'" in done.stderr
    assert "Traceback" not in done.stderr
