"""Draw a procedural mask on a face: piecewise-affine warp, lighting, loops, occlusion mask.

`render_mask` warps the style's template (`mfrbench.vision.mask_textures`) over the triangulated
anchor grid (`mfrbench.vision.mask_grid`) with one `cv2.remap` (each pixel's triangle is
rasterised, its inverse affine map gives the template point), lights it with the face's own
low-frequency luminance (the blurred face luminance under the mask divided by its mean, plus
the photo's overall exposure), adds a soft contact shadow, draws ear loops on the sides whose
ears are visible, and returns the masked image with a boolean occlusion mask of the same size.
Everything is deterministic for equal inputs.
"""

from __future__ import annotations

import cv2
import numpy as np

from mfrbench.vision.mask_grid import (
    GRID_COLS,
    GRID_ROWS,
    TRIANGLES,
    face_frame,
    face_grid,
    loop_lines,
)
from mfrbench.vision.mask_styles import MaskStyle
from mfrbench.vision.mask_textures import LOOP_ANCHORS, level_for, template

LIGHT_GAIN = 0.85  # how strongly the face's relative luminance modulates the mask
LIGHT_RANGE = (0.45, 1.3)
EXPOSURE_REF = 0.5  # mean face luminance (0..1) that leaves the mask's own brightness unchanged
EXPOSURE_RANGE = (0.6, 1.1)
KNEE = 0.75  # mask colours above this roll off smoothly towards white instead of clipping
SHADOW = 0.25  # darkening of the skin right at the mask's edge
#: (reach, rise) of the loops per kind (see `mask_grid.loop_lines`); N95s have head straps.
LOOP_SHAPES = {
    "surgical": (0.12, 0.3),
    "n95": (0.3, 1.0),
    "kn95": (0.12, 0.3),
    "cloth": (0.12, 0.3),
}
_U = np.linspace(0.0, 1.0, GRID_COLS)
_V = np.linspace(0.0, 1.0, GRID_ROWS)
assert len(TRIANGLES) < 255, "triangle ids are rasterised into a uint8 image"


