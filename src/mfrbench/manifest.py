"""Parquet manifest schemas in one place, atomic writes and readers.

A synth manifest has one row per (source image, variant). Nothing is dropped: a source that cannot
be decoded, has no face or no landmarks still gets a row per variant, with ``status`` and
``reason``. The full field reference is ``docs/manifest.md``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mfrbench.digest import utf8_json

MANIFEST_SCHEMA_VERSION = 2
METADATA_KEY = b"mfrbench"

#: Row statuses. ``ok`` means an image was written; every other status carries a reason.
STATUS_OK = "ok"

_F32 = pa.list_(pa.float32())
_I32 = pa.list_(pa.int32())

SYNTH_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),  # "<src_path>|<variant>", unique
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("identity", pa.string(), nullable=False),
        pa.field("src_path", pa.string(), nullable=False),
        pa.field("src_sha256", pa.string(), nullable=False),
        pa.field("real_mask", pa.bool_()),
        pa.field("variant", pa.string(), nullable=False),
        pa.field("masked", pa.bool_(), nullable=False),
        pa.field("color", pa.string()),
        pa.field("color_rgb", _I32),
        pa.field("mask_shape", pa.string()),
        pa.field("augment", pa.string()),  # JSON {"kind": ..., "params": {...}} or null
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("out_path", pa.string()),  # relative to the output folder
        pa.field("out_sha256", pa.string()),
        pa.field("out_width", pa.int32()),
        pa.field("out_height", pa.int32()),
        pa.field("src_width", pa.int32()),
        pa.field("src_height", pa.int32()),
        pa.field("decode_notes", pa.string()),
        pa.field("detector", pa.string()),
        pa.field("det_score", pa.float32()),
        pa.field("faces_found", pa.int32()),
        pa.field("face_policy", pa.string(), nullable=False),
        pa.field("det_box", _F32),  # detector box (x1, y1, x2, y2), float pixels
        pa.field("det_points5", _F32),  # the detector's 5 points (MTCNN), x0, y0, ...; else null
        pa.field("face_box", _I32),  # det_box + margin, integer pixels, clipped
        pa.field("margin", pa.int32(), nullable=False),
        pa.field("landmarks_backend", pa.string(), nullable=False),
        pa.field("landmarks", _F32),  # canonical 68 points (dlib layout), x0, y0, x1, y1, ...
        pa.field("mask_polygon", _I32),  # x0, y0, x1, y1, ... in source-image pixels
        pa.field("roi", pa.string(), nullable=False),
        pa.field("roi_box", _I32),  # in source-image pixels
        pa.field("size", pa.int32(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("tool_version", pa.string(), nullable=False),
    ]
)


#: Columns a synth manifest has only when the option that fills them is used, so manifests made
#: without them keep their bytes: ``mask_style`` (``--masks``: the drawn mask's kind, style or
#: colour as canonical JSON, :class:`~mfrbench.vision.mask_mix.MaskRecord`) and
#: ``occlusion_path`` (``--occlusion-masks``: the output's occlusion PNG).
OPTIONAL_SYNTH_FIELDS = {
    "mask_style": pa.field("mask_style", pa.string()),
    "occlusion_path": pa.field("occlusion_path", pa.string()),
}


def synth_schema(*optional: str) -> pa.Schema:
    """SYNTH_SCHEMA plus the named optional columns (:data:`OPTIONAL_SYNTH_FIELDS`), in order."""
    schema = SYNTH_SCHEMA
    for name in OPTIONAL_SYNTH_FIELDS:
        if name in optional:
            schema = schema.append(OPTIONAL_SYNTH_FIELDS[name])
    return schema


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema = SYNTH_SCHEMA) -> pa.Table:
    """Build a table with exactly ``schema``; missing keys become nulls."""
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(columns, schema=schema)


def with_metadata(schema: pa.Schema, meta: dict[str, Any]) -> pa.Schema:
    """Attach run metadata (canonical JSON, so identical runs give identical bytes)."""
    return schema.with_metadata({METADATA_KEY: utf8_json(meta).encode()})


#: Sorted keys, no whitespace, UTF-8 kept, NaN written: the manifest's variant, pinned by its
#: bytes and the synth params digest (see :mod:`mfrbench.digest`).
canonical_json = utf8_json


def read_metadata(path: Path) -> dict[str, Any]:
    """The mfrbench metadata stored in a Parquet file (empty dict when there is none)."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it replaces ``dest`` atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get normal permissions
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes_atomic(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` so a reader never sees a partial file."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(dest: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (sorted keys, NaN refused) atomically, for people to read."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_bytes_atomic(dest, text.encode("utf-8"))


def write_table_atomic(table: pa.Table, dest: Path) -> None:
    """Write one Parquet file atomically with fixed, deterministic writer settings."""
    with atomic_path(dest) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=False)


def concat_parquet_atomic(parts: Iterable[Path], dest: Path, schema: pa.Schema) -> int:
    """Stream ``parts`` (in the given order) into one Parquet file; returns the row count.

    Each part becomes its own row group, so memory stays bounded by one part, and the
    output bytes depend only on the parts' contents and order (not on worker count).
    """
    n = 0
    with (
        atomic_path(dest) as tmp,
        pq.ParquetWriter(tmp, schema, compression="zstd", write_statistics=False) as writer,
    ):
        for part in parts:
            table = pq.read_table(part, schema=schema.remove_metadata())
            writer.write_table(table.replace_schema_metadata(schema.metadata))
            n += table.num_rows
    return n


def read_manifest(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """Read a manifest (or a subset of its columns)."""
    path = Path(path)
    if not path.is_file():
        from mfrbench.errors import UserError

        raise UserError(f"manifest not found: {path}")
    return pq.read_table(path, columns=columns)
