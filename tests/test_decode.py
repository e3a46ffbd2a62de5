"""decode_image over every awkward input in tests/badimages.py, plus exactness checks."""

from __future__ import annotations

import io
from pathlib import Path

import badimages
import numpy as np
import pytest
from PIL import Image, ImageOps

from mfrbench.errors import ImageError
from mfrbench.vision.decode import MAX_PIXELS, Decoded, decode_image

ALL_CASES = [
    "zero_bytes", "text_as_jpg", "corrupt_bytes", "corrupt_jpeg_scan", "corrupt_png_crc",
    "truncated_jpeg", "truncated_png", "tiny_8x8", "bomb_144mp", "non_ascii_name", "plain_png",
    "webp", "bmp", "pgm", "grayscale_jpeg", "rgba_png", "rgba_opaque_png", "la_png",
    "palette_transparent_png", "cmyk_jpeg", "gray16_png", "gray16_pgm", "exif_rotated_jpeg",
    "palette_gif", "animated_gif", "large_4000", "noise_no_face", "flat_no_face",
]  # fmt: skip


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory, lfw_mini: Path) -> badimages.Cases:
    return badimages.write_bad_images(tmp_path_factory.mktemp("bad"), lfw_mini)


@pytest.fixture(scope="module")
def face(lfw_mini: Path) -> np.ndarray:
    return badimages.load_face(lfw_mini)[0]


def _decode(cases: badimages.Cases, name: str) -> Decoded:
    return decode_image(cases[name][0].read_bytes())


def test_builder_writes_every_case(cases: badimages.Cases) -> None:
    assert sorted(cases) == sorted(ALL_CASES) == sorted(badimages.case_names())
    for path, _ in cases.values():
        assert path.is_file()
    assert cases["non_ascii_name"][0].name == "Zoë_Ñandú.jpg"


@pytest.mark.parametrize("name", ALL_CASES)
def test_case_outcome(cases: badimages.Cases, name: str) -> None:
    path, expected = cases[name]
    data = path.read_bytes()
    if expected.status != "ok":
        with pytest.raises(ImageError) as info:
            decode_image(data)
        assert info.value.status == expected.status
        assert info.value.reason
        return
    d = decode_image(data)
    assert (d.width, d.height) == expected.size
    assert d.rgb.shape == (d.height, d.width, 3)
    assert d.rgb.dtype == np.uint8
    assert d.rgb.flags.c_contiguous
    assert d.rgb.flags.writeable
    assert set(expected.notes) <= set(d.notes), d.notes
    assert d.source_mode == expected.source_mode


def test_reasons_say_what_went_wrong(cases: badimages.Cases) -> None:
    def reason(name: str) -> str:
        with pytest.raises(ImageError) as info:
            _decode(cases, name)
        return info.value.reason

    assert "0 bytes" in reason("zero_bytes")
    assert "not a recognised image format" in reason("text_as_jpg")
    assert "corrupt PNG header" in reason("corrupt_png_crc")
    assert "corrupt image data" in reason("corrupt_jpeg_scan")
    assert "8x8" in reason("tiny_8x8")
    assert "12000x12000" in reason("bomb_144mp")


def test_plain_files_decode_to_the_same_pixels(cases: badimages.Cases, face: np.ndarray) -> None:
    for name in ("plain_png", "bmp"):
        np.testing.assert_array_equal(_decode(cases, name).rgb, face)
    raw = cases["non_ascii_name"][0].read_bytes()
    with Image.open(io.BytesIO(raw)) as im:
        np.testing.assert_array_equal(_decode(cases, "non_ascii_name").rgb, np.asarray(im))


def test_grayscale_expands_to_equal_channels(cases: badimages.Cases) -> None:
    for name in ("grayscale_jpeg", "pgm", "gray16_png", "gray16_pgm"):
        rgb = _decode(cases, name).rgb
        assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])


def test_16bit_is_shifted_not_clipped(cases: badimages.Cases, face: np.ndarray) -> None:
    gray8 = np.asarray(Image.fromarray(face).convert("L"))
    for name in ("gray16_png", "gray16_pgm"):
        rgb = _decode(cases, name).rgb
        np.testing.assert_array_equal(rgb[..., 0], gray8)  # the high byte exactly


def test_16bit_big_endian_tiff() -> None:
    values = badimages.gray16_of(np.arange(64 * 48, dtype=np.uint8).reshape(48, 64) % 251)
    im = Image.frombytes("I;16B", (64, 48), values.astype(">u2").tobytes())
    buf = io.BytesIO()
    im.save(buf, "TIFF")
    d = decode_image(buf.getvalue())
    assert d.source_mode == "I;16B"
    np.testing.assert_array_equal(d.rgb[..., 2], (values >> 8).astype(np.uint8))


def test_alpha_composited_over_white_and_opaque_alpha_dropped(
    cases: badimages.Cases, face: np.ndarray
) -> None:
    b = badimages.ALPHA_BORDER
    for name in ("rgba_png", "la_png", "palette_transparent_png"):
        rgb = _decode(cases, name).rgb
        assert (rgb[:b] == 255).all() and (rgb[:, -b:] == 255).all(), name  # no magenta left
    np.testing.assert_array_equal(_decode(cases, "rgba_png").rgb[b:-b, b:-b], face[b:-b, b:-b])
    np.testing.assert_array_equal(_decode(cases, "rgba_opaque_png").rgb, face)


