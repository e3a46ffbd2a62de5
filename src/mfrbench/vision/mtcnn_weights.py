"""Where MTCNN's weights are: found without importing torch or facenet-pytorch.

synth's driver checks (and reports a missing file) before it starts workers; importing torch for
that would cost the driver about a second and ~200 MB before the first worker even starts.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from mfrbench.errors import UserError

__all__ = ["FIX", "WEIGHTS_ENV", "WEIGHT_FILES", "find_weights_dir"]

WEIGHTS_ENV = "MFRBENCH_MTCNN_WEIGHTS"
WEIGHT_FILES = ("pnet.pt", "rnet.pt", "onet.pt")
FIX = f"pip install --no-deps facenet-pytorch==2.6.0 or set {WEIGHTS_ENV}=DIR"


def _has_weights(folder: Path) -> bool:
    return all((folder / name).is_file() for name in WEIGHT_FILES)


def _facenet_data_dirs() -> list[Path]:
    """Candidate ``facenet_pytorch/data`` folders, found without importing the package.

    Importing facenet_pytorch would import torchvision; ``find_spec`` only locates it.
    """
    try:
        spec = importlib.util.find_spec("facenet_pytorch")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(loc) / "data" for loc in spec.submodule_search_locations]


def find_weights_dir(weights_dir: str | Path | None = None) -> Path:
    """Folder holding MTCNN's ``pnet.pt``, ``rnet.pt`` and ``onet.pt``.

    Looks at, in order: ``weights_dir``, the ``MFRBENCH_MTCNN_WEIGHTS`` environment variable,
    the ``data/`` folder of an installed facenet-pytorch. An explicit folder (argument or
    variable) that lacks the files is an error, not a reason to look elsewhere.

    Raises:
        UserError: no folder with all three files was found.
    """
    need = ", ".join(WEIGHT_FILES)
    explicit: list[tuple[str, str | Path]] = []
    if weights_dir is not None:
        explicit.append(("weights_dir", weights_dir))
    elif os.environ.get(WEIGHTS_ENV):
        explicit.append((WEIGHTS_ENV, os.environ[WEIGHTS_ENV]))
    for origin, value in explicit:
        folder = Path(value).expanduser()
        if _has_weights(folder):
            return folder
        raise UserError(f"MTCNN weights ({need}) not found in {origin}={folder}; fix: {FIX}")
    for folder in _facenet_data_dirs():
        if _has_weights(folder):
            return folder
    raise UserError(f"MTCNN weights ({need}) not found; fix: {FIX}")
