"""Procedural mask templates: one RGBA float image per style, in a fixed template space.

Template space: u across the face (0 on the image's left, the subject's right) and v from the
mask's top edge (over the nose) to its bottom edge (under the chin), drawn at level 0 as
TEMPLATE_W x TEMPLATE_H pixels and at level L at 1 / 2**L of that (smaller faces use smaller
levels: less aliasing, less work). `mfrbench.vision.mask_warp` bends this rectangle onto a
face; here each kind draws its outline (alpha, soft for anti-aliased edges, zero on the
template border), its colours and its own shading (pleats, seams, folds). A template is a pure
function of the `MaskStyle` and the level: its noise is a window of a fixed noise field at an
offset drawn from `style.seed`, so a new seed costs no new noise. numpy and OpenCV only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from mfrbench.vision.mask_styles import MaskStyle

TEMPLATE_W, TEMPLATE_H = 192, 128
LEVELS = 3  # full size, half, quarter
EDGE_SOFT = 1.5  # template pixels over which the outline's alpha ramps from 0 to 1
INSET = 1.5  # outline distance from the template border, so alpha is 0 on the border
MIN_LINE = 0.7  # thinnest drawn line (gaussian width, pixels of the level): no aliasing
_NOISE_SEED = 20140  # the fixed noise fields' seed; part of what a style means

#: Where ear loops (or straps) leave the mask, per kind: (top, bottom) (u, v) on the image's
#: left side; the right side mirrors u.
LOOP_ANCHORS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "surgical": ((0.02, 0.08), (0.02, 0.90)),
    "n95": ((0.05, 0.32), (0.05, 0.74)),
    "kn95": ((0.02, 0.12), (0.02, 0.52)),
    "cloth": ((0.02, 0.16), (0.02, 0.70)),
}


@dataclass(frozen=True)
class Canvas:
    """Pixel grids of one level: x, y pixel indices, u, v in 0..1, a = |2u - 1|, scale k."""

    w: int
    h: int
    k: float
    x: np.ndarray
    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    a: np.ndarray

    def px(self, level0_px: float) -> float:
        """A level-0 length in this level's pixels, never thinner than MIN_LINE."""
        return max(level0_px * self.k, MIN_LINE)


@functools.lru_cache(maxsize=LEVELS)
def canvas(level: int) -> Canvas:
    """The pixel grids of `level` (0 .. LEVELS - 1)."""
    if not 0 <= level < LEVELS:
        raise ValueError(f"template level must be 0..{LEVELS - 1}, got {level}")
    w, h = TEMPLATE_W >> level, TEMPLATE_H >> level
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (x + 0.5) / w, (y + 0.5) / h
    for arr in (x, y, u, v):
        arr.setflags(write=False)
    return Canvas(w, h, w / TEMPLATE_W, x, y, u, v, np.abs(u - 0.5) * 2.0)


def _gauss(d: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-np.square(d * np.float32(1.0 / width)))


def _alpha(inside: np.ndarray) -> np.ndarray:
    """Alpha from a signed distance to the outline (pixels, positive inside)."""
    return np.clip((inside - INSET) / EDGE_SOFT, 0.0, 1.0).astype(np.float32)


