"""Checking a copy of the data against a protocol, and opening a protocol for use.

:func:`verify` hashes every distinct source file under a data root and reports what is missing
or changed (with a hint when it looks like another LFW variant); :func:`open_protocol` is the
load-and-verify step evaluation and training both start from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mfrbench.errors import UserError
from mfrbench.protocol.digests import protocol_id
from mfrbench.protocol.sources import check_root, check_workers, hash_or_none, source_file
from mfrbench.protocol.store import load_protocol
from mfrbench.records import ImageRef, Pair, Protocol
from mfrbench.workers import thread_map


@dataclass
class VerifyReport:
    """Result of checking a data root against a protocol's source hashes.

    ``missing``: source paths that are absent or unreadable; ``changed``: (path, expected
    sha256, actual sha256) for files whose bytes differ. Both sorted by path.
    """

    protocol_id: str
    checked: int
    missing: list[str] = field(default_factory=list)
    changed: list[tuple[str, str, str]] = field(default_factory=list)
    #: what the mismatch looks like and what to do (e.g. another LFW variant), or ""
    hint: str = ""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.changed

    def message(self, limit: int = 3) -> str:
        """One line: all good, or how many files are missing/changed with the first few named."""
        if self.ok:
            return f"{self.protocol_id}: all {self.checked} source images match"
        parts = []
        for label, paths in (
            ("missing", self.missing),
            ("changed", [c[0] for c in self.changed]),
        ):
            if paths:
                more = f", +{len(paths) - limit} more" if len(paths) > limit else ""
                parts.append(f"{len(paths)} {label} ({', '.join(paths[:limit])}{more})")
        text = (
            f"{self.protocol_id}: {'; '.join(parts)} of {self.checked} source images "
            "do not match the protocol"
        )
        return f"{text}; {self.hint}" if self.hint else text

    def raise_for_mismatch(self) -> None:
        """UserError with :meth:`message` when anything is missing or changed (for evaluators)."""
        if not self.ok:
            raise UserError(self.message())


def _sources(protocol: Protocol) -> list[tuple[str, str]]:
    """Distinct (src_path, src_sha256), sorted by path."""
    return sorted({(img["src_path"], img["src_sha256"]) for img in protocol["images"]})


def verify(protocol: Protocol, root: Path, *, workers: int = 1) -> VerifyReport:
    """Hash every distinct source file under ``root`` and compare with the protocol.

    A file that does not exist or cannot be read is missing; one whose sha256 differs is
    changed. Extra files under ``root`` are ignored. Threads hash in parallel (hashlib releases
    the GIL); the report does not depend on ``workers``.
    """
    root = check_root(root)
    sources = _sources(protocol)
    paths = [source_file(root, p) for p, _ in sources]
    actual = list(thread_map(hash_or_none, paths, check_workers(workers)))
    report = VerifyReport(protocol_id(protocol), len(sources))
    for (path, expected), sha in zip(sources, actual, strict=True):
        if sha is None:
            report.missing.append(path)
        elif sha != expected:
            report.changed.append((path, expected, sha))
    report.hint = _variant_hint(protocol, report)
    return report


@dataclass(frozen=True)
class OpenedProtocol:
    """A protocol file loaded (digest checked) and its sources verified under ``root``: what
    evaluation and training both start from, with the image index built once."""

    path: Path
    protocol: Protocol
    id: str
    root: Path
    images: Mapping[str, ImageRef]

    @property
    def pairs(self) -> list[Pair]:
        return self.protocol["pairs"]


def open_protocol(path: str | Path, root: str | Path, *, workers: int = 2) -> OpenedProtocol:
    """Load ``path`` and verify every source image under ``root``; one-line UserError when a
    file is missing or changed, naming the command that lists them all."""
    path, root = Path(path), Path(root).expanduser()
    protocol = load_protocol(path)
    rep = verify(protocol, root, workers=max(2, workers))
    if not rep.ok:
        n = len(rep.missing) + len(rep.changed)
        first = (rep.missing + [c[0] for c in rep.changed])[0]
        raise UserError(
            f"{n} files changed/missing under {root} (e.g. {first}); "
            f"run mfrbench protocol verify {path} --root {root}"
        )
    images = {img["id"]: img for img in protocol["images"]}
    return OpenedProtocol(path, protocol, protocol_id(protocol), root, images)


def _variant_hint(protocol: Protocol, report: VerifyReport) -> str:
    """For LFW: nearly every file present under its name but with other bytes means another
    LFW variant (original, funneled, deep-funneled) than the protocol's; say how to rebuild."""
    if protocol["dataset"]["name"] != "lfw" or not report.checked:
        return ""
    present = report.checked - len(report.missing)
    if present < 0.9 * report.checked or len(report.changed) < 0.9 * present:
        return ""
    return (
        "the files are there under LFW's names but with other bytes: this looks like another "
        "LFW variant (original, funneled, deep-funneled) than the protocol's; rebuild the "
        "protocols over your copy with `bash protocols/rebuild.sh ROOT`"
    )
