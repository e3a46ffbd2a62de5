"""Any ``identity/image`` tree: the identity is the first folder level below the root."""

from __future__ import annotations

from pathlib import Path

from mfrbench.datasets.base import IdentityFolderDataset, register_dataset
from mfrbench.errors import UserError


@register_dataset("folder")
class ImageFolder(IdentityFolderDataset):
    """A generic dataset: ``root/<identity>/.../<image>``; deeper folders stay in ``rel_path``."""

    name = "folder"
    layout = "identity/image.jpg"

    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            raise UserError("dataset 'folder' needs a root: pass --root DIR")
        super().__init__(root)
