"""pairs --probe-masks: protocols that choose their probes' masks, in exact shares, on real
LFW faces; the same pairs as without it; frozen, rendered and evaluated from the record."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mfrbench.errors import UserError
from mfrbench.evaluate.prepare import content_key, prepare
from mfrbench.models.base import Preprocess
from mfrbench.pairs import images_from_manifest, lfw_folds
from mfrbench.pairs import probe_masks as PM
from mfrbench.protocol import freeze, load_protocol, validate
from mfrbench.protocol.render import render_image
from mfrbench.records import MIX_VARIANT
from mfrbench.synth import SynthConfig, run_synth
from mfrbench.vision.mask_styles import MaskStyle

SPEC = "surgical/blue:12,surgical:3,cloth/patterned:2,cloth/red/solid:1,n95,kn95,paper:2"
PROTOCOL_CROP = Preprocess(None, "rgb", (0.0,), (1.0,), "protocol")


@pytest.fixture(scope="module")
def manifest(lfw_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lfw-mini through synth (dlib, two polygon colours, whole-face crops)."""
    out = tmp_path_factory.mktemp("probe-synth")
    config = SynthConfig(
        dataset="lfw", root=str(lfw_mini), detector="dlib", roi="none", colors="black,white"
    )
    run_synth(config, out, workers=1)
    return out / "manifest.parquet"


def _pairs(manifest: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mfrbench", "pairs", "manifest", str(manifest), "--out", str(out)]
    return subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=300)


def _by_src(protocol: dict) -> list[tuple]:
    """The pairs as (split, label, source a, masked a, source b, masked b), sorted."""
    img = {im["id"]: im for im in protocol["images"]}
    return sorted(
        (p["split"], p["label"], img[p["a"]]["src_path"], img[p["a"]]["masked"],
         img[p["b"]]["src_path"], img[p["b"]]["masked"])
        for p in protocol["pairs"]
    )  # fmt: skip


def test_parse_entries_weights_and_mistakes() -> None:
    mix = PM.parse_probe_masks("Surgical/BLUE:2, cloth/dots/white:1,n95")
    assert [e.label for e in mix.entries] == ["surgical/blue", "cloth/white/dots", "n95"]
    assert mix.weights == (0.5, 0.25, 0.25)
    assert PM.parse_probe_masks(mix.spec()) == mix  # the canonical text parses back
    for bad, match in [
        ("hat:1", "unknown mask kind 'hat'"),
        ("surgical/red", "'red' is not a surgical colour"),
        ("n95/dots", "not a n95 colour"),
        ("cloth/red/blue", "given twice"),
        ("surgical:0", "positive numbers"),
        ("surgical:x", "not a number"),
        ("surgical,surgical:2", "given twice"),
        ("surgical,,n95", "empty mask entry"),
        ("@/nonexistent/labels.txt", "file not found"),
    ]:
        with pytest.raises(UserError, match=match):
            PM.parse_probe_masks(bad)


def test_quotas_are_exact_largest_remainder() -> None:
    assert PM.quotas(10, [0.5, 0.3, 0.2]) == [5, 3, 2]
    assert PM.quotas(7, [1 / 3] * 3) == [3, 2, 2]  # ties go to the first
    assert PM.quotas(291, [0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1]) == [88, 58, 29, 29, 29, 29, 29]
    for n in (0, 1, 13, 1000):
        got = PM.quotas(n, [0.55, 0.25, 0.15, 0.05])
        assert sum(got) == n and all(
            abs(c - n * w) < 1 for c, w in zip(got, [0.55, 0.25, 0.15, 0.05], strict=True)
        )


def test_counts_from_an_mfr2_label_file_and_a_protocol(tmp_path: Path) -> None:
    labels = tmp_path / "mfr2_labels.txt"
    lines = ["A, 1, no-mask", "A, 2, surgical_blue", "A, 3, surgical_blue", "B, 1, N95"]
    lines += ["B, 2, N99", "B, 3, cloth_textured", "C, 1, KN95", "C, 2, surgical_blue"]
    labels.write_text("\n".join(lines) + "\n")
    mix = PM.parse_probe_masks(f"@{labels}")
    got = dict(zip([e.label for e in mix.entries], mix.weights, strict=True))
    assert got == pytest.approx(
        {"kn95": 1 / 7, "n95": 2 / 7, "cloth/patterned": 1 / 7, "surgical/blue": 3 / 7}
    )
    assert mix.record()["from"]["file"] == "mfr2_labels.txt"
    labels.write_text("A, 1, gas_mask\n")
    with pytest.raises(UserError, match="cannot draw: gas_mask"):
        PM.parse_probe_masks(f"@{labels}")
    protocol = tmp_path / "p.json"
    images = [{"masked": True, "mask_type": t} for t in ("surgical_white", "cloth", "cloth")]
    protocol.write_text(json.dumps({"images": [*images, {"masked": False, "mask_type": None}]}))
    mix = PM.parse_probe_masks(f"@{protocol}")
    assert {e.label: w for e, w in zip(mix.entries, mix.weights, strict=True)} == pytest.approx(
        {"cloth": 2 / 3, "surgical/white": 1 / 3}
    )


