"""`mfrbench pairs ...` and `mfrbench protocol ...`: thin wrappers over pairs.py and protocol.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.table import Table

from mfrbench.errors import UserError
from mfrbench.faces import REAL_IMAGE_CASCADE
from mfrbench.workers import DEFAULT_WORKERS

if TYPE_CHECKING:
    from mfrbench.datasets.mfr2 import MFR2

pairs_app = typer.Typer(help="Generate identity-disjoint pairs and freeze them as a protocol.")
protocol_app = typer.Typer(help="Freeze, verify, show and render protocol files.")
console = Console(stderr=True)
out_console = Console()

# ------------------------------------------------------------------ shared options

Name = Annotated[str | None, typer.Option(help="Protocol name (default: <dataset>-<strategy>).")]
Version = Annotated[str, typer.Option("--version", help="Protocol content version.")]
Description = Annotated[str, typer.Option(help="One-paragraph description.")]
Citation = Annotated[
    str | None, typer.Option(help="BibTeX to cite, or @FILE to read it from a file.")
]
Out = Annotated[
    Path | None,
    typer.Option(
        help="Folder for the protocol file <name>.json (default: the current folder); a path "
        "ending in .json names the file itself."
    ),
]


def protocol_path(out: Path | None, name: str) -> Path:
    """Where a protocol goes: ``--out`` is a folder (as for every command) holding
    ``<name>.json``, unless it ends in ``.json`` and so names the file."""
    if out is not None and out.suffix.lower() == ".json":
        return out
    return (out or Path(".")) / f"{name}.json"


Seed = Annotated[int, typer.Option(help="Seed for every random choice.")]
Colors = Annotated[
    str | None, typer.Option(help="Mask colours to use (default: all in the manifest).")
]
MaxPerId = Annotated[int, typer.Option(help="At most N masked and N unmasked per id.")]
TestFrac = Annotated[float, typer.Option(help="Share of identities in test.")]
ValFrac = Annotated[float, typer.Option(help="Share of identities in val.")]
ImpostorRatio = Annotated[float, typer.Option(help="Impostor pairs per genuine pair.")]


FaceDetector = Annotated[
    str,
    typer.Option(
        "--detector",
        help="Face detector cascade for real images (names as synth's --detector; a comma "
        "list is tried in order).",
    ),
]
FaceLandmarks = Annotated[
    str, typer.Option("--landmarks", help="Landmark model for real images: dlib or mediapipe.")
]
FacePolicy = Annotated[
    str,
    typer.Option("--face-policy", help="Several faces: largest, center, skip, or auto (as synth)."),
]
FaceMargin = Annotated[int, typer.Option("--margin", help="Pixels around the face box.")]
Workers = Annotated[
    int, typer.Option(help="Processes finding the real images' faces (default: the usable CPUs).")
]


def _with_faces(
    pairset: Any,
    root: Path,
    dataset: str,
    *,
    detector: str,
    landmarks: str,
    face_policy: str,
    margin: int,
    workers: int,
) -> Any:
    """The pair set with every real image's face found once and frozen (``faces.py``)."""
    from mfrbench.faces import FaceConfig, detect_faces, policy_for
    from mfrbench.synth import LANDMARK_BACKENDS
    from mfrbench.vision.detect import FACE_POLICIES, cascade_names

    cascade_names(detector)  # validates the names
    if landmarks not in LANDMARK_BACKENDS:
        raise UserError(f"unknown --landmarks {landmarks!r}; choose one of: dlib, mediapipe")
    policy = policy_for(dataset, face_policy)
    if policy not in FACE_POLICIES:
        raise UserError(f"unknown --face-policy {face_policy!r}")
    if margin < 0:
        raise UserError(f"--margin must be >= 0, got {margin}")
    config = FaceConfig(detector=detector, landmarks=landmarks, face_policy=policy, margin=margin)
    images, counts = detect_faces(pairset.images, root, config, workers=workers)
    pairset.images = images
    pairset.params = {**pairset.params, **config.params()}
    found = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    console.print(f"faces of {sum(counts.values())} real images: {found}", highlight=False)
    return pairset


