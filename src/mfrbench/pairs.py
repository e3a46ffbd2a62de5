"""Pair strategies (identity-disjoint splits and folds) and official pair-list parsers.

Everything here works on image references (plain dicts, see :data:`IMAGE_KEYS`) and never decodes
an image, so generating pairs for 100,000 files takes seconds. A strategy returns a
:class:`PairSet`: the images its pairs use, the pairs in canonical order, every generation
parameter, a per-split or per-fold summary and warnings (duplicates, unreadable files).

Determinism: inputs are sorted before use and every random draw comes from a numpy Generator
seeded with sha256 of (seed, stable key) (:func:`mfrbench.vision.augment.make_rng`), so the same
images and seed give the same pairs whatever the listing order, machine or process.

Strategies:

- :func:`rmfrd_pairs`: the RMFRD thesis protocol done right (identity-disjoint train/val/test,
  seeded per-identity caps, uniformly sampled impostors); also for synth manifests.
- :func:`lfw_folds`: LFW-style folds of genuine + impostor pairs with identities disjoint
  across folds, emitted for each requested pair type over the same source photos.
- :func:`official_lfw_pairs`: an official LFW list (``pairs.txt`` etc.) pointed at variants.
- :func:`mfr2_pairs`: MFR2's ``pairs.txt`` as listed.
"""

from __future__ import annotations

import hashlib
import math
import posixpath
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mfrbench import pairs_mlfw
from mfrbench.datasets.base import Record
from mfrbench.errors import UserError
from mfrbench.faces import face_fields
from mfrbench.fetch import sha256_file
from mfrbench.manifest import STATUS_OK, read_manifest
from mfrbench.pairs_mlfw import PER_PHOTO
from mfrbench.protocol import IMAGE_KEYS, SPLITS  # the schema owns the image keys and splits
from mfrbench.vision.augment import make_rng

MASKED_UNMASKED = "masked-unmasked"
MASKED_MASKED = "masked-masked"
UNMASKED_UNMASKED = "unmasked-unmasked"
LISTED = "listed"
#: Pair types a strategy can emit (``listed`` is only for lists taken as they are).
PAIR_TYPES = (MASKED_UNMASKED, MASKED_MASKED, UNMASKED_UNMASKED)

_SPLIT_RANK = {s: i for i, s in enumerate(SPLITS)}
#: Image sides each pair type needs: (reference a, probe b) as "masked" / "unmasked".
_SIDES = {
    MASKED_UNMASKED: ("unmasked", "masked"),
    MASKED_MASKED: ("masked", "masked"),
    UNMASKED_UNMASKED: ("unmasked", "unmasked"),
}
_SPLIT_RULE = (
    "distinct identities sorted, shuffled (seeded); the first round_half_up(n * test_frac) go "
    "to test, the next min(round_half_up(n * val_frac), n - n_test) to val, the rest to train"
)
_MANIFEST_COLUMNS = (
    "identity",
    "src_path",
    "src_sha256",
    "real_mask",
    "variant",
    "masked",
    "color",
    "color_rgb",
    "augment",
    "status",
    "mask_polygon",
    "face_box",
    "roi_box",
    "out_width",
    "out_height",
    "detector",
    "landmarks_backend",
    "det_box",
    "det_score",
    "det_points5",
    "landmarks",
)
_SHOW = 5  # how many offending items an error message lists


@dataclass
class PairSet:
    """What a pair strategy returns (the input of ``protocol.freeze``).

    ``images``: the image references the pairs use, sorted by id. ``pairs``: dicts with ``id``,
    ``a`` (reference), ``b`` (probe), ``label`` (1 genuine, 0 impostor), ``split``, ``fold``,
    ``pair_type``, in canonical order (split, fold, pair type, genuine first, a, b) with ``id``
    = position. ``params``: every generation parameter. ``summary``: JSON-able counts per split
    or fold (see :func:`summary_table`). ``warnings``: human-readable notes (duplicates etc.).
    """

    strategy: str
    params: dict[str, Any]
    images: list[dict[str, Any]]
    pairs: list[dict[str, Any]]
    summary: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The fields as one plain dict (shallow; JSON-serialisable)."""
        return {
            "strategy": self.strategy,
            "params": self.params,
            "images": self.images,
            "pairs": self.pairs,
            "summary": self.summary,
            "warnings": self.warnings,
        }


# ----------------------------------------------------------------------------- image references


def _image_ref(**kw: Any) -> dict[str, Any]:
    return {k: kw.get(k) for k in IMAGE_KEYS}


def images_from_records(records: Iterable[Record]) -> list[dict[str, Any]]:
    """Image references (variant ``real``) for dataset records, sorted by id.

    ``masked`` is ``bool(record.real_mask)`` (an unknown mask flag counts as unmasked). Records of
    unreadable files (empty sha256) are kept; strategies leave them out with a warning. No face
    is attached (``face_status`` null): ``faces.detect_faces`` runs the detector cascade once and
    freezes each image's face, as the ``pairs`` commands do.
    """
    out: list[dict[str, Any]] = [
        {
            "id": f"real:{r.rel_path}",
            "identity": r.identity,
            "src_path": r.rel_path,
            "src_sha256": r.sha256,
            "variant": "real",
            "masked": bool(r.real_mask),
            "synthetic": False,
            "color": None,
            "color_rgb": None,
            "mask_polygon": None,
            "face_box": None,
            "roi_box": None,
            "out_wh": None,
            "detector": None,
            "landmarks": None,
            "face_status": None,
            "det_box": None,
            "det_score": None,
            "points5": None,
            "points5_source": None,
            "landmarks68": None,
            "mask_type": r.mask_type,
        }
        for r in records
    ]
    out.sort(key=lambda im: im["id"])
    return out


def images_from_manifest(
    path_or_table: str | Path | pa.Table, *, colors: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Image references for the usable rows of a synth manifest, sorted by id.

    Kept: rows with status ``ok`` and no augmentation (an augmented image cannot be frozen as
    geometry alone). With ``colors``, masked rows of other colours are dropped; a colour the
    manifest does not have raises :class:`UserError`. ``masked`` is true for a synthetic mask
    and also for a source photo showing a real mask (``real_mask``). The face found on the
    source photo before masking is frozen with it (:func:`face_fields`): box, detector box and
    score, five alignment points and the 68 anchors, with the detector and landmark backend.
    """
    if isinstance(path_or_table, pa.Table):
        table = path_or_table
    else:
        table = read_manifest(path_or_table, columns=list(_MANIFEST_COLUMNS))
    absent = [c for c in _MANIFEST_COLUMNS if c not in table.column_names]
    if absent:
        raise UserError(f"not a synth manifest: column(s) {', '.join(absent)} missing")
    table = table.select(list(_MANIFEST_COLUMNS))
    table = table.filter(
        pc.and_(pc.equal(table["status"], STATUS_OK), pc.is_null(table["augment"]))
    )
    if colors is not None:
        wanted = sorted(set(colors))
        masked_colors = pc.filter(table["color"], table["masked"]).unique().to_pylist()
        unknown = [c for c in wanted if c not in masked_colors]
        if unknown:
            have = ", ".join(sorted(c for c in masked_colors if c is not None)) or "none"
            raise UserError(
                f"colour(s) {', '.join(unknown)} not among the manifest's usable masked images "
                f"(it has: {have})"
            )
        keep = pc.or_(
            pc.invert(table["masked"]), pc.is_in(table["color"], value_set=pa.array(wanted))
        )
        table = table.filter(pc.fill_null(keep, False))
    out = []
    for row in table.to_pylist():
        poly = row["mask_polygon"]
        w, h = row["out_width"], row["out_height"]
        out.append(
            _image_ref(
                id=f"{row['variant']}:{row['src_path']}",
                identity=row["identity"],
                src_path=row["src_path"],
                src_sha256=row["src_sha256"],
                variant=row["variant"],
                masked=bool(row["masked"]) or row["real_mask"] is True,
                synthetic=True,
                color=row["color"] if row["masked"] else None,
                color_rgb=list(row["color_rgb"]) if row["masked"] and row["color_rgb"] else None,
                mask_polygon=(
                    [[poly[i], poly[i + 1]] for i in range(0, len(poly) - 1, 2)]
                    if row["masked"] and poly
                    else None
                ),
                roi_box=list(row["roi_box"]) if row["roi_box"] is not None else None,
                out_wh=[w, h] if w is not None and h is not None else None,
                **face_fields(
                    face_box=row["face_box"],
                    det_box=row["det_box"],
                    det_score=row["det_score"],
                    detector=row["detector"],
                    landmarks_backend=row["landmarks_backend"],
                    landmarks68=row["landmarks"],
                    det_points5=row["det_points5"],
                ),
            )
        )
    out.sort(key=lambda im: im["id"])
    return out