def _inverse_affines(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-triangle maps from image points (dst) back to template points (src).

    Returns (T, 3, 2) maps (``[x y 1] @ m`` is the template point) and a (T,) bool of
    usable (non-degenerate) triangles.
    """
    d = np.concatenate([dst, np.ones((*dst.shape[:2], 1))], axis=2)  # (T, 3, 3)
    ok = np.abs(np.linalg.det(d)) > 1e-6
    d[~ok] = np.eye(3)
    return np.linalg.solve(d, src), ok


def _loop_color(style: MaskStyle) -> np.ndarray:
    if style.kind == "surgical" and sum(style.color) > 200:
        return np.array([238.0, 238.0, 236.0])
    if style.kind == "n95":
        return np.array([214.0, 196.0, 140.0])
    return np.asarray(style.color, np.float64) * 0.9


def render_mask(
    rgb: np.ndarray, canon68: np.ndarray, style: MaskStyle
) -> tuple[np.ndarray, np.ndarray]:
    """Draw `style`'s mask on a face: (masked RGB uint8 copy, (H, W) bool occlusion mask).

    ``canon68`` is the (68, 2) canonical landmark array in ``rgb``'s pixels. The occlusion
    mask marks the pixels the mask and its loops cover (warped alpha at least one half).
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3:
        raise ValueError("expected an RGB uint8 image of shape (H, W, 3)")
    canon = np.asarray(canon68, np.float64)
    if canon.shape != (68, 2) or not np.isfinite(canon).all():
        raise ValueError(f"canonical landmarks must be a finite (68, 2) array, got {canon.shape}")
    h, w = rgb.shape[:2]
    out = np.array(rgb, dtype=np.uint8, order="C", copy=True)
    occ = np.zeros((h, w), np.uint8)
    fr = face_frame(canon)
    nodes_f = face_grid(fr)
    # Garbage landmarks can throw nodes far away; keep them where int32 pixel maths holds.
    grid = np.clip(fr.to_image(nodes_f), -4.0 * max(h, w), 5.0 * max(h, w))
    nodes = grid.reshape(-1, 2)
    x0, y0 = np.maximum(np.floor(nodes.min(axis=0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(nodes.max(axis=0)).astype(int) + 3, (w, h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return out, occ.astype(bool)
    exposure = _paint(out, occ, grid, (int(x0), int(y0), int(x1), int(y1)), style)
    loops = loop_lines(nodes_f, fr, LOOP_ANCHORS[style.kind], *LOOP_SHAPES[style.kind])
    if loops:
        thick = max(1, round(fr.iod / 45))
        fill = tuple(int(c) for c in np.clip(np.rint(_loop_color(style) * exposure), 0, 255))
        limit = 5.0 * max(h, w)
        fixed = [
            np.rint(np.clip(fr.to_image(line), -limit, limit) * 16).astype(np.int32)
            for line in loops
        ]
        cv2.polylines(out, fixed, False, fill, thick, cv2.LINE_AA, shift=4)
        cv2.polylines(occ, fixed, False, 1, thick, cv2.LINE_8, shift=4)
    return out, occ.astype(bool)


def _shoulder(x: np.ndarray) -> np.ndarray:
    """Identity up to KNEE, then a smooth roll-off towards 1: lit white masks keep shading."""
    over = np.maximum(x - KNEE, 0.0)
    return np.maximum(np.minimum(x, KNEE), 0.0) + over / (1.0 + over / (1.0 - KNEE))


_SRC_CACHE: dict[tuple[int, int], np.ndarray] = {}


def _template_triangles(tw: int, th: int) -> np.ndarray:
    """(T, 3, 2) template-pixel corners of every grid triangle for a tw x th template."""
    if (tw, th) not in _SRC_CACHE:
        uv = np.stack(np.meshgrid(_U, _V), -1).reshape(-1, 2)
        _SRC_CACHE[(tw, th)] = (uv * (tw, th) - 0.5)[TRIANGLES]
    return _SRC_CACHE[(tw, th)]


def _paint(
    out: np.ndarray,
    occ: np.ndarray,
    grid: np.ndarray,
    box: tuple[int, int, int, int],
    style: MaskStyle,
) -> float:
    """Warp, light and blend the template into `out` and mark `occ`, in place, inside `box`.

    Returns the exposure factor used, so the loops can be lit alike.
    """
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    mid = GRID_ROWS // 2
    width_px = float(np.hypot(*(grid[mid, -1] - grid[mid, 0])))
    level = template(style, level_for(width_px))
    dst = (grid.reshape(-1, 2) - (x0, y0))[TRIANGLES]
    maps, ok = _inverse_affines(_template_triangles(level.shape[1], level.shape[0]), dst)
    ids = np.zeros((bh, bw), np.uint8)
    corners = np.rint(dst * 16).astype(np.int32)
    for t in np.flatnonzero(ok).tolist():
        cv2.fillConvexPoly(ids, corners[t], t + 1, cv2.LINE_8, 4)
    # Row 0 of the table maps pixels outside every triangle off the template (alpha 0).
    table = np.concatenate([[[[0.0, 0.0], [0.0, 0.0], [-10.0, -10.0]]], maps]).astype(np.float32)
    xs = np.arange(bw, dtype=np.float32)[None]
    ys = np.arange(bh, dtype=np.float32)[:, None]
    c = [np.take(table[:, i, j], ids) for j in range(2) for i in range(3)]
    map_x = c[0] * xs + c[1] * ys + c[2]
    map_y = c[3] * xs + c[4] * ys + c[5]
    warped = cv2.remap(level, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = np.ascontiguousarray(warped[..., 3])
    weight = float(alpha.sum())
    if weight <= 0:
        return 1.0
    patch = out[y0:y1, x0:x1]
    lum = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1 / 255)
    low = cv2.GaussianBlur(lum, (0, 0), max(1.0, 0.12 * width_px), borderType=cv2.BORDER_REPLICATE)
    mean = float((low * alpha).sum()) / weight
    exposure = float(np.clip(mean / EXPOSURE_REF, *EXPOSURE_RANGE) ** 0.5)
    gain = np.float32(LIGHT_GAIN / max(mean, 1e-3))
    light = np.clip(low * gain + np.float32(1 - LIGHT_GAIN), *LIGHT_RANGE) * np.float32(exposure)
    colour = _shoulder(warped[..., :3] * light[..., None]) * np.float32(255)
    # A soft contact shadow on the skin just outside the mask's edge, cast slightly downwards.
    shadow = cv2.GaussianBlur(alpha, (0, 0), max(1.0, 0.02 * width_px))
    drop = round(0.015 * width_px)
    if 0 < drop < bh:
        shadow[drop:] = shadow[:-drop].copy()
        shadow[:drop] = 0.0
    keep = (1 - alpha) * (1 - np.float32(SHADOW) * shadow)
    blended = patch * keep[..., None] + colour * alpha[..., None]
    patch[...] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    occ[y0:y1, x0:x1] |= (alpha >= 0.5).astype(np.uint8)
    return exposure