def test_partial_alpha_blends_exactly() -> None:
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 128
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    rgb = decode_image(buf.getvalue()).rgb
    # 200*128/255 + 255*127/255 = 100.39 + 127 -> 227; 0*128/255 + 127 -> 127
    assert tuple(rgb[0, 0]) == (227, 127, 127)


def test_cmyk_round_trips_to_rgb(cases: badimages.Cases, face: np.ndarray) -> None:
    rgb = _decode(cases, "cmyk_jpeg").rgb
    diff = np.abs(rgb.astype(int) - face.astype(int)).mean()
    assert diff < 4.0  # JPEG loss only; an inverted (Adobe) CMYK would be ~100


def test_exif_rotation_is_applied_and_face_is_upright(
    cases: badimages.Cases, face: np.ndarray
) -> None:
    import dlib

    path, _ = cases["exif_rotated_jpeg"]
    with Image.open(path) as raw:
        stored = np.asarray(raw.convert("RGB"))
    d = decode_image(path.read_bytes())
    assert stored.shape[:2] == (d.width, d.height)  # width and height swapped back
    upright = np.asarray(badimages.exif_upright(face))
    assert np.abs(d.rgb.astype(int) - upright.astype(int)).mean() < 3.0
    detector = dlib.get_frontal_face_detector()
    assert len(detector(d.rgb, 1)) == 1
    assert len(detector(stored, 1)) == 0  # sideways as stored: the frontal detector misses it


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", exif=exif.tobytes())
    d = decode_image(buf.getvalue())
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    np.testing.assert_array_equal(d.rgb, reference)
    assert ("exif_transposed" in d.notes) == (orientation != 1)


def test_animated_gif_gives_first_frame(cases: badimages.Cases, face: np.ndarray) -> None:
    first = _decode(cases, "animated_gif").rgb
    gif = _decode(cases, "palette_gif").rgb
    assert np.abs(first.astype(int) - face.astype(int)).mean() < 8.0  # palette loss only
    assert np.abs(gif.astype(int) - face.astype(int)).mean() < 8.0


def test_min_side_and_max_pixels_are_parameters(cases: badimages.Cases) -> None:
    data = cases["flat_no_face"][0].read_bytes()  # 200 x 160
    assert decode_image(data, min_side=160).height == 160
    with pytest.raises(ImageError, match="minimum side 161") as info:
        decode_image(data, min_side=161)
    assert info.value.status == "too_small"
    with pytest.raises(ImageError) as info:
        decode_image(data, max_pixels=200 * 160 - 1)
    assert info.value.status == "too_large"
    assert MAX_PIXELS == 100_000_000


def test_unsupported_float_mode() -> None:
    buf = io.BytesIO()
    Image.fromarray(np.ones((40, 40), dtype=np.float32)).save(buf, "TIFF")
    with pytest.raises(ImageError, match="mode F") as info:
        decode_image(buf.getvalue())
    assert info.value.status == "decode_error"


def test_decoding_is_deterministic(cases: badimages.Cases) -> None:
    for name in ("webp", "cmyk_jpeg", "rgba_png", "exif_rotated_jpeg"):
        data = cases[name][0].read_bytes()
        a, b = decode_image(data), decode_image(data)
        assert a.rgb.tobytes() == b.rgb.tobytes() and a.notes == b.notes


def test_builder_is_deterministic_and_subsets_match(
    tmp_path: Path, cases: badimages.Cases, lfw_mini: Path
) -> None:
    names = ["corrupt_bytes", "corrupt_jpeg_scan", "noise_no_face", "bomb_144mp", "animated_gif"]
    subset = badimages.write_bad_images(tmp_path, lfw_mini, names=names)
    assert sorted(subset) == sorted(names)
    for name in names:
        assert subset[name][0].read_bytes() == cases[name][0].read_bytes()
    other_seed = badimages.write_bad_images(tmp_path / "s1", lfw_mini, seed=1, names=names[:1])
    assert other_seed["corrupt_bytes"][0].read_bytes() != cases["corrupt_bytes"][0].read_bytes()
    with pytest.raises(KeyError):
        badimages.write_bad_images(tmp_path, lfw_mini, names=["no_such_case"])


def test_builder_works_without_lfw(tmp_path: Path) -> None:
    cases = badimages.write_bad_images(tmp_path, None, names=["exif_rotated_jpeg", "plain_png"])
    d = decode_image(cases["exif_rotated_jpeg"][0].read_bytes())
    assert (d.width, d.height) == badimages.EXIF_UPRIGHT_WH


def test_exif_rotation_of_16bit_image() -> None:
    values = (np.arange(40 * 56, dtype=np.uint16).reshape(40, 56) * 29).astype(np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(values).save(buf, "PNG", exif=exif.tobytes())
    d = decode_image(buf.getvalue())
    assert (d.width, d.height) == (40, 56)
    expected = np.rot90(values >> 8, -1).astype(np.uint8)  # orientation 6: turn clockwise
    np.testing.assert_array_equal(d.rgb[..., 1], expected)