def _outline(c: Canvas, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Approximate inside distance (pixels) of the region top(u) < v < bottom(u)."""
    return np.minimum.reduce([(c.v - top) * c.h, (bottom - c.v) * c.h, c.x + 0.5, c.w - c.x - 0.5])


@functools.lru_cache(maxsize=4 * LEVELS)  # (level, cell): 3 cell sizes are used
def _noise_field(level: int, cell: float) -> np.ndarray:
    """A fixed, smooth, roughly unit noise field twice the level's size in each direction."""
    c = canvas(level)
    rng = np.random.default_rng([_NOISE_SEED, int(cell * 10), level])
    if cell <= 1.0:
        n = rng.standard_normal((2 * c.h, 2 * c.w)).astype(np.float32)
        field = cv2.GaussianBlur(n, (0, 0), 0.6) * 1.6
    else:
        step = max(round(cell * c.k), 2)
        gh, gw = 2 * c.h // step + 2, 2 * c.w // step + 2
        small = rng.standard_normal((gh, gw)).astype(np.float32)
        big = cv2.resize(small, (gw * step, gh * step), interpolation=cv2.INTER_CUBIC)
        field = np.ascontiguousarray(big[: 2 * c.h, : 2 * c.w])
    field.setflags(write=False)
    return field


def _noise(c: Canvas, level: int, rng: np.random.Generator, cell: float) -> np.ndarray:
    """A window of the fixed noise field (features ~`cell` level-0 px) at a seeded offset."""
    dy, dx = int(rng.integers(c.h)), int(rng.integers(c.w))
    return _noise_field(level, cell)[dy : dy + c.h, dx : dx + c.w]


def _dashes(coord: np.ndarray, period: float) -> np.ndarray:
    """1 on stitches, 0 between them, along a coordinate (soft edges)."""
    return np.clip(np.sin(coord * np.float32(2 * np.pi / period)) * 2.0 + 0.5, 0.0, 1.0)


def _compose(c: Canvas, albedo: np.ndarray, shade: np.ndarray, sheen, alpha) -> np.ndarray:
    """RGBA float32: albedo (3,) or (H, W, 3) times shade plus sheen, clipped to 0..1."""
    out = np.empty((c.h, c.w, 4), np.float32)
    out[..., :3] = np.clip(albedo * shade[..., None] + sheen[..., None], 0.0, 1.0)
    out[..., 3] = alpha
    return out


def _base(style: MaskStyle) -> np.ndarray:
    return np.asarray(style.color, np.float32) / 255.0


def _rounded_rect_inside(c: Canvas, radius: float) -> np.ndarray:
    """Inside distance of the whole canvas rectangle with rounded corners."""
    ex = np.minimum(c.x + 0.5, c.w - c.x - 0.5)
    ey = np.minimum(c.y + 0.5, c.h - c.y - 0.5)
    dx, dy = np.maximum(radius - ex, 0.0), np.maximum(radius - ey, 0.0)
    corner = radius - np.hypot(dx, dy)
    return np.where((dx > 0) & (dy > 0), corner, np.minimum(ex, ey))


def surgical(style: MaskStyle, level: int = 0) -> np.ndarray:
    """Pleated surgical mask: horizontal pleats, a nose wire in the top binding, bound edges."""
    c, rng = canvas(level), np.random.default_rng(style.seed)
    v, a = c.v, c.a
    top_b, bot_b, side_b = 0.085, 0.07, 0.04
    lo, hi = 0.2, 0.86
    t = (v - lo) * (style.pleats / (hi - lo))
    frac = t - np.floor(t)
    in_pleats = (v > lo) & (v < hi + 0.02)
    fw = c.px(0.07 * (hi - lo) / style.pleats * TEMPLATE_H) / ((hi - lo) / style.pleats * c.h)
    # Each pleat: shadow under the fold above, brightening downwards to a lit fold edge.
    edge = _gauss(1.0 - frac, fw)
    pleat = 0.9 + 0.12 * frac + 0.1 * edge - 0.18 * _gauss(frac, fw)
    shade = np.where(in_pleats, pleat, 1.0)
    sheen = np.where(in_pleats, 0.05 * edge, 0.0)
    binding = (v < top_b) | (v > 1.0 - bot_b) | (a > 1.0 - 2 * side_b)
    shade = np.where(binding, 1.03, shade)
    # Stitch lines along the inner edges of the bindings.
    line = c.px(0.6)
    stitch_h = _gauss((v - top_b) * c.h, line) + _gauss((v - 1 + bot_b) * c.h, line)
    stitch_v = _gauss((a - 1.0 + 2 * side_b) * c.w / 2, line)
    period = max(4.0 * c.k, 2.5)
    shade -= 0.2 * (stitch_h * _dashes(c.x, period) + stitch_v * _dashes(c.y, period))
    # The nose wire: a raised ridge in the top binding's middle.
    wire_v = (v - top_b * 0.45) * c.h
    wire = _gauss(wire_v, c.px(1.2)) * (a < 0.42)
    shade += 0.07 * wire - 0.06 * _gauss(wire_v - 2.2 * c.k, c.px(0.8))
    sheen += 0.04 * wire
    shade *= (1.0 + 0.035 * _noise(c, level, rng, 1.0)) * (1.03 - 0.1 * a**2)
    return _compose(c, _base(style), shade, sheen, _alpha(_rounded_rect_inside(c, 5.0 * c.k)))


def n95(style: MaskStyle, level: int = 0) -> np.ndarray:
    """Moulded N95 cup: an oval, radial shading, a centre seam, a rim and a nose clip."""
    c, rng = canvas(level), np.random.default_rng(style.seed)
    cy, ry = 0.5, 0.5 - INSET / c.h
    rx = 0.5 - INSET / c.w
    r = np.sqrt(np.square((c.u - 0.5) / rx) + np.square((c.v - cy) / ry))
    inside = (1.0 - r) * (0.5 * min(rx * c.w, ry * c.h)) + INSET
    shade = 1.08 - 0.32 * r**2.2
    sheen = 0.06 * _gauss(r, 0.45) * (c.v < cy)
    rim = 5.0 * c.k
    shade -= 0.07 * ((inside > INSET) & (inside < INSET + rim))
    shade -= 0.12 * _gauss(inside - INSET - rim, c.px(0.7))
    seam = c.x + 0.5 - c.w / 2
    shade -= 0.14 * _gauss(seam, c.px(0.8)) * ((c.v > 0.06) & (c.v < 0.98))
    shade += 0.05 * _gauss(seam - 1.8 * c.k, c.px(0.9))
    shade *= 1.0 + 0.04 * _noise(c, level, rng, 1.0) + 0.02 * _noise(c, level, rng, 12.0)
    clip = np.clip(np.minimum(0.14 - c.a, 0.03 - np.abs(c.v - 0.11)) * c.h, 0.0, 1.0)[..., None]
    base = _base(style) * (1 - clip) + np.array([0.74, 0.75, 0.78], np.float32) * clip
    return _compose(c, base, shade, sheen, _alpha(inside))


def kn95(style: MaskStyle, level: int = 0) -> np.ndarray:
    """Folded KN95: two panels shaded differently, a vertical centre fold, sealed edges."""
    c, rng = canvas(level), np.random.default_rng(style.seed)
    a = c.a
    inside = _outline(c, 0.02 + 0.07 * a, 0.985 - 0.46 * a**1.6) / np.sqrt(1 + (0.7 * a) ** 2)
    lit_left = style.seed % 2 == 0
    panel = np.where((c.u < 0.5) == lit_left, 1.03, 0.88)
    shade = panel - 0.1 * a**2 + 0.05 * (1.0 - c.v) * (a < 0.5)
    fold = c.x + 0.5 - c.w / 2
    shade -= 0.22 * _gauss(fold, c.px(0.9))
    sheen = 0.05 * _gauss(fold + (1.6 if lit_left else -1.6) * c.k, c.px(1.0))
    seal_w = 4.5 * c.k
    seal = (inside > INSET) & (inside < INSET + seal_w)
    if level == 0:  # embossed dots; smaller levels could not show them without aliasing
        dots = ((np.sin(c.x * 2.1) * np.sin(c.y * 2.1) > 0.3) & seal).astype(np.float32)
    else:
        dots = 0.35 * seal
    shade -= 0.06 * seal + 0.07 * dots + 0.1 * _gauss(inside - INSET - seal_w, c.px(0.6))
    shade *= 1.0 + 0.035 * _noise(c, level, rng, 1.0)
    return _compose(c, _base(style), shade, sheen, _alpha(inside))


def _band(coord: np.ndarray, period: float, half: float) -> np.ndarray:
    """1 within `half` of a period around the middle of each period, soft 1-pixel edges."""
    q = coord / period
    return np.clip((half - np.abs(q - np.floor(q) - 0.5)) * period + 0.5, 0.0, 1.0)


def _pattern(style: MaskStyle, c: Canvas, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) or (3,) albedo of a cloth pattern in the style's colours."""
    base = _base(style)
    if style.accent is None:
        return base
    accent = np.asarray(style.accent, np.float32) / 255.0
    p = style.period * c.k  # the period in this level's pixels
    x, y = c.x + 0.5, c.y + 0.5
    if style.pattern == "stripes":
        angle = np.deg2rad(float(rng.choice([0.0, 45.0, 90.0, 135.0])))
        m = _band(x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle)), p, 0.2)
    elif style.pattern == "checks":
        m = 0.5 * (_band(x, p, 0.25) + _band(y, p, 0.25))
    else:
        cell = p if style.pattern == "dots" else p * 1.7
        row = np.floor(y / cell)
        xs = x + (row % 2) * (cell / 2)
        col = np.floor(xs / cell)
        dx, dy = xs - (col + 0.5) * cell, y - (row + 0.5) * cell
        dist = np.hypot(dx, dy)
        if style.pattern == "dots":
            m = np.clip(0.25 * cell - dist + 0.5, 0.0, 1.0)
        else:
            turns = rng.uniform(0, 2 * np.pi, size=(64, 64)).astype(np.float32)
            phi = turns[row.astype(np.int64) % 64, col.astype(np.int64) % 64]
            petal = 0.36 * cell * (0.35 + 0.65 * np.abs(np.cos(2.5 * (np.arctan2(dy, dx) - phi))))
            m = np.clip(petal - dist + 0.5, 0.0, 1.0)
            centre = np.clip(0.09 * cell - dist + 0.5, 0.0, 1.0)[..., None]
            petals = base + (accent - base) * m[..., None]
            return petals + (np.array([0.95, 0.8, 0.3], np.float32) - petals) * centre
    return base + (accent - base) * m[..., None].astype(np.float32)