def test_probe_masks_exact_shares_same_pairs_and_deterministic(
    manifest: Path, lfw_mini: Path, tmp_path: Path
) -> None:
    """Each masked probe gets one drawn mask, the entries in exact shares, fixed colours and
    patterns honoured; the pairs are those of the protocol without --probe-masks; the file is
    the same bytes twice and changes with the seed; render and eval draw the record."""
    plain, first, again, other = (tmp_path / n for n in ("plain", "a", "b", "c"))
    for out, extra in [
        (plain, []),
        (first, ["--probe-masks", SPEC]),
        (again, ["--probe-masks", SPEC]),
        (other, ["--probe-masks", SPEC, "--seed", "1"]),
    ]:
        done = _pairs(manifest, out, *extra)
        assert done.returncode == 0, done.stderr
    (f_plain,), (f_first,), (f_again,), (f_other,) = (
        sorted(p.glob("*.json")) for p in (plain, first, again, other)
    )
    assert f_first.read_bytes() == f_again.read_bytes()
    protocol = load_protocol(f_first)  # validated on load
    assert _by_src(protocol) == _by_src(load_protocol(f_plain))
    masked = [im for im in protocol["images"] if im["masked"]]
    assert masked and all(im["variant"] == MIX_VARIANT for im in masked)
    mix = PM.parse_probe_masks(SPEC)
    want = dict(
        zip([e.label for e in mix.entries], PM.quotas(len(masked), mix.weights), strict=True)
    )
    assert protocol["summary"]["probe_masks"] == want
    assert protocol["generation"]["params"]["probe_masks"] == {"spec": mix.spec()}
    kinds = Counter(im["mask_type"] for im in masked)
    assert kinds == {
        "surgical": want["surgical/blue"] + want["surgical"],
        "cloth": want["cloth/patterned"] + want["cloth/red/solid"],
        "n95": want["n95"],
        "kn95": want["kn95"],
        "paper": want["paper"],
    }
    styles = [
        MaskStyle.from_json(im["mask_style"]["style"])
        for im in masked
        if im["mask_type"] != "paper"
    ]
    assert sum(s.kind == "surgical" and im_c == "blue" for s, im_c in zip(
        styles, [im["color"] for im in masked if im["mask_type"] != "paper"], strict=True
    )) >= want["surgical/blue"]  # fmt: skip
    cloth = [s for s in styles if s.kind == "cloth"]
    assert sum(s.pattern != "solid" for s in cloth) >= want["cloth/patterned"]
    assert sum(s.pattern == "solid" and s.color == (168, 36, 44) for s in cloth) >= 1
    for im in masked:
        if im["mask_type"] == "paper":
            assert im["mask_polygon"] and im["color"] in ("black", "white", "blue")
        else:
            assert im["mask_polygon"] is None and im["color_rgb"] == list(
                MaskStyle.from_json(im["mask_style"]["style"]).color
            )
    moved = {
        i["src_path"]: i["mask_style"] for i in load_protocol(f_other)["images"] if i["masked"]
    }
    common = [im for im in masked if im["src_path"] in moved]  # seed 1 draws other pairs too
    assert len(common) > 50
    assert sum(moved[im["src_path"]] != im["mask_style"] for im in common) > len(common) // 2
    for im in masked[::25]:  # eval's protocol crop is the rendered image; keys follow the mask
        rendered = render_image(im, lfw_mini)
        assert np.array_equal(prepare(im, lfw_mini, PROTOCOL_CROP)[0], rendered)
        bare = dict(im, variant="unmasked", masked=False, color=None, color_rgb=None)
        bare.pop("mask_style")
        bare.update(mask_polygon=None, mask_type=None)
        assert not np.array_equal(render_image(bare, lfw_mini), rendered)
        assert content_key(im, PROTOCOL_CROP) != content_key(bare, PROTOCOL_CROP)


