"""Property tests (hypothesis) of the pair strategies on random identity/image layouts.

Invariants: no identity in two splits or folds; per-identity caps; genuine pairs join one
identity and never one photo, impostors two identities of one split/fold; impostor counts
follow the ratio (or every available pair); byte-identical output under input permutation.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import Counter, defaultdict
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mfrbench import pairs as P
from mfrbench.datasets import Record
from mfrbench.errors import UserError

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COLORS = ("black", "white", "blue")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def real_images(layout: list[tuple[int, int]]) -> list[dict]:
    records = []
    for k, (n_m, n_u) in enumerate(layout):
        ident = f"id{k:02d}"
        for folder, n, flag in (("masked", n_m, True), ("plain", n_u, False)):
            for j in range(n):
                rel = f"{folder}/{ident}/{j}.jpg"
                records.append(Record("folder", ident, rel, sha(rel), real_mask=flag))
    return P.images_from_records(records)


def synth_images(layout: list[int], colors: tuple[str, ...]) -> list[dict]:
    blank = dict.fromkeys(P.IMAGE_KEYS)
    out = []
    for k, n in enumerate(layout):
        ident = f"N{k:02d}"
        for j in range(1, n + 1):
            src = P.lfw_rel_path(ident, j)
            base = {
                **blank,
                "identity": ident,
                "src_path": src,
                "src_sha256": sha(src),
                "synthetic": True,
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
                    }
                )
    return out


def dump(ps: P.PairSet) -> str:
    return json.dumps(ps.to_dict(), sort_keys=True)


def permuted(items: list, seed: int) -> list:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


def check_rmfrd(ps: P.PairSet, cap: int | None, ratio: float) -> None:
    imgs = {im["id"]: im for im in ps.images}
    split_of: dict[str, set[str]] = defaultdict(set)
    chosen: dict[tuple[str, bool], set[str]] = defaultdict(set)
    seen = set()
    for p in ps.pairs:
        a, b = imgs[p["a"]], imgs[p["b"]]
        assert (p["a"], p["b"]) not in seen
        seen.add((p["a"], p["b"]))
        assert not a["masked"] and b["masked"]
        assert a["src_path"] != b["src_path"]
        assert (a["identity"] == b["identity"]) == (p["label"] == 1)
        for im in (a, b):
            split_of[im["identity"]].add(p["split"])
            chosen[(im["identity"], im["masked"])].add(im["id"])
    assert all(len(s) == 1 for s in split_of.values()), "identity in two splits"
    if cap is not None:
        assert all(len(ids) <= cap for ids in chosen.values())
    for row in ps.summary["rows"]:
        labels = Counter(p["label"] for p in ps.pairs if p["split"] == row["split"])
        assert labels[1] == row["genuine"] and labels[0] == row["impostor"]
        wanted = math.floor(Fraction(repr(float(ratio))) * row["genuine"] + Fraction(1, 2))
        assert row["impostor"] == min(wanted, row["impostor_available"])
        assert row["impostor_ids_masked"] <= row["subjects"]
        assert row["first_n_ids_masked"] <= row["subjects"]


layouts = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=12)
fractions = st.sampled_from([0.0, 0.2, 0.25, 0.5])
ratios = st.sampled_from([0.0, 0.5, 1.0, 2.0, 50.0])


@SETTINGS
@given(
    layouts,
    st.one_of(st.none(), st.integers(1, 5)),
    st.integers(0, 3),
    fractions,
    fractions,
    ratios,
    st.integers(0, 1000),
)
def test_rmfrd_invariants_on_real_layouts(layout, cap, seed, tf, vf, ratio, perm):
    images = real_images(layout)
    try:
        ps = P.rmfrd_pairs(
            images, max_per_id=cap, seed=seed, test_frac=tf, val_frac=vf, impostor_ratio=ratio
        )
    except UserError as exc:
        assert "both masked and unmasked" in str(exc) or "exceed 1" in str(exc)
        assert tf + vf > 1 or not any(m and u for m, u in layout)
        return
    check_rmfrd(ps, cap, ratio)
    both = [(m, u) for m, u in layout if m and u]
    assert sum(r["subjects"] for r in ps.summary["rows"]) == len(both)
    if cap is None:  # nothing sampled away: exact genuine count
        assert sum(r["genuine"] for r in ps.summary["rows"]) == sum(m * u for m, u in both)
    assert dump(
        P.rmfrd_pairs(
            permuted(images, perm),
            max_per_id=cap,
            seed=seed,
            test_frac=tf,
            val_frac=vf,
            impostor_ratio=ratio,
        )
    ) == dump(ps)


@SETTINGS
@given(
    st.lists(st.integers(1, 6), min_size=2, max_size=10),
    st.integers(1, 4),
    st.sampled_from([COLORS, ("blue",), ("black", "white")]),
    st.integers(0, 3),
    st.integers(0, 1000),
)
def test_rmfrd_invariants_on_manifest_layouts(layout, cap, colors, seed, perm):
    images = synth_images(layout, colors)
    ps = P.rmfrd_pairs(images, max_per_id=cap, seed=seed, test_frac=0.25, val_frac=0.25)
    check_rmfrd(ps, cap, 1.0)
    masked_colour = defaultdict(set)
    for im in ps.images:
        if im["masked"]:
            masked_colour[im["src_path"]].add(im["color"])
            assert im["color"] == P.color_for(im["src_path"], colors, seed)
    assert all(len(c) == 1 for c in masked_colour.values())
    assert dump(
        P.rmfrd_pairs(
            permuted(images, perm), max_per_id=cap, seed=seed, test_frac=0.25, val_frac=0.25
        )
    ) == dump(ps)


@SETTINGS
@given(
    st.lists(st.integers(1, 9), min_size=2, max_size=30),
    st.integers(1, 4),
    st.integers(1, 12),
    st.sets(st.sampled_from(P.PAIR_TYPES), min_size=1),
    st.integers(0, 3),
    st.integers(0, 1000),
)
def test_lfw_folds_invariants(layout, n_folds, per_fold, types, seed, perm):
    images = synth_images(layout, COLORS)
    try:
        ps = P.lfw_folds(
            images, n_folds=n_folds, per_fold=per_fold, pair_types=sorted(types), seed=seed
        )
    except UserError as exc:
        assert "can supply only" in str(exc) or "two or more usable photos" in str(exc)
        return
    imgs = {im["id"]: im for im in ps.images}
    fold_of: dict[str, set[int]] = defaultdict(set)
    per_type = defaultdict(list)
    for p in ps.pairs:
        a, b = imgs[p["a"]], imgs[p["b"]]
        assert (a["identity"] == b["identity"]) == (p["label"] == 1)
        assert a["src_path"] != b["src_path"]
        fold_of[a["identity"]].add(p["fold"])
        fold_of[b["identity"]].add(p["fold"])
        per_type[p["pair_type"]].append((p["fold"], p["label"], a["src_path"], b["src_path"]))
    assert all(len(f) == 1 for f in fold_of.values()), "identity in two folds"
    assert set(per_type) == types
    reference = sorted(next(iter(per_type.values())))
    assert all(sorted(v) == reference for v in per_type.values())
    assert len(set(reference)) == len(reference)  # sampled without replacement
    assert Counter((f, lab) for f, lab, _, _ in reference) == {
        (f, lab): per_fold for f in range(n_folds) for lab in (0, 1)
    }
    again = P.lfw_folds(
        permuted(images, perm),
        n_folds=n_folds,
        per_fold=per_fold,
        pair_types=sorted(types, reverse=True),
        seed=seed,
    )
    assert dump(again) == dump(ps)


@SETTINGS
@given(
    st.lists(st.text("abcxyz", min_size=1, max_size=4), max_size=40),
    st.integers(0, 9),
    fractions,
    fractions,
)
def test_identity_split_partition(ids, seed, tf, vf):
    if tf + vf > 1:
        return
    split = P.identity_split(ids, seed=seed, test_frac=tf, val_frac=vf)
    assert set(split) == set(ids)
    n = len(set(ids))
    train, val, test = P.split_sizes(n, tf, vf)
    assert Counter(split.values()) == Counter(
        {k: v for k, v in (("train", train), ("val", val), ("test", test)) if v}
    )
    assert P.identity_split(list(reversed(ids)), seed=seed, test_frac=tf, val_frac=vf) == split