def cloth(style: MaskStyle, level: int = 0) -> np.ndarray:
    """Fitted cloth mask: curved outline, centre seam, hem stitches, weave and crumple noise."""
    c, rng = canvas(level), np.random.default_rng(style.seed)
    a = c.a
    inside = _outline(c, 0.015 + 0.09 * a**2, 0.985 - 0.22 * a**2.2)
    albedo = _pattern(style, c, rng)
    seam = c.x + 0.5 - c.w / 2
    shade = 1.05 - 0.14 * a**2 - 0.16 * _gauss(seam, c.px(0.8))
    shade += 0.04 * _gauss(seam - 1.8 * c.k, c.px(1.0))
    hem = _gauss(inside - INSET - 3.0 * c.k, c.px(0.6)) * _dashes(c.x + c.y, max(5 * c.k, 2.5))
    shade -= 0.16 * hem
    shade *= 1.0 + 0.05 * _noise(c, level, rng, 1.0) + 0.05 * _noise(c, level, rng, 24.0)
    sheen = 0.03 * _gauss(seam - 2.0 * c.k, c.px(2.5)) * (1.0 - c.v)
    return _compose(c, albedo, shade, sheen, _alpha(inside))


_DRAW = {"surgical": surgical, "n95": n95, "kn95": kn95, "cloth": cloth}


@functools.lru_cache(maxsize=64)  # at most ~25 MB, even at level 0
def template(style: MaskStyle, level: int = 0) -> np.ndarray:
    """The style's RGBA template at `level`: (TEMPLATE_H >> level, TEMPLATE_W >> level, 4)
    float32 in 0..1, read-only (cached per style and level)."""
    out = _DRAW[style.kind](style, level)
    out.setflags(write=False)
    return out


def level_for(width_px: float) -> int:
    """The smallest level at least 1.2 times as wide as a mask `width_px` image pixels wide."""
    level = 0
    while level + 1 < LEVELS and (TEMPLATE_W >> (level + 1)) >= 1.2 * width_px:
        level += 1
    return level
