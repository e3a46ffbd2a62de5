"""Freezing, writing and loading protocol files.

:func:`freeze` turns a pair set into a complete, validated protocol (digest included);
:func:`write_protocol` writes its canonical bytes atomically; :func:`load_protocol` reads a file
back and refuses anything edited, re-formatted or inconsistent, each with one line naming it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from mfrbench import __version__
from mfrbench.digest import jsonable, protocol_bytes
from mfrbench.errors import UserError
from mfrbench.manifest import write_bytes_atomic
from mfrbench.protocol.digests import compute_digest, content_digest
from mfrbench.protocol.schema import (
    IMAGE_KEYS,
    OPTIONAL_IMAGE_KEYS,
    PAIR_KEYS,
    SCHEMA,
    SCHEMA_VERSION,
    SPLITS,
    SUPERSEDED_KEYS,
    fail,
    is_int,
    pair_sort_key,
    validate,
)
from mfrbench.records import Protocol


def _plain(value: Any) -> Any:
    """Tuples, numpy arrays and numpy scalars as plain lists and Python numbers (for freeze).

    Keys are kept as they are, so validation refuses a non-string key instead of renaming it.
    """
    return jsonable(value, str_keys=False)


def _field(obj: Any, name: str) -> Any:
    return obj[name] if isinstance(obj, Mapping) else getattr(obj, name)


def _normalise(
    item: Mapping[str, Any], keys: Sequence[str], what: str, optional: Sequence[str] = ()
) -> dict[str, Any]:
    """Exactly ``keys`` (absent ones as None), then the ``optional`` keys the item has; an
    unknown key is an error, never dropped."""
    if not isinstance(item, Mapping):
        fail(f"{what} must be a mapping, got {type(item).__name__}")
    extra = sorted(str(k) for k in item if k not in keys and k not in optional)
    if extra:
        fail(f"{what} has unknown key(s) {', '.join(extra)}")
    out = {k: _plain(item.get(k)) for k in keys}
    out.update({k: _plain(item[k]) for k in optional if k in item})
    return out


def freeze(
    pairset: Any,
    *,
    name: str,
    version: str = "1",
    description: str = "",
    citation: str = "",
    dataset: str,
    mfrbench_version: str | None = None,
    supersedes: Sequence[Mapping[str, Any]] = (),
) -> Protocol:
    """Build a complete, validated protocol dict (digest included) from a pair set.

    ``pairset`` is anything with ``strategy``, ``params``, ``images``, ``pairs``, ``summary``
    (and optionally ``warnings``), as attributes or mapping keys. Images are sorted by id and
    pairs by the canonical pair order, then numbered; the input is not modified.
    ``mfrbench_version`` defaults to the running version (it is part of the digest).
    ``supersedes`` (``{name, version, digest}`` each, oldest first) names the protocols with the
    same images and pairs that this one replaces; it is written only when non-empty, so other
    protocols keep their bytes (:func:`mfrbench.protocol.lineage.refreeze` fills it).
    """
    images = sorted(
        (
            _normalise(img, IMAGE_KEYS, "image", OPTIONAL_IMAGE_KEYS)
            for img in _field(pairset, "images")
        ),
        key=lambda img: str(img["id"]),
    )
    pairs = [_normalise(p, PAIR_KEYS, "pair") for p in _field(pairset, "pairs")]
    for p in pairs:
        if p["split"] not in SPLITS or not isinstance(p["pair_type"], str):
            fail(f"pair {p['a']!r}/{p['b']!r}: bad split {p['split']!r} or pair_type")
        if not is_int(p["label"]) or not (p["fold"] is None or is_int(p["fold"])):
            fail(f"pair {p['a']!r}/{p['b']!r}: label and fold must be integers")
        if not isinstance(p["a"], str) or not isinstance(p["b"], str):
            fail(f"pair ids must be strings, got {p['a']!r}, {p['b']!r}")
    pairs.sort(key=pair_sort_key)
    for i, p in enumerate(pairs):
        p["id"] = i
    warnings = _field(pairset, "warnings") if _has(pairset, "warnings") else []
    sources = {img["src_path"] for img in images}
    try:
        cdigest = content_digest(images)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"invalid protocol: {exc}") from None
    protocol: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "version": version,
        "description": description,
        "citation": citation,
        "mfrbench_version": mfrbench_version or __version__,
        "dataset": {"name": dataset, "content_digest": cdigest, "n_images": len(sources)},
        "generation": {
            "strategy": _field(pairset, "strategy"),
            "params": _plain(dict(_field(pairset, "params"))),
            "warnings": [str(w) for w in warnings],
        },
        "summary": _plain(dict(_field(pairset, "summary"))),
        "images": images,
        "pairs": pairs,
    }
    if supersedes:
        protocol["supersedes"] = [
            _normalise(entry, SUPERSEDED_KEYS, "supersedes entry") for entry in supersedes
        ]
    protocol["digest"] = compute_digest(protocol)
    validate(protocol)
    return cast(Protocol, protocol)  # validate() checked every record


def _has(obj: Any, name: str) -> bool:
    return name in obj if isinstance(obj, Mapping) else hasattr(obj, name)


def write_protocol(protocol: Protocol, path: Path) -> None:
    """Write the canonical bytes atomically; refuses a protocol whose digest is stale."""
    if protocol.get("digest") != compute_digest(protocol):
        raise ValueError("protocol digest does not match its content; build it with freeze()")
    write_bytes_atomic(Path(path), protocol_bytes(dict(protocol)))


def load_protocol(path: Path) -> Protocol:
    """Read and check a protocol file; every problem is a one-line UserError naming the file.

    Refused: a missing file, non-JSON, another schema or schema version, a digest that does not
    match the content (edited), bytes that are not the canonical form (re-formatted), and any
    structural fault (unknown or duplicate image ids, bad labels, missing geometry...).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"protocol file not found: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read protocol file {path}: {exc.strerror or exc}") from None
    try:
        obj = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise UserError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
        raise UserError(f"{path}: not an mfrbench protocol (schema must be {SCHEMA!r})")
    if obj.get("schema_version") != SCHEMA_VERSION:
        raise UserError(
            f"{path}: unsupported protocol schema_version {obj.get('schema_version')!r} "
            f"(this mfrbench {__version__} reads version {SCHEMA_VERSION})"
        )
    recorded = obj.get("digest")
    if not isinstance(recorded, str):
        raise UserError(f"{path}: protocol has no digest")
    try:
        actual = compute_digest(obj)
        canonical = protocol_bytes(obj)
    except ValueError as exc:
        raise UserError(f"{path}: not a canonical protocol: {exc}") from None
    if actual != recorded:
        raise UserError(f"{path}: protocol file was edited: digest {actual} != recorded {recorded}")
    if canonical != data:
        raise UserError(
            f"{path}: protocol file is not in canonical form (re-formatted or re-encoded); "
            "its digest only holds for the canonical bytes"
        )
    try:
        validate(obj)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    return cast(Protocol, obj)  # validate() checked every record


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a protocol")
