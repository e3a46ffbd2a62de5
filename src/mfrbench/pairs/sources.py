"""Source photos: the images grouped by the photo they come from, one image picked per side.

A strategy pairs *source photos* and then points each side at an image of that photo: the
unmasked side at its unmasked image, the masked side at the variant of colour
:func:`~mfrbench.pairs.refs.color_for` (or a real masked photo). :func:`emit_pairs` turns
(reference source, probe source) pairs into draft pairs of every requested pair type.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mfrbench.errors import UserError
from mfrbench.pairs.pairset import SIDES, PairDraft, make_pair
from mfrbench.pairs.refs import color_for
from mfrbench.records import MIX_VARIANT, ImageRef

SHOW = 5  # how many offending items an error message or warning lists


@dataclass(slots=True)
class Source:
    """One source photo and the image chosen for each side (ids, or None when it has none)."""

    src_path: str
    identity: str
    sha: str
    unmasked: str | None
    masked: str | None

    def image(self, side: str) -> str:
        """The image id of ``side`` (``masked`` / ``unmasked``); strategies pair only sources
        having the sides they use, so a missing one is a bug."""
        image = self.masked if side == "masked" else self.unmasked
        assert image is not None, f"{self.src_path} has no {side} image"
        return image


def colors_in(images: Iterable[ImageRef]) -> list[str]:
    """Sorted distinct colours of the synthetic masked images (mask-mix images aside: their
    colour is drawn with the mask, not chosen)."""
    return sorted(
        {
            im["color"]
            for im in images
            if im["masked"] and im["color"] is not None and im["variant"] != MIX_VARIANT
        }
    )


def index_images(images: Iterable[ImageRef]) -> dict[str, ImageRef]:
    """The images by id; an id given twice raises UserError."""
    by_id: dict[str, ImageRef] = {}
    for im in images:
        if im["id"] in by_id:
            raise UserError(f"image id {im['id']!r} appears twice in the input")
        by_id[im["id"]] = im
    return by_id


def pick_colors(
    images: Sequence[ImageRef], colors: Sequence[str] | None, need_masked: bool
) -> list[str]:
    """The colour set for masked sides: ``colors`` (each must occur) or all colours present.

    Images from synth --masks (one drawn mask per source) leave nothing to choose: the set is
    empty and asking for colours is an error."""
    if any(im["variant"] == MIX_VARIANT for im in images):
        if colors:
            raise UserError(
                "these images come from synth --masks (one drawn mask per photo, its colour "
                "drawn with it): --colors does not apply"
            )
        return []
    present = colors_in(images)
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


def _chosen_color(src: str, colors: Sequence[str], seed: int) -> str | None:
    return color_for(src, colors, seed) if colors else None


def build_sources(
    by_id: dict[str, ImageRef], colors: Sequence[str], seed: int
) -> tuple[dict[str, Source], list[str]]:
    """Group images by source photo, sorted by path; pick each side's image.

    Unmasked side: the source's unmasked image (``real`` before ``unmasked``). Masked side: the
    synthetic variant of colour :func:`color_for` (a source whose chosen colour failed has none),
    or, without synthetic variants, a real masked image. Sources without sha256 are left out.
    """
    groups: dict[str, list[ImageRef]] = defaultdict(list)
    for im in by_id.values():
        groups[im["src_path"]].append(im)
    sources: dict[str, Source] = {}
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
                sources[src] = Source(src, identity, sha, im["id"], None)
            elif (
                im["color"] is None
                or im["variant"] == MIX_VARIANT
                or im["color"] == _chosen_color(src, colors, seed)
            ):
                sources[src] = Source(src, identity, sha, None, im["id"])
            else:
                sources[src] = Source(src, identity, sha, None, None)
            continue
        ims = sorted(ims, key=lambda im: im["id"])
        if any(im["identity"] != identity for im in ims):
            raise UserError(f"source {src!r} appears under two identities in the input")
        unmasked = next((im["id"] for im in ims if not im["masked"]), None)
        synth = [im for im in ims if im["masked"] and im["color"] is not None]
        mixed = [im for im in ims if im["variant"] == MIX_VARIANT]  # synth --masks: the one mask
        if synth and not mixed:
            chosen = _chosen_color(src, colors, seed)
            masked = next((im["id"] for im in synth if im["color"] == chosen), None)
        else:
            masked = next((im["id"] for im in mixed or ims if im["masked"]), None)
        sources[src] = Source(src, identity, sha, unmasked, masked)
    warnings = []
    if unreadable:
        warnings.append(
            f"{len(unreadable)} source image(s) without sha256 (unreadable) left out: "
            + ", ".join(unreadable[:SHOW])
        )
    return sources, warnings


def emit_pairs(
    source_pairs: Sequence[tuple[int | None, int, Source, Source]],
    pair_types: Sequence[str],
    split: str,
) -> list[PairDraft]:
    """Emit each (fold, label, reference source, probe source) once per pair type."""
    out = []
    for t in pair_types:
        side_a, side_b = SIDES[t]
        for fold, label, sa, sb in source_pairs:
            out.append(make_pair(sa.image(side_a), sb.image(side_b), label, split, fold, t))
    return out
