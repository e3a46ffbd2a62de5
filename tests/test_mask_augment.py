"""MaskAugment and mask mixes: placement on synth's own crops, seeding, input types, mixes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mfrbench.augment import MaskAugment, landmarks_in_crop
from mfrbench.errors import UserError
from mfrbench.synth import SynthConfig, run_synth
from mfrbench.vision import anchors as A
from mfrbench.vision.decode import decode_image
from mfrbench.vision.mask_mix import MIX_KINDS, MaskMix, apply_mask, redraw_mask


@pytest.fixture(scope="module")
def synth_rows(lfw_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """A real synth run (6 LFW photos, black paper masks, PNG so pixels compare exactly)."""
    out = tmp_path_factory.mktemp("synth")
    config = SynthConfig(
        dataset="lfw", root=str(lfw_mini), colors="black", limit=6, image_format="png", roi="none"
    )
    run_synth(config, out, workers=1)
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert all(r["status"] == "ok" for r in rows)
    return out, rows


def _crop(out: Path, row: dict) -> np.ndarray:
    return decode_image((out / row["out_path"]).read_bytes()).rgb


def test_masks_land_on_synth_crops_through_the_row(synth_rows) -> None:
    """On synth's unmasked crops, located by the row alone: mouth and nose tip covered, eyes not."""
    out, rows = synth_rows
    for kind in MIX_KINDS[:4]:
        aug = MaskAugment(kind, seed=3)
        for row in (r for r in rows if r["variant"] == "unmasked"):
            crop = _crop(out, row)
            masked, occ, record = aug.explain(crop, row=row, key=row["src_path"])
            assert record is not None and record["mask_type"] == kind
            canon = np.rint(landmarks_in_crop(row)).astype(int)
            covered = [occ[y, x] for x, y in canon[[*A.MOUTH, A.NOSE_TIP]]]
            assert all(covered), (kind, row["src_path"])
            assert not any(occ[y, x] for x, y in canon[list(A.EYES)]), (kind, row["src_path"])
            assert (masked[occ] != crop[occ]).any() and masked.shape == crop.shape


def test_paper_record_redraws_synth_mask_pixels(synth_rows, lfw_mini: Path) -> None:
    """The polygon path is synth's own: a black paper record on the source, cropped, equals
    synth's mask-black output byte for byte."""
    from mfrbench.vision.roi import crop_resize

    out, rows = synth_rows
    record = {"mask_type": "paper", "style": None, "color": "black", "color_rgb": [0, 0, 0]}
    for row in (r for r in rows if r["variant"] == "mask-black"):
        src = decode_image((lfw_mini / row["src_path"]).read_bytes()).rgb
        canon = np.asarray(row["landmarks"], np.float64).reshape(68, 2)
        masked, occ = redraw_mask(src, canon, record)
        size = (row["out_width"], row["out_height"])
        assert np.array_equal(crop_resize(masked, row["roi_box"], size), _crop(out, row))
        poly = np.zeros(src.shape[:2], np.uint8)
        cv2.fillPoly(poly, [np.asarray(row["mask_polygon"], np.int32).reshape(-1, 1, 2)], 1)
        assert np.array_equal(occ, poly.astype(bool))


