"""MLFW-style mask assignment for masked-masked pairs: genuine sides wear different colours.

MLFW (Masked LFW, Wang et al. 2021) puts different masks on the two faces of a genuine pair and
the same mask on the two faces of an impostor pair, so a model cannot verify by matching masks.
With ``mask_assignment="mlfw"`` the LFW strategies (:func:`mfrbench.pairs.lfw_folds`,
:func:`mfrbench.pairs.official_lfw_pairs`) re-point each ``masked-masked`` pair at the colour
variants this module draws; other pair types keep the per-photo colour
(:func:`mfrbench.pairs.color_for`). The default, ``per-photo``, is today's behaviour and adds
no generation parameter, so protocols made without the option keep their digests.

Each pair's draw comes from a generator seeded with (seed, reference path, probe path) only, so
it depends neither on the other pairs, their order, nor how the work is split.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mfrbench.errors import UserError
from mfrbench.pairs.pairset import MASKED_MASKED, PairDraft
from mfrbench.pairs.sources import SHOW, Source
from mfrbench.records import ImageRef
from mfrbench.vision.augment import make_rng

PER_PHOTO = "per-photo"
MLFW = "mlfw"
#: Values of ``mask_assignment`` (first: the default).
MASK_ASSIGNMENTS = (PER_PHOTO, MLFW)
#: Share of impostor pairs whose two sides get the same colour (MLFW: all of them).
DEFAULT_IMPOSTOR_SAME = 1.0


def resolve_mask_assignment(
    mask_assignment: str, impostor_same: float | None, pair_types: Sequence[str]
) -> float | None:
    """Check the option; the impostor same-colour probability under mlfw, else None.

    Unknown values, a probability outside 0..1 or given without mlfw, and mlfw without the
    ``masked-masked`` pair type (it needs both sides masked) raise :class:`UserError`.
    """
    if mask_assignment not in MASK_ASSIGNMENTS:
        raise UserError(
            f"unknown mask assignment {mask_assignment!r}; choose from "
            + ", ".join(MASK_ASSIGNMENTS)
        )
    if mask_assignment == PER_PHOTO:
        if impostor_same is not None:
            raise UserError(
                "the impostor same-mask probability applies only to mask assignment mlfw"
            )
        return None
    if MASKED_MASKED not in pair_types:
        raise UserError(
            "mask assignment mlfw needs both sides masked: add the masked-masked pair type"
        )
    p = DEFAULT_IMPOSTOR_SAME if impostor_same is None else impostor_same
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise UserError(f"impostor same-mask probability must be between 0 and 1, got {p!r}")
    return float(p)


def params(impostor_same: float) -> dict[str, Any]:
    """The generation parameters mlfw adds (per-photo adds none, keeping old digests)."""
    return {"mask_assignment": MLFW, "impostor_same_mask": float(impostor_same)}


def check_colors(colors: Sequence[str]) -> None:
    """mlfw needs at least two synthetic mask colours (genuine sides must differ)."""
    if len(set(colors)) < 2:
        have = ", ".join(sorted(set(colors))) or "none"
        raise UserError(
            f"mask assignment mlfw needs synthetic masks in at least two colours (have: {have})"
        )


def color_variants(images: Iterable[ImageRef]) -> dict[str, dict[str, str]]:
    """Per source path, its synthetic masked images by colour: ``{src: {colour: image id}}``."""
    out: dict[str, dict[str, str]] = {}
    for im in images:
        if im["masked"] and im["color"] is not None:
            out.setdefault(im["src_path"], {})[im["color"]] = im["id"]
    return out


def missing_colors(variants: Mapping[str, str], colors: Sequence[str]) -> list[str]:
    """The colours of ``colors`` a source has no variant of (sorted)."""
    return sorted(c for c in set(colors) if c not in variants)


def pair_colors(
    a_src: str, b_src: str, label: int, colors: Sequence[str], seed: int, impostor_same: float
) -> tuple[str, str]:
    """The (reference, probe) mask colours of one masked-masked pair.

    Genuine: an ordered pair of two different colours, uniform. Impostor: with probability
    ``impostor_same`` one colour for both (uniform), otherwise two different ones as for a
    genuine pair. Seeded by (seed, a_src, b_src): the same pair always gets the same colours.
    """
    choices = sorted(set(colors))
    check_colors(choices)
    n = len(choices)
    rng = make_rng(seed, f"mlfw|{a_src}|{b_src}")
    if label != 1 and rng.random() < impostor_same:
        c = choices[int(rng.integers(n))]
        return c, c
    k = int(rng.integers(n * (n - 1)))
    i, j = divmod(k, n - 1)
    return choices[i], choices[j + (j >= i)]


def _variant(variants: Mapping[str, Mapping[str, str]], src: str, color: str) -> str:
    image = variants.get(src, {}).get(color)
    if image is None:
        raise UserError(f"{src}: no mask-{color} image for an mlfw pair (failed synth?)")
    return image


def assign(
    pairs: Sequence[PairDraft],
    by_id: Mapping[str, ImageRef],
    colors: Sequence[str],
    seed: int,
    impostor_same: float,
) -> list[PairDraft]:
    """``pairs`` with every masked-masked pair's sides re-pointed at the colours drawn by
    :func:`pair_colors`; other pairs unchanged. A variant the draw needs but ``by_id`` lacks
    raises :class:`UserError` (callers keep only sources having every colour)."""
    variants = color_variants(by_id.values())
    out = []
    for p in pairs:
        p = p.copy()
        if p["pair_type"] == MASKED_MASKED:
            a_src, b_src = by_id[p["a"]]["src_path"], by_id[p["b"]]["src_path"]
            ca, cb = pair_colors(a_src, b_src, p["label"], colors, seed, impostor_same)
            p["a"] = _variant(variants, a_src, ca)
            p["b"] = _variant(variants, b_src, cb)
        out.append(p)
    return out


def tally(pairs: Iterable[PairDraft], by_id: Mapping[str, ImageRef]) -> dict[str, Any]:
    """Masked-masked pairs counted by label and whether their two colours agree (summary)."""
    counts = {
        "genuine_same": 0,
        "genuine_different": 0,
        "impostor_same": 0,
        "impostor_different": 0,
    }
    for p in pairs:
        if p["pair_type"] == MASKED_MASKED:
            kind = "genuine" if p["label"] == 1 else "impostor"
            same = by_id[p["a"]]["color"] == by_id[p["b"]]["color"]
            counts[f"{kind}_{'same' if same else 'different'}"] += 1
    return {"mask_assignment": MLFW, **counts}


def leave_out_short_sources(
    sources: Mapping[str, Source], by_id: Mapping[str, ImageRef], colors: Sequence[str]
) -> list[str]:
    """A source lacking any of ``colors`` loses its masked side (so it is left out); the
    warning saying how many."""
    check_colors(colors)
    variants = color_variants(by_id.values())
    short = [
        s
        for s in sources.values()
        if s.masked is not None and missing_colors(variants.get(s.src_path, {}), colors)
    ]
    for s in short:
        s.masked = None
    if not short:
        return []
    return [
        f"mask assignment mlfw: {len(short)} source image(s) lack a mask colour and are left "
        "out: " + ", ".join(s.src_path for s in short[:SHOW])
    ]


def record(
    same: float | None,
    generation: dict[str, Any],
    summary: dict[str, Any],
    pairs: Sequence[PairDraft],
    by_id: Mapping[str, ImageRef],
) -> None:
    """Under mlfw, add its parameters to ``generation`` and the colour tally to ``summary``
    (per-photo: nothing, so old protocols keep their digests)."""
    if same is not None:
        generation.update(params(same))
        summary["mask_pairs"] = tally(pairs, by_id)
