"""MFR2: real masked faces of public figures, ``Name/Name_0001.png`` plus ``pairs.txt`` and
``mfr2_labels.txt``.

Not downloaded automatically: pass ``root`` or put the folder at ``$MFRBENCH_DATA/mfr2``.
``mfr2_labels.txt`` (beside ``pairs.txt``) has one line per image, ``AdrianDunbar, 1,
surgical_blue``: identity, image number (1-based, as in ``pairs.txt``), mask type. MFR2's types
are :data:`MFR2_MASK_TYPES`; ``no-mask`` marks an unmasked photo. With the file present every
labelled record carries ``mask_type`` and ``real_mask`` (``mask_type != "no-mask"``); images the
file does not list keep both unknown (None). Without it, both are None for every image.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from mfrbench.datasets.base import (
    IdentityFolderDataset,
    Record,
    data_root_for,
    register_dataset,
)
from mfrbench.errors import UserError

LABELS_FILE = "mfr2_labels.txt"
NO_MASK = "no-mask"
#: The mask types MFR2 labels (any other name matching the label pattern is also accepted).
MFR2_MASK_TYPES = (
    NO_MASK,
    "surgical_blue",
    "surgical_black",
    "surgical_white",
    "surgical_green",
    "cloth_black",
    "cloth_white",
    "cloth_red",
    "cloth_purple",
    "cloth_textured",
    "KN95",
    "N95",
    "N99",
)
_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_STEM = re.compile(r"(?P<name>.+)_(?P<num>\d{4})")


def parse_labels(path: Path) -> dict[tuple[str, int], str]:
    """``(identity, image number) -> mask type`` from an MFR2 label file.

    Blank lines are skipped; a line that is not ``identity, number, type``, a number below 1,
    a type with spaces or odd characters, or an image labelled twice differently raises
    UserError naming the file and line.
    """
    labels: dict[tuple[str, int], str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        where = f"{Path(path).name}:{lineno}"
        if len(parts) != 3 or not parts[0]:
            raise UserError(f"{where}: expected 'identity, number, mask_type', got {line!r}")
        name, num, kind = parts
        if not num.isdigit() or int(num) < 1:
            raise UserError(f"{where}: image number {num!r} is not a positive integer")
        if not _TYPE.fullmatch(kind):
            raise UserError(f"{where}: mask type {kind!r} is not a plain name")
        key = (name, int(num))
        if labels.setdefault(key, kind) != kind:
            raise UserError(f"{where}: {name} {num} labelled {labels[key]!r} and {kind!r}")
    return labels


def label_key(rel_path: str) -> tuple[str, int] | None:
    """``Name/Name_0003.png`` -> ``("Name", 3)`` (None for files not named that way)."""
    identity, _, name = rel_path.partition("/")
    match = _STEM.fullmatch(name.rsplit(".", 1)[0])
    if match is None or match["name"] != identity:
        return None
    return identity, int(match["num"])


@register_dataset("mfr2")
class MFR2(IdentityFolderDataset):
    """MFR2 adapter: one folder per identity; mask labels from ``mfr2_labels.txt``."""

    name = "mfr2"
    layout = "Name/Name_0001.png"

    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            root = data_root_for("mfr2")
            if root is None:
                raise UserError("MFR2 not found: pass --root DIR or set MFRBENCH_DATA")
        super().__init__(root)
        path = self.root / LABELS_FILE
        self.labels = parse_labels(path) if path.is_file() else {}

    def records(self) -> Iterator[Record]:
        for rec in super().records():
            key = label_key(rec.rel_path)
            kind = self.labels.get(key) if key is not None else None
            if kind is None:
                yield rec
                continue
            yield Record(
                dataset=rec.dataset,
                identity=rec.identity,
                rel_path=rec.rel_path,
                sha256=rec.sha256,
                real_mask=kind != NO_MASK,
                mask_type=kind,
            )

    def pairs_file(self, name: str = "pairs.txt") -> Path | None:
        """The pair list shipped at the root, or None when this copy has none."""
        path = self.root / name
        return path if path.is_file() else None
