"""The `mfrbench` command: parse options, call the Python API, print with rich.

User mistakes (bad option, missing root, unknown colour) end with one line on stderr and exit
code 2, never a traceback; ``--debug`` (or ``MFRBENCH_DEBUG=1``) prints the traceback too.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from mfrbench import __version__
from mfrbench.cli_eval import eval_command, models_command, report_app
from mfrbench.cli_progress import make_progress
from mfrbench.cli_protocol import pairs_app, protocol_app
from mfrbench.cli_report_views import report_html  # noqa: F401  (registers report html/latex)
from mfrbench.cli_score_files import export_command, scores_command
from mfrbench.cli_train import train_app
from mfrbench.errors import DEBUG_ENV, UserError
from mfrbench.workers import DEFAULT_WORKERS

app = typer.Typer(
    name="mfrbench",
    help="Masked-face recognition benchmarks: synthesise masked datasets, freeze protocols, "
    "score embedding models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(pairs_app, name="pairs")
app.add_typer(protocol_app, name="protocol")
app.command("eval")(eval_command)
app.command("models")(models_command)
report_app.command("export")(export_command)
report_app.command("scores")(scores_command)
app.add_typer(report_app, name="report")
app.add_typer(train_app, name="train")
console = Console(stderr=True)
out_console = Console()


def _version(value: bool) -> None:
    if value:
        out_console.print(f"mfrbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", help=f"Show the full traceback of an error (or set {DEBUG_ENV}=1)."
        ),
    ] = False,
) -> None:
    """mfrbench: turn face datasets into masked-face benchmarks and score models on them."""


@app.command()
def synth(
    dataset: Annotated[str, typer.Argument(help="Dataset adapter: lfw, folder, rmfrd, mfr2.")],
    root: Annotated[
        Path | None, typer.Option(help="Dataset root folder (lfw: else $MFRBENCH_DATA/lfw).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder (images/ and manifest.parquet).")] = Path(
        "out/synth"
    ),
    colors: Annotated[
        str, typer.Option(help="Mask colours: names (black, white, blue) or #RRGGBB, comma list.")
    ] = "black,white,blue",
    mask_shape: Annotated[str, typer.Option(help="Mask shape (paper, nist-*).")] = "paper",
    detector: Annotated[
        str, typer.Option(help="mtcnn|dlib|haar|none, or a comma list giving the cascade order.")
    ] = "mtcnn",
    fallback: Annotated[
        bool, typer.Option(help="Fall back to the next detector when one finds no face.")
    ] = True,
    landmarks: Annotated[str, typer.Option(help="Landmark backend: dlib|mediapipe.")] = "dlib",
    mediapipe_model: Annotated[
        Path | None,
        typer.Option(
            help="face_landmarker.task (else $MFRBENCH_MEDIAPIPE_MODEL, cache, download)."
        ),
    ] = None,
    margin: Annotated[int, typer.Option(help="Pixels added around the face box.")] = 15,
    face_policy: Annotated[
        str,
        typer.Option(
            help="Several faces: largest|center|skip; auto = center for face-centred datasets "
            "(lfw, mfr2, rmfrd), largest otherwise."
        ),
    ] = "auto",
    roi: Annotated[str, typer.Option(help="Crop: none|upper-half|eye-band.")] = "upper-half",
    size: Annotated[int, typer.Option(help="Output width in pixels.")] = 112,
    image_format: Annotated[str, typer.Option("--format", help="Output format: jpg|png.")] = "jpg",
    augment: Annotated[
        str | None,
        typer.Option(help="Training augmentations, comma list: rotate,jitter,blur,noise,gray."),
    ] = None,
    augment_copies: Annotated[int, typer.Option(help="Copies per augmentation.")] = 3,
    workers: Annotated[
        int, typer.Option(help="Worker processes (default: the usable CPUs).")
    ] = DEFAULT_WORKERS,
    limit: Annotated[int | None, typer.Option(help="Only the first N images.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for every random choice.")] = 0,
    overwrite: Annotated[
        bool, typer.Option(help="Discard an existing output made with other parameters.")
    ] = False,
    download: Annotated[
        bool, typer.Option(help="Download the dataset (checksummed, cached) if it is not found.")
    ] = False,
) -> None:
    """Detect, landmark, mask and crop every image of DATASET into OUT, with a Parquet manifest."""
    from mfrbench.synth import SynthConfig, run_synth

    config = SynthConfig(
        dataset=dataset,
        root=str(root.resolve()) if root else None,
        colors=colors,
        mask_shape=mask_shape,
        detector=detector,
        fallback=fallback,
        landmarks=landmarks,
        mediapipe_model=str(mediapipe_model) if mediapipe_model else None,
        margin=margin,
        face_policy=face_policy,
        roi=roi,
        size=size,
        image_format=image_format,
        augment=tuple(a.strip() for a in augment.split(",") if a.strip()) if augment else (),
        augment_copies=augment_copies,
        seed=seed,
        limit=limit,
    )
    progress = make_progress(
        console,
        TextColumn("[bold]synth[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7} img/s"),
        TextColumn("failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    state: dict[str, float] = {}

    def on_start(total: int, already: int) -> None:
        import time

        state["t0"], state["base"] = time.perf_counter(), already
        state["task"] = progress.add_task(
            "synth", total=total, completed=already, rate="-", failed=0
        )
        if already:
            console.print(f"resuming: {already} of {total} images already done")

    def on_progress(done: int, failed: int) -> None:
        import time

        rate = (done - state["base"]) / max(time.perf_counter() - state["t0"], 1e-9)
        progress.update(state["task"], completed=done, rate=f"{rate:.1f}", failed=failed)

    with progress:
        result = run_synth(
            config,
            out,
            workers=workers,
            overwrite=overwrite,
            download=download,
            on_start=on_start,
            on_progress=on_progress,
        )
    _print_summary(result)


def _print_summary(result) -> None:
    table = Table(title="synth summary", show_edge=False)
    table.add_column("rows by status")
    table.add_column("count", justify="right")
    for status, n in result.status_counts.items():
        table.add_row(status, str(n))
    det = Table(show_edge=False)
    det.add_column("faces by detector")
    det.add_column("images", justify="right")
    for name, n in result.detector_counts.items():
        det.add_row(name, str(n))
    out_console.print(table)
    out_console.print(det)
    rate = (result.sources - result.resumed_sources) / max(result.elapsed, 1e-9)
    out_console.print(
        f"{result.sources} source images -> {result.rows} rows in {result.elapsed:.1f} s "
        f"({rate:.1f} img/s); manifest: {result.manifest}"
    )


@app.command()
def demo(
    root: Annotated[
        Path | None,
        typer.Option(help="An LFW-layout folder (else $MFRBENCH_DATA/lfw-mini)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("demo-out"),
    workers: Annotated[
        int, typer.Option(help="Worker processes (default: the usable CPUs).")
    ] = DEFAULT_WORKERS,
) -> None:
    """The whole job on lfw-mini: synth, pairs, protocol, eval with dlib-resnet, comparison."""
    import time

    from mfrbench.demo import run_demo

    t0 = time.perf_counter()
    result = run_demo(
        root, out, workers=workers, say=lambda s: out_console.print(s, highlight=False)
    )
    out_console.print(
        f"demo done in {time.perf_counter() - t0:.0f} s: protocol {result.protocol_id}, "
        f"results {result.run_dir}",
        highlight=False,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user mistakes into one line and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug(args)
    try:
        app(args=args, standalone_mode=False)
    except UserError as e:
        if debug:
            traceback.print_exception(e, file=sys.stderr)
        _fail(str(e))
    except (typer.Exit, typer.Abort) as e:
        sys.exit(getattr(e, "exit_code", 130))
    except Exception as e:
        # Typer's usage errors (bad option, missing argument, unknown command); duck-typed so
        # this works whether Typer vendors click or uses it.
        if not (hasattr(e, "format_message") and hasattr(e, "exit_code")):
            raise
        if type(e).__name__ == "Exit":
            sys.exit(e.exit_code)
        message = e.format_message()
        if not message:  # no arguments at all: help was printed
            sys.exit(0)
        ctx = getattr(e, "ctx", None)
        name = ctx.command_path if ctx is not None else "mfrbench"
        _fail(f"{message} (see: {name} --help)")


def _debug(args: list[str]) -> bool:
    """Whether tracebacks are wanted: ``--debug`` before the command, or MFRBENCH_DEBUG set."""
    before_command = args[: next((i for i, a in enumerate(args) if not a.startswith("-")), None)]
    flag = os.environ.get(DEBUG_ENV, "").strip().lower()
    return "--debug" in before_command or flag not in ("", "0", "false", "no")


def _fail(message: str) -> None:
    console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(2)
