"""Procedural mask types (surgical, N95, KN95, cloth): styles, templates and placement on faces.

Placement is checked on every lfw-mini face (dlib HOG boxes, MTCNN where HOG finds none, dlib's
68 landmarks; found once per module, ~3 s) for every kind.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mfrbench.errors import UserError
from mfrbench.vision import anchors as A
from mfrbench.vision.decode import decode_image
from mfrbench.vision.mask_grid import LOOP_MIN_SHARE, anchor_grid, face_frame, face_grid, loop_lines
from mfrbench.vision.mask_styles import (
    CLOTH_PATTERNS,
    KINDS,
    PALETTES,
    MaskStyle,
    color_name,
    draw_style,
)
from mfrbench.vision.mask_textures import LEVELS, LOOP_ANCHORS, TEMPLATE_H, TEMPLATE_W, template
from mfrbench.vision.mask_warp import render_mask

#: How far the occlusion may reach beyond the detector's face box, as a share of the box's
#: size. dlib's HOG boxes end near the chin and inside the ears; masks go under the chin and
#: their loops (N95: straps) to the ears. The largest seen on lfw-mini is about 0.36.
BOX_MARGIN = 0.45


@pytest.fixture(scope="module")
def faces(lfw_mini: Path) -> list[tuple[str, np.ndarray, tuple[float, ...], np.ndarray]]:
    """(name, rgb, face box, canonical 68 landmarks) for every lfw-mini photo."""
    from mfrbench.vision.detect import Cascade
    from mfrbench.vision.landmarks import make_landmarker

    cascade = Cascade(["dlib", "mtcnn"], dlib={"retry": True})
    landmarker = make_landmarker("dlib")
    out = []
    paths = sorted(lfw_mini.glob("*/*.jpg"))
    for path in paths:
        rgb = decode_image(path.read_bytes()).rgb
        found = cascade.detect(rgb)
        assert found, f"no face found in {path.name}"
        box = max(found, key=lambda f: f.area).box
        canon = A.to_canonical68(landmarker(rgb, box), "dlib")
        out.append((path.name, rgb, box, canon.astype(np.float64)))
    assert len(out) == len(paths) >= 250
    return out


def _style(kind: str, i: int) -> MaskStyle:
    """A style per face; cloth cycles through every pattern."""
    rng = np.random.default_rng([i, KINDS.index(kind)])
    pattern = CLOTH_PATTERNS[i % len(CLOTH_PATTERNS)] if kind == "cloth" else None
    return draw_style(kind, rng, pattern=pattern)


def _covered(occ: np.ndarray, point: np.ndarray, radius: int = 0) -> bool:
    """Whether any pixel within `radius` of the point's rounded pixel is occluded."""
    h, w = occ.shape
    x, y = (int(v) for v in np.rint(point))
    x0, x1 = max(x - radius, 0), min(x + radius + 1, w)
    y0, y1 = max(y - radius, 0), min(y + radius + 1, h)
    return bool(occ[y0:y1, x0:x1].any())


@pytest.mark.parametrize("kind", KINDS)
def test_placement_on_every_lfw_mini_face(faces, kind: str) -> None:
    problems = []
    for i, (name, rgb, box, canon) in enumerate(faces):
        style = _style(kind, i)
        out, occ = render_mask(rgb, canon, style)
        again, occ2 = render_mask(rgb, canon, style)
        assert out.tobytes() == again.tobytes() and np.array_equal(occ, occ2), name
        assert out.shape == rgb.shape and out.dtype == np.uint8 and occ.shape == rgb.shape[:2]
        missed = [j for j in (*A.MOUTH, A.NOSE_TIP) if not _covered(occ, canon[j])]
        on_eyes = [j for j in A.EYES if _covered(occ, canon[j], radius=1)]
        x1, y1, x2, y2 = box
        mx, my = BOX_MARGIN * (x2 - x1), BOX_MARGIN * (y2 - y1)
        ys, xs = np.nonzero(occ)
        inside = (xs >= x1 - mx) & (xs < x2 + mx) & (ys >= y1 - my) & (ys < y2 + my)
        # Outside the expanded box nothing changes (the contact shadow stays near the mask).
        keep = np.ones(occ.shape, bool)
        keep[
            max(int(y1 - my), 0) : max(int(np.ceil(y2 + my)), 0),
            max(int(x1 - mx), 0) : max(int(np.ceil(x2 + mx)), 0),
        ] = False
        changed = np.abs(out.astype(int) - rgb.astype(int)).max(axis=2)
        if missed or on_eyes or not inside.all() or changed[keep].any():
            problems.append((name, missed, on_eyes, int((~inside).sum())))
        # The mask is really drawn: covered pixels differ clearly from the photo.
        assert changed[occ].mean() > 8, (name, style)
    assert not problems, problems


