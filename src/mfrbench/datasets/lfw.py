"""Labeled Faces in the Wild (deep-funneled): ``Name/Name_0001.jpg``, 5749 identities, 13233 images.

The root comes from the ``root`` argument, else ``$MFRBENCH_DATA/lfw``, else an earlier download
in the cache, else (with ``download=True``) the official archive, fetched with its checksum and
extracted into the cache. Cite Huang et al., 2007, in anything published with it.
"""

from __future__ import annotations

import posixpath
import urllib.parse
from pathlib import Path

from mfrbench.datasets.base import (
    IdentityFolderDataset,
    data_root_for,
    existing_root,
    list_dir,
    register_dataset,
)
from mfrbench.errors import UserError
from mfrbench.fetch import cache_dir as default_cache_dir
from mfrbench.fetch import extract_tgz, fetch, parse_checksum

#: The official deep-funneled archive (University of Massachusetts, Amherst).
DEFAULT_URL = "http://vis-www.cs.umass.edu/lfw/lfw-deepfunneled.tgz"
#: Its published md5 (the site lists only md5; the same value is in torchvision/datasets/lfw.py).
DEFAULT_CHECKSUM = "md5:68331da3eb755a505a502b5aacb3c201"

#: Top folders of the official LFW archives; a root holding only one of them is unwrapped.
_ARCHIVE_TOP_FOLDERS = ("lfw-deepfunneled", "lfw", "lfw_funneled", "lfw-funneled")


def _visible_children(folder: Path) -> list[str]:
    return sorted(e.name for e in list_dir(str(folder)) if not e.name.startswith("."))


def _unwrap(root: Path) -> Path:
    """``root/<top>`` when ``root`` holds nothing but one official archive top folder."""
    children = _visible_children(root)
    if len(children) == 1 and children[0] in _ARCHIVE_TOP_FOLDERS and (root / children[0]).is_dir():
        return root / children[0]
    return root


def _cached_paths(cache: Path, url: str, checksum: str) -> tuple[Path, Path]:
    """(archive path, extraction folder) in the cache; the folder name carries the checksum."""
    algorithm, hexdigest = parse_checksum(checksum)
    filename = posixpath.basename(urllib.parse.urlparse(url).path) or "lfw.tgz"
    stem = filename.removesuffix(".gz").removesuffix(".tgz").removesuffix(".tar")
    folder = cache / "lfw"
    return folder / filename, folder / f"{stem}-{algorithm}-{hexdigest[:16]}"


@register_dataset("lfw")
class LFW(IdentityFolderDataset):
    """LFW adapter; ``download=True`` fetches the official archive when no local copy is found."""

    name = "lfw"
    layout = "Name/Name_0001.jpg"

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        download: bool = False,
        cache_dir: str | Path | None = None,
        url: str = DEFAULT_URL,
        checksum: str = DEFAULT_CHECKSUM,
        progress: bool = False,
    ) -> None:
        super().__init__(self._resolve_root(root, download, cache_dir, url, checksum, progress))

    @staticmethod
    def _resolve_root(
        root: str | Path | None,
        download: bool,
        cache_dir: str | Path | None,
        url: str,
        checksum: str,
        progress: bool,
    ) -> Path:
        if root is not None:
            return _unwrap(existing_root(root))
        local = data_root_for("lfw")
        if local is not None:
            return _unwrap(local)
        archive, extracted = _cached_paths(default_cache_dir(cache_dir), url, checksum)
        if not extracted.is_dir():
            if not download:
                raise UserError(
                    "LFW not found: pass --root DIR, set MFRBENCH_DATA, or use --download"
                )
            fetch(url, archive, checksum=checksum, progress=progress)
            extract_tgz(archive, extracted)
        return _unwrap(extracted)

    def pairs_file(self, name: str = "pairs.txt") -> Path | None:
        """An official protocol file at the root (``pairs.txt``, ``pairsDevTrain.txt``) or None."""
        path = self.root / name
        return path if path.is_file() else None
