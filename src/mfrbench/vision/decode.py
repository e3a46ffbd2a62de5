"""Decode image bytes into one canonical form: (H, W, 3) uint8 RGB, upright, or an ImageError.

Every odd input a face dataset contains (grayscale, alpha, palettes, CMYK, 16-bit, EXIF rotation,
animations, truncated or corrupt files, decompression bombs) ends either as that canonical array
with `notes` saying what was done, or as `ImageError(status, reason)` with status one of
``decode_error``, ``truncated``, ``too_small``, ``too_large``. Nothing is silently filled in.

Choices, all deterministic:
- Alpha: an alpha channel that is fully opaque is dropped (``alpha_dropped``); one with any
  transparency is composited over white (``alpha_composited``), which is what image viewers show;
  the colour stored under alpha 0 is arbitrary encoder output and must not reach a detector.
- 16-bit samples (``I;16*``, and ``I`` holding 0..65535) become 8-bit by a right shift of 8 bits
  (``16bit_scaled``), never by clipping at 255.
- EXIF orientation is applied with the same transposition table as ``ImageOps.exif_transpose``
  (``exif_transposed``); multi-frame files (GIF, APNG, MPO, TIFF) give their first frame.
- Truncation relies on ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` staying False (its default): PIL
  then raises instead of filling the missing part with grey. Code in this process must not set it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import cast

import numpy as np
from PIL import Image, UnidentifiedImageError

from mfrbench.errors import ImageError

#: Largest image accepted, in pixels (width * height). Larger ones raise ImageError("too_large").
MAX_PIXELS = 100_000_000

_ORIENTATION_TAG = 0x0112
# EXIF orientation -> PIL transposition making the image upright (as ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


@dataclass(frozen=True)
class Decoded:
    """A decoded image.

    rgb: (H, W, 3) uint8, C-contiguous, writeable RGB with EXIF orientation applied.
    width, height: of `rgb`.
    source_mode: the PIL mode of the file's pixels before conversion ("L", "RGBA", "I;16", ...).
    source_format: the PIL format name ("JPEG", "PNG", ...).
    notes: what was done to reach RGB, in order (e.g. "exif_transposed", "alpha_dropped").
    """

    rgb: np.ndarray
    width: int
    height: int
    source_mode: str
    notes: tuple[str, ...] = ()
    source_format: str = ""


def decode_image(data: bytes, *, min_side: int = 32, max_pixels: int = MAX_PIXELS) -> Decoded:
    """Decode `data` (the bytes of one image file) to upright RGB.

    Raises ImageError with status ``decode_error`` (empty, not an image, corrupt, unsupported
    mode), ``truncated``, ``too_small`` (min side < `min_side`) or ``too_large`` (more than
    `max_pixels` pixels; PIL's own bomb guard, 2 x Image.MAX_IMAGE_PIXELS, also ends there).
    Sizes are checked from the header, before any pixel is decoded.
    """
    if not data:
        raise ImageError("decode_error", "empty file (0 bytes)")
    im = _open(data)
    source_format = im.format or ""
    width, height = im.size
    if width * height > max_pixels:
        raise ImageError(
            "too_large", f"{width}x{height} = {width * height} pixels exceeds {max_pixels}"
        )
    if min(width, height) < min_side:
        raise ImageError("too_small", f"{width}x{height} is below the minimum side {min_side}")

    notes: list[str] = []
    orientation = _orientation(im, notes)
    _load(im, notes)
    source_mode = im.mode
    method = _TRANSPOSE.get(orientation)
    if method is not None:
        im = im.transpose(method)
        notes.append("exif_transposed")
    rgb = _to_rgb(im, notes)
    return Decoded(
        rgb=rgb,
        width=rgb.shape[1],
        height=rgb.shape[0],
        source_mode=source_mode,
        notes=tuple(notes),
        source_format=source_format,
    )


def _open(data: bytes) -> Image.Image:
    """Parse the header; map PIL's failures to ImageError."""
    try:
        with warnings.catch_warnings():
            # We enforce our own limit right after opening; PIL's warning would be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageError("too_large", f"decompression bomb guard: {exc}") from exc
    except UnidentifiedImageError as exc:
        looks_like = _sniff(data)
        reason = (
            f"corrupt {looks_like} header (PIL cannot parse it)"
            if looks_like
            else f"not a recognised image format (first bytes {bytes(data[:8])!r})"
        )
        raise ImageError("decode_error", reason) from exc
    except Exception as exc:  # PIL raises many types for broken headers
        raise ImageError("decode_error", f"corrupt image header: {_describe(exc)}") from exc


_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _sniff(data: bytes) -> str:
    """Format name when `data` starts with a known signature, else ''. Only for messages."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in _MAGIC if data.startswith(magic)), "")


def _orientation(im: Image.Image, notes: list[str]) -> int:
    """EXIF orientation (1 when absent); unreadable EXIF is noted, not fatal."""
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
        return int(value) if value in _TRANSPOSE else 1
    except Exception:
        notes.append("exif_unreadable")
        return 1


def _load(im: Image.Image, notes: list[str]) -> None:
    """Decode the first frame's pixels; a premature end of data is ``truncated``."""
    try:
        if getattr(im, "is_animated", False):
            im.seek(0)
            notes.append("first_frame")
        im.load()
    except OSError as exc:
        if "truncated" in str(exc).lower():
            raise ImageError("truncated", f"image file is truncated: {exc}") from exc
        raise ImageError("decode_error", f"corrupt image data: {_describe(exc)}") from exc
    except Exception as exc:  # PIL raises many types (SyntaxError, EOFError, zlib.error...)
        raise ImageError("decode_error", f"corrupt image data: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _to_rgb(im: Image.Image, notes: list[str]) -> np.ndarray:
    """Convert a loaded image of any supported mode to (H, W, 3) uint8 RGB."""
    mode = im.mode
    if mode == "F":
        raise ImageError("decode_error", "unsupported pixel mode F (32-bit float)")
    if mode == "RGB" and "transparency" not in im.info:
        return _array(im)
    if mode in _SIXTEEN_BIT or mode == "I":
        return _sixteen_bit_to_rgb(im, notes)
    if mode in ("L", "1") and "transparency" not in im.info:
        notes.append("grayscale_expanded")
        return _array(im.convert("RGB"))
    if mode in ("P", "PA"):
        notes.append("palette_expanded")
    if "A" in mode or "a" in mode or "transparency" in im.info:
        return _alpha_to_rgb(im.convert("RGBA"), notes)
    try:
        converted = im.convert("RGB")
    except ValueError as exc:
        raise ImageError("decode_error", f"unsupported pixel mode {mode}") from exc
    if mode != "P":
        notes.append(f"{mode.lower()}_converted")
    return _array(converted)


def _array(im: Image.Image) -> np.ndarray:
    """A writeable, C-contiguous (H, W, 3) uint8 copy of an RGB PIL image."""
    arr = np.array(im, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:  # defensive: every caller passes mode RGB
        raise ImageError("decode_error", f"unexpected decoded shape {arr.shape}")
    return arr


def _sixteen_bit_to_rgb(im: Image.Image, notes: list[str]) -> np.ndarray:
    """16-bit grayscale (any byte order, or mode I within 0..65535) -> 8-bit by >> 8."""
    values = np.asarray(im)
    if im.mode == "I":
        lo, hi = (int(v) for v in cast(tuple[float, float], im.getextrema()))  # one band
        if lo < 0 or hi > 0xFFFF:
            raise ImageError(
                "decode_error", f"unsupported 32-bit integer pixels (range {lo}..{hi})"
            )
    gray = (values.astype(np.uint16, copy=False) >> 8).astype(np.uint8)
    rgb = np.empty((*gray.shape, 3), dtype=np.uint8)
    rgb[...] = gray[..., None]
    notes.extend(("16bit_scaled", "grayscale_expanded"))
    return rgb


def _alpha_to_rgb(rgba: Image.Image, notes: list[str]) -> np.ndarray:
    """Drop an opaque alpha channel, else composite over white (integer arithmetic, exact)."""
    lo, _ = rgba.getchannel("A").getextrema()
    if lo == 255:
        notes.append("alpha_dropped")
        return _array(rgba.convert("RGB"))
    arr = np.asarray(rgba)
    alpha = arr[..., 3:4].astype(np.uint16)
    color = arr[..., :3].astype(np.uint16)
    # color*a + 255*(255-a) <= 65025, so uint16 cannot overflow; +127 rounds to nearest.
    out = (color * alpha + 255 * (255 - alpha) + 127) // 255
    notes.append("alpha_composited")
    return np.ascontiguousarray(out, dtype=np.uint8)
