"""`mfrbench report ...`: compare, html, latex, export and scores over finished runs.

Thin wrappers over :mod:`mfrbench.evaluate.report`, ``html_report``, ``latex_table`` and
``score_files``; user mistakes raise UserError (one line, exit 2, printed by ``cli.main``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mfrbench.cli.common import console, out_console
from mfrbench.cli.options import BootstrapSeed, NBoot, Runs
from mfrbench.errors import UserError

report_app = typer.Typer(help="Read and compare evaluation reports.")


@report_app.command("compare")
def report_compare(
    runs: Runs,
    pairs: Annotated[
        str | None,
        typer.Option(
            help="Pair set: a pair type (masked-unmasked), all (pooled) or colour:NAME "
            "(default: the protocol's headline pair type)."
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="markdown, csv or latex.")] = "markdown",
    paired: Annotated[
        bool,
        typer.Option(
            help="Paired differences against the first run on the pairs both scored (bootstrap "
            "intervals, McNemar exact test); needs each run's scores.parquet."
        ),
    ] = True,
    allow_different_protocols: Annotated[
        bool,
        typer.Option(
            help="Put runs on different protocols side by side anyway; paired rows only where "
            "their pairs are the same photos (e.g. protocols differing in drawn masks)."
        ),
    ] = False,
    seed: BootstrapSeed = 0,
    n_boot: NBoot = 1000,
    label: Annotated[str, typer.Option(help="LaTeX: the table's \\label.")] = "tab:compare",
) -> None:
    """Compare runs side by side: named by model and the options that differ, the honest
    headline accuracy first, paired differences against the first run."""
    from mfrbench.evaluate.compare import (
        comparability,
        compare_rows,
        default_pair_set,
        pair_set,
        render_csv,
        render_latex,
        render_markdown,
    )
    from mfrbench.evaluate.runner import load_run

    if fmt not in ("markdown", "csv", "latex"):
        raise UserError(f"--format must be markdown, csv or latex, got {fmt!r}")
    if n_boot < 0:
        raise UserError(f"--n-boot must be >= 0, got {n_boot}")
    reports = [load_run(r) for r in runs]
    problems, warnings = comparability(reports)
    if problems and not allow_different_protocols:
        raise UserError(problems[0] + "; pass --allow-different-protocols to show them anyway")
    which = pairs or default_pair_set(reports)
    available: set[str] = set()
    for rep in reports:
        ver = rep.get("verification", {})
        available |= {"all", *ver.get("by_pair_type", {})}
        available |= {f"colour:{c}" for c in ver.get("by_colour", {})}
        try:
            pair_set(rep, which)
        except (KeyError, TypeError):
            raise UserError(
                f"run {rep['model']['id']} has no pair set {which!r}; available: "
                f"{', '.join(sorted(available))}"
            ) from None
    differences = _paired(runs, which, seed, n_boot) if paired else None
    header, rows = compare_rows(reports, which, differences)
    if fmt == "csv":
        typer.echo(render_csv(header, rows), nl=False)
    elif fmt == "latex":
        typer.echo(render_latex(header, rows, label), nl=False)
    else:
        typer.echo(render_markdown(header, rows))
        for i, r in enumerate(runs, 1):
            typer.echo(f"\nrun {i}: {r}", nl=False)
        typer.echo("")
    for w in [*problems, *warnings]:
        console.print(f"warning: {w}", highlight=False)


def _paired(runs: list[Path], which: str, seed: int, n_boot: int) -> list[dict | None]:
    """Each run's paired difference against the first (None for the first)."""
    import pyarrow.parquet as pq

    from mfrbench.evaluate.paired import decisions, paired_difference

    decided = []
    for r in runs:
        path = r / "scores.parquet" if r.is_dir() else r.parent / "scores.parquet"
        if not path.is_file():
            raise UserError(f"{r}: no scores.parquet beside the report; pass --no-paired")
        decided.append(decisions(pq.read_table(path), which)[0])
    out: list[dict | None] = [None]
    out += [paired_difference(decided[0], d, seed=seed, n_boot=n_boot) for d in decided[1:]]
    return out


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
    runs: Runs,
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


@report_app.command("export")
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


@report_app.command("scores")
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
    seed: BootstrapSeed = 0,
    n_boot: NBoot = 1000,
    plots: Annotated[
        bool, typer.Option(help="With --out: roc.png, det.png, scores_hist.png.")
    ] = True,
) -> None:
    """Verification report (accuracy, AUC, EER, TAR@FAR, FNMR@FMR, d') of a score file."""
    from mfrbench.evaluate.score_files import (
        read_score_file,
        render_score_markdown,
        score_report,
        write_score_report,
    )

    if n_boot < 0:
        raise UserError(f"--n-boot must be >= 0, got {n_boot}")
    sf = read_score_file(file, fmt, distance=distance)
    report = score_report(sf, seed=seed, n_boot=n_boot)
    if out is None:
        typer.echo(render_score_markdown(report))
        return
    files = write_score_report(report, sf, out, plots=plots)
    out_console.print(f"report: {files['report_md']}", highlight=False)
