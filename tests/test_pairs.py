"""Pair strategies and pair-list parsers: counts, disjointness, balance, determinism, errors."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from mfrbench import pairs as P
from mfrbench.datasets import Record, get_dataset
from mfrbench.errors import UserError
from mfrbench.manifest import rows_to_table
from mfrbench.pairs import rmfrd as R

COLORS = ("black", "white", "blue")
RGB = {"black": [0, 0, 0], "white": [255, 255, 255], "blue": [135, 206, 250]}


# ----------------------------------------------------------------------------- layouts


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def rmfrd_images(counts: dict[str, tuple[int, int]]) -> list[dict]:
    """Real-photo layout: identity -> (masked files, unmasked files), RMFRD folder names."""
    records = []
    for ident, (n_m, n_u) in counts.items():
        for folder, n, flag in (
            ("AFDB_masked_face_dataset", n_m, True),
            ("AFDB_face_dataset", n_u, False),
        ):
            for j in range(n):
                rel = f"{folder}/{ident}/{j:03d}.jpg"
                records.append(Record("rmfrd", ident, rel, sha(rel), real_mask=flag))
    return P.images_from_records(records)


def synth_images(
    counts: dict[str, int], colors=COLORS, missing: frozenset[str] = frozenset()
) -> list[dict]:
    """Synth-manifest layout: identity -> source photos, each with unmasked + colour variants.

    ``missing`` holds image ids to leave out (as a failed synth would).
    """
    blank = dict.fromkeys(P.IMAGE_KEYS)
    out = []
    for ident, n in counts.items():
        for j in range(1, n + 1):
            src = P.lfw_rel_path(ident, j)
            base = {
                **blank,
                "identity": ident,
                "src_path": src,
                "src_sha256": sha(src),
                "synthetic": True,
                "face_box": [0, 0, 100, 120],
                "roi_box": [0, 0, 100, 60],
                "out_wh": [112, 112],
                "detector": "mtcnn",
                "landmarks": "dlib",
            }
            out.append({**base, "id": f"unmasked:{src}", "variant": "unmasked", "masked": False})
            for c in colors:
                out.append(
                    {
                        **base,
                        "id": f"mask-{c}:{src}",
                        "variant": f"mask-{c}",
                        "masked": True,
                        "color": c,
                        "color_rgb": RGB[c],
                        "mask_polygon": [[10, 40], [50, 90], [90, 40]],
                    }
                )
    return [im for im in out if im["id"] not in missing]


def dump(pairset: P.PairSet) -> str:
    return json.dumps(pairset.to_dict(), sort_keys=True)


def shuffled(items: list, seed: int = 1) -> list:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


def by_id(pairset: P.PairSet) -> dict[str, dict]:
    return {im["id"]: im for im in pairset.images}


def check_common(pairset: P.PairSet) -> None:
    """Invariants every PairSet keeps: canonical order, ids, labels vs identities, images used."""
    imgs = by_id(pairset)
    assert [p["id"] for p in pairset.pairs] == list(range(len(pairset.pairs)))
    assert [im["id"] for im in pairset.images] == sorted(imgs)
    used = {p["a"] for p in pairset.pairs} | {p["b"] for p in pairset.pairs}
    assert used == set(imgs)
    keys = [
        (
            P.SPLITS.index(p["split"]),
            -1 if p["fold"] is None else p["fold"],
            p["pair_type"],
            -p["label"],
            p["a"],
            p["b"],
        )
        for p in pairset.pairs
    ]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys), "a pair appears twice"
    for p in pairset.pairs:
        a, b = imgs[p["a"]], imgs[p["b"]]
        assert (a["identity"] == b["identity"]) == (p["label"] == 1)
        assert a["src_sha256"] != b["src_sha256"]
        if p["pair_type"] == P.MASKED_UNMASKED:
            assert (a["masked"], b["masked"]) == (False, True)
    json.dumps(pairset.to_dict(), allow_nan=False)


RMFRD_COUNTS = {f"id{k:02d}": (3 + (7 * k) % 28, 5 + (11 * k) % 36) for k in range(30)}


# ----------------------------------------------------------------------------- splits


def test_identity_split_sizes_rule_and_disjointness():
    ids = [f"p{k}" for k in range(525)]
    split = P.identity_split(ids, seed=3)
    assert Counter(split.values()) == {"train": 315, "val": 105, "test": 105}
    assert set(split) == set(ids)
    # round half up on the decimals as written: 7 * 0.25 = 1.75 -> 2; 10 * 0.25 = 2.5 -> 3
    assert P.split_sizes(7, 0.25, 0.25) == (3, 2, 2)
    assert P.split_sizes(10, 0.25, 0.25) == (4, 3, 3)
    assert P.split_sizes(3, 0.5, 0.5) == (0, 1, 2)  # val gets at most what test leaves
    assert P.identity_split(shuffled(ids), seed=3) == split
    assert P.identity_split(ids, seed=4) != split


@pytest.mark.parametrize("fracs", [(0.7, 0.4), (-0.1, 0.2), (0.2, 1.5)])
def test_identity_split_rejects_bad_fractions(fracs):
    with pytest.raises(UserError, match="fraction"):
        P.identity_split(["a", "b"], seed=0, test_frac=fracs[0], val_frac=fracs[1])


# ----------------------------------------------------------------------------- rmfrd strategy


def test_rmfrd_counts_caps_balance_and_disjoint_splits():
    images = rmfrd_images(RMFRD_COUNTS)
    ps = P.rmfrd_pairs(images, max_per_id=20, seed=0)
    check_common(ps)
    imgs = by_id(ps)
    split_of: dict[str, set[str]] = defaultdict(set)
    for p in ps.pairs:
        for side in "ab":
            split_of[imgs[p[side]]["identity"]].add(p["split"])
    assert all(len(s) == 1 for s in split_of.values())
    assert set(split_of) == set(RMFRD_COUNTS)
    sizes = Counter(next(iter(s)) for s in split_of.values())
    assert sizes == {"train": 18, "val": 6, "test": 6}
    for row in ps.summary["rows"]:
        ids = [i for i, s in split_of.items() if row["split"] in s]
        expected = sum(min(RMFRD_COUNTS[i][0], 20) * min(RMFRD_COUNTS[i][1], 20) for i in ids)
        assert row["genuine"] == expected
        assert row["impostor"] == row["genuine"]  # ratio 1.0
        got = Counter(p["label"] for p in ps.pairs if p["split"] == row["split"])
        assert got == {1: row["genuine"], 0: row["impostor"]}
        assert row["subjects"] == len(ids)
        assert row["masked"] == sum(min(RMFRD_COUNTS[i][0], 20) for i in ids)
    per_id = defaultdict(lambda: [set(), set()])
    for p in ps.pairs:
        per_id[imgs[p["b"]]["identity"]][0].add(p["b"])
        per_id[imgs[p["a"]]["identity"]][1].add(p["a"])
    for ident, (m, u) in per_id.items():
        assert len(m) == min(RMFRD_COUNTS[ident][0], 20)
        assert len(u) == min(RMFRD_COUNTS[ident][1], 20)
    assert ps.params == {
        "dataset": "rmfrd",
        "seed": 0,
        "test_frac": 0.2,
        "val_frac": 0.2,
        "max_per_id": 20,
        "impostor_ratio": 1.0,
        "colors": [],
        "pair_types": ["masked-unmasked"],
    }
    assert ps.warnings == []


def test_rmfrd_is_byte_identical_across_runs_and_input_order():
    images = rmfrd_images(RMFRD_COUNTS)
    first = dump(P.rmfrd_pairs(images, seed=5))
    assert dump(P.rmfrd_pairs(images, seed=5)) == first
    assert dump(P.rmfrd_pairs(shuffled(images, 7), seed=5)) == first
    assert dump(P.rmfrd_pairs(images, seed=6)) != first


def test_rmfrd_impostor_ratio_rounds_half_up_and_caps_with_warning():
    images = rmfrd_images({"a": (1, 1), "b": (1, 2), "c": (2, 1)})
    ps = P.rmfrd_pairs(images, test_frac=0, val_frac=0, impostor_ratio=1.5)
    (row,) = [r for r in ps.summary["rows"] if r["split"] == "train"]
    # genuine 1 + 2 + 2 = 5; 1.5 * 5 = 7.5 -> 8 wanted; cross-identity pairs: 4*4 - 5 = 11
    assert (row["genuine"], row["impostor"], row["impostor_available"]) == (5, 8, 11)
    ps = P.rmfrd_pairs(images, test_frac=0, val_frac=0, impostor_ratio=10)
    imps = {(p["a"], p["b"]) for p in ps.pairs if p["label"] == 0}
    assert len(imps) == 11  # every cross-identity pair, once
    assert any("only 11 impostor pairs exist" in w for w in ps.warnings)


def brute_first_n(images: list[dict], n: int) -> tuple[int, int]:
    """Identities covered by the first n cross-identity pairs, masked outer loop (reference)."""
    m = sorted((im["identity"], im["src_path"]) for im in images if im["masked"])
    u = sorted((im["identity"], im["src_path"]) for im in images if not im["masked"])
    listing = [(mi, ui) for mi, _ in m for ui, _ in u if mi != ui][:n]
    return len({x for x, _ in listing}), len({y for _, y in listing})


def test_impostors_cover_many_identities_unlike_first_n():
    counts = {f"id{k:02d}": (4, 6) for k in range(50)}
    images = rmfrd_images(counts)
    ps = P.rmfrd_pairs(images, test_frac=0, val_frac=0)
    (row,) = [r for r in ps.summary["rows"] if r["split"] == "train"]
    assert row["impostor"] == 50 * 24
    assert row["impostor_ids_masked"] >= 48 and row["impostor_ids_unmasked"] >= 48
    # first N in listing order: 1200 pairs = 4 masked images x 294 others + 24 -> 5 masked
    # images of 2 identities on the probe side
    assert (row["first_n_ids_masked"], row["first_n_ids_unmasked"]) == brute_first_n(images, 1200)
    assert row["first_n_ids_masked"] == 2
    table = P.summary_table(ps)
    assert table[0]["impostor ids (probe/ref)"].startswith(str(row["impostor_ids_masked"]))
    assert table[-1]["split"] == "total"


@pytest.mark.parametrize("n", [1, 5, 6, 7, 40, 200])
def test_first_n_coverage_matches_brute_force(n):
    counts = {"a": (1, 2), "b": (2, 1), "c": (1, 3), "d": (2, 2)}
    images = rmfrd_images(counts)
    ident = {k: i for i, k in enumerate(sorted(counts))}
    m = np.array(
        [
            ident[im["identity"]]
            for im in sorted(images, key=lambda x: (x["identity"], x["src_path"]))
            if im["masked"]
        ]
    )
    u = np.array(
        [
            ident[im["identity"]]
            for im in sorted(images, key=lambda x: (x["identity"], x["src_path"]))
            if not im["masked"]
        ]
    )
    total = sum(1 for x in m for y in u if x != y)
    n = min(n, total)
    assert R._first_n_coverage(m, u, n) == brute_first_n(images, n)


def test_rmfrd_on_manifest_never_pairs_a_photo_with_itself_and_uses_one_colour_per_source():
    counts = {f"Person_{k:02d}": 3 + k % 5 for k in range(40)}
    images = synth_images(counts)
    ps = P.rmfrd_pairs(shuffled(images), max_per_id=4, seed=1, test_frac=0.25, val_frac=0.25)
    check_common(ps)
    imgs = by_id(ps)
    masked_used = {p["b"] for p in ps.pairs}
    colour_of_source = defaultdict(set)
    for i in masked_used:
        colour_of_source[imgs[i]["src_path"]].add(imgs[i]["color"])
        assert imgs[i]["color"] == P.color_for(imgs[i]["src_path"], COLORS, 1)
    assert all(len(c) == 1 for c in colour_of_source.values())
    assert set(ps.summary["colors"]) == set(COLORS)
    for p in ps.pairs:
        assert imgs[p["a"]]["src_path"] != imgs[p["b"]]["src_path"]
    # genuine = |M| x |U| minus the same-photo combinations, per identity
    for row in ps.summary["rows"]:
        assert row["impostor"] == row["genuine"] > 0
    assert ps.params["colors"] == sorted(COLORS)
    assert dump(ps) == dump(
        P.rmfrd_pairs(images, max_per_id=4, seed=1, test_frac=0.25, val_frac=0.25)
    )


def test_rmfrd_manifest_genuine_count_excludes_same_source():
    images = synth_images({"A": 3, "B": 2}, colors=("blue",))
    ps = P.rmfrd_pairs(images, test_frac=0, val_frac=0)
    genuine = [p for p in ps.pairs if p["label"] == 1]
    assert len(genuine) == 3 * 2 + 2 * 1  # 3x3 - 3 same-photo, 2x2 - 2
    assert len([p for p in ps.pairs if p["label"] == 0]) == len(genuine)


def test_duplicates_are_reported_and_never_paired():
    images = rmfrd_images({"a": (2, 2), "b": (2, 2)})
    # the same file under identity b's unmasked folder and identity a's masked folder
    dup = next(im for im in images if im["identity"] == "b" and not im["masked"])
    victim = next(im for im in images if im["identity"] == "a" and im["masked"])
    victim["src_sha256"] = dup["src_sha256"]
    warnings = P.find_duplicates(images)
    assert len(warnings) == 1 and "2 identities" in warnings[0] and dup["src_path"] in warnings[0]
    ps = P.rmfrd_pairs(images, test_frac=0, val_frac=0, impostor_ratio=100)
    assert warnings[0] in ps.warnings
    check_common(ps)  # asserts no pair joins identical content
    assert sum(p["label"] == 0 for p in ps.pairs) == 4 * 4 - 8 - 1


def test_rejection_of_duplicate_content_keeps_sampling_exact():
    rng = np.random.default_rng(0)
    m_ident = np.array([0, 0, 1, 2])
    u_ident = np.array([0, 1, 1, 2, 2])
    m_sha = np.array([10, 11, 12, 13])
    u_sha = np.array([20, 12, 21, 11, 22])  # m2/u1 same id+content; m1/u3 cross duplicate
    r, c = R._sample_cross(rng, m_ident, m_sha, u_ident, u_sha, 13)
    got = set(zip(r.tolist(), c.tolist(), strict=True))
    want = {
        (i, j)
        for i in range(4)
        for j in range(5)
        if m_ident[i] != u_ident[j] and m_sha[i] != u_sha[j]
    }
    assert got == want and len(r) == 13
    assert R._cross_duplicates(m_ident, m_sha, u_ident, u_sha) == 1


def test_unreadable_sources_left_out_with_warning():
    images = rmfrd_images({"a": (2, 2), "b": (2, 2)})
    images[0]["src_sha256"] = ""
    ps = P.rmfrd_pairs(images, test_frac=0, val_frac=0)
    assert images[0]["id"] not in by_id(ps)
    assert any("unreadable" in w and images[0]["src_path"] in w for w in ps.warnings)


def test_rmfrd_user_errors():
    with pytest.raises(UserError, match="both masked and unmasked"):
        P.rmfrd_pairs(rmfrd_images({"a": (0, 3), "b": (2, 0)}))
    with pytest.raises(UserError, match="max per identity"):
        P.rmfrd_pairs(rmfrd_images({"a": (1, 1)}), max_per_id=0)
    images = rmfrd_images({"a": (1, 1)})
    with pytest.raises(UserError, match="appears twice"):
        P.rmfrd_pairs(images + images[:1])


# ----------------------------------------------------------------------------- LFW folds


LFW_COUNTS = {f"P{k:03d}": (1 if k % 3 else 2 + k % 9) for k in range(300)}


def test_lfw_folds_counts_disjoint_folds_and_same_photos_for_each_type():
    images = synth_images(LFW_COUNTS)
    ps = P.lfw_folds(
        images,
        n_folds=5,
        per_fold=30,
        seed=2,
        pair_types=("unmasked-unmasked", "masked-unmasked", "masked-masked"),
    )
    check_common(ps)
    imgs = by_id(ps)
    fold_of = defaultdict(set)
    for p in ps.pairs:
        for side in "ab":
            fold_of[imgs[p[side]]["identity"]].add(p["fold"])
        assert p["split"] == "test"
    assert all(len(f) == 1 for f in fold_of.values())
    photos = defaultdict(list)
    for p in ps.pairs:
        photos[p["pair_type"]].append(
            (p["fold"], p["label"], imgs[p["a"]]["src_path"], imgs[p["b"]]["src_path"])
        )
        assert imgs[p["a"]]["masked"] == (p["pair_type"] == "masked-masked")
        assert imgs[p["b"]]["masked"] == (p["pair_type"] != "unmasked-unmasked")
    lists = [sorted(v) for v in photos.values()]
    assert len(lists) == 3 and lists[0] == lists[1] == lists[2]
    assert Counter((f, lab) for f, lab, _, _ in lists[0]) == {
        (f, lab): 30 for f in range(5) for lab in (0, 1)
    }
    for im in imgs.values():
        if im["masked"]:
            assert im["color"] == P.color_for(im["src_path"], COLORS, 2)
    for row in ps.summary["rows"]:
        assert (row["genuine"], row["impostor"]) == (30, 30)
        assert row["subjects"] <= row["assigned"]
    assert ps.summary["total"]["assigned"] == len(LFW_COUNTS)
    assert ps.params["pair_types"] == sorted(P.PAIR_TYPES)
    first = dump(ps)
    again = P.lfw_folds(
        shuffled(images, 3),
        n_folds=5,
        per_fold=30,
        seed=2,
        pair_types=("masked-masked", "masked-unmasked", "unmasked-unmasked"),
    )
    assert dump(again) == first


def test_lfw_folds_spread_genuine_pairs_over_identities():
    counts = {"Big": 60, **{f"S{k:02d}": 3 for k in range(20)}}
    ps = P.lfw_folds(synth_images(counts), n_folds=1, per_fold=40)
    imgs = by_id(ps)
    per_identity = Counter(imgs[p["a"]]["identity"] for p in ps.pairs if p["label"] == 1)
    assert max(per_identity.values()) <= 3  # water filling: 21 identities share 40 pairs
    assert len(per_identity) == 21


def test_lfw_folds_failed_variants_make_a_source_unusable():
    counts = {f"P{k}": 3 for k in range(8)}
    gone = frozenset({f"mask-{P.color_for(P.lfw_rel_path('P0', 1), COLORS, 0)}:P0/P0_0001.jpg"})
    ps = P.lfw_folds(synth_images(counts, missing=gone), n_folds=2, per_fold=5)
    assert all(im["src_path"] != "P0/P0_0001.jpg" for im in ps.images)


def test_lfw_folds_says_how_many_pairs_a_fold_can_supply():
    counts = {f"P{k}": 2 for k in range(6)}  # 3 identities per fold: 3 genuine pairs each
    with pytest.raises(UserError, match=r"fold \d can supply only 3 genuine pairs"):
        P.lfw_folds(synth_images(counts), n_folds=2, per_fold=4)
    with pytest.raises(UserError, match="only 6 identities"):
        P.lfw_folds(synth_images(counts), n_folds=7, per_fold=1)
    with pytest.raises(UserError, match="unknown pair type"):
        P.lfw_folds(synth_images(counts), pair_types=("masked-real",))
    with pytest.raises(UserError, match="colour"):
        P.lfw_folds(synth_images(counts), colors=("red",))


def test_lfw_folds_on_real_lfw_mini_records(lfw_mini):
    images = P.images_from_records(get_dataset("lfw", root=lfw_mini).records())
    assert len(images) == 292
    ps = P.lfw_folds(images, n_folds=4, per_fold=25, pair_types=("unmasked-unmasked",))
    check_common(ps)
    assert len(ps.pairs) == 4 * 50
    assert {im["variant"] for im in ps.images} == {"real"}
    assert all(set(im) == set(P.IMAGE_KEYS) for im in images)
    assert {(im["detector"], im["landmarks"], im["face_box"]) for im in images} == {(None,) * 3}


# ----------------------------------------------------------------------------- colours


def test_color_for_is_stable_order_free_and_balanced():
    paths = [P.lfw_rel_path(f"Name_{k}", 1) for k in range(3000)]
    picks = [P.color_for(p, COLORS, 0) for p in paths]
    assert picks == [P.color_for(p, ("blue", "black", "white", "blue"), 0) for p in paths]
    counts = Counter(picks)
    assert set(counts) == set(COLORS) and min(counts.values()) > 900
    assert picks != [P.color_for(p, COLORS, 1) for p in paths]
    with pytest.raises(UserError):
        P.color_for("a.jpg", [], 0)


# ----------------------------------------------------------------------------- manifests


def manifest_rows() -> list[dict]:
    rows = []
    for src, ident, status in (("A/A_0001.jpg", "A", "ok"), ("B/B_0001.jpg", "B", "no_face")):
        for variant, color, aug in (
            ("unmasked", None, None),
            ("mask-blue", "blue", None),
            ("mask-black", "black", None),
            ("mask-blue+rotate0", "blue", '{"kind":"rotate"}'),
        ):
            masked = color is not None
            rows.append(
                {
                    "key": f"{src}|{variant}",
                    "dataset": "lfw",
                    "identity": ident,
                    "src_path": src,
                    "src_sha256": sha(src),
                    "real_mask": None,
                    "variant": variant,
                    "masked": masked,
                    "color": color,
                    "color_rgb": RGB[color] if color else None,
                    "augment": aug,
                    "status": status,
                    "reason": "" if status == "ok" else "none",
                    "face_policy": "largest",
                    "margin": 0,
                    "detector": ("mtcnn" if ident == "A" else "dlib") if status == "ok" else None,
                    "landmarks_backend": "dlib",
                    "mask_polygon": [1, 2, 3, 4, 5, 6] if masked and status == "ok" else None,
                    "face_box": [0, -5, 100, 115] if status == "ok" else None,
                    "det_box": [0.0, 0.0, 100.0, 110.0] if status == "ok" else None,
                    "det_score": 0.99 if status == "ok" else None,
                    "det_points5": (
                        [30.0, 40.0, 70.0, 40.0, 50.0, 60.0, 35.0, 80.0, 65.0, 80.0]
                        if status == "ok" and ident == "A"
                        else None
                    ),
                    "landmarks": ([float(v) for v in range(136)] if status == "ok" else None),
                    "roi_box": [0, -5, 100, 60] if status == "ok" else None,
                    "out_width": 112 if status == "ok" else None,
                    "out_height": 96 if status == "ok" else None,
                    "roi": "upper",
                    "size": 112,
                    "seed": 0,
                    "tool_version": "test",
                }
            )
    return rows


def test_images_from_manifest_keeps_usable_base_variants(tmp_path):
    table = rows_to_table(manifest_rows())
    images = P.images_from_manifest(table)
    assert [im["id"] for im in images] == [
        "mask-black:A/A_0001.jpg",
        "mask-blue:A/A_0001.jpg",
        "unmasked:A/A_0001.jpg",
    ]
    blue = images[1]
    assert set(blue) == set(P.IMAGE_KEYS)
    assert blue["mask_polygon"] == [[1, 2], [3, 4], [5, 6]]
    assert (blue["color_rgb"], blue["face_box"], blue["roi_box"], blue["out_wh"]) == (
        RGB["blue"],
        [0, -5, 100, 115],
        [0, -5, 100, 60],
        [112, 96],
    )
    assert blue["masked"] and blue["synthetic"] and images[2]["color"] is None
    # Provenance comes from the row: detector and landmark backend as the synth recorded them.
    assert {(im["detector"], im["landmarks"]) for im in images} == {("mtcnn", "dlib")}
    only_blue = P.images_from_manifest(table, colors=["blue"])
    assert [im["variant"] for im in only_blue] == ["mask-blue", "unmasked"]
    with pytest.raises(UserError, match="white"):
        P.images_from_manifest(table, colors=["white"])
    import pyarrow.parquet as pq

    pq.write_table(table, tmp_path / "manifest.parquet")
    assert P.images_from_manifest(tmp_path / "manifest.parquet") == images


# ----------------------------------------------------------------------------- pair lists


def test_parse_official_lfw_lists(lfw_root):
    view2 = P.parse_lfw_pairs(lfw_root / "pairs.txt")
    assert len(view2) == 6000
    assert sorted({e[0] for e in view2}) == list(range(10))
    assert sum(e[5] for e in view2) == 3000
    assert Counter((e[0], e[5]) for e in view2) == {
        (f, lab): 300 for f in range(10) for lab in (0, 1)
    }
    assert all((e[1] == e[3]) == (e[5] == 1) for e in view2)
    assert view2[0] == (0, "Abel_Pacheco", 1, "Abel_Pacheco", 4, 1)
    for name, n in (("pairsDevTrain.txt", 2200), ("pairsDevTest.txt", 1000)):
        dev = P.parse_lfw_pairs(lfw_root / name)
        assert len(dev) == n and {e[0] for e in dev} == {0}
        assert [e[5] for e in dev] == [1] * (n // 2) + [0] * (n // 2)
    for name, _i, _n2, _j in [e[1:5] for e in view2[:50]]:
        assert (lfw_root / P.lfw_rel_path(name, _i)).is_file()


def test_parse_mfr2_style_list_without_header(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("AdrianDunbar 1 2\nAdrianDunbar 0001 3\n\nAdrianDunbar 1 Aishwarya 2\n")
    assert P.parse_lfw_pairs(path) == [
        (0, "AdrianDunbar", 1, "AdrianDunbar", 2, 1),
        (0, "AdrianDunbar", 1, "AdrianDunbar", 3, 1),
        (0, "AdrianDunbar", 1, "Aishwarya", 2, 0),
    ]
    assert P.parse_lfw_pairs(path, header=False) == P.parse_lfw_pairs(path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("A 1 2\nA 1 B 2 C\n", r"pairs\.txt:2: expected"),
        ("A 1 2\nA x 3\n", r"pairs\.txt:2: image number"),
        ("A 1 2\nA 0 3\n", r"pairs\.txt:2: image number"),
        ("1\nA 1 B 2\nA 1 2\n", r"pairs\.txt:2: expected 'name i j' \(genuine\)"),
        ("1\nA 1 2\nA 1 3\n", r"pairs\.txt:3: expected 'name1 i name2 j' \(impostor\)"),
        ("2 1\nA 1 2\nA 1 B 2\n", r"header says 2 fold"),
        ("", "empty"),
        ("A 2 2\n", r"pairs\.txt:1: pairs image 2 of A with itself"),
        ("A 1 2\nA 1 A 2\n", r"pairs\.txt:2: impostor pair names A twice"),
    ],
)
def test_malformed_pair_lists_raise_with_line_number(tmp_path, text, match):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(UserError, match=match):
        P.parse_lfw_pairs(path)


def official_images(path: Path, colors=COLORS, missing=frozenset()) -> list[dict]:
    counts: dict[str, int] = defaultdict(int)
    for _, n1, i1, n2, i2, _ in P.parse_lfw_pairs(path):
        counts[n1] = max(counts[n1], i1)
        counts[n2] = max(counts[n2], i2)
    return synth_images(dict(sorted(counts.items())), colors, missing)


def test_official_view2_masked_second_image_and_control(lfw_root):
    path = lfw_root / "pairs.txt"
    images = official_images(path)
    ps = P.official_lfw_pairs(
        path,
        images,
        pair_types=("masked-unmasked", "unmasked-unmasked"),
        seed=0,
        colors=["black", "white", "blue"],
    )
    check_common(ps)
    assert len(ps.pairs) == 12000
    listed = {
        (e[0], e[5], P.lfw_rel_path(e[1], e[2]), P.lfw_rel_path(e[3], e[4]))
        for e in P.parse_lfw_pairs(path)
    }
    imgs = by_id(ps)
    for t in ("masked-unmasked", "unmasked-unmasked"):
        got = {
            (p["fold"], p["label"], imgs[p["a"]]["src_path"], imgs[p["b"]]["src_path"])
            for p in ps.pairs
            if p["pair_type"] == t
        }
        assert got == listed
    colours = ps.summary["colors"]
    assert set(colours) == set(COLORS) and min(colours.values()) > 0.28 * sum(colours.values())
    assert ps.params["pairs_file"] == "pairs.txt"
    assert ps.params["pairs_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [r["fold"] for r in ps.summary["rows"]] == list(range(10))
    assert all((r["genuine"], r["impostor"]) == (300, 300) for r in ps.summary["rows"])
    assert dump(ps) == dump(
        P.official_lfw_pairs(
            path,
            shuffled(images),
            seed=0,
            pair_types=("unmasked-unmasked", "masked-unmasked"),
            colors=["blue", "white", "black"],
        )
    )


def test_official_list_missing_image_is_a_user_error(lfw_root):
    path = lfw_root / "pairsDevTest.txt"
    first = P.parse_lfw_pairs(path)[0]
    src_b = P.lfw_rel_path(first[3], first[4])
    colour = P.color_for(src_b, COLORS, 0)
    images = official_images(path, missing=frozenset({f"mask-{colour}:{src_b}"}))
    with pytest.raises(UserError, match=rf"1 image\(s\).*{src_b} \(mask-{colour}\)"):
        P.official_lfw_pairs(path, images)
    # the unmasked control does not need that masked variant
    ps = P.official_lfw_pairs(path, images, pair_types=("unmasked-unmasked",))
    assert len(ps.pairs) == 1000 and ps.params["colors"] == []


def test_mfr2_pairs_get_pair_types_from_mask_labels(tmp_path):
    kinds = {("Al", 1): "no-mask", ("Al", 2): "N95", ("Al", 3): "cloth_red", ("Bo", 1): "no-mask"}
    records = [
        Record(
            "mfr2", n, f"{n}/{n}_{i:04d}.png", sha(f"{n}{i}"), kinds[n, i] != "no-mask", kinds[n, i]
        )
        for n, i in sorted(kinds)
    ]
    path = tmp_path / "pairs.txt"
    path.write_text("Al 2 1\nAl 2 3\nAl 3 Bo 1\nAl 1 Bo 1\n")
    ps = P.mfr2_pairs(path, P.images_from_records(records))
    check_common(ps)
    got = {(p["a"], p["b"], p["label"], p["pair_type"]) for p in ps.pairs}
    assert got == {
        ("real:Al/Al_0001.png", "real:Al/Al_0002.png", 1, "masked-unmasked"),  # unmasked first
        ("real:Al/Al_0002.png", "real:Al/Al_0003.png", 1, "masked-masked"),
        ("real:Bo/Bo_0001.png", "real:Al/Al_0003.png", 0, "masked-unmasked"),
        ("real:Al/Al_0001.png", "real:Bo/Bo_0001.png", 0, "unmasked-unmasked"),
    }
    assert ps.summary["mask_types"] == {"N95": 1, "cloth_red": 1, "no-mask": 2}
    assert ps.summary["pair_types"] == ["masked-masked", "masked-unmasked", "unmasked-unmasked"]


def test_mfr2_pairs_as_listed(tmp_path):
    records = [
        Record("mfr2", n, f"{n}/{n}_{i:04d}.png", sha(f"{n}{i}"))
        for n in ("Al", "Bo")
        for i in (1, 2, 3)
    ]
    images = P.images_from_records(records)
    path = tmp_path / "pairs.txt"
    path.write_text("Al 1 2\nBo 2 3\nAl 3 Bo 1\n")
    ps = P.mfr2_pairs(path, shuffled(images))
    check_common(ps)
    assert [(p["a"], p["b"], p["label"], p["pair_type"]) for p in ps.pairs] == [
        ("real:Al/Al_0001.png", "real:Al/Al_0002.png", 1, "listed"),
        ("real:Bo/Bo_0002.png", "real:Bo/Bo_0003.png", 1, "listed"),
        ("real:Al/Al_0003.png", "real:Bo/Bo_0001.png", 0, "listed"),
    ]
    assert ps.strategy == "mfr2" and ps.params["pairs_file"] == "pairs.txt"
    path.write_text("Al 1 2\n")  # on a synth manifest the unmasked variant is the listed image
    ps = P.mfr2_pairs(path, synth_images({"Al": 2}))
    assert [(p["a"], p["b"]) for p in ps.pairs] == [
        ("unmasked:Al/Al_0001.jpg", "unmasked:Al/Al_0002.jpg")
    ]
    path.write_text("Al 1 4\n")
    with pytest.raises(UserError, match=r"Al/Al_0004\.\*"):
        P.mfr2_pairs(path, images)
