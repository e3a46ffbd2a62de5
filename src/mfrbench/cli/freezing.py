"""From a generated pair set to a protocol file: the steps every ``pairs`` command shares.

:class:`ProtocolMeta` carries the protocol-metadata options (--name, --version, --description,
--citation, --out) as one value, built once per command; :class:`FaceSettings` carries the
options that find real images' faces (--detector, --landmarks, --face-policy, --margin,
--workers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfrbench.cli.common import console, out_console, print_rows, warn
from mfrbench.errors import UserError

if TYPE_CHECKING:
    from mfrbench.pairs import PairSet


@dataclass(frozen=True)
class ProtocolMeta:
    """What a protocol is called and where it goes; ``name`` None means :func:`default_name`."""

    name: str | None
    version: str
    description: str
    citation: str | None
    out: Path | None


@dataclass(frozen=True)
class FaceSettings:
    """How each real image's face is found once before it is frozen in the protocol."""

    detector: str
    landmarks: str
    face_policy: str
    margin: int
    workers: int


#: The strategy of ``pairs lfw --official``: its default name comes from the list it re-points.
_OFFICIAL = "official-lfw"
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def default_name(dataset: str, strategy: str, params: Mapping[str, Any]) -> str:
    """The protocol name when --name is not given: the dataset, then what the strategy adds.

    ``rmfrd`` (not ``rmfrd-rmfrd``) and ``mfr2``; ``lfw-folds`` (the strategy already names
    the dataset); ``lfw-view2`` for LFW's official ``pairs.txt`` (``lfw-<list>`` for another
    official list); otherwise ``<dataset>-<strategy>``, e.g. ``folder-rmfrd``, ``lfw-rmfrd``.
    """
    if strategy == dataset:
        return dataset
    if strategy == _OFFICIAL:
        listed = Path(str(params.get("pairs_file", "pairs.txt")))
        tail = "view2" if listed.name == "pairs.txt" else listed.stem
        return f"{dataset}-{_NOT_IN_NAME.sub('-', tail).strip('-') or 'official'}"
    if strategy.startswith(f"{dataset}-"):
        return strategy
    return f"{dataset}-{strategy}"


def protocol_path(out: Path | None, name: str) -> Path:
    """Where a protocol goes: ``--out`` is a folder (as for every command) holding
    ``<name>.json``, unless it ends in ``.json`` and so names the file; without ``--out``,
    ``paths.protocols_dir()`` (never a checkout's shipped ``protocols/``)."""
    from mfrbench.paths import protocols_dir

    if out is not None and out.suffix.lower() == ".json":
        return out
    return (out or protocols_dir()) / f"{name}.json"


def read_citation(value: str | None) -> str:
    """The ``--citation`` text: BibTeX as given, ``@FILE`` read from the file, or ""."""
    if not value:
        return ""
    if value.startswith("@") and "{" not in value:  # @FILE; BibTeX itself always has braces
        path = Path(value[1:])
        if not path.is_file():
            raise UserError(f"--citation: file not found: {path}")
        return path.read_text(encoding="utf-8").strip() + "\n"
    return value


def with_faces(pairset: PairSet, root: Path, dataset: str, faces: FaceSettings) -> PairSet:
    """The pair set with every real image's face found once and frozen (``faces.py``)."""
    from mfrbench.faces import FaceConfig, detect_faces, policy_for
    from mfrbench.synth import LANDMARK_BACKENDS
    from mfrbench.vision.detect import FACE_POLICIES, cascade_names

    cascade_names(faces.detector)  # validates the names
    if faces.landmarks not in LANDMARK_BACKENDS:
        raise UserError(f"unknown --landmarks {faces.landmarks!r}; choose one of: dlib, mediapipe")
    policy = policy_for(dataset, faces.face_policy)
    if policy not in FACE_POLICIES:
        raise UserError(f"unknown --face-policy {faces.face_policy!r}")
    if faces.margin < 0:
        raise UserError(f"--margin must be >= 0, got {faces.margin}")
    config = FaceConfig(
        detector=faces.detector, landmarks=faces.landmarks, face_policy=policy, margin=faces.margin
    )
    images, counts = detect_faces(pairset.images, root, config, workers=faces.workers)
    pairset.images = images
    pairset.params = {**pairset.params, **config.params()}
    found = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    console.print(f"faces of {sum(counts.values())} real images: {found}", highlight=False)
    return pairset


def freeze_and_write(pairset: PairSet, dataset: str, meta: ProtocolMeta) -> None:
    """Freeze ``pairset`` as a protocol of ``dataset``, write it, print its pair counts."""
    from mfrbench.pairs import summary_table
    from mfrbench.protocol import freeze, protocol_id, write_protocol

    name = meta.name or default_name(dataset, pairset.strategy, pairset.params)
    protocol = freeze(
        pairset,
        name=name,
        version=meta.version,
        description=meta.description,
        citation=read_citation(meta.citation),
        dataset=dataset,
    )
    path = protocol_path(meta.out, name)
    write_protocol(protocol, path)
    print_rows(summary_table(pairset), title=f"{name}: pairs")
    for warning in pairset.warnings:
        warn(warning)
    out_console.print(f"protocol {protocol_id(protocol)} written to {path}")
