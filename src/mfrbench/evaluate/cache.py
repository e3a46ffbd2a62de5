"""On-disk embedding cache: each prepared image is embedded once per model, across runs.

Layout: ``<cache root>/<model cache key>/`` where the root is ``--cache-dir``, else
``paths.embeddings_dir()`` (``$MFRBENCH_CACHE/embeddings``, else
``$MFRBENCH_HOME/cache/embeddings``, else ``~/.cache/mfrbench/embeddings``), and the model cache
key is ``models.base.cache_key_of(identity, preprocess)`` (weights digest, output-changing
options and the preprocessing contract; a fitted model's identity carries its fitted basis).
Inside:

- ``meta.json``: the identity and preprocessing the key stands for (for people; not read back);
- ``shard-<16 hex>.parquet``: one per embedded batch, columns ``key`` (the image's
  ``prepare.content_key``) and ``embedding`` (fixed-size list of float32), written atomically,
  so a killed run loses only the batch in flight and a reader never sees half a shard.

Only successful embeddings are stored; a failure (undecodable image, NaN output) is retried by
the next run. Shards are merged into one file by :meth:`EmbeddingCache.compact`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mfrbench.digest import sha256_text
from mfrbench.manifest import write_json_atomic, write_table_atomic
from mfrbench.paths import embeddings_dir

SHARD_GLOB = "shard-*.parquet"


def cache_root(override: str | Path | None = None) -> Path:
    """``override`` (``--cache-dir``), else :func:`mfrbench.paths.embeddings_dir`."""
    if override is not None and str(override) != "":
        return Path(override).expanduser()
    return embeddings_dir()


def shard_schema(dim: int) -> pa.Schema:
    """Parquet schema of one shard for ``dim``-dimensional embeddings."""
    return pa.schema(
        [
            pa.field("key", pa.string(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False),
        ]
    )


class EmbeddingCache:
    """The cached embeddings of one model (one cache key) of dimension ``dim``."""

    def __init__(
        self,
        cache_key: str,
        dim: int,
        *,
        root: str | Path | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.key = cache_key
        self.dim = int(dim)
        self.dir = cache_root(root) / cache_key
        self.meta = meta or {}
        #: shards that could not be read by the last :meth:`load` (their rows are recomputed).
        self.damaged: list[Path] = []

    def shards(self) -> list[Path]:
        """The shard files, sorted by name."""
        return sorted(self.dir.glob(SHARD_GLOB)) if self.dir.is_dir() else []

    def load(self, wanted: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Map content key -> float32 embedding for every cached key (or only ``wanted``).

        A shard that cannot be read or has another dimension is skipped and listed in
        ``damaged``; a shard deleted meanwhile (by a concurrent compaction) is skipped silently.
        """
        want = set(wanted) if wanted is not None else None
        out: dict[str, np.ndarray] = {}
        self.damaged = []
        schema = shard_schema(self.dim)
        for shard in self.shards():
            try:
                table = pq.read_table(shard)
            except FileNotFoundError:
                continue
            except Exception:
                self.damaged.append(shard)
                continue
            if not table.schema.remove_metadata().equals(schema):
                self.damaged.append(shard)
                continue
            keys = table.column("key").to_pylist()
            flat = table.column("embedding").combine_chunks().values.to_numpy()
            matrix = flat.reshape(len(keys), self.dim)
            for i, key in enumerate(keys):
                if (want is None or key in want) and key not in out:
                    out[key] = matrix[i]
        return out

    def _write_meta(self) -> None:
        path = self.dir / "meta.json"
        if not path.is_file() and self.meta:
            write_json_atomic(path, self.meta)

    def put(self, keys: Sequence[str], embeddings: np.ndarray) -> Path | None:
        """Store one batch as a new shard (atomic). Returns its path, or None for no rows."""
        if len(keys) == 0:
            return None
        matrix = np.ascontiguousarray(embeddings, dtype=np.float32)
        if matrix.shape != (len(keys), self.dim):
            raise ValueError(f"expected ({len(keys)}, {self.dim}) embeddings, got {matrix.shape}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_meta()
        name = sha256_text("\n".join(keys))[:16]
        path = self.dir / f"shard-{name}.parquet"
        values = pa.array(matrix.reshape(-1), type=pa.float32())
        column = pa.FixedSizeListArray.from_arrays(values, self.dim)
        table = pa.table(
            {"key": pa.array(list(keys), pa.string()), "embedding": column},
            schema=shard_schema(self.dim),
        )
        write_table_atomic(table, path)
        return path

    def compact(self, min_shards: int = 16) -> int:
        """Merge all shards into one when there are at least ``min_shards``; returns rows kept.

        The merged shard is written (atomically) before the old ones are removed, so a crash in
        between only leaves duplicates, which :meth:`load` tolerates.
        """
        shards = self.shards()
        if len(shards) < min_shards:
            return -1
        entries = self.load()
        keys = sorted(entries)
        matrix = (
            np.stack([entries[k] for k in keys]) if keys else np.zeros((0, self.dim), np.float32)
        )
        merged = self.put(keys, matrix)
        for shard in shards:
            if shard != merged and shard not in self.damaged:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(shard)
        return len(keys)
