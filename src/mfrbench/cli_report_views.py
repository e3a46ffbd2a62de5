"""`mfrbench report html` and `mfrbench report latex`: views of finished runs.

Both register on ``cli_eval.report_app`` when this module is imported (``cli.py`` does). They
are thin wrappers over :mod:`mfrbench.evaluate.html_report` and
:mod:`mfrbench.evaluate.latex_table`; user mistakes raise UserError (one line, exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mfrbench.cli_eval import report_app
from mfrbench.errors import UserError


@report_app.command("html")
def report_html(
    run: Annotated[Path, typer.Argument(help="A run folder (holding report.json).")],
    root: Annotated[
        Path, typer.Option(help="The image root the run was evaluated on (for the thumbnails).")
    ],
    out: Annotated[
        Path | None, typer.Option(help="Output file (default: RUN/report.html).")
    ] = None,
    n_failures: Annotated[
        int, typer.Option(help="Worst false non-matches and false matches to show, each.")
    ] = 8,
    at: Annotated[
        str,
        typer.Option(
            help="Threshold for the failures: eer, fmr=1e-3 (when the run calibrated it), or a "
            "number in the measure's units (a cosine similarity, or a distance)."
        ),
    ] = "eer",
    protocol: Annotated[
        Path | None,
        typer.Option(help="The run's protocol file, when it has moved since the run."),
    ] = None,
) -> None:
    """Write one self-contained HTML page of a run: tables, plots, failure galleries."""
    from mfrbench.evaluate.html_report import write_html_report

    if n_failures < 0:
        raise UserError(f"--n-failures must be >= 0, got {n_failures}")
    path = write_html_report(run, root, out, n_failures=n_failures, at=at, protocol=protocol)
    typer.echo(str(path))


@report_app.command("latex")
def report_latex(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (or their report.json).")],
    out: Annotated[
        Path | None, typer.Option(help="Write the table here (default: print it).")
    ] = None,
    standalone: Annotated[
        bool, typer.Option(help="A whole document that compiles on its own (pdflatex).")
    ] = False,
    label: Annotated[str, typer.Option(help="The table's \\label.")] = "tab:mfrbench",
) -> None:
    """A booktabs table of the runs' headline metrics, protocol and model ids in the caption."""
    from mfrbench.evaluate.latex_table import latex_document, latex_table
    from mfrbench.evaluate.runner import load_run
    from mfrbench.manifest import write_bytes_atomic

    reports = [load_run(r) for r in runs]
    for path, rep in zip(runs, reports, strict=True):
        if "verification" not in rep or "protocol" not in rep:
            raise UserError(f"{path}: not an mfrbench run report (no verification block)")
    text = latex_table(reports, label=label)
    if standalone:
        text = latex_document(text)
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as table.tex")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, text.encode("utf-8"))
    typer.echo(str(out))
