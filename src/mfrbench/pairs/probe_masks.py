"""Probe masks: a protocol that chooses the masks its probes wear (``pairs --probe-masks``).

Instead of the masks synth rendered, every synthetic masked image a protocol's pairs use gets
one mask drawn by ``pairs`` and frozen in the protocol (a ``mask-mix`` ImageRef with its
``mask_style``; eval and ``protocol render`` draw it on the frozen landmarks). The mix says
which masks and in what shares, and the shares are met *exactly* over the masked images the
pairs use (largest-remainder counts), so a protocol can mirror a real dataset's label counts:

- ``surgical:0.4,cloth:0.3,n95:0.2,paper:0.1``: kinds of :data:`~mfrbench.vision.mask_mix.
  MIX_KINDS` with weights (a bare name weighs 1);
- ``surgical/blue:12,cloth/red:3,cloth/patterned:2``: an entry may fix the colour (a palette
  name of the kind, or a named colour for the polygon shapes) and, for cloth, the pattern
  (``solid``, ``stripes``, ``dots``, ``checks``, ``motif``, or ``patterned``: any but solid);
- ``@FILE``: the counts of a real dataset's labels, from an MFR2 ``mfr2_labels.txt`` or from
  a protocol JSON (its masked images' ``mask_type``): MFR2's labels mapped by
  :data:`MFR2_LABELS`, mfrbench's own entries as they are; entries in label order.

Which image gets which entry depends only on (seed, source path): the images are ordered by a
seeded hash and the entries dealt out in spec order; each image's look (colour where not
fixed, pleats, pattern, texture seed) comes from its own generator.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from mfrbench.errors import UserError
from mfrbench.pairs.pairset import PairSet
from mfrbench.records import MIX_VARIANT, ImageRef

#: MFR2's mask labels as probe-mask entries (N99 is drawn as the n95 cup it looks like).
MFR2_LABELS: dict[str, str] = {
    "surgical_blue": "surgical/blue",
    "surgical_black": "surgical/black",
    "surgical_white": "surgical/white",
    "surgical_green": "surgical/green",
    "cloth_black": "cloth/black/solid",
    "cloth_white": "cloth/white/solid",
    "cloth_red": "cloth/red/solid",
    "cloth_purple": "cloth/purple/solid",
    "cloth_textured": "cloth/patterned",
    "KN95": "kn95",
    "N95": "n95",
    "N99": "n95",
}
PATTERNED = "patterned"  # any cloth pattern but solid
#: Labels of unmasked images in a label file or protocol (not counted).
NO_MASK_LABELS = ("no-mask", "none", "")
_KEY = "probe-mask"


@dataclass(frozen=True)
class ProbeMask:
    """One entry of a probe-mask mix: a kind, optionally a fixed colour and cloth pattern."""

    kind: str
    color: str | None = None
    pattern: str | None = None

    @property
    def label(self) -> str:
        """``kind[/colour][/pattern]``, the entry's canonical text."""
        return "/".join(p for p in (self.kind, self.color, self.pattern) if p is not None)

    @classmethod
    def parse(cls, text: str) -> ProbeMask:
        """From ``kind[/qualifier[/qualifier]]``; each qualifier a colour or a cloth pattern."""
        from mfrbench.colors import NAMED_COLORS
        from mfrbench.vision.mask_mix import MIX_KINDS
        from mfrbench.vision.mask_styles import CLOTH_PATTERNS, KINDS, palette

        kind, *quals = [p.strip().lower() for p in text.split("/")]
        if kind not in MIX_KINDS:
            raise UserError(f"unknown mask kind {kind!r}; choose from {', '.join(MIX_KINDS)}")
        colors = list(palette(kind)) if kind in KINDS else list(NAMED_COLORS)
        patterns = [*CLOTH_PATTERNS, PATTERNED] if kind == "cloth" else []
        color = pattern = None
        for q in quals:
            if q in colors and color is None:
                color = q
            elif q in patterns and pattern is None:
                pattern = q
            else:
                raise UserError(
                    f"{text!r}: {q!r} is not a {kind} colour ({', '.join(colors)})"
                    + (f" or pattern ({', '.join(patterns)})" if patterns else "")
                    + " or is given twice"
                )
        return cls(kind, color, pattern)


