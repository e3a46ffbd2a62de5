"""Mask mixes: which mask a face gets, drawn by weight, and putting it on.

A mix is written ``surgical:0.4,cloth:0.3,n95:0.2,paper:0.1``: procedural kinds
(:data:`~mfrbench.vision.mask_styles.KINDS`) and the flat polygon shapes of
:mod:`mfrbench.vision.mask` (``paper``, ``nist-*``), each with a positive weight (a bare name
weighs 1). :func:`apply_mask` draws one kind from a generator, then that kind's look, and
returns the masked image, its occlusion mask and a JSON-able record of what was drawn: enough
to draw the same mask again with :func:`redraw_mask`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np

from mfrbench.colors import NAMED_COLORS
from mfrbench.errors import UserError
from mfrbench.vision.mask import MASK_SHAPES, draw_mask, mask_polygon
from mfrbench.vision.mask_styles import KINDS, MaskStyle, color_name, draw_style
from mfrbench.vision.mask_warp import render_mask
from mfrbench.vision.occlusion import polygon_occlusion

#: Every name a mix may use: the procedural kinds, then the polygon shapes.
MIX_KINDS: tuple[str, ...] = (*KINDS, *MASK_SHAPES)
#: Colours of the flat polygon shapes, drawn uniformly (the LFW masking paper's three).
POLYGON_COLORS: tuple[str, ...] = tuple(NAMED_COLORS)


class MaskRecord(TypedDict):
    """What :func:`apply_mask` drew: ``mask_type`` plus, for a procedural kind, its style
    (``MaskStyle.to_json()``), for a polygon shape its colour name and RGB."""

    mask_type: str
    style: dict[str, Any] | None
    color: str | None
    color_rgb: list[int] | None


@dataclass(frozen=True)
class MaskMix:
    """Mask kinds and their probabilities (weights normalised to sum to 1), in spec order."""

    kinds: tuple[str, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.kinds or len(self.kinds) != len(self.weights):
            raise UserError("a mask mix needs at least one kind, each with a weight")
        for kind in self.kinds:
            if kind not in MIX_KINDS:
                raise UserError(f"unknown mask kind {kind!r}; choose from {', '.join(MIX_KINDS)}")
        if len(set(self.kinds)) != len(self.kinds):
            raise UserError(f"mask kind listed twice in {','.join(self.kinds)}")
        if any(not (w > 0 and np.isfinite(w)) for w in self.weights):
            raise UserError(f"mask weights must be positive numbers, got {list(self.weights)}")
        total = float(sum(self.weights))
        object.__setattr__(self, "weights", tuple(float(w) / total for w in self.weights))

    @classmethod
    def parse(cls, spec: str | Mapping[str, float] | Sequence[str]) -> MaskMix:
        """From ``"surgical:0.4,cloth:0.3"``, ``{"surgical": 0.4, ...}`` or ``["surgical"]``."""
        if isinstance(spec, Mapping):
            return cls(tuple(spec), tuple(float(w) for w in spec.values()))
        parts = spec.split(",") if isinstance(spec, str) else list(spec)
        kinds, weights = [], []
        for part in parts:
            name, sep, weight = part.strip().partition(":")
            if not name:
                raise UserError(f"empty mask kind in {spec!r}; e.g. surgical:0.6,cloth:0.4")
            try:
                weights.append(float(weight) if sep else 1.0)
            except ValueError:
                raise UserError(f"mask weight of {name!r} is not a number: {weight!r}") from None
            kinds.append(name.strip().lower())
        return cls(tuple(kinds), tuple(weights))

    def spec(self) -> str:
        """The canonical text form (weights normalised, 6 significant digits)."""
        return ",".join(f"{k}:{w:.6g}" for k, w in zip(self.kinds, self.weights, strict=True))

    def draw(self, rng: np.random.Generator) -> str:
        """One kind, by weight (always one draw from ``rng``, even for a single kind)."""
        u = float(rng.random())
        edges = np.cumsum(self.weights)
        return self.kinds[min(int(np.searchsorted(edges, u, side="right")), len(self.kinds) - 1)]


def apply_mask(
    rgb: np.ndarray, canon68: np.ndarray, mix: MaskMix, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, MaskRecord]:
    """Draw a kind from ``mix`` and its look from ``rng``, and put it on the face.

    Returns (masked RGB uint8 copy, (H, W) bool occlusion mask, record). The draws from
    ``rng`` are the same in number and order for every kind, so a face's draw does not
    depend on which kind an earlier face got.
    """
    kind = mix.draw(rng)
    look = int(rng.integers(2**63))  # every kind takes the same three draws: fixed order
    color = POLYGON_COLORS[int(rng.integers(len(POLYGON_COLORS)))]
    record = make_record(kind, look, color)
    out, occ = redraw_mask(rgb, canon68, record)
    return out, occ, record


def make_record(
    kind: str, look: int, color: str, *, style_color: str | None = None, pattern: str | None = None
) -> MaskRecord:
    """The record of a ``kind`` mask: a procedural kind's style drawn from the ``look`` seed
    (``style_color``, ``pattern`` fixing those, as ``draw_style`` allows), a polygon shape's
    named ``color``."""
    if kind in KINDS:
        style = draw_style(kind, np.random.default_rng(look), color=style_color, pattern=pattern)
        return MaskRecord(mask_type=kind, style=style.to_json(), color=None, color_rgb=None)
    return MaskRecord(mask_type=kind, style=None, color=color, color_rgb=list(NAMED_COLORS[color]))


def record_color(record: Mapping[str, Any]) -> tuple[str | None, list[int]]:
    """(palette name, RGB) of the colour a record draws: a polygon's own, or its style's base
    colour (its palette name, None when outside the palette)."""
    style = record["style"]
    if style is None:
        return record["color"], list(record["color_rgb"])
    drawn = MaskStyle.from_json(style)
    return color_name(drawn), list(drawn.color)


def redraw_mask(
    rgb: np.ndarray, canon68: np.ndarray, record: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The mask ``record`` describes (from :func:`apply_mask`), on this face: (image, occlusion)."""
    kind = record["mask_type"]
    if kind in KINDS:
        return render_mask(rgb, canon68, MaskStyle.from_json(record["style"]))
    if kind not in MASK_SHAPES:
        raise UserError(f"unknown mask kind {kind!r}; choose from {', '.join(MIX_KINDS)}")
    polygon = mask_polygon(canon68, kind)
    rgb_color = record["color_rgb"]
    out = draw_mask(rgb, polygon, (int(rgb_color[0]), int(rgb_color[1]), int(rgb_color[2])))
    return out, polygon_occlusion(rgb.shape, polygon)
