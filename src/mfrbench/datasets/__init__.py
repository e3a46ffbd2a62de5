"""Dataset adapters: each turns a folder of face images into sorted :class:`Record` objects.

``get_dataset("lfw", root=...)`` builds an adapter by its registered name (``lfw``, ``folder``,
``rmfrd``, ``mfr2``); ``synth NAME`` and ``pairs NAME`` share the same registry.
"""

from __future__ import annotations

from mfrbench.datasets.base import (
    IMAGE_EXTENSIONS,
    Dataset,
    IdentityFolderDataset,
    Record,
    available_datasets,
    get_dataset,
    register_dataset,
    scan_images,
)
from mfrbench.datasets.folder import ImageFolder
from mfrbench.datasets.lfw import LFW
from mfrbench.datasets.mfr2 import MFR2
from mfrbench.datasets.rmfrd import RMFRD

__all__ = [
    "IMAGE_EXTENSIONS",
    "LFW",
    "MFR2",
    "RMFRD",
    "Dataset",
    "IdentityFolderDataset",
    "ImageFolder",
    "Record",
    "available_datasets",
    "get_dataset",
    "register_dataset",
    "scan_images",
]
