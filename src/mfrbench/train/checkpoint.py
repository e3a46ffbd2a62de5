"""Safetensors checkpoints for training code; the code is in ``mfrbench.models.safetensors_io``.

``siamese:DIR`` reads the files training writes, so the format lives in ``models`` (below
``train`` in the layers); these names stay importable from here for training code.
"""

from __future__ import annotations

from mfrbench.models.safetensors_io import (
    DTYPES,
    MAX_HEADER_BYTES,
    METADATA_KEY,
    decode_safetensors,
    encode_safetensors,
    read_safetensors,
    write_safetensors,
)

__all__ = [
    "DTYPES",
    "MAX_HEADER_BYTES",
    "METADATA_KEY",
    "decode_safetensors",
    "encode_safetensors",
    "read_safetensors",
    "write_safetensors",
]