def color_for(src_path: str, colors: Sequence[str], seed: int) -> str:
    """The mask colour of a source image: a seeded hash choice among ``colors``.

    Depends only on (seed, src_path, the set of colours) - not on list order, other images or
    which pair the image is in - so every colour gets about the same share of the images.
    """
    choices = sorted(set(colors))
    if not choices:
        raise UserError("no mask colours to choose from")
    digest = hashlib.sha256(f"{int(seed)}\x00color\x00{src_path}".encode()).digest()
    return choices[int.from_bytes(digest[:8], "little") % len(choices)]


def find_duplicates(images: Iterable[dict[str, Any]]) -> list[str]:
    """Warnings for identical source content (same ``src_sha256``) under two or more identities."""
    images = list(images)
    first: dict[str, str] = {}
    dup: set[str] = set()
    for im in images:
        sha = im["src_sha256"]
        if sha and first.setdefault(sha, im["identity"]) != im["identity"]:
            dup.add(sha)
    if not dup:
        return []
    by_sha: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for im in images:
        if im["src_sha256"] in dup:
            by_sha[im["src_sha256"]].add((im["identity"], im["src_path"]))
    out = []
    for sha, members in sorted(by_sha.items()):
        n_ids = len({ident for ident, _ in members})
        paths = ", ".join(sorted(p for _, p in members))
        out.append(f"duplicate content under {n_ids} identities (sha256 {sha[:12]}): {paths}")
    return out


# ----------------------------------------------------------------------------- sources


@dataclass(slots=True)
class _Source:
    """One source photo and the image chosen for each side (ids, or None when it has none)."""

    src_path: str
    identity: str
    sha: str
    unmasked: str | None
    masked: str | None


def _colors_in(images: Sequence[dict[str, Any]]) -> list[str]:
    """Sorted distinct colours of the synthetic masked images."""
    return sorted({im["color"] for im in images if im["masked"] and im["color"] is not None})


