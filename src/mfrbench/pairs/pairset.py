"""What a pair strategy returns (:class:`PairSet`), the pair types, and canonical pair order.

Every strategy builds draft pairs (:class:`PairDraft`, no ``id`` yet) and hands them to
:func:`finish`, which sorts them canonically, numbers them and keeps only the images they use,
so all strategies emit pairs in one order whatever order they were drawn in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

from mfrbench.errors import UserError
from mfrbench.protocol import SPLITS
from mfrbench.records import ImageRef, Pair

MASKED_UNMASKED = "masked-unmasked"
MASKED_MASKED = "masked-masked"
UNMASKED_UNMASKED = "unmasked-unmasked"
LISTED = "listed"
#: Pair types a strategy can emit (``listed`` is only for lists taken as they are).
PAIR_TYPES = (MASKED_UNMASKED, MASKED_MASKED, UNMASKED_UNMASKED)
#: Image sides each pair type needs: (reference a, probe b) as "masked" / "unmasked".
SIDES = {
    MASKED_UNMASKED: ("unmasked", "masked"),
    MASKED_MASKED: ("masked", "masked"),
    UNMASKED_UNMASKED: ("unmasked", "unmasked"),
}
_SPLIT_RANK = {s: i for i, s in enumerate(SPLITS)}


class PairDraft(TypedDict):
    """A :class:`~mfrbench.records.Pair` before :func:`finish` numbers it (no ``id``)."""

    a: str
    b: str
    label: int
    split: str
    fold: int | None
    pair_type: str


@dataclass
class PairSet:
    """What a pair strategy returns (the input of ``protocol.freeze``).

    ``images``: the image references the pairs use, sorted by id. ``pairs``: ``id``, ``a``
    (reference), ``b`` (probe), ``label`` (1 genuine, 0 impostor), ``split``, ``fold``,
    ``pair_type``, in canonical order (split, fold, pair type, genuine first, a, b) with ``id``
    = position. ``params``: every generation parameter. ``summary``: JSON-able counts per split
    or fold (see :func:`mfrbench.pairs.summary_table`). ``warnings``: human-readable notes.
    """

    strategy: str
    params: dict[str, Any]
    images: list[ImageRef]
    pairs: list[Pair]
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


def make_pair(
    a: str, b: str, label: int, split: str, fold: int | None, pair_type: str
) -> PairDraft:
    """One draft pair: ``a`` reference id, ``b`` probe id."""
    return {"a": a, "b": b, "label": label, "split": split, "fold": fold, "pair_type": pair_type}


def check_pair_types(pair_types: Sequence[str]) -> list[str]:
    """The requested pair types, sorted and deduplicated; unknown or none raise UserError."""
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


def needs(pair_types: Sequence[str]) -> tuple[bool, bool]:
    """(needs a masked image, needs an unmasked image) for a source used on either side."""
    sides = {s for t in pair_types for s in SIDES[t]}
    return "masked" in sides, "unmasked" in sides


def finish(
    strategy: str,
    params: dict[str, Any],
    by_id: dict[str, ImageRef],
    pairs: list[PairDraft],
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
    numbered: list[Pair] = [{"id": i, **p} for i, p in enumerate(pairs)]
    used = {p["a"] for p in pairs} | {p["b"] for p in pairs}
    images = [by_id[i] for i in sorted(used)]
    return PairSet(strategy, params, images, numbered, summary, warnings)