def test_loops_only_on_visible_sides(faces) -> None:
    """Four loop strands on a face turned little, two on one turned far (its far ear hidden)."""
    counts = {}
    for name, _, _, canon in faces:
        fr = face_frame(canon)
        f = fr.f
        left, right = f[A.NOSE_TIP, 0] - f[0, 0], f[16, 0] - f[A.NOSE_TIP, 0]
        share = min(left, right) / (left + right)
        lines = loop_lines(face_grid(fr), fr, LOOP_ANCHORS["surgical"], 0.12, 0.3)
        counts[name] = (share, len(lines))
    assert all(n == (4 if s >= LOOP_MIN_SHARE else 2) for s, n in counts.values())
    assert any(n == 2 for _, n in counts.values()), "lfw-mini has strongly turned faces"
    assert sum(n == 4 for _, n in counts.values()) > len(counts) // 2


def _mirror(rgb: np.ndarray, canon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flipped = canon[list(A.MIRROR68)].copy()
    flipped[:, 0] = rgb.shape[1] - 1 - flipped[:, 0]
    return np.ascontiguousarray(rgb[:, ::-1]), flipped


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("kind", KINDS)
def test_mirrored_face_gets_the_mirrored_mask(faces, kind: str) -> None:
    """No left/right bias in the fit: flipping the photo flips the covered region."""
    for i, (name, rgb, _, canon) in enumerate(faces[::29]):
        style = _style(kind, i)
        _, occ = render_mask(rgb, canon, style)
        _, occ_m = render_mask(*_mirror(rgb, canon), style)
        assert _iou(occ, occ_m[:, ::-1]) > 0.93, name


def test_rolled_face_gets_the_rolled_mask(faces) -> None:
    """The grid lives in the face's frame: rotating photo and landmarks rotates the mask."""
    _, rgb, _, canon = faces[0]
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 20.0, 1.0)
    rotated = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR)
    canon_r = canon @ m[:, :2].T + m[:, 2]
    grid = anchor_grid(canon)
    assert np.allclose(
        anchor_grid(canon_r).reshape(-1, 2), grid.reshape(-1, 2) @ m[:, :2].T + m[:, 2]
    )
    style = draw_style("surgical", np.random.default_rng(0))
    _, occ = render_mask(rgb, canon, style)
    _, occ_r = render_mask(rotated, canon_r, style)
    occ_rot = cv2.warpAffine(occ.astype(np.uint8), m, (w, h), flags=cv2.INTER_NEAREST) > 0
    assert _iou(occ_r, occ_rot) > 0.9


def test_colours_land_as_rgb(faces) -> None:
    """A red cloth mask reads red in the RGB output (a BGR slip would make it blue)."""
    _, rgb, _, canon = faces[3]
    red = MaskStyle("cloth", PALETTES["cloth"]["red"], seed=1)
    out, occ = render_mask(rgb, canon, red)
    r, g, b = (float(out[..., k][occ].mean()) for k in range(3))
    assert r > 1.8 * b and r > 1.8 * g


def test_rendering_is_independent_of_the_template_cache(faces) -> None:
    _, rgb, _, canon = faces[7]
    for kind in KINDS:
        style = _style(kind, 7)
        first = render_mask(rgb, canon, style)[0]
        template.cache_clear()
        assert render_mask(rgb, canon, style)[0].tobytes() == first.tobytes()


