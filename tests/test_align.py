"""Face alignment crops against independent formulations, on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mfrbench.vision import align
from mfrbench.vision.decode import decode_image


@pytest.fixture(scope="module")
def faces(lfw_mini: Path, masked_real: Path) -> list[tuple[np.ndarray, object]]:
    """Real photos (LFW and real masked faces) with their MTCNN face (box and five points)."""
    from mfrbench.vision.detect import Cascade, cascade_names

    cascade = Cascade(cascade_names("mtcnn", False))
    paths = sorted(lfw_mini.glob("*/*.jpg"))[:12:3] + sorted(masked_real.iterdir())[:6]
    out = []
    for path in paths:
        rgb = decode_image(path.read_bytes()).rgb
        found = cascade.detect(rgb)
        if found:
            out.append((rgb, max(found, key=lambda f: f.area)))
    assert len(out) >= 8
    return out


def test_similarity_transform_recovers_a_known_one() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, size=(5, 2))
    angle, scale, t = 0.3, 0.7, np.array([12.0, -4.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = scale * src @ rot.T + t
    m = align.similarity_transform(src, dst)
    assert np.allclose(m[:, :2], scale * rot) and np.allclose(m[:, 2], t)


def test_arcface_crop_matches_scikit_image(faces) -> None:
    """skimage's SimilarityTransform on the same points and template, warped by skimage."""
    from skimage.transform import SimilarityTransform, warp

    for rgb, face in faces:
        pts = np.asarray(face.landmarks5, dtype=np.float64)
        tform = SimilarityTransform.from_estimate(pts, align.ARCFACE_112)
        ours = align.similarity_transform(pts, align.ARCFACE_112)
        mapped_ours = pts @ ours[:, :2].T + ours[:, 2]
        assert np.abs(mapped_ours - tform(pts)).max() < 1.0  # within 1 px on the template
        # Where every 112x112 pixel comes from in the source: within 1 px of skimage's.
        grid = np.stack(np.meshgrid(np.arange(112.0), np.arange(112.0)), -1).reshape(-1, 2)
        inv = np.linalg.inv(np.vstack([ours, [0, 0, 1]]))[:2]
        assert np.abs(grid @ inv[:, :2].T + inv[:, 2] - tform.inverse(grid)).max() < 1.0
        crop = align.arcface_crop(rgb, pts)
        ref = warp(rgb, tform.inverse, output_shape=(112, 112), order=1, preserve_range=True)
        assert crop.shape == (112, 112, 3)
        diff = np.abs(crop.astype(float) - ref)
        inside = ref.sum(axis=2) > 0  # skimage pads with 0 too; compare where both have pixels
        assert np.median(diff[inside]) <= 1.0 and diff[inside].mean() < 3.0


def test_arcface_crop_puts_the_eyes_on_the_template(faces) -> None:
    """Re-detecting on the aligned crop finds the eyes where the template puts them."""
    from mfrbench.vision.detect import Cascade, cascade_names

    cascade = Cascade(cascade_names("mtcnn", False))
    errors = []
    for rgb, face in faces:
        crop = align.arcface_crop(rgb, face.landmarks5)
        found = cascade.detect(np.ascontiguousarray(np.pad(crop, ((40, 40), (40, 40), (0, 0)))))
        if found:
            pts = np.asarray(max(found, key=lambda f: f.area).landmarks5) - 40
            errors.append(np.abs(pts[:2] - align.ARCFACE_112[:2]).max())
    assert len(errors) >= len(faces) // 2 and np.median(errors) < 4.0


def test_facenet_crop_is_facenet_pytorchs_extract_face(faces) -> None:
    """The same box arithmetic and resize as facenet-pytorch's extract_face (margin 0 and 14)."""
    import cv2

    for rgb, face in faces:
        h, w = rgb.shape[:2]
        for margin in (0, 14):
            box = face.box
            m = [
                margin * (box[2] - box[0]) / (160 - margin),
                margin * (box[3] - box[1]) / (160 - margin),
            ]
            b = [
                int(max(box[0] - m[0] / 2, 0)),
                int(max(box[1] - m[1] / 2, 0)),
                int(min(box[2] + m[0] / 2, w)),
                int(min(box[3] + m[1] / 2, h)),
            ]
            ref = cv2.resize(
                rgb[b[1] : b[3], b[0] : b[2]], (160, 160), interpolation=cv2.INTER_AREA
            )
            assert np.array_equal(align.facenet_crop(rgb, box, 160, margin), ref)


def test_points5_from_landmarks68_sit_near_mtcnn_points(faces) -> None:
    """Eye centres, nose tip and mouth corners of dlib's 68 points agree with MTCNN's five."""
    from mfrbench.vision.anchors import to_canonical68
    from mfrbench.vision.landmarks import Dlib68

    dlib68 = Dlib68()
    for rgb, face in faces[:4]:  # LFW faces: no mask over the mouth
        canon = to_canonical68(dlib68(rgb, face.box), "dlib")
        derived = align.points5_from_landmarks68(canon)
        iod = np.linalg.norm(derived[1] - derived[0])
        assert np.linalg.norm(derived - face.landmarks5, axis=1).max() < 0.25 * iod


def test_dlib_chip_from_68_points(faces) -> None:
    """Frozen 68 points give exactly the chip dlib makes from its own fitted shape."""
    import dlib

    from mfrbench.models.dlib_resnet import model_files

    predictor = dlib.shape_predictor(
        str(Path(model_files()[1]).with_name("shape_predictor_68_face_landmarks.dat"))
    )
    for rgb, face in faces[:4]:
        box = [round(v) for v in face.box]
        shape = predictor(rgb, dlib.rectangle(box[0], box[1], box[2] - 1, box[3] - 1))
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        chip = align.dlib_chip(rgb, align.dlib_shape(pts, box))
        assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
        assert np.array_equal(chip, dlib.get_face_chip(rgb, shape, size=150, padding=0.25))


def test_inset_box_and_pick_detection() -> None:
    assert align.inset_box((250, 200)) == (25, 20, 225, 180)
    hint = (50, 50, 150, 150)
    boxes = [(0, 0, 40, 40), (60, 60, 140, 150), (55, 40, 160, 160)]
    assert align.pick_detection(hint, boxes) == 2
    assert align.pick_detection(hint, [(0, 0, 40, 40)]) is None