def _index_images(images: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_id: dict[str, dict[str, Any]] = {}
    for im in images:
        if im["id"] in by_id:
            raise UserError(f"image id {im['id']!r} appears twice in the input")
        by_id[im["id"]] = im
    return by_id


def _chosen_color(src: str, colors: Sequence[str], seed: int) -> str | None:
    return color_for(src, colors, seed) if colors else None


def _build_sources(
    by_id: dict[str, dict[str, Any]], colors: Sequence[str], seed: int
) -> tuple[dict[str, _Source], list[str]]:
    """Group images by source photo, sorted by path; pick each side's image.

    Unmasked side: the source's unmasked image (``real`` before ``unmasked``). Masked side: the
    synthetic variant of colour :func:`color_for` (a source whose chosen colour failed has none),
    or, without synthetic variants, a real masked image. Sources without sha256 are left out.
    """
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for im in by_id.values():
        groups[im["src_path"]].append(im)
    sources: dict[str, _Source] = {}
    unreadable = []
    for src in sorted(groups):
        ims = groups[src]
        identity, sha = ims[0]["identity"], ims[0]["src_sha256"]
        if not sha:
            unreadable.append(src)
            continue
        if len(ims) == 1:  # fast path: records, one image per source
            im = ims[0]
            if not im["masked"]:
                sources[src] = _Source(src, identity, sha, im["id"], None)
            elif im["color"] is None or im["color"] == _chosen_color(src, colors, seed):
                sources[src] = _Source(src, identity, sha, None, im["id"])
            else:
                sources[src] = _Source(src, identity, sha, None, None)
            continue
        ims = sorted(ims, key=lambda im: im["id"])
        if any(im["identity"] != identity for im in ims):
            raise UserError(f"source {src!r} appears under two identities in the input")
        unmasked = next((im["id"] for im in ims if not im["masked"]), None)
        synth = [im for im in ims if im["masked"] and im["color"] is not None]
        if synth:
            chosen = _chosen_color(src, colors, seed)
            masked = next((im["id"] for im in synth if im["color"] == chosen), None)
        else:
            masked = next((im["id"] for im in ims if im["masked"]), None)
        sources[src] = _Source(src, identity, sha, unmasked, masked)
    warnings = []
    if unreadable:
        warnings.append(
            f"{len(unreadable)} source image(s) without sha256 (unreadable) left out: "
            + ", ".join(unreadable[:_SHOW])
        )
    return sources, warnings


# ----------------------------------------------------------------------------- helpers


def _exact(value: float) -> Fraction:
    """A float parameter as the decimal the user wrote (0.2 -> 1/5), for exact rounding."""
    return Fraction(repr(float(value)))


def _round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def _check_frac(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0 <= value <= 1):
        raise UserError(f"{name} must be a number between 0 and 1, got {value!r}")


def split_sizes(n: int, test_frac: float, val_frac: float) -> tuple[int, int, int]:
    """(train, val, test) identity counts for ``n`` identities; see :data:`_SPLIT_RULE`."""
    _check_frac("test fraction", test_frac)
    _check_frac("val fraction", val_frac)
    if _exact(test_frac) + _exact(val_frac) > 1:
        raise UserError(f"test fraction + val fraction exceed 1 ({test_frac} + {val_frac})")
    n_test = _round_half_up(n * _exact(test_frac))
    n_val = min(_round_half_up(n * _exact(val_frac)), n - n_test)
    return n - n_test - n_val, n_val, n_test


def identity_split(
    identities: Iterable[str], *, seed: int, test_frac: float = 0.2, val_frac: float = 0.2
) -> dict[str, str]:
    """Assign each distinct identity to ``train``, ``val`` or ``test`` (never two).

    Rule: identities sorted, shuffled with a seeded permutation; the first
    ``floor(n * test_frac + 1/2)`` go to test, the next ``floor(n * val_frac + 1/2)`` (at most
    what is left) to val, the rest to train. Fractions are taken as the decimals written
    (0.2 is exactly 1/5), so 525 identities give 315 / 105 / 105.
    """
    ids = sorted(set(identities))
    _, n_val, n_test = split_sizes(len(ids), test_frac, val_frac)
    perm = make_rng(seed, "identity-split").permutation(len(ids))
    out = {}
    for rank, i in enumerate(perm.tolist()):
        out[ids[i]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return dict(sorted(out.items()))


def _pair(a: str, b: str, label: int, split: str, fold: int | None, pair_type: str) -> dict:
    return {"a": a, "b": b, "label": label, "split": split, "fold": fold, "pair_type": pair_type}


def _finish(
    strategy: str,
    params: dict[str, Any],
    by_id: dict[str, dict[str, Any]],
    pairs: list[dict[str, Any]],
    summary: dict[str, Any],
    warnings: list[str],
) -> PairSet:
    """Sort pairs canonically, number them, keep only the images they use (sorted by id)."""
    pairs.sort(
        key=lambda p: (
            _SPLIT_RANK[p["split"]],
            -1 if p["fold"] is None else p["fold"],
            p["pair_type"],
            -p["label"],
            p["a"],
            p["b"],
        )
    )
    numbered = [{"id": i, **p} for i, p in enumerate(pairs)]
    used = {p["a"] for p in pairs} | {p["b"] for p in pairs}
    images = [by_id[i] for i in sorted(used)]
    return PairSet(strategy, params, images, numbered, summary, warnings)


def _sample_sorted(items: list[_Source], cap: int | None, rng_key: str, seed: int) -> list:
    """At most ``cap`` of ``items`` by seeded sampling without replacement, kept in input order."""
    if cap is None or len(items) <= cap:
        return items
    idx = np.sort(make_rng(seed, rng_key).choice(len(items), size=cap, replace=False))
    return [items[i] for i in idx.tolist()]


def _check_pair_types(pair_types: Sequence[str]) -> list[str]:
    if isinstance(pair_types, str):
        pair_types = [pair_types]
    types = sorted(set(pair_types))
    if not types:
        raise UserError("no pair type requested")
    bad = [t for t in types if t not in PAIR_TYPES]
    if bad:
        raise UserError(
            f"unknown pair type(s) {', '.join(bad)}; choose from {', '.join(PAIR_TYPES)}"
        )
    return types


def _needs(pair_types: Sequence[str]) -> tuple[bool, bool]:
    """(needs a masked image, needs an unmasked image) for a source used on either side."""
    sides = {s for t in pair_types for s in _SIDES[t]}
    return "masked" in sides, "unmasked" in sides


def _pick_colors(
    images: Sequence[dict[str, Any]], colors: Sequence[str] | None, need_masked: bool
) -> list[str]:
    """The colour set for masked sides: ``colors`` (each must occur) or all colours present."""
    present = _colors_in(images)
    if colors is None:
        return present
    chosen = sorted(set(colors))
    missing = [c for c in chosen if c not in present]
    if missing and need_masked:
        raise UserError(
            f"colour(s) {', '.join(missing)} not among the masked images "
            f"(present: {', '.join(present) or 'none'})"
        )
    return chosen


def _mlfw_sources(
    sources: dict[str, _Source], by_id: dict[str, dict[str, Any]], colors: Sequence[str]
) -> list[str]:
    """mlfw: a source lacking any of ``colors`` loses its masked side (so it is left out);
    the warning saying how many."""
    pairs_mlfw.check_colors(colors)
    variants = pairs_mlfw.color_variants(by_id.values())
    short = [
        s
        for s in sources.values()
        if s.masked is not None and pairs_mlfw.missing_colors(variants.get(s.src_path, {}), colors)
    ]
    for s in short:
        s.masked = None
    if not short:
        return []
    return [
        f"mask assignment mlfw: {len(short)} source image(s) lack a mask colour and are left "
        "out: " + ", ".join(s.src_path for s in short[:_SHOW])
    ]


# ----------------------------------------------------------------------------- rmfrd strategy


def _sample_cross(
    rng: np.random.Generator,
    m_ident: np.ndarray,
    m_sha: np.ndarray,
    u_ident: np.ndarray,
    u_sha: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``k`` distinct (masked row, unmasked row) pairs of different identities and content,
    uniformly without replacement; ``u_ident`` must be sorted (identity blocks contiguous).

    Sampling is by rank among the cross-identity pairs (row-major: masked rows, then unmasked
    rows without the row's own identity block), so nothing of size |M| x |U| is materialised.
    Pairs of identical content (duplicates) are replaced by fresh draws.
    """
    n_u = u_ident.size
    if k == 0 or m_ident.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    n_ident = int(max(m_ident.max(), u_ident.max())) + 1
    block_start = np.searchsorted(u_ident, np.arange(n_ident), side="left")
    block_len = np.searchsorted(u_ident, np.arange(n_ident), side="right") - block_start
    per_row = n_u - block_len[m_ident]
    row_end = np.cumsum(per_row)
    total = int(row_end[-1])

    def decode(ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.searchsorted(row_end, ranks, side="right")
        off = ranks - (row_end[rows] - per_row[rows])
        start = block_start[m_ident[rows]]
        cols = off + np.where(off >= start, block_len[m_ident[rows]], 0)
        return rows, cols

    ranks = rng.choice(total, size=k, replace=False)
    rows, cols = decode(ranks)
    ok = m_sha[rows] != u_sha[cols]
    if not ok.all():
        kept = ranks[ok]
        tried = set(ranks.tolist())
        while kept.size < k:
            extra = rng.choice(total, size=min(total, 2 * (k - kept.size) + 16), replace=False)
            extra = extra[~np.isin(extra, np.fromiter(tried, np.int64, len(tried)))]
            tried.update(extra.tolist())
            r, c = decode(extra)
            kept = np.concatenate([kept, extra[m_sha[r] != u_sha[c]]])
        ranks = kept[:k]
        rows, cols = decode(ranks)
    return rows, cols


def _first_n_coverage(m_ident: np.ndarray, u_ident: np.ndarray, n: int) -> tuple[int, int]:
    """Identities on the (masked, unmasked) side of the first ``n`` cross-identity pairs in
    listing order (masked outer loop, unmasked inner loop): what the thesis's impostors cover."""
    if n == 0 or m_ident.size == 0:
        return 0, 0
    same = np.bincount(u_ident, minlength=int(m_ident.max()) + 1)
    per_row = u_ident.size - same[m_ident]
    row_end = np.cumsum(per_row)
    last = int(np.searchsorted(row_end, n, side="left"))  # row holding the n-th pair
    masked_ids = set(m_ident[: last + 1].tolist())
    full_rows = set(m_ident[:last].tolist())
    all_u = set(u_ident.tolist())
    if len(full_rows) >= 2:
        unmasked_ids = all_u
    else:
        unmasked_ids = all_u - full_rows if full_rows else set()
        taken = n - (int(row_end[last - 1]) if last > 0 else 0)
        cols = np.flatnonzero(u_ident != m_ident[last])[:taken]
        unmasked_ids |= set(u_ident[cols].tolist())
    return len(masked_ids), len(unmasked_ids)


def rmfrd_pairs(
    images: Iterable[dict[str, Any]],
    *,
    max_per_id: int | None = 20,
    seed: int = 0,
    test_frac: float = 0.2,
    val_frac: float = 0.2,
    impostor_ratio: float = 1.0,
    dataset: str = "rmfrd",
) -> PairSet:
    """Masked-vs-unmasked pairs split by identity: the RMFRD thesis protocol, reproducible.

    1. Identities having both a masked and an unmasked image, split by :func:`identity_split`.
    2. Per identity at most ``max_per_id`` masked and ``max_per_id`` unmasked source images,
       sampled (seeded, per identity) from the path-sorted list. On a synth manifest each
       source offers one masked variant, of colour :func:`color_for`, and its unmasked variant.
    3. Genuine: masked x unmasked of one identity, except two sides made from the same source
       bytes (on a manifest, the masked and unmasked variants of one photo are never a pair).
    4. Impostors per split: ``round_half_up(impostor_ratio x genuine)``, sampled uniformly
       without replacement from masked x unmasked of different identities in the split (capped,
       with a warning, at what exists). Pairs: ``a`` unmasked reference, ``b`` masked probe.

    The summary gives per split the subjects, images, pairs and how many identities the
    impostors cover on each side, next to what the first-N-in-listing-order impostors would.
    """
    if max_per_id is not None and (not isinstance(max_per_id, int) or max_per_id < 1):
        raise UserError(f"max per identity must be a positive integer, got {max_per_id!r}")
    if not (isinstance(impostor_ratio, (int, float)) and 0 <= impostor_ratio < math.inf):
        raise UserError(f"impostor ratio must be a non-negative number, got {impostor_ratio!r}")
    split_sizes(0, test_frac, val_frac)  # validates the fractions
    by_id = _index_images(images)
    colors = _colors_in(list(by_id.values()))
    sources, warnings = _build_sources(by_id, colors, seed)
    warnings += find_duplicates(by_id.values())

    masked: dict[str, list[_Source]] = defaultdict(list)
    unmasked: dict[str, list[_Source]] = defaultdict(list)
    for s in sources.values():  # path order
        if s.masked is not None:
            masked[s.identity].append(s)
        if s.unmasked is not None:
            unmasked[s.identity].append(s)
    both = sorted(set(masked) & set(unmasked))
    if not both:
        raise UserError(
            "no identity has both masked and unmasked images "
            f"({len(masked)} with masked, {len(unmasked)} with unmasked)"
        )
    split_of = identity_split(both, seed=seed, test_frac=test_frac, val_frac=val_frac)
    sel_m = {i: _sample_sorted(masked[i], max_per_id, f"rmfrd|{i}|masked", seed) for i in both}
    sel_u = {i: _sample_sorted(unmasked[i], max_per_id, f"rmfrd|{i}|unmasked", seed) for i in both}
    sha_code: dict[str, int] = {}

    def code(sha: str) -> int:
        return sha_code.setdefault(sha, len(sha_code))

    pairs: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    ratio = _exact(impostor_ratio)
    for split in SPLITS:
        ids = [i for i in both if split_of[i] == split]
        n_gen = 0
        for ident in ids:
            for m in sel_m[ident]:
                for u in sel_u[ident]:
                    if m.sha != u.sha:
                        pairs.append(_pair(u.unmasked, m.masked, 1, split, None, MASKED_UNMASKED))
                        n_gen += 1
        ms = [s for i in ids for s in sel_m[i]]
        us = [s for i in ids for s in sel_u[i]]
        m_ident = np.array([k for k, i in enumerate(ids) for _ in sel_m[i]], np.int64)
        u_ident = np.array([k for k, i in enumerate(ids) for _ in sel_u[i]], np.int64)
        m_sha = np.array([code(s.sha) for s in ms], np.int64)
        u_sha = np.array([code(s.sha) for s in us], np.int64)
        cross = len(ms) * len(us) - sum(len(sel_m[i]) * len(sel_u[i]) for i in ids)
        available = cross - _cross_duplicates(m_ident, m_sha, u_ident, u_sha)
        wanted = _round_half_up(ratio * n_gen)
        n_imp = min(wanted, available)
        if n_imp < wanted:
            warnings.append(
                f"{split}: only {available} impostor pairs exist, {wanted} wanted "
                f"(impostor ratio {impostor_ratio}); using {available}"
            )
        rng = make_rng(seed, f"rmfrd|impostors|{split}")
        r, c = _sample_cross(rng, m_ident, m_sha, u_ident, u_sha, n_imp)
        for mi, ui in zip(r.tolist(), c.tolist(), strict=True):
            pairs.append(_pair(us[ui].unmasked, ms[mi].masked, 0, split, None, MASKED_UNMASKED))
        ids_m, ids_u = set(m_ident[r].tolist()), set(u_ident[c].tolist())
        first_m, first_u = _first_n_coverage(m_ident, u_ident, n_imp)
        rows.append(
            {
                "split": split,
                "fold": None,
                "subjects": len(ids),
                "masked": len(ms),
                "unmasked": len(us),
                "genuine": n_gen,
                "impostor": n_imp,
                "impostor_available": available,
                "impostor_ids": len(ids_m | ids_u),
                "impostor_ids_masked": len(ids_m),
                "impostor_ids_unmasked": len(ids_u),
                "first_n_ids_masked": first_m,
                "first_n_ids_unmasked": first_u,
            }
        )
    total = {k: sum(r[k] for r in rows) for k in ("subjects", "masked", "unmasked", "genuine")}
    total["impostor"] = sum(r["impostor"] for r in rows)
    summary = {
        "by": "split",
        "rows": rows,
        "total": {"split": "total", **total},
        "split_rule": _SPLIT_RULE,
        "first_n_rule": (
            "first_n_ids_*: identities covered by the first N cross-identity pairs in listing "
            "order (masked images outer loop, unmasked inner, both sorted by identity then path)"
        ),
        "colors": _color_counts(pairs, by_id),
    }
    params = {
        "dataset": dataset,
        "seed": int(seed),
        "test_frac": float(test_frac),
        "val_frac": float(val_frac),
        "max_per_id": max_per_id,
        "impostor_ratio": float(impostor_ratio),
        "colors": colors,
        "pair_types": [MASKED_UNMASKED],
    }
    return _finish("rmfrd", params, by_id, pairs, summary, warnings)


def _cross_duplicates(
    m_ident: np.ndarray, m_sha: np.ndarray, u_ident: np.ndarray, u_sha: np.ndarray
) -> int:
    """Number of (masked, unmasked) pairs of different identities with identical content."""
    common = np.intersect1d(m_sha, u_sha)
    if common.size == 0:
        return 0
    mi, ui = np.isin(m_sha, common), np.isin(u_sha, common)
    cm, cu = Counter(m_sha[mi].tolist()), Counter(u_sha[ui].tolist())
    cmi = Counter(zip(m_sha[mi].tolist(), m_ident[mi].tolist(), strict=True))
    cui = Counter(zip(u_sha[ui].tolist(), u_ident[ui].tolist(), strict=True))
    all_pairs = sum(n * cu[sha] for sha, n in cm.items())
    return all_pairs - sum(n * cui[key] for key, n in cmi.items())


# ----------------------------------------------------------------------------- LFW-style folds


def _usable_sources(
    sources: dict[str, _Source], need_masked: bool, need_unmasked: bool
) -> tuple[dict[str, list[_Source]], int]:
    """Per identity, its sources having every needed side, path order, one per content
    (a second file with the same bytes under one identity is dropped); and the drop count."""
    out: dict[str, list[_Source]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    dropped = 0
    for s in sources.values():
        if (need_masked and s.masked is None) or (need_unmasked and s.unmasked is None):
            continue
        if (s.identity, s.sha) in seen:
            dropped += 1
            continue
        seen.add((s.identity, s.sha))
        out[s.identity].append(s)
    return dict(sorted(out.items())), dropped


def _allocate(capacity: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Spread ``total`` picks over bins of ``capacity`` as evenly as possible (water filling):
    every bin gets min(capacity, L) for the largest feasible level L, and the remainder goes one
    each to bins with room left, in seeded order. Keeps large identities from dominating."""
    lo, hi = 0, int(capacity.max())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if int(np.minimum(capacity, mid).sum()) <= total:
            lo = mid
        else:
            hi = mid - 1
    take = np.minimum(capacity, lo)
    rest = total - int(take.sum())
    room = np.flatnonzero(capacity > lo)
    take[room[rng.permutation(room.size)[:rest]]] += 1
    return take


def _source_pairs_to_pairs(
    source_pairs: Sequence[tuple[int | None, int, _Source, _Source]],
    pair_types: Sequence[str],
    split: str,
) -> list[dict[str, Any]]:
    """Emit each (fold, label, reference source, probe source) once per pair type."""
    out = []
    for t in pair_types:
        side_a, side_b = _SIDES[t]
        for fold, label, sa, sb in source_pairs:
            out.append(_pair(getattr(sa, side_a), getattr(sb, side_b), label, split, fold, t))
    return out


def lfw_folds(
    images: Iterable[dict[str, Any]],
    *,
    n_folds: int = 10,
    per_fold: int = 300,
    pair_types: Sequence[str] = (MASKED_UNMASKED,),
    seed: int = 0,
    colors: Sequence[str] | None = None,
    mask_assignment: str = PER_PHOTO,
    impostor_same_mask: float | None = None,
) -> PairSet:
    """LFW-style folds: ``per_fold`` genuine + ``per_fold`` impostor pairs, identities disjoint.

    Usable sources have every side the pair types need (masked colour by :func:`color_for`
    among ``colors``, default all colours present). Identities with >= 2 usable sources are
    dealt to folds round-robin after a seeded shuffle, then those with one source (they give
    impostors only), continuing the deal. Per fold, genuine pairs (two different photos of one
    identity) are spread over identities by water filling, then sampled per identity; impostor
    pairs take distinct identity pairs of the fold uniformly, one uniform photo each. Which
    photo is the reference is a seeded coin flip. The same source pairs are emitted for every
    pair type (the unmasked control uses exactly the same photos). A fold that cannot supply
    ``per_fold`` pairs raises :class:`UserError` saying how many it can. Summary rows count
    identities dealt to a fold (``assigned``) and those its pairs use (``subjects``).
    ``mask_assignment="mlfw"`` re-colours the masked-masked pairs (:mod:`mfrbench.pairs_mlfw`);
    a source then needs a variant in every colour.
    """
    types = _check_pair_types(pair_types)
    same = pairs_mlfw.resolve(mask_assignment, impostor_same_mask, types)
    if not isinstance(n_folds, int) or n_folds < 1:
        raise UserError(f"number of folds must be a positive integer, got {n_folds!r}")
    if not isinstance(per_fold, int) or per_fold < 1:
        raise UserError(f"pairs per fold must be a positive integer, got {per_fold!r}")
    by_id = _index_images(images)
    need_masked, need_unmasked = _needs(types)
    color_set = _pick_colors(list(by_id.values()), colors, need_masked)
    sources, warnings = _build_sources(by_id, color_set, seed)
    if same is not None:
        warnings += _mlfw_sources(sources, by_id, color_set)
    warnings += find_duplicates(by_id.values())
    per_id, dropped = _usable_sources(sources, need_masked, need_unmasked)
    if dropped:
        warnings.append(f"{dropped} source image(s) repeat another's content under one identity")
    multi = [i for i, ss in per_id.items() if len(ss) >= 2]
    single = [i for i, ss in per_id.items() if len(ss) == 1]
    if len(multi) < n_folds:
        raise UserError(
            f"only {len(multi)} identities have two or more usable photos; {n_folds} folds "
            "need at least one each"
        )
    rng = make_rng(seed, "lfw-folds|assign")
    dealt = [multi[i] for i in rng.permutation(len(multi)).tolist()]
    dealt += [single[i] for i in rng.permutation(len(single)).tolist()]
    fold_ids: list[list[str]] = [[] for _ in range(n_folds)]
    for k, ident in enumerate(dealt):
        fold_ids[k % n_folds].append(ident)

    source_pairs: list[tuple[int | None, int, _Source, _Source]] = []
    rows = []
    for f in range(n_folds):
        ids = sorted(fold_ids[f])
        gen = _fold_genuine(f, [i for i in ids if len(per_id[i]) >= 2], per_id, per_fold, seed)
        imp = _fold_impostors(f, ids, per_id, per_fold, seed)
        source_pairs += [(f, 1, a, b) for a, b in gen] + [(f, 0, a, b) for a, b in imp]
        rows.append(
            {
                "split": "test",
                "fold": f,
                "assigned": len(ids),
                "subjects": len({s.identity for p in gen + imp for s in p}),
                "genuine_subjects": len({a.identity for a, _ in gen}),
                "photos": len({s.src_path for p in gen + imp for s in p}),
                "genuine": len(gen),
                "impostor": len(imp),
                "impostor_ids": len({s.identity for p in imp for s in p}),
            }
        )
    pairs = _source_pairs_to_pairs(source_pairs, types, "test")
    if same is not None:
        pairs = pairs_mlfw.assign(pairs, by_id, color_set, seed, same)
    for row in rows:
        _count_sides(row, [p for p in pairs if p["fold"] == row["fold"]], by_id)
    summary = _fold_summary(rows, pairs, by_id, types)
    params = {
        "seed": int(seed),
        "n_folds": n_folds,
        "per_fold": per_fold,
        "pair_types": types,
        "colors": color_set if need_masked else [],
    }
    _mlfw_record(same, params, summary, pairs, by_id)
    return _finish("lfw-folds", params, by_id, pairs, summary, warnings)


def _mlfw_record(
    same: float | None,
    params: dict[str, Any],
    summary: dict[str, Any],
    pairs: list[dict],
    by_id: dict[str, dict],
) -> None:
    """Under mlfw, add its generation parameters and the colour tally (per-photo: nothing)."""
    if same is not None:
        params.update(pairs_mlfw.params(same))
        summary["mask_pairs"] = pairs_mlfw.tally(pairs, by_id)


def _fold_genuine(
    fold: int, ids: list[str], per_id: dict[str, list[_Source]], per_fold: int, seed: int
) -> list[tuple[_Source, _Source]]:
    sizes = np.array([len(per_id[i]) for i in ids], np.int64)
    capacity = sizes * (sizes - 1) // 2
    if int(capacity.sum()) < per_fold:
        raise UserError(
            f"fold {fold} can supply only {int(capacity.sum())} genuine pairs, {per_fold} "
            "requested: lower the pairs per fold or the number of folds"
        )
    take = _allocate(capacity, per_fold, make_rng(seed, f"lfw-folds|genuine|{fold}"))
    out = []
    for ident, n, k in zip(ids, sizes.tolist(), take.tolist(), strict=True):
        if k == 0:
            continue
        rng = make_rng(seed, f"lfw-folds|genuine|{ident}")
        first, second = np.triu_indices(n, 1)
        pick = rng.choice(first.size, size=k, replace=False)
        flip = rng.integers(0, 2, size=k).astype(bool)
        photos = per_id[ident]
        chosen = zip(first[pick].tolist(), second[pick].tolist(), flip.tolist(), strict=True)
        for i, j, fl in chosen:
            out.append((photos[j], photos[i]) if fl else (photos[i], photos[j]))
    return out


def _fold_impostors(
    fold: int, ids: list[str], per_id: dict[str, list[_Source]], per_fold: int, seed: int
) -> list[tuple[_Source, _Source]]:
    n = len(ids)
    universe = n * (n - 1) // 2
    if universe < per_fold:
        raise UserError(
            f"fold {fold} can supply only {universe} impostor pairs ({n} identities), "
            f"{per_fold} requested: lower the pairs per fold or the number of folds"
        )
    counts = np.array([len(per_id[i]) for i in ids], np.int64)
    rng = make_rng(seed, f"lfw-folds|impostors|{fold}")
    seen: set[tuple[int, int]] = set()
    out: list[tuple[_Source, _Source]] = []
    while len(out) < per_fold:
        if len(seen) == universe:
            raise UserError(
                f"fold {fold} can supply only {len(out)} impostor pairs of distinct content, "
                f"{per_fold} requested"
            )
        batch = 2 * (per_fold - len(out)) + 16
        x = rng.integers(0, n, size=batch)
        y = rng.integers(0, n, size=batch)
        px = rng.integers(0, counts[x])
        py = rng.integers(0, counts[y])
        for i, j, pi, pj in zip(x.tolist(), y.tolist(), px.tolist(), py.tolist(), strict=True):
            key = (min(i, j), max(i, j))
            if i == j or key in seen:
                continue
            seen.add(key)  # one draw per identity pair, whatever its outcome
            sa, sb = per_id[ids[i]][pi], per_id[ids[j]][pj]
            if sa.sha == sb.sha:
                continue
            out.append((sa, sb))
            if len(out) == per_fold:
                break
    return out


def _count_sides(row: dict[str, Any], pairs: list[dict], by_id: dict[str, dict]) -> None:
    """Distinct masked and unmasked images used by ``pairs`` (all pair types)."""
    used = {p["a"] for p in pairs} | {p["b"] for p in pairs}
    row["masked"] = sum(1 for i in used if by_id[i]["masked"])
    row["unmasked"] = len(used) - row["masked"]


def _fold_summary(
    rows: list[dict[str, Any]], pairs: list[dict], by_id: dict[str, dict], types: list[str]
) -> dict[str, Any]:
    keys = ("assigned", "subjects", "photos", "masked", "unmasked", "genuine", "impostor")
    total = {k: sum(r[k] for r in rows) for k in keys if k in rows[0]}
    return {
        "by": "fold",
        "rows": rows,
        "total": {"split": "total", **total},
        "pair_types": types,
        "pairs_per_type": len(pairs) // max(1, len(types)),
        "colors": _color_counts(pairs, by_id),
    }


def _color_counts(pairs: list[dict], by_id: dict[str, dict]) -> dict[str, int]:
    """Distinct masked images used, counted by mask colour."""
    used = {p["a"] for p in pairs} | {p["b"] for p in pairs}
    colors = Counter(by_id[i]["color"] for i in used if by_id[i]["color"] is not None)
    return dict(sorted(colors.items()))


# ----------------------------------------------------------------------------- official lists


def lfw_rel_path(name: str, index: int, ext: str = ".jpg") -> str:
    """LFW's file for image ``index`` (1-based) of ``name``: ``"Name/Name_0001.jpg"``."""
    return f"{name}/{name}_{int(index):04d}{ext}"


def _parse_index(token: str, path: Path, lineno: int) -> int:
    if not token.isdigit() or int(token) < 1:
        raise UserError(
            f"{path.name}:{lineno}: image number must be a positive integer, got {token!r}"
        )
    return int(token)


def _pair_line(
    tokens: list[str], path: Path, lineno: int, expect: int | None
) -> tuple[str, int, str, int, int]:
    """(name1, i1, name2, i2, label) of one pair line; ``expect`` 1/0 forces the shape."""
    if len(tokens) == 3 and expect in (None, 1):
        name, i, j = tokens
        first, second = _parse_index(i, path, lineno), _parse_index(j, path, lineno)
        if first == second:
            raise UserError(f"{path.name}:{lineno}: pairs image {first} of {name} with itself")
        return name, first, name, second, 1
    if len(tokens) == 4 and expect in (None, 0):
        n1, i, n2, j = tokens
        if n1 == n2:
            raise UserError(f"{path.name}:{lineno}: impostor pair names {n1} twice")
        return n1, _parse_index(i, path, lineno), n2, _parse_index(j, path, lineno), 0
    shapes: dict[int | None, str] = {1: "'name i j' (genuine)", 0: "'name1 i name2 j' (impostor)"}
    shape = shapes.get(expect, "'name i j' or 'name1 i name2 j'")
    raise UserError(f"{path.name}:{lineno}: expected {shape}, got {' '.join(tokens)!r}")


def parse_lfw_pairs(
    path: Path, *, header: bool | None = None
) -> list[tuple[int, str, int, str, int, int]]:
    """Read an LFW-format pair list as (fold, name1, i1, name2, i2, label) tuples, in file order.

    Formats: header ``"F\\tN"`` (``pairs.txt`` view 2: F folds, each N genuine lines
    ``name i j`` then N impostor lines ``name1 i name2 j``); header ``"N"`` (``pairsDevTrain``
    / ``pairsDevTest``: N genuine then N impostor, fold 0); no header (MFR2: each line's shape
    gives its label, fold 0). ``header=None`` detects a first line of one or two integers.
    Image numbers are 1-based. Blank lines are ignored; anything malformed raises
    :class:`UserError` naming the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read pair list {path}: {exc}") from None
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise UserError(f"{path.name}: empty pair list")
    first = lines[0][1]
    if header is None:
        header = 1 <= len(first) <= 2 and all(t.isdigit() for t in first)
    if not header:
        return [(0, *_pair_line(tokens, path, n, None)) for n, tokens in lines]
    lineno, head = lines[0]
    if not (1 <= len(head) <= 2 and all(t.isdigit() for t in head)):
        raise UserError(f"{path.name}:{lineno}: expected a header 'N' or 'folds N', got {head!r}")
    n_folds, per = (1, int(head[0])) if len(head) == 1 else (int(head[0]), int(head[1]))
    body = lines[1:]
    if len(body) != 2 * n_folds * per:
        raise UserError(
            f"{path.name}: header says {n_folds} fold(s) x ({per} genuine + {per} impostor) = "
            f"{2 * n_folds * per} pairs, the file has {len(body)}"
        )
    out = []
    for k, (n, tokens) in enumerate(body):
        fold, pos = divmod(k, 2 * per)
        out.append((fold, *_pair_line(tokens, path, n, 1 if pos < per else 0)))
    return out


def _fold_rows(
    entries: list[tuple[int, _Source, _Source, int]], pairs: list[dict], by_id: dict[str, dict]
) -> list[dict[str, Any]]:
    folds: dict[int, list[tuple[int, _Source, _Source, int]]] = defaultdict(list)
    for e in entries:
        folds[e[0]].append(e)
    rows = []
    for f, es in sorted(folds.items()):
        imp = [e for e in es if e[3] == 0]
        row = {
            "split": "test",
            "fold": f,
            "subjects": len({s.identity for e in es for s in e[1:3]}),
            "photos": len({s.src_path for e in es for s in e[1:3]}),
            "genuine": len(es) - len(imp),
            "impostor": len(imp),
            "impostor_ids": len({s.identity for e in imp for s in e[1:3]}),
        }
        _count_sides(row, [p for p in pairs if p["fold"] == f], by_id)
        rows.append(row)
    return rows


def _variant_name(side: str, src: str, colors: Sequence[str], seed: int) -> str:
    """The variant a side of ``src`` needs: ``unmasked`` or ``mask-<colour>``."""
    if side == "masked" and colors:
        return f"mask-{color_for(src, colors, seed)}"
    return side


def official_lfw_pairs(
    pairs_file: Path,
    images: Iterable[dict[str, Any]],
    *,
    pair_types: Sequence[str] = (MASKED_UNMASKED,),
    seed: int = 0,
    colors: Sequence[str] | None = None,
    mask_assignment: str = PER_PHOTO,
    impostor_same_mask: float | None = None,
) -> PairSet:
    """An official LFW pair list over the images, each side pointed at the requested variant.

    The first image of a line is the reference ``a``, the second the probe ``b`` (masked for
    ``masked-unmasked``); a masked side gets colour :func:`color_for` among ``colors`` (default
    all colours present). Folds come from the file. An image the list needs but ``images``
    lacks (a failed synth, a colour not rendered) raises :class:`UserError` listing the first few.
    ``mask_assignment="mlfw"`` re-colours the masked-masked pairs (:mod:`mfrbench.pairs_mlfw`);
    every listed photo then needs a variant in every colour.
    """
    pairs_file = Path(pairs_file)
    types = _check_pair_types(pair_types)
    same = pairs_mlfw.resolve(mask_assignment, impostor_same_mask, types)
    entries = parse_lfw_pairs(pairs_file)
    by_id = _index_images(images)
    need_masked, _ = _needs(types)
    color_set = _pick_colors(list(by_id.values()), colors, need_masked)
    variants: dict[str, dict[str, str]] = {}
    if same is not None:
        pairs_mlfw.check_colors(color_set)
        variants = pairs_mlfw.color_variants(by_id.values())
    sources, warnings = _build_sources(by_id, color_set, seed)
    warnings += find_duplicates(by_id.values())
    missing: list[str] = []
    resolved: list[tuple[int, Any, Any, int]] = []  # _Source sides once nothing is missing
    for fold, n1, i1, n2, i2, label in entries:
        sides = []
        for pos, (name, idx) in enumerate(((n1, i1), (n2, i2))):
            src = lfw_rel_path(name, idx)
            s = sources.get(src)
            if s is None:
                missing.append(f"{src} (no usable image)")
            else:
                for want in sorted({_SIDES[t][pos] for t in types}):
                    if getattr(s, want) is None:
                        missing.append(f"{src} ({_variant_name(want, src, color_set, seed)})")
                if same is not None:
                    short = pairs_mlfw.missing_colors(variants.get(src, {}), color_set)
                    missing += [f"{src} (mask-{c})" for c in short]
            sides.append(s)
        resolved.append((fold, sides[0], sides[1], label))
    if missing:
        missing = sorted(set(missing))
        raise UserError(
            f"{len(missing)} image(s) that {pairs_file.name} needs are missing (failed synth?): "
            + ", ".join(missing[:_SHOW])
            + (", ..." if len(missing) > _SHOW else "")
        )
    source_pairs = [(f, label, a, b) for f, a, b, label in resolved]
    pairs = _source_pairs_to_pairs(source_pairs, types, "test")
    if same is not None:
        pairs = pairs_mlfw.assign(pairs, by_id, color_set, seed, same)
    rows = _fold_rows(resolved, pairs, by_id)
    summary = _fold_summary(rows, pairs, by_id, types)
    params = {
        "pairs_file": pairs_file.name,
        "pairs_sha256": sha256_file(pairs_file),
        "n_folds": len(rows),
        "seed": int(seed),
        "pair_types": types,
        "colors": color_set if need_masked else [],
    }
    _mlfw_record(same, params, summary, pairs, by_id)
    return _finish("official-lfw", params, by_id, pairs, summary, warnings)


def _listed_type(a: dict[str, Any], b: dict[str, Any]) -> tuple[dict, dict, str]:
    """(reference, probe, pair type) of a listed pair: by mask when both sides' masks are known
    (a masked-unmasked pair puts the unmasked image first), else ``listed`` as given."""
    if a.get("mask_type") is None or b.get("mask_type") is None:
        return a, b, LISTED
    if a["masked"] and b["masked"]:
        return a, b, "masked-masked"
    if not a["masked"] and not b["masked"]:
        return a, b, "unmasked-unmasked"
    return (b, a, "masked-unmasked") if a["masked"] else (a, b, "masked-unmasked")


def mfr2_pairs(pairs_file: Path, images: Iterable[dict[str, Any]]) -> PairSet:
    """MFR2's ``pairs.txt`` (LFW line format, no header), as listed (:func:`listed_pairs`)."""
    return listed_pairs(pairs_file, images, strategy="mfr2")


def listed_pairs(
    pairs_file: Path, images: Iterable[dict[str, Any]], *, strategy: str = "listed"
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
    by_id = _index_images(images)
    lookup: dict[str, dict[str, Any]] = {}
    rank = {"real": 0, "unmasked": 1}
    for im in sorted(by_id.values(), key=lambda im: (rank.get(im["variant"], 2), im["id"])):
        lookup.setdefault(posixpath.splitext(im["src_path"])[0], im)
    warnings = find_duplicates(by_id.values())
    missing: list[str] = []
    pairs = []
    sides_used: list[tuple[int, Any, Any, int]] = []
    for fold, n1, i1, n2, i2, label in entries:
        a = lookup.get(lfw_rel_path(n1, i1, ""))
        b = lookup.get(lfw_rel_path(n2, i2, ""))
        for found, name, idx in ((a, n1, i1), (b, n2, i2)):
            if found is None:
                missing.append(lfw_rel_path(name, idx, ".*"))
        if a is not None and b is not None:
            ref, probe, kind = _listed_type(a, b)
            pairs.append(_pair(ref["id"], probe["id"], label, "test", fold, kind))
            sides_used.append((fold, ref, probe, label))
    if missing:
        missing = sorted(set(missing))
        raise UserError(
            f"{len(missing)} image(s) that {pairs_file.name} lists are missing: "
            + ", ".join(missing[:_SHOW])
            + (", ..." if len(missing) > _SHOW else "")
        )
    entries_src = [(f, _as_source(a), _as_source(b), label) for f, a, b, label in sides_used]
    rows = _fold_rows(entries_src, pairs, by_id)
    types = sorted({p["pair_type"] for p in pairs})
    summary = _fold_summary(rows, pairs, by_id, types)
    summary["mask_types"] = dict(
        sorted(Counter(im["mask_type"] for im in by_id.values() if im.get("mask_type")).items())
    )
    params = {"pairs_file": pairs_file.name, "pairs_sha256": sha256_file(pairs_file)}
    return _finish(strategy, params, by_id, pairs, summary, warnings)


def _as_source(im: dict[str, Any]) -> _Source:
    return _Source(im["src_path"], im["identity"], im["src_sha256"], None, None)


# ----------------------------------------------------------------------------- printing


def summary_table(pairset: PairSet) -> list[dict[str, Any]]:
    """Rows for printing a PairSet's summary: one per split or fold, then a total row.

    Columns: ``split`` (rmfrd) or ``fold``; subjects; masked and unmasked images; genuine and
    impostor pairs; identities the impostors cover (rmfrd: probe/reference sides, with the
    first-N-in-listing-order figure beside it).
    """
    summary = pairset.summary
    by_split = summary.get("by") == "split"
    out = []
    for row in [*summary["rows"], summary["total"]]:
        is_total = row.get("split") == "total"
        shown: dict[str, Any] = {}
        if by_split:
            shown["split"] = row["split"]
        else:
            shown["fold"] = "total" if is_total else row["fold"]
        for key in ("subjects", "masked", "unmasked", "genuine", "impostor"):
            shown[key] = row.get(key, "")
        if by_split:
            shown["impostor ids (probe/ref)"] = (
                "" if is_total else f"{row['impostor_ids_masked']}/{row['impostor_ids_unmasked']}"
            )
            shown["first-N ids (probe/ref)"] = (
                "" if is_total else f"{row['first_n_ids_masked']}/{row['first_n_ids_unmasked']}"
            )
        else:
            shown["impostor ids"] = "" if is_total else row["impostor_ids"]
        out.append(shown)
    return out