def _citation(value: str | None) -> str:
    if not value:
        return ""
    if value.startswith("@") and "{" not in value:  # @FILE; BibTeX itself always has braces
        path = Path(value[1:])
        if not path.is_file():
            raise UserError(f"--citation: file not found: {path}")
        return path.read_text(encoding="utf-8").strip() + "\n"
    return value


def _split_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _freeze_and_write(
    pairset: Any,
    *,
    dataset: str,
    name: str | None,
    version: str,
    description: str,
    citation: str | None,
    out: Path | None,
) -> None:
    from mfrbench.pairs import summary_table
    from mfrbench.protocol import freeze, protocol_id, write_protocol

    name = name or f"{dataset}-{pairset.strategy}"
    protocol = freeze(
        pairset,
        name=name,
        version=version,
        description=description,
        citation=_citation(citation),
        dataset=dataset,
    )
    path = protocol_path(out, name)
    write_protocol(protocol, path)
    _print_rows(summary_table(pairset), title=f"{name}: pairs")
    for warning in pairset.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    out_console.print(f"protocol {protocol_id(protocol)} written to {path}")


def _print_rows(rows: list[dict[str, Any]], title: str) -> None:
    if not rows:
        return
    table = Table(title=title, show_edge=False)
    for key in rows[0]:
        table.add_column(str(key), justify="left" if key in ("split", "fold") else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    out_console.print(table)


def _manifest_images(manifest: Path, colors: str | None) -> list[dict[str, Any]]:
    from mfrbench.pairs import images_from_manifest

    return images_from_manifest(manifest, colors=_split_list(colors))


# ------------------------------------------------------------------ pairs


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
    out: Out = None,
    detector: FaceDetector = REAL_IMAGE_CASCADE,
    landmarks: FaceLandmarks = "dlib",
    face_policy: FacePolicy = "auto",
    margin: FaceMargin = 15,
    workers: Workers = DEFAULT_WORKERS,
) -> None:
    """The RMFRD thesis protocol: real masked x unmasked photos, identity-disjoint splits.

    Each image's face is found once (synth's detector cascade) and frozen in the protocol."""
    from mfrbench.datasets import get_dataset
    from mfrbench.pairs import images_from_records, rmfrd_pairs

    ds = get_dataset("rmfrd", root=root)
    pairset = rmfrd_pairs(
        images_from_records(ds.records()),
        max_per_id=max_per_id,
        seed=seed,
        test_frac=test_frac,
        val_frac=val_frac,
        impostor_ratio=impostor_ratio,
    )
    faces: dict[str, Any] = dict(
        detector=detector, landmarks=landmarks, face_policy=face_policy, margin=margin
    )
    pairset = _with_faces(pairset, ds.root, "rmfrd", workers=workers, **faces)
    _freeze_and_write(
        pairset,
        dataset="rmfrd",
        name=name,
        version=version,
        description=description,
        citation=citation,
        out=out,
    )


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
    out: Out = None,
    detector: FaceDetector = REAL_IMAGE_CASCADE,
    landmarks: FaceLandmarks = "dlib",
    face_policy: FacePolicy = "auto",
    margin: FaceMargin = 15,
    workers: Workers = DEFAULT_WORKERS,
) -> None:
    """The rmfrd strategy on any identity/image tree (real masks flagged by --masked-from),
    or a listed pair file (--pairs-file).

    Each image's face is found once (synth's detector cascade) and frozen in the protocol."""
    from mfrbench.datasets import get_dataset
    from mfrbench.pairs import images_from_records, listed_pairs, rmfrd_pairs

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
    faces: dict[str, Any] = dict(
        detector=detector, landmarks=landmarks, face_policy=face_policy, margin=margin
    )
    pairset = _with_faces(pairset, Path(root), "folder", workers=workers, **faces)
    _freeze_and_write(
        pairset,
        dataset="folder",
        name=name,
        version=version,
        description=description,
        citation=citation,
        out=out,
    )


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
    seed: Seed = 0,
    name: Name = None,
    version: Version = "1",
    description: Description = "",
    citation: Citation = None,
    out: Out = None,
) -> None:
    """The rmfrd strategy on a synth output: synthetic masked variants x unmasked originals."""
    from mfrbench.pairs import rmfrd_pairs

    dataset = _manifest_dataset(manifest)
    pairset = rmfrd_pairs(
        _manifest_images(manifest, colors),
        max_per_id=max_per_id,
        seed=seed,
        test_frac=test_frac,
        val_frac=val_frac,
        impostor_ratio=impostor_ratio,
        dataset=dataset,
    )
    _freeze_and_write(
        pairset,
        dataset=dataset,
        name=name,
        version=version,
        description=description,
        citation=citation,
        out=out,
    )


