"""The official-list strategy: an LFW pair list (``pairs.txt`` etc.) pointed at variants.

Each line's photos are the list's own; what changes is which image of each photo a side uses
(the masked variant of colour ``color_for``, or the unmasked one), once per pair type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mfrbench.errors import UserError
from mfrbench.fetch import sha256_file
from mfrbench.pairs import mlfw
from mfrbench.pairs.lfw_lists import lfw_rel_path, parse_lfw_pairs
from mfrbench.pairs.pairset import (
    MASKED_UNMASKED,
    SIDES,
    PairSet,
    check_pair_types,
    finish,
    needs,
)
from mfrbench.pairs.refs import color_for, find_duplicates
from mfrbench.pairs.sources import (
    SHOW,
    Source,
    build_sources,
    emit_pairs,
    index_images,
    pick_colors,
)
from mfrbench.pairs.summary import fold_rows, fold_summary
from mfrbench.records import ImageRef


def _variant_name(side: str, src: str, colors: Sequence[str], seed: int) -> str:
    """The variant a side of ``src`` needs: ``unmasked`` or ``mask-<colour>``."""
    if side == "masked" and colors:
        return f"mask-{color_for(src, colors, seed)}"
    return side


def official_lfw_pairs(
    pairs_file: Path,
    images: Iterable[ImageRef],
    *,
    pair_types: Sequence[str] = (MASKED_UNMASKED,),
    seed: int = 0,
    colors: Sequence[str] | None = None,
    mask_assignment: str = mlfw.PER_PHOTO,
    impostor_same_mask: float | None = None,
) -> PairSet:
    """An official LFW pair list over the images, each side pointed at the requested variant.

    The first image of a line is the reference ``a``, the second the probe ``b`` (masked for
    ``masked-unmasked``); a masked side gets colour :func:`color_for` among ``colors`` (default
    all colours present). Folds come from the file. An image the list needs but ``images``
    lacks (a failed synth, a colour not rendered) raises :class:`UserError` listing the first few.
    ``mask_assignment="mlfw"`` re-colours the masked-masked pairs (:mod:`mfrbench.pairs.mlfw`);
    every listed photo then needs a variant in every colour.
    """
    pairs_file = Path(pairs_file)
    types = check_pair_types(pair_types)
    same = mlfw.resolve_mask_assignment(mask_assignment, impostor_same_mask, types)
    entries = parse_lfw_pairs(pairs_file)
    by_id = index_images(images)
    need_masked, _ = needs(types)
    color_set = pick_colors(list(by_id.values()), colors, need_masked)
    variants: dict[str, dict[str, str]] = {}
    if same is not None:
        mlfw.check_colors(color_set)
        variants = mlfw.color_variants(by_id.values())
    sources, warnings = build_sources(by_id, color_set, seed)
    warnings += find_duplicates(by_id.values())
    missing: list[str] = []
    listed: list[tuple[int, Source | None, Source | None, int]] = []
    for fold, n1, i1, n2, i2, label in entries:
        sides: list[Source | None] = []
        for pos, (name, idx) in enumerate(((n1, i1), (n2, i2))):
            src = lfw_rel_path(name, idx)
            s = sources.get(src)
            if s is None:
                missing.append(f"{src} (no usable image)")
            else:
                for want in sorted({SIDES[t][pos] for t in types}):
                    if getattr(s, want) is None:
                        missing.append(f"{src} ({_variant_name(want, src, color_set, seed)})")
                if same is not None:
                    short = mlfw.missing_colors(variants.get(src, {}), color_set)
                    missing += [f"{src} (mask-{c})" for c in short]
            sides.append(s)
        listed.append((fold, sides[0], sides[1], label))
    if missing:
        missing = sorted(set(missing))
        raise UserError(
            f"{len(missing)} image(s) that {pairs_file.name} needs are missing (failed synth?): "
            + ", ".join(missing[:SHOW])
            + (", ..." if len(missing) > SHOW else "")
        )
    resolved = [(f, a, b, label) for f, a, b, label in listed if a is not None and b is not None]
    source_pairs = [(f, label, a, b) for f, a, b, label in resolved]
    pairs = emit_pairs(source_pairs, types, "test")
    if same is not None:
        pairs = mlfw.assign(pairs, by_id, color_set, seed, same)
    rows = fold_rows(resolved, pairs, by_id)
    summary = fold_summary(rows, pairs, by_id, types)
    params: dict[str, Any] = {
        "pairs_file": pairs_file.name,
        "pairs_sha256": sha256_file(pairs_file),
        "n_folds": len(rows),
        "seed": int(seed),
        "pair_types": types,
        "colors": color_set if need_masked else [],
    }
    mlfw.record(same, params, summary, pairs, by_id)
    return finish("official-lfw", params, by_id, pairs, summary, warnings)
