"""Dataset adapters' common ground: the Record type, deterministic tree scanning, the registry.

An adapter turns a folder of face images into a stream of :class:`Record` objects, one per image,
sorted by their POSIX path relative to the dataset root, so every later stage sees the same order
whatever the file system's listing order.

File-name policy: names are kept exactly as the file system reports them. Nothing is Unicode
normalised, so a copy made on a file system that stores NFD names (macOS HFS+) gives different
``rel_path`` strings than an NFC copy of the same images; ``sha256`` still matches. Names that are
not valid UTF-8 cannot be written to manifests and raise :class:`UserError` at scan time.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

from mfrbench.errors import UserError
from mfrbench.fetch import sha256_file

#: File extensions treated as images (compared case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".gif")


@dataclass(frozen=True)
class Record:
    """One image of a dataset.

    ``rel_path`` is the POSIX path relative to the dataset root (``"Al_Gore/Al_Gore_0001.jpg"``);
    ``sha256`` is the hex digest of the file's bytes, or ``""`` when the file could not be read
    (the synth runner reports such records instead of dropping them); ``real_mask`` is True for a
    photo of a real masked face, False for a known unmasked one, None when the source does not say;
    ``mask_type`` is the dataset's own mask label when it has one (MFR2: ``surgical_blue``,
    ``KN95``, ``no-mask``...).
    """

    dataset: str
    identity: str
    rel_path: str
    sha256: str
    real_mask: bool | None = None
    mask_type: str | None = None


def is_image_name(name: str) -> bool:
    """True for a visible file name with one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_dir(path: str) -> list[os.DirEntry[str]]:
    """The entries of one folder, in whatever order the file system gives (sorted later)."""
    with os.scandir(path) as it:
        return list(it)


def _check_name(rel_path: str, root: Path) -> None:
    """Refuse names that cannot be encoded as UTF-8 (undecodable bytes surface as surrogates)."""
    try:
        rel_path.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(
            f"file name is not valid UTF-8: {rel_path.encode('utf-8', 'surrogateescape')!r} "
            f"under {root}; rename it"
        ) from None


def scan_images(root: Path, subdir: str = "") -> list[str]:
    """Sorted POSIX paths (relative to ``root``) of images at least one folder below ``subdir``.

    Hidden files and folders (leading ``.``) and non-image files are skipped; files lying directly
    in ``root / subdir`` are not returned (LFW keeps ``pairs.txt`` there). Symbolic links are
    followed, except links back to a folder on the current path (a loop). A broken link with an
    image name is returned: hashing it fails later and the record reports it.
    """
    base = root / subdir if subdir else root
    prefix = f"{subdir.strip('/')}/" if subdir else ""
    found: list[str] = []

    def walk(folder: str, rel: str, ancestors: frozenset[tuple[int, int]]) -> None:
        for entry in list_dir(folder):
            if entry.name.startswith("."):
                continue
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                st = os.stat(entry.path)
                key = (st.st_dev, st.st_ino)
                if key not in ancestors:
                    walk(entry.path, child_rel, ancestors | {key})
            elif rel and is_image_name(entry.name):
                _check_name(child_rel, root)
                found.append(prefix + child_rel)

    st = os.stat(base)
    walk(str(base), "", frozenset({(st.st_dev, st.st_ino)}))
    found.sort()
    return found


def hash_or_empty(path: Path) -> str:
    """SHA-256 of ``path``, or ``""`` when unreadable (permission, broken link, I/O error)."""
    try:
        return sha256_file(path)
    except OSError:
        return ""


def existing_root(root: str | Path) -> Path:
    """``root`` as a Path after checking it is an existing folder (else :class:`UserError`)."""
    path = Path(root).expanduser()
    if not path.exists():
        raise UserError(f"root does not exist: {path}")
    if not path.is_dir():
        raise UserError(f"root is not a directory: {path}")
    return path


def data_root_for(name: str) -> Path | None:
    """``$MFRBENCH_DATA/<name>`` when that environment variable is set and the folder exists."""
    env = os.environ.get("MFRBENCH_DATA")
    if env:
        candidate = Path(env).expanduser() / name
        if candidate.is_dir():
            return candidate
    return None


class Dataset:
    """Base class of dataset adapters: a ``name``, a ``root`` folder and its records.

    Subclasses implement :meth:`records`; :meth:`path` maps a record back to its file.
    """

    name: ClassVar[str] = ""

    def __init__(self, root: Path) -> None:
        self.root = root

    def records(self) -> Iterator[Record]:
        """Every image as a :class:`Record`, sorted by ``rel_path``."""
        raise NotImplementedError

    def path(self, rec: Record) -> Path:
        """Absolute-or-root-relative path of a record's file (``root / rel_path``)."""
        return self.root.joinpath(*rec.rel_path.split("/"))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r})"


class IdentityFolderDataset(Dataset):
    """A tree of ``identity/.../image`` files: the identity is the first folder level.

    Deeper nesting is allowed (``rel_path`` keeps the full path). Files directly at the root are
    not records.
    """

    #: Shown when the root holds no identity folder, e.g. ``"Name/Name_0001.jpg"``.
    layout: ClassVar[str] = "identity/image.jpg"

    def __init__(self, root: str | Path) -> None:
        path = existing_root(root)
        if not any(e.name[0] != "." and e.is_dir() for e in list_dir(str(path))):
            raise UserError(f"no identity folders in {path}: expected a {self.layout} layout")
        super().__init__(path)

    def records(self) -> Iterator[Record]:
        for rel in scan_images(self.root):
            yield Record(
                dataset=self.name,
                identity=rel.split("/", 1)[0],
                rel_path=rel,
                sha256=hash_or_empty(self.root.joinpath(*rel.split("/"))),
                real_mask=None,
            )


# ----------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Callable[..., Dataset]] = {}
F = TypeVar("F", bound=Callable[..., Dataset])


def register_dataset(name: str) -> Callable[[F], F]:
    """Decorator registering a dataset class or factory under ``name`` (for ``synth NAME``)."""

    def decorator(factory: F) -> F:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorator


def available_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(_REGISTRY)


def get_dataset(name: str, root: str | Path | None = None, **kwargs: object) -> Dataset:
    """Build the dataset registered as ``name`` with ``root`` and adapter-specific options.

    Unknown names and options the adapter does not take raise :class:`UserError`.
    """
    factory = _REGISTRY.get(name)
    if factory is None:
        raise UserError(f"unknown dataset {name!r}; available: {', '.join(available_datasets())}")
    try:
        inspect.signature(factory).bind(root, **kwargs)
    except TypeError:
        params = inspect.signature(factory).parameters
        bad = sorted(k for k in kwargs if k not in params)
        raise UserError(
            f"dataset {name!r} does not accept option(s): {', '.join(bad) or '?'}"
        ) from None
    return factory(root, **kwargs)
