"""Labeled Faces in the Wild: ``Name/Name_0001.jpg``, 5749 identities, 13233 images.

The root comes from the ``root`` argument, else ``$MFRBENCH_DATA/lfw``, else an earlier download
in the cache, else (with ``download=True``) an archive of :data:`VARIANTS` fetched with its
sha256 and extracted into the cache, with the official view-2 ``pairs.txt`` beside the images.
LFW's original host no longer serves it; the archives come from the figshare mirror that
scikit-learn and TensorFlow Datasets use (checksums as scikit-learn's ``_lfw.py`` lists them).

Variants: ``original`` (the default: the photos as published, what the LFW protocol and every
detect-then-align pipeline start from; 180,566,744 bytes) and ``funneled`` (Huang et al.'s
congealing-aligned copy). The deep-funneled copy the shipped protocols are built on is not on
that mirror: get it from a copy of the LFW site (``lfw-deepfunneled.tgz``, md5
68331da3eb755a505a502b5aacb3c201) and pass ``--root``, or rebuild the protocols over the
variant you have (``protocols/rebuild.sh ROOT``). Cite Huang et al., 2007, in anything
published with it.
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

_FIGSHARE = "https://ndownloader.figshare.com/files/"
#: variant -> (archive URL, checksum, archive file name)
VARIANTS = {
    "original": (
        _FIGSHARE + "5976018",
        "sha256:055f7d9c632d7370e6fb4afc7468d40f970c34a80d4c6f50ffec63f5a8d536c0",
        "lfw.tgz",
    ),
    "funneled": (
        _FIGSHARE + "5976015",
        "sha256:b47c8422c8cded889dc5a13418c4bc2abbda121092b3533a83306f90d900100a",
        "lfw-funneled.tgz",
    ),
}
DEFAULT_VARIANT = "original"
DEFAULT_URL, DEFAULT_CHECKSUM, _ = VARIANTS[DEFAULT_VARIANT]
#: The official view-2 list (10 folds x 300 + 300), the file the shipped protocols record.
PAIRS_URL = _FIGSHARE + "5976006"
PAIRS_CHECKSUM = "sha256:ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592"

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


def _cached_paths(
    cache: Path, url: str, checksum: str, filename: str | None = None
) -> tuple[Path, Path]:
    """(archive path, extraction folder) in the cache; the folder name carries the checksum."""
    algorithm, hexdigest = parse_checksum(checksum)
    filename = filename or posixpath.basename(urllib.parse.urlparse(url).path) or "lfw.tgz"
    stem = filename.removesuffix(".gz").removesuffix(".tgz").removesuffix(".tar")
    folder = cache / "lfw"
    return folder / filename, folder / f"{stem}-{algorithm}-{hexdigest[:16]}"


@register_dataset("lfw")
class LFW(IdentityFolderDataset):
    """LFW adapter; ``download=True`` fetches ``variant`` (module doc) when no local copy is
    found; ``url``/``checksum`` point it at a mirror of any LFW archive instead."""

    name = "lfw"
    layout = "Name/Name_0001.jpg"

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        download: bool = False,
        cache_dir: str | Path | None = None,
        variant: str = DEFAULT_VARIANT,
        url: str | None = None,
        checksum: str | None = None,
        pairs_url: str = PAIRS_URL,
        progress: bool = False,
    ) -> None:
        if variant not in VARIANTS:
            raise UserError(
                f"unknown LFW variant {variant!r}; choose one of: {', '.join(VARIANTS)}"
            )
        v_url, v_checksum, v_name = VARIANTS[variant]
        if url is not None and checksum is None:
            raise UserError("an LFW --url needs its checksum (mfrbench fetches nothing unverified)")
        source = (url or v_url, checksum or v_checksum, None if url else v_name)
        super().__init__(self._resolve_root(root, download, cache_dir, source, pairs_url, progress))

    @staticmethod
    def _resolve_root(
        root: str | Path | None,
        download: bool,
        cache_dir: str | Path | None,
        source: tuple[str, str, str | None],
        pairs_url: str,
        progress: bool,
    ) -> Path:
        if root is not None:
            return _unwrap(existing_root(root))
        local = data_root_for("lfw")
        if local is not None:
            return _unwrap(local)
        url, checksum, filename = source
        archive, extracted = _cached_paths(default_cache_dir(cache_dir), url, checksum, filename)
        if not extracted.is_dir():
            if not download:
                raise UserError(
                    "LFW not found: pass --root DIR, set MFRBENCH_DATA, or use --download"
                )
            fetch(url, archive, checksum=checksum, progress=progress)
            extract_tgz(archive, extracted)
        images = _unwrap(extracted)
        if download and not (images / "pairs.txt").is_file():
            fetch(pairs_url, images / "pairs.txt", checksum=PAIRS_CHECKSUM, progress=progress)
        return images

    def pairs_file(self, name: str = "pairs.txt") -> Path | None:
        """An official protocol file at the root (``pairs.txt``, ``pairsDevTrain.txt``) or None."""
        path = self.root / name
        return path if path.is_file() else None
