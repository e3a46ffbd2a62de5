"""`mfrbench report export` and `mfrbench report scores`: score files in and out.

Thin wrappers over ``evaluate.score_files``; ``cli.py`` attaches both to the ``report`` app.
User mistakes raise UserError (one line, exit 2, printed by ``cli.main``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mfrbench.errors import UserError

out_console = Console()


def export_command(
    run: Annotated[Path, typer.Argument(help="A run folder (or its scores.parquet).")],
    fmt: Annotated[str, typer.Option("--format", help="bob-csv (with pair metadata) or bob-4col.")],
    out: Annotated[Path, typer.Option(help="The score file to write.")],
) -> None:
    """Write a run's scored pairs as a bob.bio.base score file (pairs without a score left out)."""
    from mfrbench.evaluate.score_files import export_scores

    done = export_scores(run, fmt, out)
    skipped = f"; {done.skipped} pairs without a score left out" if done.skipped else ""
    out_console.print(f"{done.rows} pairs -> {done.path} ({done.fmt}){skipped}", highlight=False)


def scores_command(
    file: Annotated[Path, typer.Argument(help="A score file written by mfrbench or another tool.")],
    fmt: Annotated[
        str,
        typer.Option("--format", help="auto, bob-csv, bob-4col, bob-5col or csv (label,score)."),
    ] = "auto",
    out: Annotated[
        Path | None,
        typer.Option(help="Write report.json, report.md and plots here (else print report.md)."),
    ] = None,
    distance: Annotated[
        bool, typer.Option("--distance", help="The file holds distances (lower = more alike).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
    n_boot: Annotated[
        int, typer.Option(help="Bootstrap resamples for 95% intervals (0: none).")
    ] = 1000,
    plots: Annotated[
        bool, typer.Option(help="With --out: roc.png, det.png, scores_hist.png.")
    ] = True,
) -> None:
    """Verification report (accuracy, AUC, EER, TAR@FAR, FNMR@FMR, d') of a score file."""
    from mfrbench.evaluate.score_files import read_score_file, render_score_markdown, score_report

    if n_boot < 0:
        raise UserError(f"--n-boot must be >= 0, got {n_boot}")
    sf = read_score_file(file, fmt, distance=distance)
    report = score_report(sf, seed=seed, n_boot=n_boot)
    if out is None:
        typer.echo(render_score_markdown(report))
        return
    from mfrbench.evaluate.score_files import write_score_report

    files = write_score_report(report, sf, out, plots=plots)
    out_console.print(f"report: {files['report_md']}", highlight=False)
