"""`mfrbench pairs ...`: generate identity-disjoint pairs and freeze them as a protocol.

Thin wrappers over :mod:`mfrbench.pairs`; each command builds one :class:`ProtocolMeta` (and,
for real photos, one :class:`FaceSettings`) and hands the pair set to ``freeze_and_write``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from mfrbench.cli.common import split_list
from mfrbench.cli.freezing import FaceSettings, ProtocolMeta, freeze_and_write, with_faces
from mfrbench.cli.options import (
    Citation,
    Colors,
    Description,
    FaceDetector,
    FaceLandmarks,
    FaceMargin,
    FacePolicy,
    FaceWorkers,
    ImpostorRatio,
    MaxPerId,
    Name,
    ProbeMasks,
    ProtocolOut,
    Seed,
    TestFrac,
    ValFrac,
    Version,
    Workdir,
)
from mfrbench.errors import UserError
from mfrbench.faces import REAL_IMAGE_CASCADE
from mfrbench.workers import DEFAULT_WORKERS

if TYPE_CHECKING:
    from mfrbench.datasets.mfr2 import MFR2
    from mfrbench.pairs.pairset import PairSet
    from mfrbench.pairs.probe_masks import ProbeMix
    from mfrbench.records import ImageRef

pairs_app = typer.Typer(help="Generate identity-disjoint pairs and freeze them as a protocol.")


@pairs_app.command("rmfrd")
def pairs_rmfrd(
    root: Annotated[
        Path | None, typer.Option(help="RMFRD root (else $MFRBENCH_DATA/rmfrd).")
    ] = None,
    max_per_id: MaxPerId = 20,
    test_frac: TestFrac = 0.2,
    val_frac: ValFrac = 0.2,
    impostor_ratio: ImpostorRatio = 1.0,
    seed: Seed = 0,
    name: Name = None,
    version: Version = "1",
    description: Description = "",
    citation: Citation = None,
    out: ProtocolOut = None,
    workdir: Workdir = None,
    detector: FaceDetector = REAL_IMAGE_CASCADE,
    landmarks: FaceLandmarks = "dlib",
    face_policy: FacePolicy = "auto",
    margin: FaceMargin = 15,
    workers: FaceWorkers = DEFAULT_WORKERS,
) -> None:
    """The RMFRD thesis protocol: real masked x unmasked photos, identity-disjoint splits.

    Each image's face is found once (synth's detector cascade) and frozen in the protocol."""
    from mfrbench.datasets import get_dataset
    from mfrbench.pairs import images_from_records, rmfrd_pairs

    meta = ProtocolMeta(name, version, description, citation, _out(out, workdir))
    faces = FaceSettings(detector, landmarks, face_policy, margin, workers)
    ds = get_dataset("rmfrd", root=root)
    pairset = rmfrd_pairs(
        images_from_records(ds.records()),
        max_per_id=max_per_id,
        seed=seed,
        test_frac=test_frac,
        val_frac=val_frac,
        impostor_ratio=impostor_ratio,
    )
    freeze_and_write(with_faces(pairset, ds.root, "rmfrd", faces), "rmfrd", meta)


@pairs_app.command("folder")
def pairs_folder(
    root: Annotated[Path, typer.Option(help="An identity/image tree.")],
    masked_from: Annotated[
        Path | None,
        typer.Option(
            help="Parquet with src_path and real_mask (or masked) saying which show masks, "
            "and optionally mask_type (the mask's label, for breakdowns by mask type)."
        ),
    ] = None,
    pairs_file: Annotated[
        Path | None,
        typer.Option(help="Import a pair list in LFW's line format instead (e.g. pairs.txt)."),
    ] = None,
    max_per_id: MaxPerId = 20,
    test_frac: TestFrac = 0.2,
    val_frac: ValFrac = 0.2,
    impostor_ratio: ImpostorRatio = 1.0,
    seed: Seed = 0,
    name: Name = None,
    version: Version = "1",
    description: Description = "",
    citation: Citation = None,
    out: ProtocolOut = None,
    workdir: Workdir = None,
    detector: FaceDetector = REAL_IMAGE_CASCADE,
    landmarks: FaceLandmarks = "dlib",
    face_policy: FacePolicy = "auto",
    margin: FaceMargin = 15,
    workers: FaceWorkers = DEFAULT_WORKERS,
) -> None:
    """The rmfrd strategy on any identity/image tree (real masks flagged by --masked-from),
    or a listed pair file (--pairs-file).

    Each image's face is found once (synth's detector cascade) and frozen in the protocol."""
    from mfrbench.datasets import get_dataset
    from mfrbench.pairs import images_from_records, listed_pairs, rmfrd_pairs

    meta = ProtocolMeta(name, version, description, citation, _out(out, workdir))
    faces = FaceSettings(detector, landmarks, face_policy, margin, workers)
    images = images_from_records(get_dataset("folder", root=root).records())
    if masked_from is not None:
        flags = _masked_flags(masked_from)
        for im in images:
            masked, kind = flags.get(im["src_path"], (None, None))
            im["masked"] = im["masked"] if masked is None else masked
            im["mask_type"] = kind
    if pairs_file is not None:
        if not pairs_file.is_file():
            raise UserError(f"--pairs-file: file not found: {pairs_file}")
        pairset = listed_pairs(pairs_file, images)
    else:
        pairset = rmfrd_pairs(
            images,
            max_per_id=max_per_id,
            seed=seed,
            test_frac=test_frac,
            val_frac=val_frac,
            impostor_ratio=impostor_ratio,
            dataset="folder",
        )
    freeze_and_write(with_faces(pairset, Path(root), "folder", faces), "folder", meta)


def _out(out: Path | None, workdir: Path | None) -> Path | None:
    """--out, else the workdir's protocols/ when --workdir is given (else freezing decides)."""
    from mfrbench.paths import protocols_dir

    return out if out is not None or workdir is None else protocols_dir(workdir)


