"""MFR2: real masked faces of public figures, ``Name/Name_0001.png`` plus an optional ``pairs.txt``.

Not downloaded automatically: pass ``root`` or put the folder at ``$MFRBENCH_DATA/mfr2``.
Whether a given photo shows a mask is not recorded per file, so ``real_mask`` is None.
"""

from __future__ import annotations

from pathlib import Path

from mfrbench.datasets.base import IdentityFolderDataset, data_root_for, register_dataset
from mfrbench.errors import UserError


@register_dataset("mfr2")
class MFR2(IdentityFolderDataset):
    """MFR2 adapter: one folder per identity."""

    name = "mfr2"
    layout = "Name/Name_0001.png"

    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            root = data_root_for("mfr2")
            if root is None:
                raise UserError("MFR2 not found: pass --root DIR or set MFRBENCH_DATA")
        super().__init__(root)

    def pairs_file(self, name: str = "pairs.txt") -> Path | None:
        """The pair list shipped at the root, or None when this copy has none."""
        path = self.root / name
        return path if path.is_file() else None
