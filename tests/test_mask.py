"""Mask polygons over canonical-68 landmarks and their filling, including a JPEG round-trip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mfrbench.colors import NAMED_COLORS
from mfrbench.errors import UserError
from mfrbench.vision import anchors as A
from mfrbench.vision.mask import MASK_SHAPES, draw_mask, mask_polygon


@pytest.fixture(scope="module")
def astronaut() -> tuple[np.ndarray, np.ndarray]:
    """A real photo and its dlib landmarks (HOG box), both from installed dependencies."""
    import dlib
    from skimage import data

    from mfrbench.vision.landmarks import Dlib68

    rgb = np.ascontiguousarray(data.astronaut())
    rect = max(dlib.get_frontal_face_detector()(rgb, 1), key=lambda r: r.area())
    canon = Dlib68()(rgb, (rect.left(), rect.top(), rect.right(), rect.bottom()))
    return rgb, A.to_canonical68(canon, "dlib")


def raster(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    cv2.fillPoly(out, [polygon.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8)
    return out.astype(bool)


def rotate(points: np.ndarray, degrees: float, centre: np.ndarray) -> np.ndarray:
    t = np.deg2rad(degrees)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return (points - centre) @ r.T + centre


def test_paper_polygon_is_hull_of_1_based_points_3_15_and_29(astronaut) -> None:
    _, canon = astronaut
    poly = mask_polygon(canon)
    assert poly.dtype == np.int32 and poly.ndim == 2 and poly.shape[1] == 2
    used = np.rint(canon[[*range(2, 15), 28]]).astype(np.int32)
    # Every vertex is one of the rounded anchor points, and every anchor lies inside or on it.
    assert {tuple(p) for p in poly} <= {tuple(p) for p in used}
    contour = poly.reshape(-1, 1, 2)
    for p in used:
        assert cv2.pointPolygonTest(contour, (float(p[0]), float(p[1])), False) >= 0
    assert cv2.isContourConvex(contour)
    # Points outside the shape's definition can fall outside (e.g. the eyes).
    eye = canon[list(A.EYES)].mean(axis=0)
    assert cv2.pointPolygonTest(contour, (float(eye[0]), float(eye[1])), False) < 0


def _frontal(canon: np.ndarray) -> np.ndarray:
    """A perfectly frontal face: real landmarks averaged with their own mirror image."""
    centre_x = float(canon[list(A.NOSE_BRIDGE), 0].mean())
    mirrored = canon[list(A.MIRROR68)].copy()
    mirrored[:, 0] = 2 * centre_x - mirrored[:, 0]
    return (canon + mirrored) / 2


def test_mirror_table_is_an_involution() -> None:
    assert sorted(A.MIRROR68) == list(range(68))
    assert all(A.MIRROR68[A.MIRROR68[i]] == i for i in range(68))


def test_paper_polygon_is_mirror_symmetric_on_a_frontal_face(astronaut) -> None:
    _, canon = astronaut
    face = _frontal(canon)
    centre_x = float(face[list(A.NOSE_BRIDGE), 0].mean())
    poly = mask_polygon(face).astype(np.float64)
    flipped = poly.copy()
    flipped[:, 0] = 2 * centre_x - flipped[:, 0]
    # Every vertex has a mirror partner within a pixel or two (integer rounding).
    gaps = [float(np.min(np.hypot(*(poly - p).T))) for p in flipped]
    assert max(gaps) <= 2.0, gaps
    left = centre_x - poly[:, 0].min()
    right = poly[:, 0].max() - centre_x
    assert abs(left - right) <= 2.0
    # The 0-based reading of "3..15, 29" is not: it overlaps its own mirror image far less.
    old = cv2.convexHull(np.rint(face[[*range(3, 16), 29]]).astype(np.int32)).reshape(-1, 2)
    shape = (512, 512)

    def mirror_iou(p: np.ndarray) -> float:
        m = p.astype(np.float64).copy()
        m[:, 0] = 2 * centre_x - m[:, 0]
        a, b = raster(p.astype(np.int32), shape), raster(np.rint(m).astype(np.int32), shape)
        return float((a & b).sum() / (a | b).sum())

    assert mirror_iou(mask_polygon(face)) >= 0.97
    assert mirror_iou(old) < mirror_iou(mask_polygon(face)) - 0.05


def test_polygons_are_deterministic(astronaut) -> None:
    _, canon = astronaut
    for shape in MASK_SHAPES:
        a = mask_polygon(canon.copy(), shape)
        b = mask_polygon(canon.astype(np.float64), shape)
        assert np.array_equal(a, b)


def test_unknown_shape_lists_names(astronaut) -> None:
    _, canon = astronaut
    with pytest.raises(UserError) as info:
        mask_polygon(canon, "surgical-xl")
    for name in MASK_SHAPES:
        assert name in str(info.value)


def test_nist_coverage_is_nested_and_tops_are_level(astronaut) -> None:
    rgb, canon = astronaut
    hw = rgb.shape[:2]
    areas = {}
    for shape, top in (("nist-nose-tip", 30), ("nist-mid-nose", 29), ("nist-nose-bridge", 28)):
        poly = mask_polygon(canon, shape)
        areas[shape] = raster(poly, hw).sum()
        # The top edge passes through the anchor's height: no vertex far above it, and some
        # vertex at it (within rounding, along the face's own vertical axis).
        eyes_mid = (canon[list(A.RIGHT_EYE)].mean(0) + canon[list(A.LEFT_EYE)].mean(0)) / 2
        up = eyes_mid - canon[A.CHIN]
        up /= np.linalg.norm(up)
        heights = (poly - canon[top]) @ up
        assert heights.max() == pytest.approx(0.0, abs=3.0)
        # The chin is covered.
        assert cv2.pointPolygonTest(poly.reshape(-1, 1, 2), tuple(map(float, canon[8])), True) > -1
    assert areas["nist-nose-tip"] < areas["nist-mid-nose"] < areas["nist-nose-bridge"]


def test_nist_top_edge_follows_head_roll(astronaut) -> None:
    rgb, canon = astronaut
    centre = canon.mean(axis=0)
    rolled = rotate(canon.astype(np.float64), 25.0, centre)
    hw = rgb.shape[:2]
    for shape in ("nist-nose-tip", "nist-mid-nose", "nist-nose-bridge"):
        # The polygon of the rotated face equals the rotated polygon (up to rounding).
        expected = rotate(mask_polygon(canon, shape).astype(np.float64), 25.0, centre)
        a = raster(mask_polygon(rolled, shape), hw)
        b = raster(np.rint(expected).astype(np.int32), hw)
        assert (a & b).sum() / (a | b).sum() > 0.95


def test_draw_mask_exact_inside_unchanged_outside(astronaut) -> None:
    rgb, canon = astronaut
    before = rgb.copy()
    poly = mask_polygon(canon)
    out = draw_mask(rgb, poly, (12, 34, 56))
    assert out is not rgb and np.array_equal(rgb, before)  # input untouched
    inside = raster(poly, rgb.shape[:2])
    assert inside.sum() > 1000
    assert (out[inside] == (12, 34, 56)).all()
    assert np.array_equal(out[~inside], rgb[~inside])
    # No anti-aliasing: exactly two kinds of pixels along the border.
    assert np.array_equal(draw_mask(rgb, poly, (12, 34, 56)), out)


def test_draw_mask_rejects_bad_colour(astronaut) -> None:
    rgb, canon = astronaut
    with pytest.raises(ValueError):
        draw_mask(rgb, mask_polygon(canon), (256, 0, 0))


def jpeg_round_trip(rgb: np.ndarray) -> np.ndarray:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
    )
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize(
    "color",
    [NAMED_COLORS["black"], NAMED_COLORS["white"], NAMED_COLORS["blue"], (0x1A, 0x2B, 0x3C)],
)
def test_colour_survives_jpeg_round_trip(astronaut, color: tuple[int, int, int]) -> None:
    rgb, canon = astronaut
    poly = mask_polygon(canon)
    inside = raster(poly, rgb.shape[:2]).astype(np.uint8)
    # 8 px inside: JPEG ringing and 2x2 chroma subsampling blur only the first few pixels.
    core = cv2.erode(inside, np.ones((17, 17), np.uint8)).astype(bool)
    # 24 px away: beyond every 16x16 JPEG MCU the mask touches, plus chroma upsampling reach.
    far = ~cv2.dilate(inside, np.ones((49, 49), np.uint8)).astype(bool)
    decoded = jpeg_round_trip(draw_mask(rgb, poly, color))
    plain = jpeg_round_trip(rgb)
    diff = np.abs(decoded[core].astype(int) - np.array(color)).max(axis=0)
    assert (diff <= 8).all(), (color, diff)
    assert np.abs(decoded[far].astype(int) - plain[far].astype(int)).max() <= 2


def test_blue_comes_back_as_rgb_sky_blue(astronaut) -> None:
    rgb, canon = astronaut
    poly = mask_polygon(canon)
    core = cv2.erode(raster(poly, rgb.shape[:2]).astype(np.uint8), np.ones((9, 9), np.uint8))
    decoded = jpeg_round_trip(draw_mask(rgb, poly, NAMED_COLORS["blue"]))
    mean = decoded[core.astype(bool)].mean(axis=0)
    assert np.abs(mean - (135, 206, 250)).max() < 3
    assert np.abs(mean - (250, 206, 135)).max() > 100  # not the paper's BGR tuple read as RGB
