"""Re-freezing a protocol under new metadata, and matching results to the protocol they cite.

The digest covers every byte of a protocol, citation and description included, so that the
shipped protocols keep the ids docs and reports cite (docs/protocols.md §4, §6, §8). A re-freeze
that changes any metadata therefore gives a new digest; :func:`refreeze` then also gives it a
new ``version`` (unless it gets a new name) and records the protocol it replaces in
``supersedes``, so a result computed on the old file still matches the new one
(:func:`matches`): the images and pairs, and so the pair ids scores refer to, are carried over
unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from mfrbench.errors import UserError
from mfrbench.protocol.digests import protocol_id
from mfrbench.protocol.store import freeze
from mfrbench.records import Protocol

_TRAILING_NUMBER = re.compile(r"(.*?)(\d+)")


def next_version(version: str) -> str:
    """``version`` with its trailing number raised by one (``1`` -> ``2``, ``1.9`` -> ``1.10``,
    ``v3`` -> ``v4``); UserError when it does not end in a number."""
    match = _TRAILING_NUMBER.fullmatch(version)
    if match is None:
        raise UserError(
            f"protocol version {version!r} does not end in a number, so it cannot be raised "
            "by itself; pass --version"
        )
    head, number = match.groups()
    return f"{head}{int(number) + 1}"


def superseded(protocol: Protocol) -> list[dict[str, str]]:
    """The protocol's ``supersedes`` entries (``{name, version, digest}``, oldest first)."""
    entries = cast(Mapping[str, Any], protocol).get("supersedes", [])
    return [dict(entry) for entry in entries]


def cited_ids(protocol: Protocol) -> list[str]:
    """Every id a result computed on this protocol's pairs may cite: its own id first, then
    the ids of the protocols it supersedes, newest first."""
    older = [protocol_id(entry) for entry in reversed(superseded(protocol))]
    return [protocol_id(protocol), *older]


def matches(protocol: Protocol, cited: str) -> bool:
    """Whether ``cited`` (a protocol id ``name@hex`` with at least 12 hex digits, or a full
    64-digit digest, as a report's ``protocol`` block holds) names this protocol or one it
    supersedes, i.e. a result computed on the same images and pairs."""
    entries = [{"name": protocol["name"], "digest": protocol["digest"]}, *superseded(protocol)]
    name, at, prefix = cited.rpartition("@")
    if not at:
        return any(cited == entry["digest"] for entry in entries)
    if len(prefix) < 12:
        return False
    return any(name == e["name"] and e["digest"].startswith(prefix) for e in entries)


def refreeze(
    old: Protocol,
    *,
    name: str | None = None,
    version: str | None = None,
    description: str | None = None,
    citation: str | None = None,
) -> Protocol:
    """``old`` with new metadata (None keeps a field), its images, pairs, generation, summary
    and ``mfrbench_version`` carried over unchanged.

    Nothing changed: the same protocol (same bytes, same id). Otherwise the digest changes, and
    a version of one name names one digest: under the same name the version is raised
    (:func:`next_version`) unless ``version`` gives a new one, and giving the old version is a
    UserError; under a new name the version is kept unless given. The result's
    ``supersedes`` is ``old``'s plus ``old`` itself.
    """
    new_name = name or old["name"]
    new_description = old["description"] if description is None else description
    new_citation = old["citation"] if citation is None else citation
    same_meta = (new_name, new_description, new_citation) == (
        old["name"],
        old["description"],
        old["citation"],
    )
    if same_meta and version in (None, old["version"]):
        return _freeze_like(old, old["name"], old["version"], new_description, new_citation, [])
    renamed = new_name != old["name"]
    if version is None:
        version = old["version"] if renamed else next_version(old["version"])
    elif version == old["version"] and not renamed:
        raise UserError(
            f"version {version} of {old['name']} is already {protocol_id(old)}; a re-freeze "
            f"with another description or citation needs another --version "
            f"(leave it out for {_suggest(version)})"
        )
    entry = {"name": old["name"], "version": old["version"], "digest": old["digest"]}
    return _freeze_like(old, new_name, version, new_description, new_citation, [entry])


def _suggest(version: str) -> str:
    try:
        return next_version(version)
    except UserError:
        return "a raised version"


def _freeze_like(
    old: Protocol,
    name: str,
    version: str,
    description: str,
    citation: str,
    added: list[dict[str, str]],
) -> Protocol:
    """Freeze ``old``'s images and pairs again under the given metadata."""
    generation = old["generation"]
    carried = {
        "strategy": generation["strategy"],
        "params": generation["params"],
        "warnings": generation["warnings"],
        "images": old["images"],
        "pairs": old["pairs"],
        "summary": old["summary"],
    }
    return freeze(
        carried,
        name=name,
        version=version,
        description=description,
        citation=citation,
        dataset=old["dataset"]["name"],
        mfrbench_version=old["mfrbench_version"],
        supersedes=[*superseded(old), *added],
    )
