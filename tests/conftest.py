"""Shared fixtures: where the real data lives, and skips with a clear reason when it does not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    env = os.environ.get("MFRBENCH_DATA")
    return Path(env) if env else (REPO.parent / "shared" / "data")


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (set MFRBENCH_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="session")
def data_root() -> Path:
    return _require(_data_root(), "shared data folder")


@pytest.fixture(scope="session")
def lfw_root(data_root: Path) -> Path:
    return _require(data_root / "lfw", "full LFW")


@pytest.fixture(scope="session")
def lfw_mini(data_root: Path) -> Path:
    return _require(data_root / "lfw-mini", "lfw-mini")


@pytest.fixture(scope="session")
def masked_real(data_root: Path) -> Path:
    return _require(data_root / "masked-real", "masked-real photos")


@pytest.fixture(scope="session")
def golden_dir(data_root: Path) -> Path:
    return _require(data_root.parent / "golden", "golden reference outputs")


@pytest.fixture(scope="session")
def mediapipe_model(data_root: Path) -> Path:
    env = os.environ.get("MFRBENCH_MEDIAPIPE_MODEL")
    path = Path(env) if env else data_root.parent / "models" / "face_landmarker.task"
    return _require(path, "MediaPipe face_landmarker.task")
