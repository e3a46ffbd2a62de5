"""Pair lists taken as listed (MFR2's ``pairs.txt``, or any list in LFW's line format).

Unlike ``official``, no side is re-pointed at a variant: each line names two images, and a
pair's type comes from the dataset's own mask labels when both sides have one.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mfrbench.errors import UserError
from mfrbench.fetch import sha256_file
from mfrbench.pairs.lfw_lists import lfw_rel_path, parse_lfw_pairs
from mfrbench.pairs.pairset import (
    LISTED,
    MASKED_MASKED,
    MASKED_UNMASKED,
    UNMASKED_UNMASKED,
    PairDraft,
    PairSet,
    finish,
    make_pair,
)
from mfrbench.pairs.refs import find_duplicates
from mfrbench.pairs.sources import SHOW, Source, index_images
from mfrbench.pairs.summary import fold_rows, fold_summary
from mfrbench.records import ImageRef


def _listed_type(a: ImageRef, b: ImageRef) -> tuple[ImageRef, ImageRef, str]:
    """(reference, probe, pair type) of a listed pair: by mask when both sides' masks are known
    (a masked-unmasked pair puts the unmasked image first), else ``listed`` as given."""
    if a.get("mask_type") is None or b.get("mask_type") is None:
        return a, b, LISTED
    if a["masked"] and b["masked"]:
        return a, b, MASKED_MASKED
    if not a["masked"] and not b["masked"]:
        return a, b, UNMASKED_UNMASKED
    return (b, a, MASKED_UNMASKED) if a["masked"] else (a, b, MASKED_UNMASKED)


def mfr2_pairs(pairs_file: Path, images: Iterable[ImageRef]) -> PairSet:
    """MFR2's ``pairs.txt`` (LFW line format, no header), as listed (:func:`listed_pairs`)."""
    return listed_pairs(pairs_file, images, strategy="mfr2")


def listed_pairs(
    pairs_file: Path, images: Iterable[ImageRef], *, strategy: str = "listed"
) -> PairSet:
    """A pair list in LFW's line format (MFR2's ``pairs.txt``, LFW's own with its header), as
    listed; folds as the header gives them (none: fold 0).

    ``name i`` names the file ``name/name_000i.<any extension>``; among several images of one
    source the ``real`` one is used (then ``unmasked``). Missing images raise :class:`UserError`.
    When both images of a pair carry a dataset mask label (``mask_type``, from
    ``mfr2_labels.txt``) the pair gets its pair type (``masked-unmasked`` with the unmasked
    image as reference, ``masked-masked``, ``unmasked-unmasked``); otherwise ``listed``.
    """
    pairs_file = Path(pairs_file)
    entries = parse_lfw_pairs(pairs_file)
    by_id = index_images(images)
    lookup: dict[str, ImageRef] = {}
    rank = {"real": 0, "unmasked": 1}
    for im in sorted(by_id.values(), key=lambda im: (rank.get(im["variant"], 2), im["id"])):
        lookup.setdefault(posixpath.splitext(im["src_path"])[0], im)
    warnings = find_duplicates(by_id.values())
    missing: list[str] = []
    pairs: list[PairDraft] = []
    sides_used: list[tuple[int, ImageRef, ImageRef, int]] = []
    for fold, n1, i1, n2, i2, label in entries:
        a = lookup.get(lfw_rel_path(n1, i1, ""))
        b = lookup.get(lfw_rel_path(n2, i2, ""))
        for found, name, idx in ((a, n1, i1), (b, n2, i2)):
            if found is None:
                missing.append(lfw_rel_path(name, idx, ".*"))
        if a is not None and b is not None:
            ref, probe, kind = _listed_type(a, b)
            pairs.append(make_pair(ref["id"], probe["id"], label, "test", fold, kind))
            sides_used.append((fold, ref, probe, label))
    if missing:
        missing = sorted(set(missing))
        raise UserError(
            f"{len(missing)} image(s) that {pairs_file.name} lists are missing: "
            + ", ".join(missing[:SHOW])
            + (", ..." if len(missing) > SHOW else "")
        )
    entries_src = [(f, _as_source(a), _as_source(b), label) for f, a, b, label in sides_used]
    rows = fold_rows(entries_src, pairs, by_id)
    types = sorted({p["pair_type"] for p in pairs})
    summary = fold_summary(rows, pairs, by_id, types)
    summary["mask_types"] = dict(
        sorted(Counter(im["mask_type"] for im in by_id.values() if im.get("mask_type")).items())
    )
    params: dict[str, Any] = {
        "pairs_file": pairs_file.name,
        "pairs_sha256": sha256_file(pairs_file),
    }
    return finish(strategy, params, by_id, pairs, summary, warnings)


def _as_source(im: ImageRef) -> Source:
    return Source(im["src_path"], im["identity"], im["src_sha256"], None, None)