def _masked_flags(path: Path) -> dict[str, tuple[bool | None, str | None]]:
    """src_path -> (masked, mask_type) from a Parquet file with src_path and real_mask (or
    masked) and, optionally, mask_type (a dataset's own mask label, as MFR2's)."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise UserError(f"--masked-from: file not found: {path}")
    names = pq.read_schema(path).names
    column = "real_mask" if "real_mask" in names else "masked" if "masked" in names else None
    if "src_path" not in names or column is None:
        raise UserError(f"--masked-from: {path} needs columns src_path and real_mask (or masked)")
    wanted = ["src_path", column] + (["mask_type"] if "mask_type" in names else [])
    d = pq.read_table(path, columns=wanted).to_pydict()
    kinds = d.get("mask_type", [None] * len(d["src_path"]))
    return {
        p: (None if m is None else bool(m), k)
        for p, m, k in zip(d["src_path"], d[column], kinds, strict=True)
    }


@pairs_app.command("manifest")
def pairs_manifest(
    manifest: Annotated[Path, typer.Argument(help="A synth manifest.parquet.")],
    max_per_id: MaxPerId = 20,
    test_frac: TestFrac = 0.2,
    val_frac: ValFrac = 0.2,
    impostor_ratio: ImpostorRatio = 1.0,
    colors: Colors = None,
    probe_masks: ProbeMasks = None,
    seed: Seed = 0,
    name: Name = None,
    version: Version = "1",
    description: Description = "",
    citation: Citation = None,
    out: ProtocolOut = None,
    workdir: Workdir = None,
) -> None:
    """The rmfrd strategy on a synth output: synthetic masked variants x unmasked originals."""
    from mfrbench.pairs import rmfrd_pairs

    meta = ProtocolMeta(name, version, description, citation, _out(out, workdir))
    dataset = _manifest_dataset(manifest)
    mix = _probe_mix(probe_masks, colors)
    images = _manifest_images(manifest, colors)
    pairset = rmfrd_pairs(
        _for_probe_masks(images, mix),
        max_per_id=max_per_id,
        seed=seed,
        test_frac=test_frac,
        val_frac=val_frac,
        impostor_ratio=impostor_ratio,
        dataset=dataset,
    )
    freeze_and_write(_with_probe_masks(pairset, mix, seed), dataset, meta)


def _manifest_dataset(manifest: Path) -> str:
    from mfrbench.manifest import read_metadata

    if not manifest.is_file():
        raise UserError(f"manifest not found: {manifest}")
    return str(read_metadata(manifest).get("params", {}).get("dataset", "unknown"))


def _manifest_images(manifest: Path, colors: str | None) -> list[ImageRef]:
    from mfrbench.pairs import images_from_manifest

    return images_from_manifest(manifest, colors=split_list(colors))


def _probe_mix(spec: str | None, colors: str | None) -> ProbeMix | None:
    """The --probe-masks mix (None without it); with --colors it is a user error."""
    if spec is None:
        return None
    if colors is not None:
        raise UserError("--probe-masks draws the probes' masks itself: drop --colors")
    from mfrbench.pairs.probe_masks import parse_probe_masks

    return parse_probe_masks(spec)


def _for_probe_masks(images: list[ImageRef], mix: ProbeMix | None) -> list[ImageRef]:
    from mfrbench.pairs.probe_masks import as_mix_images

    return images if mix is None else as_mix_images(images)


def _with_probe_masks(pairset: PairSet, mix: ProbeMix | None, seed: int) -> PairSet:
    from mfrbench.pairs.probe_masks import with_probe_masks

    return pairset if mix is None else with_probe_masks(pairset, mix, seed)


@pairs_app.command("lfw")
def pairs_lfw(
    manifest: Annotated[Path, typer.Argument(help="A synth manifest.parquet of LFW.")],
    official: Annotated[
        Path | None, typer.Option(help="Reuse an official pair list (pairs.txt) instead.")
    ] = None,
    folds: Annotated[int, typer.Option(help="Identity-disjoint folds.")] = 10,
    per_fold: Annotated[int, typer.Option(help="Genuine (and impostor) pairs per fold.")] = 300,
    pair_types: Annotated[
        str | None,
        typer.Option(
            help="Comma list of masked-unmasked, masked-masked, unmasked-unmasked (default: "
            "masked-unmasked; masked-masked with --mask-assignment mlfw)."
        ),
    ] = None,
    colors: Colors = None,
    probe_masks: ProbeMasks = None,
    mask_assignment: Annotated[
        str,
        typer.Option(
            help="per-photo: one seeded colour per photo; mlfw: masked-masked genuine pairs "
            "wear two different colours, impostor pairs the same (MLFW)."
        ),
    ] = "per-photo",
    impostor_same_mask: Annotated[
        float | None,
        typer.Option(help="mlfw: share of impostor pairs wearing one colour (default 1.0)."),
    ] = None,
    seed: Seed = 0,
    name: Name = None,
    version: Version = "1",
    description: Description = "",
    citation: Citation = None,
    out: ProtocolOut = None,
    workdir: Workdir = None,
) -> None:
    """LFW-style folds (like view 2) from a synth manifest, or an official list re-pointed."""
    from mfrbench.pairs import MLFW, lfw_folds, official_lfw_pairs, resolve_mask_assignment

    meta = ProtocolMeta(name, version, description, citation, _out(out, workdir))
    default_type = "masked-masked" if mask_assignment == MLFW else "masked-unmasked"
    types = split_list(pair_types) or [default_type]
    resolve_mask_assignment(mask_assignment, impostor_same_mask, types)  # mistakes first
    mix = _probe_mix(probe_masks, colors)
    if mix is not None and mask_assignment == MLFW:
        raise UserError("--mask-assignment mlfw pairs colours itself: drop --probe-masks")
    images = _for_probe_masks(_manifest_images(manifest, None), mix)
    common: dict[str, Any] = dict(
        pair_types=types,
        seed=seed,
        colors=split_list(colors),
        mask_assignment=mask_assignment,
        impostor_same_mask=impostor_same_mask,
    )
    if official is not None:
        if not official.is_file():
            raise UserError(f"--official: file not found: {official}")
        pairset = official_lfw_pairs(official, images, **common)
    else:
        pairset = lfw_folds(images, n_folds=folds, per_fold=per_fold, **common)
    freeze_and_write(_with_probe_masks(pairset, mix, seed), _manifest_dataset(manifest), meta)


@pairs_app.command("mfr2")
def pairs_mfr2(
    root: Annotated[Path | None, typer.Option(help="MFR2 root (else $MFRBENCH_DATA/mfr2).")] = None,
    pairs_file: Annotated[
        Path | None, typer.Option(help="Pair list (default: ROOT/pairs.txt).")
    ] = None,
    name: Name = None,
    version: Version = "1",
    description: Description = "",
    citation: Citation = None,
    out: ProtocolOut = None,
    workdir: Workdir = None,
    detector: FaceDetector = REAL_IMAGE_CASCADE,
    landmarks: FaceLandmarks = "dlib",
    face_policy: FacePolicy = "auto",
    margin: FaceMargin = 15,
    workers: FaceWorkers = DEFAULT_WORKERS,
) -> None:
    """Import MFR2's pairs.txt (LFW line format, no header) as a protocol.

    Mask types come from mfr2_labels.txt beside it; each image's face is found once (synth's
    detector cascade) and frozen in the protocol."""
    from mfrbench.datasets import get_dataset
    from mfrbench.pairs import images_from_records, mfr2_pairs

    meta = ProtocolMeta(name, version, description, citation, _out(out, workdir))
    faces = FaceSettings(detector, landmarks, face_policy, margin, workers)
    ds = cast("MFR2", get_dataset("mfr2", root=root))
    listed = pairs_file or ds.pairs_file()
    if listed is None or not Path(listed).is_file():
        raise UserError(f"no pairs.txt under {ds.root}; pass --pairs-file")
    pairset = mfr2_pairs(Path(listed), images_from_records(ds.records()))
    freeze_and_write(with_faces(pairset, ds.root, "mfr2", faces), "mfr2", meta)
