"""Mask styles: what a procedural mask looks like (kind, colours, pattern, texture numbers).

A `MaskStyle` holds everything `mfrbench.vision.mask_textures` needs to draw a mask template
again exactly, and nothing else: integers, strings and RGB tuples only, so its JSON form is
exact and canonical. `draw_style(kind, rng)` picks one from a kind's named palette. Colours
are RGB (see `mfrbench.colors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mfrbench.errors import UserError

RGB = tuple[int, int, int]

KINDS: tuple[str, ...] = ("surgical", "n95", "kn95", "cloth")
CLOTH_PATTERNS: tuple[str, ...] = ("solid", "stripes", "dots", "checks", "motif")

#: Named colours per kind, RGB, in draw order. Chosen to look like the masks in MFR2's labels
#: and in real photos (surgical light blue and teal green, not saturated primaries).
PALETTES: dict[str, dict[str, RGB]] = {
    "surgical": {
        "blue": (138, 190, 222),
        "black": (40, 41, 45),
        "white": (232, 235, 238),
        "green": (120, 200, 184),
    },
    "n95": {"white": (236, 236, 231), "grey": (168, 170, 172), "beige": (214, 200, 172)},
    "kn95": {
        "white": (236, 237, 236),
        "grey": (160, 163, 167),
        "black": (42, 42, 46),
        "pink": (232, 178, 190),
    },
    "cloth": {
        "black": (32, 32, 35),
        "white": (230, 230, 226),
        "red": (168, 36, 44),
        "purple": (104, 62, 132),
        "navy": (32, 42, 84),
        "grey": (118, 121, 128),
        "beige": (204, 184, 150),
        "pink": (226, 150, 172),
        "olive": (92, 108, 70),
    },
}

PLEATS_RANGE = (2, 4)  # surgical pleat count, inclusive
PERIOD_RANGE = (8, 28)  # cloth pattern period in template pixels, inclusive
SEED_MAX = 2**31 - 1  # texture seeds are 0..SEED_MAX
_FIELDS = ("kind", "color", "pattern", "accent", "pleats", "period", "seed")


def _is_channel(c: Any) -> bool:
    return isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255


def _rgb(value: Any, what: str) -> RGB:
    """Three ints 0..255 as a tuple, or UserError (a bool is not a colour channel)."""
    if isinstance(value, (tuple, list)) and len(value) == 3 and all(_is_channel(c) for c in value):
        return (int(value[0]), int(value[1]), int(value[2]))
    raise UserError(f"mask {what} must be three integers 0..255 (RGB), got {value!r}")


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UserError(f"mask {what} must be an integer {lo}..{hi}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class MaskStyle:
    """One mask's look. Validated on construction; every field is needed to redraw it.

    kind: one of KINDS. color: base RGB. pattern: "solid", or for cloth one of CLOTH_PATTERNS.
    accent: the pattern's second RGB colour (None exactly when the pattern is solid).
    pleats: surgical pleat count (PLEATS_RANGE), 0 for other kinds. period: cloth pattern
    repeat in template pixels (PERIOD_RANGE), 0 when solid. seed: texture noise seed.
    """

    kind: str
    color: RGB
    pattern: str = "solid"
    accent: RGB | None = None
    pleats: int = 0
    period: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"unknown mask kind {self.kind!r}; choose one of: {', '.join(KINDS)}")
        object.__setattr__(self, "color", _rgb(self.color, "color"))
        patterns = CLOTH_PATTERNS if self.kind == "cloth" else ("solid",)
        if self.pattern not in patterns:
            raise UserError(
                f"unknown pattern {self.pattern!r} for a {self.kind} mask; "
                f"choose one of: {', '.join(patterns)}"
            )
        solid = self.pattern == "solid"
        if solid != (self.accent is None):
            need = "no accent colour" if solid else "an accent colour"
            raise UserError(f"a {self.pattern} {self.kind} mask needs {need}")
        if self.accent is not None:
            object.__setattr__(self, "accent", _rgb(self.accent, "accent"))
        if self.kind == "surgical":
            _int(self.pleats, "pleats", *PLEATS_RANGE)
        else:
            _int(self.pleats, f"pleats of a {self.kind} mask", 0, 0)
        if solid:
            _int(self.period, f"period of a solid {self.kind} mask", 0, 0)
        else:
            _int(self.period, "pattern period", *PERIOD_RANGE)
        _int(self.seed, "seed", 0, SEED_MAX)

    def to_json(self) -> dict[str, Any]:
        """A plain JSON-able dict (colours as lists); `from_json` gives back an equal style."""
        return {
            "kind": self.kind,
            "color": list(self.color),
            "pattern": self.pattern,
            "accent": None if self.accent is None else list(self.accent),
            "pleats": self.pleats,
            "period": self.period,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, data: Any) -> MaskStyle:
        """Rebuild a style from `to_json`'s dict; missing or extra keys raise UserError."""
        if not isinstance(data, dict) or set(data) != set(_FIELDS):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise UserError(f"a mask style needs exactly the keys {list(_FIELDS)}, got {got}")
        accent = data["accent"]
        return cls(
            kind=data["kind"],
            color=_rgb(data["color"], "color"),
            pattern=data["pattern"],
            accent=None if accent is None else _rgb(accent, "accent"),
            pleats=data["pleats"],
            period=data["period"],
            seed=data["seed"],
        )