def _manifest_dataset(manifest: Path) -> str:
    from mfrbench.manifest import read_metadata

    if not manifest.is_file():
        raise UserError(f"manifest not found: {manifest}")
    return str(read_metadata(manifest).get("params", {}).get("dataset", "unknown"))


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
    out: Out = None,
) -> None:
    """LFW-style folds (like view 2) from a synth manifest, or an official list re-pointed."""
    from mfrbench.pairs import lfw_folds, official_lfw_pairs
    from mfrbench.pairs_mlfw import MLFW, resolve

    default_type = "masked-masked" if mask_assignment == MLFW else "masked-unmasked"
    types = _split_list(pair_types) or [default_type]
    resolve(mask_assignment, impostor_same_mask, types)  # option mistakes before reading
    images = _manifest_images(manifest, None)
    color_list = _split_list(colors)
    if official is not None:
        if not official.is_file():
            raise UserError(f"--official: file not found: {official}")
        pairset = official_lfw_pairs(
            official,
            images,
            pair_types=types,
            seed=seed,
            colors=color_list,
            mask_assignment=mask_assignment,
            impostor_same_mask=impostor_same_mask,
        )
    else:
        pairset = lfw_folds(
            images,
            n_folds=folds,
            per_fold=per_fold,
            pair_types=types,
            seed=seed,
            colors=color_list,
            mask_assignment=mask_assignment,
            impostor_same_mask=impostor_same_mask,
        )
    _freeze_and_write(
        pairset,
        dataset=_manifest_dataset(manifest),
        name=name,
        version=version,
        description=description,
        citation=citation,
        out=out,
    )


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
    out: Out = None,
    detector: FaceDetector = REAL_IMAGE_CASCADE,
    landmarks: FaceLandmarks = "dlib",
    face_policy: FacePolicy = "auto",
    margin: FaceMargin = 15,
    workers: Workers = DEFAULT_WORKERS,
) -> None:
    """Import MFR2's pairs.txt (LFW line format, no header) as a protocol.

    Mask types come from mfr2_labels.txt beside it; each image's face is found once (synth's
    detector cascade) and frozen in the protocol."""
    from mfrbench.datasets import get_dataset
    from mfrbench.pairs import images_from_records, mfr2_pairs

    ds = cast("MFR2", get_dataset("mfr2", root=root))
    listed = pairs_file or ds.pairs_file()
    if listed is None or not Path(listed).is_file():
        raise UserError(f"no pairs.txt under {ds.root}; pass --pairs-file")
    pairset = mfr2_pairs(Path(listed), images_from_records(ds.records()))
    faces: dict[str, Any] = dict(
        detector=detector, landmarks=landmarks, face_policy=face_policy, margin=margin
    )
    pairset = _with_faces(pairset, ds.root, "mfr2", workers=workers, **faces)
    _freeze_and_write(
        pairset,
        dataset="mfr2",
        name=name,
        version=version,
        description=description,
        citation=citation,
        out=out,
    )


# ------------------------------------------------------------------ protocol


