"""Option declarations shared by several commands, as ``typing.Annotated`` aliases.

One declaration per option keeps its flag, help text and type the same wherever it appears;
a command still states its own default (``seed: Seed = 0``). Options that only one command
has stay with that command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from click.core import ParameterSource

from mfrbench.executors import Executor, make_executor

# ------------------------------------------------------------------ common

Workers = Annotated[int, typer.Option(help="Worker processes (default: the usable CPUs).")]
Seed = Annotated[int, typer.Option(help="Seed for every random choice.")]

# ------------------------------------------------------------------ where outputs go

Workdir = Annotated[
    Path | None,
    typer.Option(
        "--workdir",
        help="Root of the default outputs: out/ (synth), protocols/ (pairs), results/ (eval) "
        "and cache/ (embeddings) under it. Default: $MFRBENCH_HOME, else ./mfrbench-work with "
        "the cache in ~/.cache/mfrbench. --out and --cache-dir win, $MFRBENCH_CACHE for the "
        "cache.",
    ),
]

# ------------------------------------------------------------------ where the work runs

ExecutorKind = Annotated[
    str,
    typer.Option(
        "--executor",
        help="Where the work runs: local (processes on this machine) or ray (actors on a Ray "
        "cluster, one per CPU or --workers if given; pip install 'mfrbench[ray]'; data and "
        "outputs must sit on storage every node reaches at the same path).",
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster for --executor ray: auto (the running one) or HOST:PORT "
        "(default: this machine's running Ray, else a new local one).",
    ),
]


def executor_from(kind: str, address: str | None, workers: int) -> Executor:
    """The executor of ``--executor``/``--ray-address``, checked before any work; on Ray,
    ``--workers`` sets the actor count only when given on the command line (else one actor
    per CPU of the cluster)."""
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source("workers") if ctx is not None else None
    given = source not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    return make_executor(kind, address, workers if given else None).check()


# ------------------------------------------------------------------ evaluation and training

ProtocolOption = Annotated[Path, typer.Option("--protocol", help="A frozen protocol file.")]
DataRoot = Annotated[
    Path | None,
    typer.Option(help="Dataset root with the source images (else $MFRBENCH_DATA/<dataset>)."),
]
ModelOpt = Annotated[
    list[str] | None,
    typer.Option("--model-opt", help="Plugin option key=value (repeatable)."),
]
BackboneOpt = Annotated[
    list[str] | None,
    typer.Option("--backbone-opt", help="Backbone plugin option key=value (repeatable)."),
]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        help="Embedding cache (default: $MFRBENCH_CACHE/embeddings, else WORKDIR/cache/embeddings "
        "when --workdir or $MFRBENCH_HOME is set, else ~/.cache/mfrbench/embeddings)."
    ),
]
BootstrapSeed = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap resampling.")]
NBoot = Annotated[int, typer.Option(help="Bootstrap resamples for 95% intervals (0: none).")]
Runs = Annotated[list[Path], typer.Argument(help="Run folders (or their report.json).")]

# ------------------------------------------------------------------ protocol files

ProtocolFile = Annotated[Path, typer.Argument(help="Protocol file.")]
Name = Annotated[
    str | None,
    typer.Option(
        help="Protocol name (default: from the dataset and strategy, e.g. lfw-folds, "
        "lfw-view2, rmfrd, folder-rmfrd; docs/protocols.md section 6)."
    ),
]
Version = Annotated[str, typer.Option("--version", help="Protocol content version.")]
Description = Annotated[str, typer.Option(help="One-paragraph description.")]
Citation = Annotated[
    str | None, typer.Option(help="BibTeX to cite, or @FILE to read it from a file.")
]
ProtocolOut = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Folder for the protocol file <name>.json (default: $MFRBENCH_HOME/protocols, "
        "else ./mfrbench-work/protocols); a path ending in .json names the file itself.",
    ),
]

# ------------------------------------------------------------------ pair generation

Colors = Annotated[
    str | None, typer.Option(help="Mask colours to use (default: all in the manifest).")
]
ProbeMasks = Annotated[
    str | None,
    typer.Option(
        help="Draw the probes' masks in the protocol, in exact shares: "
        "surgical:0.4,cloth:0.3,n95:0.2,paper:0.1, entries may fix colour and cloth pattern "
        "(surgical/blue:12,cloth/patterned:2), or @FILE: the label counts of an "
        "mfr2_labels.txt or a protocol JSON. See docs/masks.md."
    ),
]
MaxPerId = Annotated[int, typer.Option(help="At most N masked and N unmasked per id.")]
TestFrac = Annotated[float, typer.Option(help="Share of identities in test.")]
ValFrac = Annotated[float, typer.Option(help="Share of identities in val.")]
ImpostorRatio = Annotated[float, typer.Option(help="Impostor pairs per genuine pair.")]

# ------------------------------------------------------------------ faces of real images

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
FaceWorkers = Annotated[
    int, typer.Option(help="Processes finding the real images' faces (default: the usable CPUs).")
]
