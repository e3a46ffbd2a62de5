"""What names a protocol: its canonical bytes, its digest, its id and its data's content digest.

The digest is the sha256 of the canonical JSON without the ``digest`` key; the protocol id
``name@<first 12 hex digits>`` is what reports cite. Kept apart from validation and freezing
so both can use it without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mfrbench.digest import protocol_bytes, sha256_bytes, sha256_text

#: The protocol variant of :mod:`mfrbench.digest` (sorted keys, no spaces, UTF-8 kept, NaN,
#: non-JSON types and non-string keys refused, one trailing newline): pinned by every digest.
canonical_bytes = protocol_bytes


def compute_digest(protocol: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical bytes of ``protocol`` without its ``digest`` key.

    Takes any mapping: a loaded file is hashed before it is known to be a protocol.
    """
    body = {k: v for k, v in protocol.items() if k != "digest"}
    return sha256_bytes(protocol_bytes(body))


def content_digest(images: Iterable[Mapping[str, Any]]) -> str:
    """sha256 hex over ``"<src_path>:<src_sha256>\\n"`` of each distinct source, sorted by path.

    Independent of image order and of how many variants share one source. A source path seen
    with two different hashes raises ValueError.
    """
    sources: dict[str, str] = {}
    for image in images:
        path, sha = image["src_path"], image["src_sha256"]
        if sources.setdefault(path, sha) != sha:
            raise ValueError(f"source {path!r} has two sha256 values: {sources[path]} and {sha}")
    return sha256_text("".join(f"{p}:{sources[p]}\n" for p in sorted(sources)))


def protocol_id(protocol: Mapping[str, Any]) -> str:
    """``name@`` plus the first 12 hex digits of the digest: what every report cites."""
    return f"{protocol['name']}@{protocol['digest'][:12]}"
