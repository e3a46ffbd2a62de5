"""RMFRD (Real-World Masked Face Recognition Dataset, Wuhan University).

Layout: ``AFDB_face_dataset/<id>/*.jpg`` (unmasked, ``real_mask=False``) and
``AFDB_masked_face_dataset/<id>/*.jpg`` (real masks, ``real_mask=True``); the same ``<id>`` names
one person in both. Some copies wrap both folders in one more level
(``self-built-masked-face-recognition-dataset/``); that level is accepted and becomes the root,
so ``rel_path`` (which starts with the ``AFDB_*`` folder) is the same for either copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mfrbench.datasets.base import (
    Dataset,
    Record,
    data_root_for,
    existing_root,
    hash_or_empty,
    list_dir,
    register_dataset,
    scan_images,
)
from mfrbench.errors import UserError

UNMASKED_DIR = "AFDB_face_dataset"
MASKED_DIR = "AFDB_masked_face_dataset"
_SUBDIRS = {UNMASKED_DIR: False, MASKED_DIR: True}


def _has_subdirs(folder: Path) -> bool:
    return any((folder / d).is_dir() for d in _SUBDIRS)


def _find_root(root: Path) -> Path:
    """``root`` itself, or its single wrapping child folder, holding the ``AFDB_*`` folders."""
    if _has_subdirs(root):
        return root
    children = sorted(
        e.name for e in list_dir(str(root)) if not e.name.startswith(".") and e.is_dir()
    )
    for child in children:
        if _has_subdirs(root / child):
            return root / child
    raise UserError(
        f"RMFRD not found in {root}: expected folder {UNMASKED_DIR}/ and/or {MASKED_DIR}/ "
        "(directly or one level down)"
    )


@register_dataset("rmfrd")
class RMFRD(Dataset):
    """RMFRD adapter: ``identity`` is the ``<id>`` folder, ``real_mask`` follows the top folder."""

    name = "rmfrd"

    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            root = data_root_for("rmfrd")
            if root is None:
                raise UserError("RMFRD not found: pass --root DIR or set MFRBENCH_DATA")
        super().__init__(_find_root(existing_root(root)))

    def records(self) -> Iterator[Record]:
        rels: list[tuple[str, bool]] = []
        for sub, masked in _SUBDIRS.items():
            if (self.root / sub).is_dir():
                rels.extend((rel, masked) for rel in scan_images(self.root, sub))
        rels.sort()
        for rel, masked in rels:
            yield Record(
                dataset=self.name,
                identity=rel.split("/", 2)[1],
                rel_path=rel,
                sha256=hash_or_empty(self.root.joinpath(*rel.split("/"))),
                real_mask=masked,
            )