def test_keys_make_each_image_a_pure_function_of_seed_and_key(synth_rows) -> None:
    out, rows = synth_rows
    row = next(r for r in rows if r["variant"] == "unmasked")
    crop = _crop(out, row)
    mix = "surgical:0.4,cloth:0.3,n95:0.2,paper:0.1"
    a, b = MaskAugment(mix, seed=1), MaskAugment(mix, seed=1)
    b(crop, row=row, key="other")  # b's history differs; keyed results must not
    for key in ("x", 7, "x:epoch1"):
        assert np.array_equal(a(crop, row=row, key=key), b(crop, row=row, key=key))
    looks = {a.explain(crop, row=row, key=k)[2]["mask_type"] for k in range(40)}
    assert len(looks) >= 3  # the mix is drawn per key
    # without keys: the same sequence from the same seed, different calls differ
    c, d = MaskAugment(mix, seed=5), MaskAugment(mix, seed=5)
    first = [c(crop, row=row) for _ in range(3)]
    again = [d(crop, row=row) for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not np.array_equal(first[0], first[1]) or not np.array_equal(first[1], first[2])


def test_probability_and_input_types(synth_rows) -> None:
    torch = pytest.importorskip("torch")
    out, rows = synth_rows
    row = next(r for r in rows if r["variant"] == "unmasked")
    crop = _crop(out, row)
    never = MaskAugment("surgical", p=0.0)
    same, occ, record = never.explain(crop, row=row, key=1)
    assert same is crop and record is None and not occ.any()
    some = MaskAugment("cloth", p=0.5, seed=2)
    masked = [some.explain(crop, row=row, key=k)[2] is not None for k in range(200)]
    assert 70 <= sum(masked) <= 130  # binomial(200, 0.5): far inside 5 sd
    aug = MaskAugment("kn95", seed=4)
    want = aug(crop, row=row, key="k")
    pil = aug(Image.fromarray(crop), row=row, key="k")
    assert isinstance(pil, Image.Image) and np.array_equal(np.asarray(pil), want)
    chw = torch.from_numpy(crop).permute(2, 0, 1).contiguous()
    got = aug(chw, row=row, key="k")
    assert got.dtype == torch.uint8 and np.array_equal(got.permute(1, 2, 0).numpy(), want)
    flt = chw.float() / 255.0
    got_f = aug(flt, row=row, key="k")
    changed = (want != crop).any(axis=2)
    assert torch.equal(got_f[:, ~torch.from_numpy(changed)], flt[:, ~torch.from_numpy(changed)])
    assert np.array_equal(np.rint(got_f.permute(1, 2, 0).numpy() * 255).astype(np.uint8), want)


def test_bad_calls_are_user_errors(synth_rows) -> None:
    out, rows = synth_rows
    row = next(r for r in rows if r["variant"] == "unmasked")
    crop = _crop(out, row)
    with pytest.raises(UserError, match="landmarks or its manifest row"):
        MaskAugment()(crop)
    with pytest.raises(UserError, match=r"\(68, 2\)"):
        MaskAugment()(crop, np.zeros((5, 2)))
    with pytest.raises(UserError, match="p must be in"):
        MaskAugment(p=1.5)
    with pytest.raises(UserError, match="numpy array, a PIL image or a torch tensor"):
        MaskAugment()([[0]], row=row)
    with pytest.raises(UserError, match="no landmarks"):
        landmarks_in_crop({"roi_box": None, "landmarks": None})


def test_mix_parsing_and_draw_frequencies() -> None:
    mix = MaskMix.parse("surgical:0.4, cloth:0.3,n95:0.2,paper:0.1")
    assert mix.kinds == ("surgical", "cloth", "n95", "paper")
    assert mix.weights == pytest.approx((0.4, 0.3, 0.2, 0.1))
    assert MaskMix.parse("surgical:2,cloth:2").weights == (0.5, 0.5)
    assert MaskMix.parse(["n95", "kn95"]) == MaskMix.parse({"n95": 1, "kn95": 1})
    assert MaskMix.parse(mix.spec()) == mix
    rng = np.random.default_rng(0)
    counts = {k: 0 for k in mix.kinds}
    for _ in range(10_000):
        counts[mix.draw(rng)] += 1
    for kind, w in zip(mix.kinds, mix.weights, strict=True):
        sd = (10_000 * w * (1 - w)) ** 0.5
        assert abs(counts[kind] - 10_000 * w) < 5 * sd, (kind, counts)
    for bad, match in [
        ("surgical:0.5,hat:0.5", "unknown mask kind 'hat'"),
        ("surgical:-1", "positive"),
        ("surgical:x", "not a number"),
        ("surgical,surgical", "listed twice"),
        ("surgical,,cloth", "empty mask kind"),
    ]:
        with pytest.raises(UserError, match=match):
            MaskMix.parse(bad)


def test_apply_mask_takes_the_same_draws_for_every_kind(synth_rows, lfw_mini: Path) -> None:
    """Three draws per face whatever the kind: a face's mask never depends on earlier faces'."""
    _, rows = synth_rows
    row = next(r for r in rows if r["variant"] == "unmasked")
    src = decode_image((lfw_mini / row["src_path"]).read_bytes()).rgb
    canon = np.asarray(row["landmarks"], np.float64).reshape(68, 2)
    for kinds in (("surgical",), ("paper",), ("cloth", "nist-nose-tip")):
        mix = MaskMix.parse(list(kinds))
        rng = np.random.default_rng(9)
        mix.draw(rng), rng.integers(2**63), rng.integers(3)
        after = rng.random()
        used = np.random.default_rng(9)
        _, _, record = apply_mask(src, canon, mix, used)
        assert record["mask_type"] in kinds and used.random() == after, kinds
