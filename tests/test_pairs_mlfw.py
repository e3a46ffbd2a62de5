"""MLFW-style mask assignment (``--mask-assignment mlfw``): genuine masked-masked pairs wear two
different colours, impostor pairs one; deterministic, recorded, and the default unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mfrbench import pairs as P
from mfrbench.errors import UserError
from mfrbench.manifest import SYNTH_SCHEMA, rows_to_table, with_metadata
from mfrbench.pairs import mlfw as M
from mfrbench.protocol import freeze, load_protocol

COLORS = ("black", "white", "blue")
RGB = {"black": [0, 0, 0], "white": [255, 255, 255], "blue": [135, 206, 250]}
#: 60 identities: every third has 4 photos (genuine pairs), the rest one (impostors only).
COUNTS = {f"P{k:02d}": (4 if k % 3 == 0 else 1) for k in range(60)}
ALL_TYPES = ("masked-masked", "masked-unmasked", "unmasked-unmasked")
REPO = Path(__file__).resolve().parents[1]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def manifest_rows(counts: dict[str, int]) -> list[dict]:
    """Synth-manifest rows: per photo an unmasked variant and one per colour, all ``ok``."""
    rows = []
    for ident, n in counts.items():
        for j in range(1, n + 1):
            src = P.lfw_rel_path(ident, j)
            for color in (None, *COLORS):
                variant = f"mask-{color}" if color else "unmasked"
                rows.append(
                    {
                        "key": f"{src}|{variant}",
                        "dataset": "lfw",
                        "identity": ident,
                        "src_path": src,
                        "src_sha256": sha(src),
                        "variant": variant,
                        "masked": color is not None,
                        "color": color,
                        "color_rgb": RGB[color] if color else None,
                        "status": "ok",
                        "reason": "",
                        "face_policy": "center",
                        "margin": 15,
                        "detector": "mtcnn",
                        "landmarks_backend": "dlib",
                        "mask_polygon": [10, 40, 50, 90, 90, 40] if color else None,
                        "face_box": [0, 0, 100, 120],
                        "det_box": [0.0, 0.0, 100.0, 120.0],
                        "det_score": 0.99,
                        "det_points5": [30.0, 40.0, 70.0, 40.0, 50.0, 60.0, 35.0, 80.0, 65.0, 80.0],
                        "landmarks": [float(v) for v in range(136)],
                        "roi_box": [0, 0, 100, 60],
                        "out_width": 112,
                        "out_height": 56,
                        "roi": "upper-half",
                        "size": 112,
                        "seed": 0,
                        "tool_version": "test",
                    }
                )
    return rows


def synth_images(counts: dict[str, int], missing: frozenset[str] = frozenset()) -> list[dict]:
    """Image refs of :func:`manifest_rows` (read as ``pairs lfw`` reads a manifest), less the
    ids in ``missing`` (as a failed synth would leave them out)."""
    images = P.images_from_manifest(rows_to_table(manifest_rows(counts)))
    return [im for im in images if im["id"] not in missing]


def folds(images: list[dict], **kw) -> P.PairSet:
    args = {"n_folds": 2, "per_fold": 20, "seed": 3, "pair_types": ALL_TYPES, **kw}
    return P.lfw_folds(images, **args)


def dump(pairset: P.PairSet) -> str:
    return json.dumps(pairset.to_dict(), sort_keys=True)


def colours_of(pairset: P.PairSet, pair_type: str = "masked-masked") -> list[tuple]:
    imgs = {im["id"]: im for im in pairset.images}
    return [
        (p["label"], imgs[p["a"]]["color"], imgs[p["b"]]["color"])
        for p in pairset.pairs
        if p["pair_type"] == pair_type
    ]


def photos_of(pairset: P.PairSet, pair_type: str) -> list[tuple]:
    imgs = {im["id"]: im for im in pairset.images}
    return sorted(
        (p["fold"], p["label"], imgs[p["a"]]["src_path"], imgs[p["b"]]["src_path"])
        for p in pairset.pairs
        if p["pair_type"] == pair_type
    )


def test_genuine_sides_differ_impostors_share_other_types_keep_photo_colour():
    ps = folds(synth_images(COUNTS), mask_assignment="mlfw")
    mm = colours_of(ps)
    assert Counter(label for label, _, _ in mm) == {1: 40, 0: 40}
    assert all(a != b for label, a, b in mm if label == 1)
    assert all(a == b for label, a, b in mm if label == 0)
    # every colour, on both sides, among genuine and impostor pairs
    for label in (0, 1):
        for side in (1, 2):
            assert {t[side] for t in mm if t[0] == label} == set(COLORS)
    # the same photos for every pair type; masked-unmasked keeps the per-photo colour
    assert photos_of(ps, "masked-masked") == photos_of(ps, "unmasked-unmasked")
    assert photos_of(ps, "masked-unmasked") == photos_of(ps, "unmasked-unmasked")
    imgs = {im["id"]: im for im in ps.images}
    for p in ps.pairs:
        if p["pair_type"] == "masked-unmasked":
            probe = imgs[p["b"]]
            assert probe["color"] == P.color_for(probe["src_path"], COLORS, 3)
    assert ps.summary["mask_pairs"] == {
        "mask_assignment": "mlfw",
        "genuine_same": 0,
        "genuine_different": 40,
        "impostor_same": 40,
        "impostor_different": 0,
    }
    # the per-photo default, by contrast, gives genuine pairs matching masks about 1/3 the time
    plain = colours_of(folds(synth_images(COUNTS)))
    assert any(a == b for label, a, b in plain if label == 1)
    assert any(a != b for label, a, b in plain if label == 0)


def test_impostor_same_mask_probability_is_seeded():
    images = synth_images({f"P{k:03d}": 4 for k in range(200)})
    kw = {"n_folds": 1, "per_fold": 400, "pair_types": ("masked-masked",)}
    never = colours_of(folds(images, mask_assignment="mlfw", impostor_same_mask=0.0, **kw))
    assert all(a != b for _, a, b in never)
    half = folds(images, mask_assignment="mlfw", impostor_same_mask=0.5, **kw)
    same = sum(a == b for label, a, b in colours_of(half) if label == 0)
    assert 160 <= same <= 240  # 400 seeded coin flips, p = 0.5
    assert half.summary["mask_pairs"]["impostor_same"] == same
    assert half.params["impostor_same_mask"] == 0.5
    assert all(a != b for label, a, b in colours_of(half) if label == 1)
    again = folds(images, mask_assignment="mlfw", impostor_same_mask=0.5, **kw)
    assert dump(again) == dump(half)


def test_pair_colors_is_a_pure_function_of_seed_and_pair():
    pairs = [(f"A/A_{i:04d}.jpg", f"B/B_{i:04d}.jpg", i % 2) for i in range(3000)]
    first = [M.pair_colors(a, b, lab, COLORS, 0, 1.0) for a, b, lab in pairs]
    # colour list order and duplicates do not matter; the seed does
    assert first == [
        M.pair_colors(a, b, lab, ["blue", "black", "white", "blue"], 0, 1.0) for a, b, lab in pairs
    ]
    assert first != [M.pair_colors(a, b, lab, COLORS, 1, 1.0) for a, b, lab in pairs]
    genuine = Counter(first[i] for i in range(1, 3000, 2))
    assert len(genuine) == 6 and min(genuine.values()) > 200  # 6 ordered colour pairs, uniform
    impostor = Counter(first[i] for i in range(0, 3000, 2))
    assert set(impostor) == {(c, c) for c in COLORS}
    with pytest.raises(UserError, match="at least two colours"):
        M.pair_colors("a", "b", 1, ["black"], 0, 1.0)


def test_deterministic_across_input_order_work_split_and_processes():
    images = synth_images(COUNTS)
    ps = folds(images, mask_assignment="mlfw")
    assert dump(folds(list(reversed(images)), mask_assignment="mlfw")) == dump(ps)
    # assignment is per pair: any split of the pairs over workers gives the same result
    raw = folds(images, pair_types=("masked-masked",)).pairs
    by_id = {im["id"]: im for im in images}
    whole = M.assign(raw, by_id, COLORS, 5, 1.0)
    parts = [M.assign(raw[k::3], by_id, COLORS, 5, 1.0) for k in range(3)]
    assert [parts[i % 3][i // 3] for i in range(len(raw))] == whole
    # a fresh interpreter with another hash seed draws the same pairs
    code = (
        "import hashlib, json, sys; sys.path.insert(0, sys.argv[1]); "
        "import test_pairs_mlfw as t; "
        "ps = t.folds(t.synth_images(t.COUNTS), mask_assignment='mlfw'); "
        "print(hashlib.sha256(t.dump(ps).encode()).hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "4242"):
        r = subprocess.run(
            [sys.executable, "-c", code, str(Path(__file__).parent)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        assert r.returncode == 0, r.stderr
        digests.add(r.stdout.strip())
    assert digests == {hashlib.sha256(dump(ps).encode()).hexdigest()}


def test_parameters_recorded_digest_differs_and_default_unchanged():
    images = synth_images(COUNTS)
    default = folds(images)
    assert dump(folds(images, mask_assignment="per-photo")) == dump(default)
    assert "mask_assignment" not in default.params and "mask_pairs" not in default.summary
    mlfw = folds(images, mask_assignment="mlfw")
    assert mlfw.params == {**default.params, "mask_assignment": "mlfw", "impostor_same_mask": 1.0}
    frozen = [freeze(ps, name="x", dataset="lfw", mfrbench_version="0") for ps in (default, mlfw)]
    assert frozen[1]["generation"]["params"]["mask_assignment"] == "mlfw"
    assert frozen[0]["digest"] != frozen[1]["digest"]
    # the probability is part of the parameters, hence of the digest
    other = freeze(
        folds(images, mask_assignment="mlfw", impostor_same_mask=0.5),
        name="x",
        dataset="lfw",
        mfrbench_version="0",
    )
    assert other["digest"] != frozen[1]["digest"]


def test_shipped_view2_masked_protocol_regenerates_byte_identical(lfw_root: Path):
    """The default path rebuilds protocols/lfw-view2-masked-v1.json from its own images and
    LFW's pairs.txt with the shipped digest (tests/test_shipped_protocols.py rebuilds all three
    from scratch in its slow test)."""
    shipped = json.loads((REPO / "protocols" / "lfw-view2-masked-v1.json").read_text())
    params = shipped["generation"]["params"]
    ps = P.official_lfw_pairs(
        lfw_root / "pairs.txt",
        shipped["images"],
        pair_types=params["pair_types"],
        seed=params["seed"],
        colors=params["colors"],
    )
    again = freeze(
        ps,
        name=shipped["name"],
        version=shipped["version"],
        description=shipped["description"],
        citation=shipped["citation"],
        dataset=shipped["dataset"]["name"],
        mfrbench_version=shipped["mfrbench_version"],
    )
    assert again["digest"] == shipped["digest"]


def test_official_list_with_mlfw_needs_every_colour(tmp_path: Path):
    path = tmp_path / "pairs.txt"
    path.write_text("1\t2\nP00 1 2\nP03 2 4\nP01 1 P02 1\nP04 1 P05 1\n")
    images = synth_images(COUNTS)
    ps = P.official_lfw_pairs(path, images, pair_types=ALL_TYPES, mask_assignment="mlfw")
    mm = colours_of(ps)
    assert len(mm) == 4 and all((a != b) == (label == 1) for label, a, b in mm)
    assert (
        ps.params["mask_assignment"] == "mlfw"
        and ps.summary["mask_pairs"]["genuine_different"] == 2
    )
    src = "P03/P03_0004.jpg"
    other = next(c for c in COLORS if c != P.color_for(src, COLORS, 0))
    short = synth_images(COUNTS, frozenset({f"mask-{other}:{src}"}))
    with pytest.raises(UserError, match=rf"1 image\(s\).*{src} \(mask-{other}\)"):
        P.official_lfw_pairs(path, short, pair_types=ALL_TYPES, mask_assignment="mlfw")
    # the per-photo default needs only each photo's own colour
    assert len(P.official_lfw_pairs(path, short, pair_types=ALL_TYPES).pairs) == 12


def test_folds_leave_out_photos_lacking_a_colour_with_a_warning():
    gone = frozenset({"mask-blue:P00/P00_0001.jpg"})
    ps = folds(synth_images(COUNTS, gone), mask_assignment="mlfw")
    assert all(im["src_path"] != "P00/P00_0001.jpg" for im in ps.images)
    assert any("lack a mask colour" in w and "P00/P00_0001.jpg" in w for w in ps.warnings)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"mask_assignment": "mflw"}, "unknown mask assignment 'mflw'"),
        ({"mask_assignment": "mlfw", "pair_types": ("masked-unmasked",)}, "masked-masked"),
        ({"mask_assignment": "mlfw", "impostor_same_mask": 1.5}, "between 0 and 1"),
        ({"impostor_same_mask": 0.5}, "only to mask assignment mlfw"),
        ({"mask_assignment": "mlfw", "colors": ("blue",)}, "at least two colours"),
    ],
)
def test_user_errors(kw: dict, match: str):
    with pytest.raises(UserError, match=match):
        folds(synth_images(COUNTS), **kw)


# ----------------------------------------------------------------------------- CLI


def _manifest(path: Path) -> Path:
    """A synth manifest file for COUNTS (pairs never decode images, so none are written)."""
    schema = with_metadata(SYNTH_SCHEMA, {"params": {"dataset": "lfw"}})
    pq.write_table(rows_to_table(manifest_rows(COUNTS), schema), path)
    return path


def mfrbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mfrbench", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_mlfw_protocol(tmp_path: Path):
    manifest = _manifest(tmp_path / "manifest.parquet")
    common = ["pairs", "lfw", str(manifest), "--folds", "2", "--per-fold", "20", "--name", "m"]
    r = mfrbench(*common, "--mask-assignment", "mlfw", "--out", str(tmp_path / "mlfw.json"))
    assert r.returncode == 0, r.stderr
    mlfw = load_protocol(tmp_path / "mlfw.json")
    params = mlfw["generation"]["params"]
    assert params["mask_assignment"] == "mlfw" and params["impostor_same_mask"] == 1.0
    assert params["pair_types"] == ["masked-masked"]  # mlfw's default pair type
    imgs = {im["id"]: im for im in mlfw["images"]}
    for p in mlfw["pairs"]:
        a, b = imgs[p["a"]]["color"], imgs[p["b"]]["color"]
        assert (a != b) == (p["label"] == 1)
    r = mfrbench(*common, "--pair-types", "masked-masked", "--out", str(tmp_path / "plain.json"))
    assert r.returncode == 0, r.stderr
    plain = load_protocol(tmp_path / "plain.json")
    assert "mask_assignment" not in plain["generation"]["params"]
    assert plain["digest"] != mlfw["digest"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--mask-assignment", "bogus"], "unknown mask assignment 'bogus'"),
        (["--mask-assignment", "mlfw", "--pair-types", "masked-unmasked"], "masked-masked"),
        (["--impostor-same-mask", "0.5"], "only to mask assignment mlfw"),
    ],
)
def test_cli_option_mistakes_exit_2_with_one_line(tmp_path: Path, args: list[str], needle: str):
    r = mfrbench("pairs", "lfw", str(tmp_path / "absent.parquet"), *args)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("error:") and needle in lines[0]