@protocol_app.command("freeze")
def protocol_freeze(
    source: Annotated[Path, typer.Argument(help="A protocol file to re-freeze.")],
    out: Annotated[
        Path,
        typer.Option(help="Folder for <name>.json, or a path ending in .json (the file)."),
    ],
    name: Name = None,
    version: Annotated[str | None, typer.Option("--version", help="New content version.")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    citation: Citation = None,
) -> None:
    """Write a protocol with new name/version/description/citation (a new digest and id).

    `mfrbench pairs ...` freezes what it generates; this re-freezes an existing file, e.g. to
    add a citation before publishing. Pairs and images are carried over unchanged.
    """
    from mfrbench.protocol import freeze, load_protocol, protocol_id, write_protocol

    old = load_protocol(source)

    class _Carried:  # the PairSet view freeze() reads
        strategy = old["generation"]["strategy"]
        params = old["generation"]["params"]
        warnings = old["generation"].get("warnings", [])
        images = old["images"]
        pairs = old["pairs"]
        summary = old["summary"]

    protocol = freeze(
        _Carried,
        name=name or old["name"],
        version=version or old["version"],
        description=old["description"] if description is None else description,
        citation=old["citation"] if citation is None else _citation(citation),
        dataset=old["dataset"]["name"],
    )
    path = protocol_path(out, protocol["name"])
    write_protocol(protocol, path)
    out_console.print(f"protocol {protocol_id(protocol)} written to {path}")


@protocol_app.command("verify")
def protocol_verify(
    protocol_file: Annotated[Path, typer.Argument(help="Protocol file.")],
    root: Annotated[Path, typer.Option(help="Dataset root holding the source images.")],
    workers: Annotated[int, typer.Option(help="Hashing threads.")] = 2,
) -> None:
    """Check every source image under ROOT against the protocol; exit 1 on any mismatch."""
    from mfrbench.protocol import load_protocol, verify

    report = verify(load_protocol(protocol_file), root, workers=workers)
    for path in report.missing:
        out_console.print(f"missing  {path}", highlight=False)
    for path, expected, actual in report.changed:
        out_console.print(
            f"changed  {path}  expected {expected[:12]}… got {actual[:12]}…", highlight=False
        )
    out_console.print(report.message(), highlight=False)
    if not report.ok:
        sys.exit(1)


@protocol_app.command("show")
def protocol_show(
    protocol_file: Annotated[Path, typer.Argument(help="Protocol file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise a protocol: id, dataset, and pair counts by split, fold, type and label."""
    from mfrbench.protocol import load_protocol, show

    info = show(load_protocol(protocol_file))
    if as_json:
        out_console.print_json(json.dumps(info))
        return
    head = Table(show_header=False, show_edge=False)
    for key, value in info.items():
        if not isinstance(value, (dict, list)):
            head.add_row(key, str(value))
    out_console.print(head)
    for key, value in info.items():
        if isinstance(value, dict) and value:
            table = Table(title=key, show_edge=False)
            first = next(iter(value.values()))
            if isinstance(first, dict):
                table.add_column(key)
                cols = list(first)
                for c in cols:
                    table.add_column(str(c), justify="right")
                for k, row in value.items():
                    table.add_row(str(k), *(str(row.get(c, "")) for c in cols))
            else:
                table.add_column(key)
                table.add_column("count", justify="right")
                for k, v in value.items():
                    table.add_row(str(k), str(v))
            out_console.print(table)
    for warning in info.get("warnings", []):
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


@protocol_app.command("render")
def protocol_render(
    protocol_file: Annotated[Path, typer.Argument(help="Protocol file.")],
    root: Annotated[Path, typer.Option(help="Dataset root holding the source images.")],
    out: Annotated[Path, typer.Option(help="Folder for the rendered images and index.parquet.")],
    image_format: Annotated[str, typer.Option("--format", help="png|jpg.")] = "png",
    workers: Annotated[int, typer.Option(help="Rendering threads.")] = 2,
) -> None:
    """Render the protocol's evaluation images from the source images and frozen geometry."""
    from mfrbench.protocol import load_protocol, render_protocol

    if image_format not in ("png", "jpg"):
        raise UserError(f"--format: unknown value {image_format!r}; choose from png, jpg")
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from mfrbench.cli_progress import make_progress

    protocol = load_protocol(protocol_file)
    progress = make_progress(
        console,
        TextColumn("[bold]render[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TimeRemainingColumn(),
    )
    with progress:
        task = progress.add_task("render", total=len(protocol["images"]), failed=0)

        def on_progress(done: int, failed: int) -> None:
            progress.update(task, completed=done, failed=failed)

        report = render_protocol(
            protocol, root, out, fmt=image_format, workers=workers, progress=on_progress
        )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.status_counts.items()))
    out_console.print(
        f"{report.protocol_id}: {report.total} images ({counts}); written {report.written}, "
        f"skipped {report.skipped}, failed {report.failed} in {report.elapsed:.1f} s; "
        f"index: {report.index}"
    )
    if report.failed:
        sys.exit(1)