@pytest.mark.parametrize("kind", KINDS)
def test_templates(kind: str) -> None:
    pattern = "checks" if kind == "cloth" else None
    style = draw_style(kind, np.random.default_rng(4), pattern=pattern)
    for level in range(LEVELS):
        t = template(style, level)
        assert t.shape == (TEMPLATE_H >> level, TEMPLATE_W >> level, 4) and t.dtype == np.float32
        assert not t.flags.writeable
        assert t.min() >= 0.0 and t.max() <= 1.0
        alpha = t[..., 3]
        border = np.concatenate([alpha[0], alpha[-1], alpha[:, 0], alpha[:, -1]])
        assert border.max() == 0.0  # the outline lies inside the grid: no hard cut edge
        h, w = alpha.shape
        assert alpha[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3].min() == 1.0
    again = draw_style(kind, np.random.default_rng(4), pattern=pattern)
    assert again == style and template(again, 0) is template(style, 0)


def test_template_colour_follows_the_style() -> None:
    for kind in KINDS:
        for name, rgb in PALETTES[kind].items():
            style = draw_style(kind, np.random.default_rng(0), color=name, pattern="solid")
            t = template(style, 1)
            inner = t[..., :3][t[..., 3] == 1.0]
            mean = np.median(inner, axis=0) * 255
            assert np.abs(mean - np.array(rgb)).max() < 40, (kind, name, mean)
            assert color_name(style) == name


def test_style_json_round_trip() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        style = draw_style(KINDS[int(rng.integers(len(KINDS)))], rng)
        data = style.to_json()
        text = json.dumps(data, sort_keys=True)
        assert MaskStyle.from_json(json.loads(text)) == style
        assert json.loads(text) == data  # plain JSON types only
        assert set(data) == {"kind", "color", "pattern", "accent", "pleats", "period", "seed"}


def test_draw_style_is_deterministic_and_varied() -> None:
    for kind in KINDS:
        a = [draw_style(kind, np.random.default_rng(5)) for _ in range(3)]
        assert a[0] == a[1] == a[2]
        rng = np.random.default_rng(5)
        many = [draw_style(kind, rng) for _ in range(60)]
        assert {s.color for s in many} == set(PALETTES[kind].values())
        assert len({s.seed for s in many}) == 60
        if kind == "cloth":
            assert {s.pattern for s in many} == set(CLOTH_PATTERNS)
            assert all((s.accent is None) == (s.pattern == "solid") for s in many)
        else:
            assert {s.pattern for s in many} == {"solid"}
        assert all((s.pleats > 0) == (kind == "surgical") for s in many)


def test_fixing_colour_or_pattern_keeps_the_other_draws() -> None:
    free = draw_style("cloth", np.random.default_rng(8))
    fixed = draw_style("cloth", np.random.default_rng(8), color="purple")
    assert fixed.color == PALETTES["cloth"]["purple"]
    assert (fixed.pattern, fixed.seed) == (free.pattern, free.seed)
    dots = draw_style("cloth", np.random.default_rng(8), pattern="dots")
    assert dots.pattern == "dots" and dots.seed == free.seed and dots.accent is not None


@pytest.mark.parametrize(
    "make",
    [
        lambda: draw_style("n99", np.random.default_rng(0)),
        lambda: draw_style("surgical", np.random.default_rng(0), color="orange"),
        lambda: draw_style("surgical", np.random.default_rng(0), pattern="dots"),
        lambda: draw_style("cloth", np.random.default_rng(0), pattern="paisley"),
        lambda: MaskStyle("surgical", (300, 0, 0), pleats=3),
        lambda: MaskStyle("surgical", (True, 0, 0), pleats=3),
        lambda: MaskStyle("surgical", (1, 2, 3), pleats=9),
        lambda: MaskStyle("n95", (1, 2, 3), pleats=3),
        lambda: MaskStyle("cloth", (1, 2, 3), pattern="dots", period=12),
        lambda: MaskStyle("cloth", (1, 2, 3), accent=(4, 5, 6)),
        lambda: MaskStyle("kn95", (1, 2, 3), seed=-1),
        lambda: MaskStyle.from_json({"kind": "n95", "color": [1, 2, 3]}),
        lambda: MaskStyle.from_json([1, 2, 3]),
    ],
)
def test_bad_styles_are_user_errors(make) -> None:
    with pytest.raises(UserError) as info:
        make()
    assert "\n" not in str(info.value) and str(info.value)