def _luma(rgb: RGB) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def palette(kind: str) -> dict[str, RGB]:
    """The named colours of one kind; an unknown kind raises UserError."""
    if kind not in PALETTES:
        raise UserError(f"unknown mask kind {kind!r}; choose one of: {', '.join(KINDS)}")
    return PALETTES[kind]


def color_name(style: MaskStyle) -> str | None:
    """The palette name of a style's colour, or None for a colour outside its palette."""
    names = [name for name, rgb in palette(style.kind).items() if rgb == style.color]
    return names[0] if names else None


def draw_style(
    kind: str, rng: np.random.Generator, *, color: str | None = None, pattern: str | None = None
) -> MaskStyle:
    """Pick a style of `kind` from `rng`: palette colour, pattern, accent, numbers, seed.

    The same draws happen in the same order whatever is fixed by `color` (a palette name) or
    `pattern` (cloth only), so fixing one does not change the others for a given generator.
    """
    colors = palette(kind)
    names = list(colors)
    picked = names[int(rng.integers(len(names)))]
    picked_pattern = CLOTH_PATTERNS[int(rng.integers(len(CLOTH_PATTERNS)))]
    accent_pick = int(rng.integers(len(PALETTES["cloth"]) - 1))
    pleats = int(rng.integers(PLEATS_RANGE[0], PLEATS_RANGE[1] + 1))
    period = int(rng.integers(PERIOD_RANGE[0], PERIOD_RANGE[1] + 1))
    seed = int(rng.integers(0, SEED_MAX + 1))
    if color is not None:
        if color not in colors:
            raise UserError(
                f"unknown {kind} mask colour {color!r}; choose one of: {', '.join(names)}"
            )
        picked = color
    if pattern is not None:
        if kind != "cloth" and pattern != "solid":
            raise UserError(f"only cloth masks have patterns; a {kind} mask is solid")
        picked_pattern = pattern
    if kind != "cloth":
        picked_pattern = "solid"
    base = colors[picked]
    accent = None
    if picked_pattern != "solid":
        # An accent from the cloth palette that stands out from the base colour.
        others = [rgb for rgb in PALETTES["cloth"].values() if abs(_luma(rgb) - _luma(base)) >= 50]
        accent = others[accent_pick % len(others)]
    return MaskStyle(
        kind=kind,
        color=base,
        pattern=picked_pattern,
        accent=accent,
        pleats=pleats if kind == "surgical" else 0,
        period=period if accent is not None else 0,
        seed=seed,
    )
