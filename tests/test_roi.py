"""ROI boxes (whole face, upper half, eye band) and zero-padded, undistorted crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mfrbench.errors import ImageError, UserError
from mfrbench.vision import anchors as A
from mfrbench.vision.roi import ROI_KINDS, crop_resize, expand_box, output_size, roi_box


@pytest.fixture(scope="module")
def astronaut() -> tuple[np.ndarray, tuple[int, int, int, int], np.ndarray]:
    """A real photo, its dlib HOG face box and dlib landmarks (all from installed packages)."""
    import dlib
    from skimage import data

    from mfrbench.vision.landmarks import Dlib68

    rgb = np.ascontiguousarray(data.astronaut())
    rect = max(dlib.get_frontal_face_detector()(rgb, 1), key=lambda r: r.area())
    box = (rect.left(), rect.top(), rect.right(), rect.bottom())
    return rgb, box, A.to_canonical68(Dlib68()(rgb, box), "dlib")


def test_expand_box_rounds_and_clips() -> None:
    assert expand_box((10.4, 20.6, 50.5, 60.2), 5, (100, 100)) == (5, 16, 56, 65)
    assert expand_box((2.0, 3.0, 95.0, 99.0), 10, (100, 80)) == (0, 0, 100, 80)
    assert expand_box((10, 10, 20, 20), 0, (100, 100)) == (10, 10, 20, 20)


@pytest.mark.parametrize(
    ("kind", "size", "expected"),
    [
        ("none", 112, (112, 112)),
        ("upper-half", 112, (112, 56)),
        ("eye-band", 112, (112, 37)),
        ("eye-band", 3, (3, 1)),
    ],
)
def test_output_size(kind: str, size: int, expected: tuple[int, int]) -> None:
    assert output_size(kind, size) == expected


def test_unknown_kind_and_tiny_size_are_user_errors() -> None:
    with pytest.raises(UserError, match="upper-half"):
        output_size("mouth", 112)
    with pytest.raises(UserError, match="none"):
        roi_box("lower-half", (0, 0, 10, 10), None, (20, 20))
    with pytest.raises(UserError):
        output_size("eye-band", 2)


def aspect(box: tuple[int, int, int, int]) -> float:
    return (box[2] - box[0]) / (box[3] - box[1])


def test_none_roi_is_square_around_the_face(astronaut) -> None:
    rgb, face, canon = astronaut
    wh = (rgb.shape[1], rgb.shape[0])
    box = expand_box(face, 10, wh)
    roi = roi_box("none", (box[0], box[1], box[2], box[3] + 20), canon, wh)
    assert roi[2] - roi[0] == roi[3] - roi[1]
    assert roi[0] <= box[0] and roi[1] <= box[1] and roi[2] >= box[2] and roi[3] >= box[3] + 20
    assert (roi[0] + roi[2]) / 2 == pytest.approx((box[0] + box[2]) / 2, abs=1)


def test_upper_half_is_top_of_the_none_crop(astronaut) -> None:
    rgb, face, canon = astronaut
    wh = (rgb.shape[1], rgb.shape[0])
    box = expand_box(face, 8, wh)
    full, upper = roi_box("none", box, canon, wh), roi_box("upper-half", box, canon, wh)
    assert upper[:3] == full[:3]
    assert upper[3] == full[1] + (full[3] - full[1]) // 2
    assert aspect(upper) == pytest.approx(2.0, abs=0.05)
    # The eyes are in the upper half, the mouth is not.
    assert canon[list(A.EYES), 1].max() < upper[3] < canon[list(A.OUTER_LIPS), 1].min()


def test_eye_band_spans_brows_to_nose_bridge(astronaut) -> None:
    rgb, face, canon = astronaut
    wh = (rgb.shape[1], rgb.shape[0])
    box = expand_box(face, 8, wh)
    band = roi_box("eye-band", box, canon, wh)
    assert aspect(band) == pytest.approx(3.0, abs=0.05)
    assert band[0] <= box[0] and band[2] >= box[2]  # at least the face box's width
    brow_top = canon[list(A.BROWS), 1].min()
    assert band[1] <= brow_top - 0.25 * (canon[29, 1] - brow_top) + 1
    assert band[3] >= canon[29, 1] - 1
    assert band[3] < canon[list(A.OUTER_LIPS), 1].min()  # mouth excluded
    eyes = canon[list(A.EYES)]
    assert (eyes[:, 0] > band[0]).all() and (eyes[:, 0] < band[2]).all()
    assert (eyes[:, 1] > band[1]).all() and (eyes[:, 1] < band[3]).all()


@pytest.mark.parametrize("kind", ROI_KINDS)
def test_crops_have_output_size_and_no_distortion(astronaut, kind: str) -> None:
    rgb, face, canon = astronaut
    wh = (rgb.shape[1], rgb.shape[0])
    box = roi_box(kind, expand_box(face, 10, wh), canon, wh)
    out_wh = output_size(kind, 112)
    crop = crop_resize(rgb, box, out_wh)
    assert crop.shape == (out_wh[1], out_wh[0], 3) and crop.dtype == np.uint8
    sx, sy = (box[2] - box[0]) / out_wh[0], (box[3] - box[1]) / out_wh[1]
    assert sx == pytest.approx(sy, rel=0.03)
    assert np.array_equal(crop, crop_resize(rgb, box, out_wh))  # deterministic


def test_crop_inside_image_matches_plain_resize(astronaut) -> None:
    rgb = astronaut[0]
    box = (100, 50, 300, 250)
    expected = cv2.resize(rgb[50:250, 100:300], (64, 64), interpolation=cv2.INTER_AREA)
    assert np.array_equal(crop_resize(rgb, box, (64, 64)), expected)
    same = crop_resize(rgb, box, (200, 200))
    assert np.array_equal(same, rgb[50:250, 100:300]) and same.base is not rgb


def test_crop_pads_with_zeros_near_the_border() -> None:
    rgb = np.full((100, 120, 3), 200, np.uint8)
    crop = crop_resize(rgb, (-20, -10, 80, 90), (100, 100))
    assert (crop[:10] == 0).all() and (crop[:, :20] == 0).all()
    assert (crop[10:, 20:] == 200).all()
    right = crop_resize(rgb, (60, 40, 160, 140), (50, 50))
    assert (right[:, 30:] == 0).all() and (right[:30, :30] == 200).all()


def test_roi_outside_image_is_an_image_error() -> None:
    with pytest.raises(ImageError) as info:
        roi_box("none", (300, 300, 350, 350), None, (250, 250))
    assert info.value.status == "bad_roi"
    with pytest.raises(ImageError):
        crop_resize(np.zeros((10, 10, 3), np.uint8), (5, 5, 5, 9), (4, 4))


@given(
    x=st.floats(0, 250),
    y=st.floats(0, 250),
    w=st.floats(5, 300),
    h=st.floats(5, 300),
    kind=st.sampled_from(["none", "upper-half"]),
)
def test_roi_aspect_and_containment_property(x, y, w, h, kind) -> None:
    box = roi_box(kind, (x, y, x + w, y + h), None, (10_000, 10_000))
    target_w, target_h = output_size(kind, 600)
    target = target_w / target_h
    # Integer rounding of width and height moves the aspect by at most (target + 1) / height.
    assert abs(aspect(box) - target) <= (target + 1) / (box[3] - box[1])
    assert box[0] <= round(x) + 1 and box[2] >= round(x + w) - 1
    assert box[1] <= round(y) + 1
    assert box == roi_box(kind, (x, y, x + w, y + h), None, (10_000, 10_000))
