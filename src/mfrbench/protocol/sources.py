"""A protocol's source files under a data root: where they are, their hashes, the checked reader.

Shared by verification (hash every source) and rendering (read, check, decode one), so both
resolve paths, refuse a bad root and read bytes the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mfrbench.digest import sha256_bytes, sha256_file
from mfrbench.errors import ImageError, UserError
from mfrbench.protocol.schema import is_int


def source_file(root: Path, src_path: str) -> Path:
    """The file of a POSIX ``src_path`` under ``root`` (validation refuses ``..`` and ``\\``)."""
    return root.joinpath(*src_path.split("/"))


def hash_or_none(path: Path) -> str | None:
    """sha256 hex of ``path``, or None when it is absent or unreadable."""
    try:
        return sha256_file(path)
    except OSError:
        return None


def check_root(root: Path) -> Path:
    """``root`` with ``~`` expanded; UserError unless it is a directory."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"data root is not a directory: {root}")
    return root


def check_workers(workers: int) -> int:
    """``workers`` when it is an integer >= 1, else UserError."""
    if not is_int(workers) or workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    return workers


def load_source(image: Mapping[str, Any], root: Path) -> np.ndarray:
    """Read, hash-check and decode an ImageRef's source file as (H, W, 3) uint8 RGB.

    The one reader behind :func:`~mfrbench.protocol.render.render_image` and
    ``evaluate.prepare``: ImageError ``missing`` (unreadable), ``changed`` (sha256 differs
    from ``src_sha256``) or a decode status from ``vision.decode.decode_image``.
    """
    from mfrbench.vision.decode import decode_image

    rel = image["src_path"]
    try:
        data = source_file(Path(root), rel).read_bytes()
    except OSError as exc:
        raise ImageError("missing", f"cannot read {rel}: {exc.strerror or exc}") from None
    sha = sha256_bytes(data)
    if sha != image["src_sha256"]:
        raise ImageError("changed", f"{rel}: sha256 {sha} != recorded {image['src_sha256']}")
    return decode_image(data, min_side=1).rgb