@dataclass(frozen=True)
class ProbeMix:
    """Probe-mask entries with weights (normalised), in spec order; ``source`` names the file
    the counts came from (``{"file", "sha256"}``) or is None."""

    entries: tuple[ProbeMask, ...]
    weights: tuple[float, ...]
    source: dict[str, str] | None = None

    def spec(self) -> str:
        """The canonical text (labels with weights at 6 significant digits)."""
        return ",".join(
            f"{e.label}:{w:.6g}" for e, w in zip(self.entries, self.weights, strict=True)
        )

    def record(self) -> dict[str, Any]:
        """What a protocol's generation params keep of the mix."""
        return {"spec": self.spec(), **({"from": self.source} if self.source else {})}


def parse_probe_masks(spec: str) -> ProbeMix:
    """A :class:`ProbeMix` from ``kind[/colour][/pattern]:weight,...`` or ``@FILE`` (counts)."""
    spec = spec.strip()
    if spec.startswith("@"):
        return _from_file(Path(spec[1:]))
    counts: dict[ProbeMask, float] = {}
    for part in spec.split(","):
        name, sep, weight = part.strip().partition(":")
        if not name.strip():
            raise UserError(f"empty mask entry in {spec!r}; e.g. surgical/blue:0.6,cloth:0.4")
        try:
            w = float(weight) if sep else 1.0
        except ValueError:
            raise UserError(f"weight of {name!r} is not a number: {weight!r}") from None
        entry = ProbeMask.parse(name)
        if entry in counts:
            raise UserError(f"mask entry {entry.label!r} given twice in {spec!r}")
        counts[entry] = w
    return _mix(counts, None)


def _mix(counts: Mapping[ProbeMask, float], source: dict[str, str] | None) -> ProbeMix:
    if not counts:
        raise UserError("--probe-masks needs at least one mask entry")
    bad = [f"{e.label}:{w}" for e, w in counts.items() if not (w > 0 and w < float("inf"))]
    if bad:
        raise UserError(f"mask weights must be positive numbers, got {', '.join(bad)}")
    total = float(sum(counts.values()))
    return ProbeMix(tuple(counts), tuple(float(w) / total for w in counts.values()), source)


def _from_file(path: Path) -> ProbeMix:
    """Label counts of an MFR2 label file or a protocol's masked images, as a mix."""
    from mfrbench.fetch import sha256_file

    if not path.is_file():
        raise UserError(f"--probe-masks: file not found: {path}")
    if path.suffix.lower() == ".json":
        labels = _protocol_labels(path)
    else:
        from mfrbench.datasets.mfr2 import parse_labels

        labels = list(parse_labels(path).values())
    counts: Counter[str] = Counter(x for x in labels if x.strip().lower() not in NO_MASK_LABELS)
    entries: dict[ProbeMask, float] = {}
    unknown = []
    for label, n in sorted(counts.items()):
        try:
            entry = ProbeMask.parse(MFR2_LABELS.get(label, label))
        except UserError:
            unknown.append(label)
            continue
        entries[entry] = entries.get(entry, 0.0) + n
    if unknown:
        raise UserError(
            f"--probe-masks: {path.name} has mask label(s) mfrbench cannot draw: "
            f"{', '.join(unknown)} (known: MFR2's {', '.join(MFR2_LABELS)}, or mfrbench's "
            "kind[/colour][/pattern])"
        )
    return _mix(entries, {"file": path.name, "sha256": sha256_file(path)})


