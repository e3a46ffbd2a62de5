"""The RMFRD strategy: identity-disjoint train/val/test masked-vs-unmasked pairs, reproducible.

The RMFRD thesis protocol done right: seeded per-identity caps and impostors sampled uniformly
over all cross-identity pairs of a split (never the first N in listing order, which cover only
a handful of identities). Also used for synth manifests and plain folders of photos.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from mfrbench.errors import UserError
from mfrbench.pairs.pairset import MASKED_UNMASKED, PairDraft, PairSet, finish, make_pair
from mfrbench.pairs.refs import find_duplicates
from mfrbench.pairs.sources import Source, build_sources, colors_in, index_images
from mfrbench.pairs.splits import SPLIT_RULE, exact, identity_split, round_half_up, split_sizes
from mfrbench.pairs.summary import color_counts
from mfrbench.protocol import SPLITS
from mfrbench.records import ImageRef
from mfrbench.vision.augment import make_rng


def _sample_sorted(items: list[Source], cap: int | None, rng_key: str, seed: int) -> list[Source]:
    """At most ``cap`` of ``items`` by seeded sampling without replacement, kept in input order."""
    if cap is None or len(items) <= cap:
        return items
    idx = np.sort(make_rng(seed, rng_key).choice(len(items), size=cap, replace=False))
    return [items[i] for i in idx.tolist()]


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
    images: Iterable[ImageRef],
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
    by_id = index_images(images)
    colors = colors_in(by_id.values())
    sources, warnings = build_sources(by_id, colors, seed)
    warnings += find_duplicates(by_id.values())

    masked: dict[str, list[Source]] = defaultdict(list)
    unmasked: dict[str, list[Source]] = defaultdict(list)
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

    pairs: list[PairDraft] = []
    rows: list[dict[str, Any]] = []
    ratio = exact(impostor_ratio)
    for split in SPLITS:
        ids = [i for i in both if split_of[i] == split]
        n_gen = 0
        for ident in ids:
            for m in sel_m[ident]:
                for u in sel_u[ident]:
                    if m.sha != u.sha:
                        pairs.append(
                            make_pair(
                                u.image("unmasked"),
                                m.image("masked"),
                                1,
                                split,
                                None,
                                MASKED_UNMASKED,
                            )
                        )
                        n_gen += 1
        ms = [s for i in ids for s in sel_m[i]]
        us = [s for i in ids for s in sel_u[i]]
        m_ident = np.array([k for k, i in enumerate(ids) for _ in sel_m[i]], np.int64)
        u_ident = np.array([k for k, i in enumerate(ids) for _ in sel_u[i]], np.int64)
        m_sha = np.array([code(s.sha) for s in ms], np.int64)
        u_sha = np.array([code(s.sha) for s in us], np.int64)
        cross = len(ms) * len(us) - sum(len(sel_m[i]) * len(sel_u[i]) for i in ids)
        available = cross - _cross_duplicates(m_ident, m_sha, u_ident, u_sha)
        wanted = round_half_up(ratio * n_gen)
        n_imp = min(wanted, available)
        if n_imp < wanted:
            warnings.append(
                f"{split}: only {available} impostor pairs exist, {wanted} wanted "
                f"(impostor ratio {impostor_ratio}); using {available}"
            )
        rng = make_rng(seed, f"rmfrd|impostors|{split}")
        r, c = _sample_cross(rng, m_ident, m_sha, u_ident, u_sha, n_imp)
        for mi, ui in zip(r.tolist(), c.tolist(), strict=True):
            a, b = us[ui].image("unmasked"), ms[mi].image("masked")
            pairs.append(make_pair(a, b, 0, split, None, MASKED_UNMASKED))
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
        "split_rule": SPLIT_RULE,
        "first_n_rule": (
            "first_n_ids_*: identities covered by the first N cross-identity pairs in listing "
            "order (masked images outer loop, unmasked inner, both sorted by identity then path)"
        ),
        "colors": color_counts(pairs, by_id),
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
    return finish("rmfrd", params, by_id, pairs, summary, warnings)


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