def test_folds_masked_masked_through_the_library(manifest: Path) -> None:
    """lfw folds with both sides masked: every masked photo gets its one mask; freezes."""
    mix = PM.parse_probe_masks("surgical:1,cloth:1")
    before = images_from_manifest(manifest)
    images = PM.as_mix_images(before)
    sources = {im["src_path"] for im in before if im["masked"]}
    assert sum(im["variant"] == MIX_VARIANT for im in images) == len(sources) > 280
    assert len(images) == len(before) - len(sources)  # two colours became one drawn mask
    pairset = lfw_folds(
        images, n_folds=2, per_fold=20, seed=3, pair_types=["masked-masked", "masked-unmasked"]
    )
    done = PM.with_probe_masks(pairset, mix, 3)
    protocol = freeze(done, name="probe-folds", dataset="lfw")
    validate(protocol)
    masked = [im for im in protocol["images"] if im["masked"]]
    counts = Counter(im["mask_type"] for im in masked)
    assert abs(counts["surgical"] - counts["cloth"]) <= 1 and sum(counts.values()) == len(masked)
    assert sum(protocol["summary"]["colors"].values()) == len(masked)


def test_cli_mistakes_are_one_line(manifest: Path, tmp_path: Path) -> None:
    for extra, match in [
        (["--probe-masks", "surgical", "--colors", "black"], "drop --colors"),
        (["--probe-masks", "surgical/orange"], "'orange' is not a surgical colour"),
    ]:
        done = _pairs(manifest, tmp_path, *extra)
        assert done.returncode == 2 and match in done.stderr and "Traceback" not in done.stderr
    cmd = [sys.executable, "-m", "mfrbench", "pairs", "lfw", str(manifest), "--out", str(tmp_path)]
    cmd += ["--probe-masks", "surgical", "--mask-assignment", "mlfw"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "drop --probe-masks" in done.stderr


def test_pairs_are_labelled_by_drawn_mask_kind() -> None:
    """eval's by-mask-type breakdown: a drawn mask's kind against an unmasked synthetic image
    (``no-mask``); real photos need their dataset's labels on both sides, as before."""
    from mfrbench.evaluate.scores import pair_mask_types

    drawn = {"synthetic": True, "masked": True, "mask_type": "n95"}
    bare = {"synthetic": True, "masked": False, "mask_type": None}
    assert pair_mask_types(bare, drawn) == "n95+no-mask"
    assert pair_mask_types(drawn, dict(drawn, mask_type="cloth")) == "cloth+n95"
    assert pair_mask_types(drawn, drawn) == "n95"
    colour = {"synthetic": True, "masked": True, "mask_type": None}  # synth --colors: no label
    assert pair_mask_types(bare, colour) is None
    assert pair_mask_types(bare, bare) is None  # a control pair of synth images: no label row
    real = {"synthetic": False, "masked": False, "mask_type": None}
    assert pair_mask_types(real, {**real, "masked": True, "mask_type": "surgical_blue"}) is None
    assert pair_mask_types({**real, "mask_type": "no-mask"}, {**real, "mask_type": "N95"}) == (
        "N95+no-mask"
    )


def test_pairs_lfw_cli_with_probe_masks(manifest: Path, tmp_path: Path) -> None:
    """`pairs lfw` folds with --probe-masks: a valid protocol whose masked probes all wear the
    drawn kind, the same pairs as without it."""
    cmd = [sys.executable, "-m", "mfrbench", "pairs", "lfw", str(manifest), "--folds", "2"]
    cmd += ["--per-fold", "15", "--pair-types", "masked-unmasked,unmasked-unmasked"]
    plain = subprocess.run(
        [*cmd, "--out", str(tmp_path / "a.json")], capture_output=True, text=True, timeout=300
    )
    drawn = subprocess.run(
        [*cmd, "--probe-masks", "n95", "--out", str(tmp_path / "b.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert plain.returncode == 0 and drawn.returncode == 0, drawn.stderr
    protocol = load_protocol(tmp_path / "b.json")
    masked = [im for im in protocol["images"] if im["masked"]]
    assert masked and {im["mask_type"] for im in masked} == {"n95"}
    assert protocol["summary"]["probe_masks"] == {"n95": len(masked)}
    assert _by_src(protocol) == _by_src(load_protocol(tmp_path / "a.json"))
