"""Canonical JSON, sha256 helpers and the JSON-safe converter: the bottom layer every hash uses.

mfrbench's outputs are named by hashes (protocol digests, model cache keys, prepared-image
content keys, manifest and checkpoint bytes), so every canonical serialisation lives here.
All variants sort keys and use compact separators; they differ in two settings that change
bytes, and each existing output is pinned to the variant it was first hashed with
(``tests/test_golden_pins.py``). Never move a call site to another variant: the same object
would get another hash, silently invalidating caches and published protocol ids.

========================  =========  ====  ==================================================
variant                   non-ASCII  NaN   used by
========================  =========  ====  ==================================================
:func:`utf8_json`         kept       yes   manifest metadata and ``augment`` column, synth
                                           params digest, safetensors header
:func:`ascii_json`        escaped    yes   prepared-image content key, ``AugParams.to_json``
:func:`model_json`        escaped    no    model cache key, ``state_digest``, siamese heads
                                           (input first passed through :func:`jsonable`)
:func:`protocol_bytes`    kept       no    protocol files and digest, render index; also
                                           refuses non-JSON types and non-string keys and
                                           ends with one newline
========================  =========  ====  ==================================================

"yes" under NaN means Python's ``NaN``/``Infinity`` tokens are written (not strict JSON).

Imports only the standard library and numpy, so any module may use it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

# ----------------------------------------------------------------------------- JSON-safe values


def jsonable(
    value: Any, *, nonfinite: Literal["keep", "null"] = "keep", str_keys: bool = True
) -> Any:
    """``value`` as plain JSON types, recursively: what ``json.dumps`` can write.

    Mappings become dicts, tuples, lists and numpy arrays become lists, numpy scalars become
    Python ``bool``/``int``/``float``/``str`` (other numpy scalars their ``.item()``); anything
    else is returned as is (so ``json.dumps`` still refuses what is not JSON). The serialised
    bytes equal those of the unconverted value wherever ``json.dumps`` accepted it.

    nonfinite: ``"keep"`` leaves NaN and infinities for the serialiser to refuse (cache keys,
    protocols); ``"null"`` turns them into None (metric reports, where "undefined" is a value).
    str_keys: ``str()`` every key (reports, identities); False keeps keys so that
    :func:`protocol_bytes` can refuse non-string ones instead of renaming them (freeze).
    """

    def conv(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {(str(k) if str_keys else k): conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, np.ndarray):
            return conv(v.tolist())
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, np.integer)):
            return int(v)
        if isinstance(v, (float, np.floating)):
            f = float(v)
            return None if nonfinite == "null" and not math.isfinite(f) else f
        if isinstance(v, np.str_):
            return str(v)
        if isinstance(v, np.generic):
            return v.item()
        return v

    return conv(value)


# ----------------------------------------------------------------------------- canonical JSON


def canonical_json(obj: Any, *, ensure_ascii: bool, allow_nan: bool) -> str:
    """Sorted keys, no whitespace; the two byte-changing settings must be chosen explicitly.

    Prefer the named variants below: each is the one an existing hashed output uses.
    """
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=allow_nan
    )


def utf8_json(obj: Any) -> str:
    """Canonical JSON with UTF-8 kept and NaN written as ``NaN`` (manifests, safetensors)."""
    return canonical_json(obj, ensure_ascii=False, allow_nan=True)


def ascii_json(obj: Any) -> str:
    """Canonical JSON with ``\\uXXXX`` escapes and NaN written (content keys, augment params)."""
    return canonical_json(obj, ensure_ascii=True, allow_nan=True)


def model_json(obj: Any) -> str:
    """Canonical JSON of :func:`jsonable` ``obj``, ASCII-escaped, NaN refused (model identity)."""
    return canonical_json(jsonable(obj), ensure_ascii=True, allow_nan=False)


def check_json(obj: Any, where: str = "$") -> None:
    """Raise ValueError naming the first value canonical JSON cannot hold (path in ``where``)."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"{where}: {obj!r} is not allowed in canonical JSON")
        return
    if isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            check_json(item, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} is not a string")
            check_json(value, f"{where}.{key}")
        return
    raise ValueError(f"{where}: {type(obj).__name__} is not a JSON type")


def protocol_bytes(obj: dict) -> bytes:
    """The protocol serialisation: sorted keys, no spaces, UTF-8 kept, one trailing newline.

    Floats use Python's shortest round-trip repr; NaN, infinities, non-string keys and
    non-JSON types raise ValueError, so equal content always gives equal bytes.
    """
    check_json(obj, "$")
    return (canonical_json(obj, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


# ----------------------------------------------------------------------------- sha256


def sha256_bytes(data: bytes) -> str:
    """Lower-case hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    """Lower-case hex sha256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_digest(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest (``hashlib`` algorithm name) of a file's bytes, read in ``chunk``-sized blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Lower-case hex sha256 of a file's bytes, read afresh every call (verification)."""
    return file_digest(path, "sha256", chunk)


_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file_cached(path: str | Path) -> str:
    """:func:`sha256_file` memoised per (resolved path, size, mtime), so re-creating a model is
    cheap. Not for verifying data: a rewrite keeping size and mtime would go unseen."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _MEMO:
        _MEMO[key] = sha256_file(p)
    return _MEMO[key]
