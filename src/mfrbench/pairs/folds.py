"""The LFW-style fold strategy: genuine + impostor pairs per fold, identities disjoint across
folds, the same source photos emitted for every requested pair type."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from mfrbench.errors import UserError
from mfrbench.pairs import mlfw
from mfrbench.pairs.pairset import MASKED_UNMASKED, PairSet, check_pair_types, finish, needs
from mfrbench.pairs.refs import find_duplicates
from mfrbench.pairs.sources import Source, build_sources, emit_pairs, index_images, pick_colors
from mfrbench.pairs.summary import count_sides, fold_summary
from mfrbench.records import ImageRef
from mfrbench.vision.augment import make_rng


def _usable_sources(
    sources: dict[str, Source], need_masked: bool, need_unmasked: bool
) -> tuple[dict[str, list[Source]], int]:
    """Per identity, its sources having every needed side, path order, one per content
    (a second file with the same bytes under one identity is dropped); and the drop count."""
    out: dict[str, list[Source]] = defaultdict(list)
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


def lfw_folds(
    images: Iterable[ImageRef],
    *,
    n_folds: int = 10,
    per_fold: int = 300,
    pair_types: Sequence[str] = (MASKED_UNMASKED,),
    seed: int = 0,
    colors: Sequence[str] | None = None,
    mask_assignment: str = mlfw.PER_PHOTO,
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
    ``mask_assignment="mlfw"`` re-colours the masked-masked pairs (:mod:`mfrbench.pairs.mlfw`);
    a source then needs a variant in every colour.
    """
    types = check_pair_types(pair_types)
    same = mlfw.resolve_mask_assignment(mask_assignment, impostor_same_mask, types)
    if not isinstance(n_folds, int) or n_folds < 1:
        raise UserError(f"number of folds must be a positive integer, got {n_folds!r}")
    if not isinstance(per_fold, int) or per_fold < 1:
        raise UserError(f"pairs per fold must be a positive integer, got {per_fold!r}")
    by_id = index_images(images)
    need_masked, need_unmasked = needs(types)
    color_set = pick_colors(list(by_id.values()), colors, need_masked)
    sources, warnings = build_sources(by_id, color_set, seed)
    if same is not None:
        warnings += mlfw.leave_out_short_sources(sources, by_id, color_set)
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

    source_pairs: list[tuple[int | None, int, Source, Source]] = []
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
    pairs = emit_pairs(source_pairs, types, "test")
    if same is not None:
        pairs = mlfw.assign(pairs, by_id, color_set, seed, same)
    for row in rows:
        count_sides(row, [p for p in pairs if p["fold"] == row["fold"]], by_id)
    summary = fold_summary(rows, pairs, by_id, types)
    params = {
        "seed": int(seed),
        "n_folds": n_folds,
        "per_fold": per_fold,
        "pair_types": types,
        "colors": color_set if need_masked else [],
    }
    mlfw.record(same, params, summary, pairs, by_id)
    return finish("lfw-folds", params, by_id, pairs, summary, warnings)


def _fold_genuine(
    fold: int, ids: list[str], per_id: dict[str, list[Source]], per_fold: int, seed: int
) -> list[tuple[Source, Source]]:
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
    fold: int, ids: list[str], per_id: dict[str, list[Source]], per_fold: int, seed: int
) -> list[tuple[Source, Source]]:
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
    out: list[tuple[Source, Source]] = []
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
