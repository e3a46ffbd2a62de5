"""Read and write the safetensors format (no dependency on the ``safetensors`` package).

Layout (https://github.com/huggingface/safetensors, "Format"): an unsigned 64-bit little-endian
header length N; N bytes of UTF-8 JSON mapping each tensor name to ``{"dtype", "shape",
"data_offsets": [begin, end]}`` (offsets into the byte buffer that follows) plus an optional
``"__metadata__"`` object of string to string; then the raw little-endian tensor bytes, C
order, back to back. As the reference implementation does, the header is padded with spaces
to a multiple of 8 bytes.

Our files are deterministic: tensors are laid out in sorted name order, the JSON has sorted
keys and no spaces, and the bytes depend only on the tensors and metadata.

Training writes these files and ``siamese:DIR`` reads them, so the format lives in ``models``.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mfrbench.digest import utf8_json
from mfrbench.errors import UserError
from mfrbench.manifest import write_bytes_atomic

#: safetensors dtype code -> numpy dtype (little-endian). BF16 and F8 have no numpy dtype.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("bool"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}
_CODES: dict[tuple[str, int], str] = {(dt.kind, dt.itemsize): code for code, dt in DTYPES.items()}

METADATA_KEY = "__metadata__"
#: The reference implementation refuses headers above 100 MB; so do we.
MAX_HEADER_BYTES = 100_000_000


def _code(name: str, arr: np.ndarray) -> str:
    code = _CODES.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None:
        raise ValueError(f"tensor {name!r}: dtype {arr.dtype} has no safetensors equivalent")
    return code


def encode_safetensors(
    tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> bytes:
    """The safetensors bytes of ``tensors`` (sorted by name) and ``metadata``."""
    header: dict[str, Any] = {}
    if metadata is not None:
        bad = [k for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))]
        if bad:
            raise ValueError(f"safetensors metadata must map str to str; bad entry {bad[0]!r}")
        header[METADATA_KEY] = dict(metadata)
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        if not isinstance(name, str) or name == METADATA_KEY:
            raise ValueError(f"invalid tensor name {name!r}")
        arr = np.asarray(tensors[name])
        code = _code(name, arr)
        data = np.ascontiguousarray(arr, dtype=DTYPES[code]).tobytes(order="C")
        header[name] = {
            "dtype": code,
            "shape": [int(n) for n in arr.shape],
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    head = utf8_json(header).encode("utf-8")  # the variant pinned by existing checkpoint bytes
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def write_safetensors(
    path: str | Path,
    tensors: Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` (and string ``metadata``) to ``path`` atomically as safetensors."""
    write_bytes_atomic(Path(path), encode_safetensors(tensors, metadata))


def decode_safetensors(
    data: bytes, source: str = "<bytes>"
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse safetensors bytes; ``source`` names the file in error messages."""

    def bad(reason: str) -> UserError:
        return UserError(f"{source}: not a valid safetensors file: {reason}")

    if len(data) < 8:
        raise bad(f"{len(data)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES:
        raise bad(f"header length {n} exceeds {MAX_HEADER_BYTES}")
    if 8 + n > len(data):
        raise bad(f"header length {n} runs past the end of the file ({len(data)} bytes)")
    try:
        text = data[8 : 8 + n].decode("utf-8")
    except UnicodeDecodeError as err:
        raise bad(f"header is not UTF-8 ({err.reason})") from None
    if not text.startswith("{"):
        raise bad("header does not start with '{'")
    try:
        header = json.loads(text)
    except json.JSONDecodeError as err:
        raise bad(f"header is not JSON ({err.msg} at {err.pos})") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")

    meta = header.pop(METADATA_KEY, None)
    if meta is None:
        meta = {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise bad(f"{METADATA_KEY} must map strings to strings")

    buffer = memoryview(data)[8 + n :]
    spans: list[tuple[int, int, str]] = []
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"tensor {name!r} needs exactly dtype, shape and data_offsets")
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if code not in DTYPES:
            raise bad(f"tensor {name!r} has unsupported dtype {code!r}")
        if not isinstance(shape, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
        ):
            raise bad(f"tensor {name!r} has an invalid shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]
        ):
            raise bad(f"tensor {name!r} has invalid data_offsets {offsets!r}")
        begin, end = offsets
        dt = DTYPES[code]
        if end - begin != math.prod(shape) * dt.itemsize:
            raise bad(f"tensor {name!r}: {end - begin} bytes do not fit shape {shape} of {code}")
        if end > len(buffer):
            raise bad(f"tensor {name!r} runs past the end of the file")
        spans.append((begin, end, name))
        arr = np.frombuffer(buffer[begin:end], dtype=dt).reshape(shape)
        tensors[name] = arr.astype(dt.newbyteorder("="), copy=True)

    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise bad(f"tensor {name!r} starts at byte {begin}, expected {position} (gap/overlap)")
        position = end
    if position != len(buffer):
        raise bad(f"tensor data covers {position} bytes but the file holds {len(buffer)}")
    return tensors, dict(meta)


def read_safetensors(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors (native-endian numpy copies) and metadata of a safetensors file.

    A malformed file raises ``UserError`` naming it: bad header length, non-JSON header,
    unknown dtype, sizes that do not match shapes, gaps, overlaps or trailing bytes.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {p}: {err.strerror or err}") from None
    return decode_safetensors(data, str(p))
