"""Builders of awkward image files, one per case, for decoder, detector and end-to-end tests.

`write_bad_images(target, face_source)` writes every case into `target` and returns
``{case_name: (path, Expected)}``. It has no pytest dependency so the synth end-to-end test (and
anyone else) can reuse it. Faces come from a real photo: an lfw-mini JPEG (pass the folder or a
file) or, when `face_source` is None, ``skimage.data.astronaut()`` cropped around the face.
Everything is deterministic for a given `seed` and face source.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

#: Side of the upright face image every face case is derived from (LFW's size).
FACE_SIDE = 250
#: Decoded size of the EXIF-rotated case: (width, height), deliberately not square.
EXIF_UPRIGHT_WH = (250, 200)
#: Side of the "very large" case.
LARGE_SIDE = 4000
#: Side of the decompression-bomb PNG (144 MP, above decode.MAX_PIXELS).
BOMB_SIDE = 12_000
#: Width of the transparent frame in the alpha cases.
ALPHA_BORDER = 12


@dataclass(frozen=True)
class Expected:
    """What decoding (and then detecting) a case should give.

    status: "ok", or the ImageError status decode_image must raise.
    size: decoded (width, height) when ok.
    notes: notes decode_image must report (a subset of the actual notes).
    face: True when one real upright face is in the decoded image, False when there is none,
        None when not applicable (decoding fails).
    source_mode: the PIL mode of the stored pixels, when ok.
    """

    status: str = "ok"
    size: tuple[int, int] | None = None
    notes: tuple[str, ...] = ()
    face: bool | None = None
    source_mode: str | None = None


Cases = dict[str, tuple[Path, Expected]]


def face_image_path(face_source: str | Path) -> Path:
    """A face JPEG: `face_source` itself, or the first JPEG (sorted) under a folder."""
    src = Path(face_source)
    if src.is_file():
        return src
    found = sorted(src.rglob("*.jpg"))
    if not found:
        raise FileNotFoundError(f"no .jpg under {src}")
    return found[0]


def load_face(face_source: str | Path | None) -> tuple[np.ndarray, bytes]:
    """(upright FACE_SIDE x FACE_SIDE RGB face image, bytes of a real camera JPEG of it)."""
    if face_source is None:
        from skimage import data

        crop = data.astronaut()[0:250, 95:345]  # her face at about x 175..265, y 76..166
        rgb = np.ascontiguousarray(crop)
        return rgb, _encode(Image.fromarray(rgb), "JPEG", quality=92)
    path = face_image_path(face_source)
    raw = path.read_bytes()
    with Image.open(io.BytesIO(raw)) as im:
        rgb = np.asarray(im.convert("RGB").resize((FACE_SIDE, FACE_SIDE), Image.Resampling.LANCZOS))
    return np.ascontiguousarray(rgb), raw


def case_names() -> list[str]:
    """Every case name, in the order write_bad_images writes them."""
    return [name for name, *_ in _case_table(np.zeros((FACE_SIDE, FACE_SIDE, 3), np.uint8), b"", 0)]


def write_bad_images(
    target: str | Path,
    face_source: str | Path | None = None,
    *,
    seed: int = 0,
    names: Iterable[str] | None = None,
) -> Cases:
    """Write the cases (all, or those in `names`) into `target`; return name -> (path, Expected).

    Each case draws its randomness from (seed, case name), so a subset is byte-identical to the
    same files written as part of the full set.
    """
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    face, face_jpeg = load_face(face_source)
    table = _case_table(face, face_jpeg, seed)
    wanted = set(names) if names is not None else {name for name, *_ in table}
    unknown = wanted - {name for name, *_ in table}
    if unknown:
        raise KeyError(f"unknown bad-image case(s): {sorted(unknown)}")
    cases: Cases = {}
    for name, filename, build, expected in table:
        if name in wanted:
            path = out / filename
            path.write_bytes(build())
            cases[name] = (path, expected)
    return cases


def _case_table(
    face: np.ndarray, face_jpeg: bytes, seed: int
) -> list[tuple[str, str, Callable[[], bytes], Expected]]:
    """(name, file name, payload builder, Expected) for every case; builders run lazily."""

    def rng(name: str) -> np.random.Generator:
        return np.random.default_rng([seed, zlib.crc32(name.encode())])

    side = (FACE_SIDE, FACE_SIDE)
    pil_face = Image.fromarray(face)
    gray = pil_face.convert("L")
    ok_face = Expected("ok", side, (), True, "RGB")
    gray_face = Expected("ok", side, ("grayscale_expanded",), True, "L")
    raw_expected = ok_face
    if face_jpeg:
        with Image.open(io.BytesIO(face_jpeg)) as raw:
            raw_expected = Expected("ok", raw.size, (), True, raw.mode)

    def png() -> bytes:
        return _encode(pil_face, "PNG")

    def gray16() -> Image.Image:
        return Image.fromarray(gray16_of(np.asarray(gray)))

    def animated() -> bytes:
        noise = Image.fromarray(rng("animated_gif").integers(0, 256, (*side, 3), dtype=np.uint8))
        return _encode(pil_face, "GIF", save_all=True, append_images=[noise], duration=100)

    def exif_rotated() -> bytes:
        stored = exif_upright(face).transpose(Image.Transpose.ROTATE_90)  # 90 deg anticlockwise
        return _encode(stored, "JPEG", quality=92, exif=_exif_orientation(6))

    def large() -> bytes:
        big = pil_face.resize((LARGE_SIDE, LARGE_SIDE), Image.Resampling.BICUBIC)
        return _encode(big, "JPEG", quality=85)

    def noise() -> bytes:
        pixels = rng("noise_no_face").integers(0, 256, (256, 256, 3), dtype=np.uint8)
        return _encode(Image.fromarray(pixels), "PNG")

    sixteen = ("16bit_scaled", "grayscale_expanded")
    return [
        # --- files that must fail -----------------------------------------------------------
        ("zero_bytes", "zero_bytes.jpg", lambda: b"", Expected("decode_error")),
        (
            "text_as_jpg",
            "really_text.jpg",
            lambda: b"This is not a JPEG, it is a plain text file.\n" * 20,
            Expected("decode_error"),
        ),
        (
            "corrupt_bytes",
            "corrupt_bytes.jpg",
            lambda: rng("corrupt_bytes").integers(0, 256, 4096, dtype=np.uint8).tobytes(),
            Expected("decode_error"),
        ),
        (
            "corrupt_jpeg_scan",
            "corrupt_scan.jpg",
            lambda: _corrupt_jpeg_scan(face_jpeg, rng("corrupt_jpeg_scan")),
            Expected("decode_error"),
        ),
        (
            "corrupt_png_crc",
            "corrupt_crc.png",
            lambda: _corrupt_png_crc(png()),
            Expected("decode_error"),
        ),
        (
            "truncated_jpeg",
            "truncated.jpg",
            lambda: face_jpeg[: len(face_jpeg) // 2],
            Expected("truncated"),
        ),
        ("truncated_png", "truncated.png", lambda: png()[: len(png()) // 2], Expected("truncated")),
        (
            "tiny_8x8",
            "tiny_8x8.png",
            lambda: _encode(pil_face.resize((8, 8)), "PNG"),
            Expected("too_small"),
        ),
        ("bomb_144mp", "bomb_144mp.png", lambda: _bomb_png(BOMB_SIDE), Expected("too_large")),
        # --- files that decode --------------------------------------------------------------
        ("non_ascii_name", "Zoë_Ñandú.jpg", lambda: face_jpeg, raw_expected),
        ("plain_png", "plain.png", png, ok_face),
        ("webp", "face.webp", lambda: _encode(pil_face, "WEBP", quality=90), ok_face),
        ("bmp", "face.bmp", lambda: _encode(pil_face, "BMP"), ok_face),
        ("pgm", "face.pgm", lambda: _encode(gray, "PPM"), gray_face),
        ("grayscale_jpeg", "grayscale.jpg", lambda: _encode(gray, "JPEG", quality=92), gray_face),
        (
            "rgba_png",
            "rgba_transparent_border.png",
            lambda: _encode(_with_alpha_border(pil_face.convert("RGBA")), "PNG"),
            Expected("ok", side, ("alpha_composited",), True, "RGBA"),
        ),
        (
            "rgba_opaque_png",
            "rgba_opaque.png",
            lambda: _encode(pil_face.convert("RGBA"), "PNG"),
            Expected("ok", side, ("alpha_dropped",), True, "RGBA"),
        ),
        (
            "la_png",
            "gray_alpha.png",
            lambda: _encode(_with_alpha_border(gray.convert("LA")), "PNG"),
            Expected("ok", side, ("alpha_composited",), True, "LA"),
        ),
        (
            "palette_transparent_png",
            "palette_transparent.png",
            lambda: _palette_with_transparent_border(face),
            Expected("ok", side, ("palette_expanded", "alpha_composited"), True, "P"),
        ),
        (
            "cmyk_jpeg",
            "cmyk.jpg",
            lambda: _encode(pil_face.convert("CMYK"), "JPEG", quality=92),
            Expected("ok", side, ("cmyk_converted",), True, "CMYK"),
        ),
        (
            "gray16_png",
            "gray16.png",
            lambda: _encode(gray16(), "PNG"),
            Expected("ok", side, sixteen, True, "I;16"),
        ),
        (
            "gray16_pgm",
            "gray16.pgm",
            lambda: _encode(gray16(), "PPM"),
            Expected("ok", side, sixteen, True, "I"),
        ),
        (
            "exif_rotated_jpeg",
            "exif_orientation6.jpg",
            exif_rotated,
            Expected("ok", EXIF_UPRIGHT_WH, ("exif_transposed",), True, "RGB"),
        ),
        (
            "palette_gif",
            "palette.gif",
            lambda: _encode(pil_face.quantize(256, dither=Image.Dither.NONE), "GIF"),
            Expected("ok", side, ("palette_expanded",), True, "P"),
        ),
        (
            "animated_gif",
            "animated.gif",
            animated,
            Expected("ok", side, ("first_frame", "palette_expanded"), True, "P"),
        ),
        (
            "large_4000",
            "large_4000.jpg",
            large,
            Expected("ok", (LARGE_SIDE, LARGE_SIDE), (), True, "RGB"),
        ),
        ("noise_no_face", "noise.png", noise, Expected("ok", (256, 256), (), False, "RGB")),
        (
            "flat_no_face",
            "flat.jpg",
            lambda: _encode(Image.new("RGB", (200, 160), (128, 128, 128)), "JPEG"),
            Expected("ok", (200, 160), (), False, "RGB"),
        ),
    ]


def exif_upright(face: np.ndarray) -> Image.Image:
    """The upright, non-square image the EXIF case decodes to (rows cropped to 200)."""
    w, h = EXIF_UPRIGHT_WH
    top = (face.shape[0] - h) // 2
    return Image.fromarray(np.ascontiguousarray(face[top : top + h, :w]))


def gray16_of(gray8: np.ndarray) -> np.ndarray:
    """16-bit values whose high byte is `gray8` and whose low byte is a busy pattern.

    Shifting right by 8 must give `gray8` back exactly; clipping to 255 would not.
    """
    low = (np.arange(gray8.size, dtype=np.uint32) * 37 % 256).reshape(gray8.shape)
    return ((gray8.astype(np.uint32) << 8) | low).astype(np.uint16)


def _encode(im: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def _with_alpha_border(im: Image.Image) -> Image.Image:
    """Alpha 0 on a frame of ALPHA_BORDER pixels (its colour set to magenta), opaque inside."""
    arr = np.array(im)
    mask = np.ones(arr.shape[:2], dtype=bool)
    b = ALPHA_BORDER
    mask[b:-b, b:-b] = False
    arr[mask, -1] = 0
    if arr.shape[2] == 4:
        arr[mask, :3] = (255, 0, 255)  # garbage colour under alpha 0 that must not survive
    else:
        arr[mask, 0] = 0
    return Image.fromarray(arr, im.mode)


def _palette_with_transparent_border(face: np.ndarray) -> bytes:
    """A palette PNG whose magenta border colour is the transparent palette index."""
    arr = face.copy()
    b = ALPHA_BORDER
    mask = np.ones(arr.shape[:2], dtype=bool)
    mask[b:-b, b:-b] = False
    arr[mask] = (255, 0, 255)
    pal = Image.fromarray(arr).quantize(255, dither=Image.Dither.NONE)
    index = int(np.asarray(pal)[0, 0])
    if np.any(np.asarray(pal)[~mask] == index):
        raise RuntimeError("magenta palette entry shared with the face; choose another colour")
    return _encode(pal, "PNG", transparency=index)


def _corrupt_jpeg_scan(jpeg: bytes, rng: np.random.Generator) -> bytes:
    """Keep a real JPEG's headers; replace its entropy-coded scan with random bytes."""
    sos = jpeg.find(b"\xff\xda")
    if sos < 0:
        raise ValueError("no SOS marker in the JPEG")
    header_len = struct.unpack(">H", jpeg[sos + 2 : sos + 4])[0]
    start = sos + 2 + header_len
    body = rng.integers(0, 256, max(len(jpeg) - start - 2, 1024), dtype=np.uint8).tobytes()
    return jpeg[:start] + body + b"\xff\xd9"


def _corrupt_png_crc(png: bytes) -> bytes:
    """Flip one bit of the IHDR chunk's data so its CRC no longer matches."""
    data = bytearray(png)
    data[8 + 8 + 4] ^= 0x01  # signature (8) + length and type (8) + into the height field
    return bytes(data)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _bomb_png(side: int) -> bytes:
    """A valid 1-bit PNG of side x side black pixels: tiny on disk, huge once decoded."""
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    signature = b"\x89PNG\r\n\x1a\n"
    return (
        signature + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    )
