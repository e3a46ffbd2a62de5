"""`mfrbench eval` and `mfrbench report compare`: thin wrappers over evaluate.runner/report.

``eval_command`` is registered by ``cli.py`` as ``mfrbench eval``; ``report_app`` as
``mfrbench report``. User mistakes raise UserError (one line, exit 2, printed by ``cli.main``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from mfrbench.cli_progress import make_progress
from mfrbench.errors import UserError
from mfrbench.workers import DEFAULT_WORKERS

report_app = typer.Typer(help="Read and compare evaluation reports.")
console = Console(stderr=True)
out_console = Console()


def parse_model_opts(values: list[str] | None, flag: str = "--model-opt") -> dict[str, str]:
    """``["k=v", ...]`` -> dict; UserError for an item without ``=`` or a repeated key."""
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"{flag} expects key=value, got {item!r}")
        if key in out:
            raise UserError(f"{flag} {key} given twice")
        out[key] = value
    return out


def default_root(protocol_file: Path) -> Path:
    """``$MFRBENCH_DATA/<dataset name>`` for a protocol, or UserError asking for --root."""
    import json

    data = os.environ.get("MFRBENCH_DATA")
    name = None
    try:
        with open(protocol_file, encoding="utf-8") as f:
            name = json.load(f).get("dataset", {}).get("name")
    except (OSError, ValueError, AttributeError):
        pass  # load_protocol reports what is wrong with the file
    if data and name:
        return Path(data) / name
    raise UserError("--root is required (or set MFRBENCH_DATA to the folder holding the dataset)")


def stage_progress() -> tuple[Any, Callable[[str, int, int], None]]:
    """A progress display on stderr (rich on a terminal, plain lines in a log) and the
    ``(stage, done, total)`` callback feeding it."""
    progress = make_progress(
        console,
        TextColumn("[bold]{task.description:>8}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    tasks: dict[str, Any] = {}
    starts: dict[str, tuple[float, int]] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total, completed=0, rate="")
            starts[stage] = (time.perf_counter(), done)
        t0, base = starts[stage]
        elapsed = time.perf_counter() - t0
        rate = f"{(done - base) / elapsed:.1f}/s" if done > base and elapsed > 0.5 else ""
        progress.update(tasks[stage], total=total, completed=done, rate=rate)

    return progress, on_progress


def eval_command(
    model: Annotated[
        str,
        typer.Option(help="plugin:NAME, onnx:PATH, python:package.module:factory or siamese:DIR."),
    ],
    protocol: Annotated[Path, typer.Option(help="A frozen protocol file.")],
    root: Annotated[
        Path | None,
        typer.Option(help="Dataset root with the source images (else $MFRBENCH_DATA/<dataset>)."),
    ] = None,
    model_opt: Annotated[
        list[str] | None,
        typer.Option("--model-opt", help="Plugin option key=value (repeatable)."),
    ] = None,
    distance: Annotated[
        str | None, typer.Option(help="cosine|euclidean|sql2 (default: the model's).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    workers: Annotated[
        int, typer.Option(help="Embedding worker processes (default: the usable CPUs).")
    ] = DEFAULT_WORKERS,
    batch_size: Annotated[int, typer.Option(help="Images per model call (and cache shard).")] = 32,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Embedding cache (else $MFRBENCH_CACHE/embeddings or ~/.cache/...)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
    n_boot: Annotated[
        int, typer.Option(help="Bootstrap resamples for 95% intervals (0: none).")
    ] = 1000,
    plots: Annotated[bool, typer.Option(help="Write roc.png, det.png, scores_hist.png.")] = True,
    impostors: Annotated[
        str,
        typer.Option(
            help="listed: the protocol's impostor pairs; all: also every probe against every "
            "reference of another identity in its split/fold (TAR at FAR 1e-3..1e-5)."
        ),
    ] = "listed",
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Also report FNMR/FMR at this threshold, in the measure's units (a cosine "
            "similarity, or a distance such as dlib's 0.6)."
        ),
    ] = None,
    thresholds_from: Annotated[
        Path | None,
        typer.Option(
            help="Another run of this model (folder or report.json): apply its calibrated "
            "thresholds (FMR 1e-3..1e-5, EER; its unmasked control when it has one) here."
        ),
    ] = None,
) -> None:
    """Score an embedding model on a frozen protocol: scores.parquet, report.json/.md, plots."""
    from mfrbench.evaluate.runner import evaluate

    options = parse_model_opts(model_opt)
    data_root = root if root is not None else default_root(protocol)
    progress, on_progress = stage_progress()
    with progress:
        run = evaluate(
            protocol,
            model,
            options,
            root=data_root,
            out_dir=out,
            distance=distance,
            workers=workers,
            batch_size=batch_size,
            cache_dir=cache_dir,
            seed=seed,
            n_boot=n_boot,
            plots=plots,
            progress=on_progress,
            impostors=impostors,
            threshold=threshold,
            thresholds_from=thresholds_from,
        )
    print_summary(run.report, run.out_dir)


def print_summary(report: dict[str, Any], out_dir: Path) -> None:
    """The terminal summary: one row per pair set, then identification and where files are."""
    from mfrbench.evaluate.report import accuracy_cell, fnmr_cell, pct, tar_cell

    ver = report["verification"]
    table = Table(
        title=f"{report['model']['id']} on {report['protocol']['id']} ({report['distance']})",
        show_edge=False,
    )
    for col in ("pairs", "n", "accuracy", "AUC", "EER", "TAR@FAR 0.1%", "FNMR@FMR 0.1%"):
        table.add_column(col, justify="left" if col == "pairs" else "right")
    sets = [("all", ver["overall"]), *ver["by_pair_type"].items()]
    sets += [(f"colour {c}", v) for c, v in ver["by_colour"].items() if c != "none"]
    for name, v in sets:
        if "error" in v:
            table.add_row(name, str(v.get("n_pairs", 0)), v["error"], "", "", "", "")
            continue
        table.add_row(
            name,
            str(v["n_pairs"]),
            accuracy_cell(v),
            f"{v['auc']['value']:.4f}",
            pct(v["eer"]["value"]),
            tar_cell(v, "0.001"),
            fnmr_cell(v, "0.001"),
        )
    out_console.print(table)
    ident = report.get("identification") or {}
    if "rank1" in ident:
        margin = (ident.get("confidence_score") or {}).get("margin")
        out_console.print(
            f"identification: rank-1 {pct(ident['rank1'])}, rank-{len(ident['cmc'])} "
            f"{pct(ident['cmc'][-1])} over {ident['n_target_probes']} probes"
            + (f"; confidence-score margin {margin:.4f}" if margin is not None else ""),
            highlight=False,
        )
    e, p = report["embedding"], report["pairs"]
    failed = {k: v for k, v in p["by_status"].items() if k not in ("ok", "not_scored")}
    out_console.print(
        f"embeddings: {e['computed']} computed, {e['cached']} cached, {e['failed']} failed "
        f"({e['forward_passes']} forward passes vs {e['naive_forward_passes']} naive); "
        f"pairs scored {p['scored']}/{p['evaluated']}"
        + (f"; without score: {failed}" if failed else ""),
        highlight=False,
    )
    out_console.print(f"report: {out_dir / 'report.md'}", highlight=False)


@report_app.command("compare")
def report_compare(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (or their report.json).")],
    pairs: Annotated[
        str, typer.Option(help="Pair set: all, a pair type (masked-unmasked) or colour:NAME.")
    ] = "all",
) -> None:
    """Print a side-by-side Markdown table of several runs' headline metrics."""
    from mfrbench.evaluate.report import compare_table, pair_set
    from mfrbench.evaluate.runner import load_run

    reports = [load_run(r) for r in runs]
    available: set[str] = set()
    for rep in reports:
        ver = rep.get("verification", {})
        available |= {"all", *ver.get("by_pair_type", {})}
        available |= {f"colour:{c}" for c in ver.get("by_colour", {})}
        try:
            pair_set(rep, pairs)
        except (KeyError, TypeError):
            continue
        break
    else:
        raise UserError(f"no run has pair set {pairs!r}; available: {', '.join(sorted(available))}")
    typer.echo(compare_table(reports, pairs))
    for i, r in enumerate(runs, 1):
        typer.echo(f"\nrun {i}: {r}", nl=False)
    typer.echo("")


def models_command() -> None:
    """List the embedding-model plugins, whether each can run here, and how to fix it if not."""
    from mfrbench.models.registry import list_models

    table = Table(title="embedding models", show_edge=False)
    for col in ("model", "runs here", "source / fix"):
        table.add_column(col)
    for m in list_models():
        ok = "[green]yes[/]" if m["ok"] else "[red]no[/]"
        table.add_row(
            f"plugin:{m['name']}" if ":" not in m["name"] else m["name"],
            ok,
            m["source"] if m["ok"] else m["reason"],
        )
    out_console.print(table)
