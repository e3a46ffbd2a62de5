"""The protocols shipped in protocols/: they load, match the real LFW, render reproducibly, and
their frozen geometry is what this machine's synth pipeline produces."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mfrbench.datasets import Record
from mfrbench.protocol import (
    compute_digest,
    freeze,
    load_protocol,
    protocol_id,
    render_protocol,
    verify,
)
from mfrbench.synth import SynthConfig, SynthPipeline

PROTOCOLS = Path(__file__).resolve().parents[1] / "protocols"
SHIPPED = ["lfw-view2-masked-v1", "lfw-view2-unmasked-v1", "lfw-masked-disjoint-v1"]


@pytest.fixture(scope="module", params=SHIPPED)
def shipped(request: pytest.FixtureRequest) -> dict:
    return load_protocol(PROTOCOLS / f"{request.param}.json")


def test_shipped_protocols_load_and_match_real_lfw(shipped: dict, lfw_root: Path) -> None:
    assert protocol_id(shipped).startswith(shipped["name"] + "@")
    pairs = shipped["pairs"]
    assert len(pairs) in (6000, 12000)
    for fold in range(10):
        in_fold = [p for p in pairs if p["fold"] == fold]
        assert sum(p["label"] for p in in_fold) * 2 == len(in_fold)
    report = verify(shipped, lfw_root, workers=2)
    assert report.ok, report.message()
    assert report.checked == shipped["dataset"]["n_images"]


def test_disjoint_protocol_keeps_identities_in_one_fold() -> None:
    protocol = load_protocol(PROTOCOLS / "lfw-masked-disjoint-v1.json")
    identity = {im["id"]: im["identity"] for im in protocol["images"]}
    folds_of: dict[str, set[int]] = {}
    for p in protocol["pairs"]:
        for side in (p["a"], p["b"]):
            folds_of.setdefault(identity[side], set()).add(p["fold"])
    assert all(len(f) == 1 for f in folds_of.values())


def test_shipped_images_record_detector_and_landmarks(shipped: dict) -> None:
    """MTCNN found all faces but the cascade's dlib fallback on one photo; dlib landmarks."""
    detectors = {im["detector"] for im in shipped["images"]}
    assert detectors == {"mtcnn", "dlib"}
    assert {im["landmarks"] for im in shipped["images"]} == {"dlib"}
    fallback = {im["src_path"] for im in shipped["images"] if im["detector"] == "dlib"}
    assert fallback == {"Marilyn_Monroe/Marilyn_Monroe_0001.jpg"}


def test_masked_view2_masks_the_second_image_in_all_colours() -> None:
    protocol = load_protocol(PROTOCOLS / "lfw-view2-masked-v1.json")
    images = {im["id"]: im for im in protocol["images"]}
    colours = set()
    for p in protocol["pairs"]:
        assert not images[p["a"]]["masked"] and images[p["b"]]["masked"]
        colours.add(images[p["b"]]["color"])
    assert colours == {"black", "white", "blue"}


def _fold0(protocol: dict) -> dict:
    """A self-consistent sub-protocol: fold 0 only (for fast render tests)."""
    pairs = [p for p in protocol["pairs"] if p["fold"] == 0]
    used = {s for p in pairs for s in (p["a"], p["b"])}

    sub = SimpleNamespace(
        strategy=protocol["generation"]["strategy"],
        params=protocol["generation"]["params"],
        warnings=[],
        images=[im for im in protocol["images"] if im["id"] in used],
        pairs=pairs,
        summary=protocol["summary"],
    )
    return freeze(sub, name="fold0", dataset="lfw", mfrbench_version=protocol["mfrbench_version"])


def _tree(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*.png"))
    }


def test_render_twice_gives_identical_bytes(lfw_root: Path, tmp_path: Path) -> None:
    sub = _fold0(load_protocol(PROTOCOLS / "lfw-view2-masked-v1.json"))
    first = render_protocol(sub, lfw_root, tmp_path / "a", workers=2)
    render_protocol(sub, lfw_root, tmp_path / "b", workers=1)
    assert first.failed == 0 and first.written == len(sub["images"]) > 900
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


def test_frozen_geometry_is_what_synth_computes_here(lfw_root: Path, tmp_path: Path) -> None:
    """Re-detect and re-landmark a sample of the shipped masked images from scratch."""
    protocol = load_protocol(PROTOCOLS / "lfw-view2-masked-v1.json")
    params = protocol["generation"]["params"]
    masked = [im for im in protocol["images"] if im["masked"]][::200]
    config = SynthConfig(
        dataset="lfw", root=str(lfw_root), colors=",".join(params["colors"]), min_face="native"
    )
    pipeline = SynthPipeline(config, lfw_root, tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in synth workers
    try:
        rows_by_image = {
            im["id"]: {
                r["variant"]: r
                for r in pipeline.process(
                    Record("lfw", im["identity"], im["src_path"], im["src_sha256"], None),
                    im["src_path"],
                )
            }
            for im in masked
        }
    finally:
        torch.set_num_threads(threads)
    for im in masked:
        row = rows_by_image[im["id"]][im["variant"]]
        assert row["status"] == "ok"
        assert row["roi_box"] == im["roi_box"], im["id"]
        assert row["face_box"] == im["face_box"], im["id"]
        assert (row["detector"], row["landmarks_backend"]) == (im["detector"], im["landmarks"])
        assert np.array(row["mask_polygon"]).reshape(-1, 2).tolist() == im["mask_polygon"]
    assert len(masked) >= 20


@pytest.mark.slow
def test_rebuild_from_full_lfw_reproduces_digests(lfw_root: Path, tmp_path: Path) -> None:
    """protocols/rebuild.sh (the commands in protocols/README.md) rebuilds every shipped protocol
    from the full LFW with the same digest (about 5 minutes: synth on 13,233 images)."""
    mfrbench = Path(sys.executable).with_name("mfrbench")
    subprocess.run(
        [
            "bash",
            str(PROTOCOLS / "rebuild.sh"),
            str(lfw_root),
            str(tmp_path / "synth"),
            str(tmp_path),
        ],
        check=True,
        timeout=3600,
        env={**os.environ, "MFRBENCH": str(mfrbench)},
        capture_output=True,
    )
    for name in SHIPPED:
        shipped = load_protocol(PROTOCOLS / f"{name}.json")
        again = json.loads((tmp_path / f"{name}.json").read_text())
        if again["mfrbench_version"] != shipped["mfrbench_version"]:  # a later release
            again["mfrbench_version"] = shipped["mfrbench_version"]
            again["digest"] = compute_digest(again)
        assert again["digest"] == shipped["digest"], name