def _protocol_labels(path: Path) -> list[str]:
    """The ``mask_type`` of every masked image of a protocol file (one per image)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        images = data["images"]
        return [im["mask_type"] or "" for im in images if im["masked"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"--probe-masks: {path} is not a protocol file ({exc})") from None


# ----------------------------------------------------------------------------- assignment


def drawable(image: ImageRef) -> bool:
    """A synthetic mask on a frozen face (not a real masked photo): pairs can redraw it."""
    return bool(
        image["synthetic"]
        and image["masked"]
        and image["landmarks68"] is not None
        and (image["color"] is not None or image["variant"] == MIX_VARIANT)
    )


def as_mix_images(images: Iterable[ImageRef]) -> list[ImageRef]:
    """Each source's synthetic masked variants collapsed into one ``mask-mix`` image (its mask
    to be drawn by :func:`assign_probe_masks`); other images unchanged; sorted by id.

    The variants differ only in their mask, so the first by id gives the face and crop."""
    out: list[ImageRef] = []
    seen: set[str] = set()
    for im in sorted(images, key=lambda im: im["id"]):
        if not drawable(im):
            out.append(im)
            continue
        if im["src_path"] in seen:
            continue
        seen.add(im["src_path"])
        ref = dict(im, id=f"{MIX_VARIANT}:{im['src_path']}", variant=MIX_VARIANT)
        ref.update(color=None, color_rgb=None, mask_polygon=None, mask_type=None, mask_style={})
        out.append(cast(ImageRef, ref))
    out.sort(key=lambda im: im["id"])
    return out


def quotas(n: int, weights: Sequence[float]) -> list[int]:
    """``n`` split by ``weights`` (summing to 1) with largest remainders; ties to the first."""
    exact = [n * w for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _rank(seed: int, src_path: str) -> bytes:
    return hashlib.sha256(f"{int(seed)}\x00{_KEY}\x00{src_path}".encode()).digest()


def draw_record(entry: ProbeMask, seed: int, src_path: str) -> dict[str, Any]:
    """The mask record (``MaskRecord``) of ``entry`` on one image, from (seed, src_path)."""
    from mfrbench.vision.augment import make_rng
    from mfrbench.vision.mask_mix import POLYGON_COLORS, make_record
    from mfrbench.vision.mask_styles import CLOTH_PATTERNS, KINDS

    rng = make_rng(seed, f"{src_path}|{_KEY}")
    look = int(rng.integers(2**63))  # the same three draws for every entry: fixed order
    color = POLYGON_COLORS[int(rng.integers(len(POLYGON_COLORS)))]
    patterned = CLOTH_PATTERNS[1 + int(rng.integers(len(CLOTH_PATTERNS) - 1))]
    if entry.kind in KINDS:
        pattern = patterned if entry.pattern == PATTERNED else entry.pattern
        return dict(make_record(entry.kind, look, color, style_color=entry.color, pattern=pattern))
    return dict(make_record(entry.kind, look, entry.color or color))


def assign_probe_masks(images: Sequence[ImageRef], mix: ProbeMix, seed: int) -> list[ImageRef]:
    """``images`` with every ``mask-mix`` image given its mask: entries dealt out in exact
    shares over those images, in seeded-hash order of their source paths."""
    import numpy as np

    from mfrbench.vision.mask import mask_polygon
    from mfrbench.vision.mask_mix import record_color

    targets = sorted(
        (im for im in images if im["variant"] == MIX_VARIANT),
        key=lambda im: _rank(seed, im["src_path"]),
    )
    dealt: dict[str, ProbeMask] = {}
    start = 0
    for kind, n in zip(mix.entries, quotas(len(targets), mix.weights), strict=True):
        for im in targets[start : start + n]:
            dealt[im["id"]] = kind
        start += n
    out = []
    for im in images:
        entry = dealt.get(im["id"])
        if entry is None:
            out.append(im)
            continue
        record = draw_record(entry, seed, im["src_path"])
        name, rgb = record_color(record)
        polygon = None
        if record["style"] is None:  # a polygon shape: its outline on the frozen landmarks
            canon = np.asarray(im["landmarks68"], dtype=np.float64)
            polygon = mask_polygon(canon, entry.kind).reshape(-1, 2).tolist()
        ref = dict(im, mask_style=record, mask_type=entry.kind, color=name, color_rgb=rgb)
        ref["mask_polygon"] = polygon
        out.append(cast(ImageRef, ref))
    return out


def label_counts(images: Iterable[ImageRef], mix: ProbeMix, seed: int) -> dict[str, int]:
    """How many of the ``mask-mix`` images got each entry (the protocol summary's record)."""
    n = sum(1 for im in images if im["variant"] == MIX_VARIANT)
    return {e.label: c for e, c in zip(mix.entries, quotas(n, mix.weights), strict=True) if c}


def with_probe_masks(pairset: PairSet, mix: ProbeMix, seed: int) -> PairSet:
    """A pair set made from :func:`as_mix_images` with its probes' masks drawn: the images'
    records, ``params["probe_masks"]``, the summary's colour counts and ``probe_masks`` counts
    per entry. The pairs are unchanged (their mask-mix ids do not depend on the mask)."""
    from mfrbench.pairs.summary import color_counts

    images = assign_probe_masks(pairset.images, mix, seed)
    by_id = {im["id"]: im for im in images}
    summary = dict(pairset.summary)
    if "colors" in summary:
        summary["colors"] = color_counts(pairset.pairs, by_id)
    summary["probe_masks"] = label_counts(images, mix, seed)
    params = {**pairset.params, "probe_masks": mix.record()}
    return replace(pairset, images=images, params=params, summary=summary)
