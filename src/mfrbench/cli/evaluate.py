"""`mfrbench eval` and `mfrbench models`: thin wrappers over evaluate.runner and the registry.

User mistakes raise UserError (one line, exit 2, printed by ``cli.main``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mfrbench.cli.common import default_root, out_console, parse_model_opts
from mfrbench.cli.options import (
    BootstrapSeed,
    CacheDir,
    DataRoot,
    ExecutorKind,
    ModelOpt,
    NBoot,
    ProtocolOption,
    RayAddress,
    executor_from,
)
from mfrbench.cli.progress import stage_progress
from mfrbench.workers import DEFAULT_WORKERS


def eval_command(
    model: Annotated[
        str,
        typer.Option(help="plugin:NAME, onnx:PATH, python:package.module:factory or siamese:DIR."),
    ],
    protocol: ProtocolOption,
    root: DataRoot = None,
    model_opt: ModelOpt = None,
    distance: Annotated[
        str | None, typer.Option(help="cosine|euclidean|sql2 (default: the model's).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Results folder.")] = Path("results"),
    workers: Annotated[
        int, typer.Option(help="Embedding worker processes (default: the usable CPUs).")
    ] = DEFAULT_WORKERS,
    executor: ExecutorKind = "local",
    ray_address: RayAddress = None,
    batch_size: Annotated[int, typer.Option(help="Images per model call (and cache shard).")] = 32,
    cache_dir: CacheDir = None,
    seed: BootstrapSeed = 0,
    n_boot: NBoot = 1000,
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
    where = executor_from(executor, ray_address, workers)
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
            executor=where,
        )
    print_summary(run.report, run.out_dir)


def print_summary(report: Mapping[str, Any], out_dir: Path) -> None:
    """The terminal summary: one row per pair set, then identification and where files are."""
    from mfrbench.evaluate.formatting import accuracy_cell, fnmr_cell, num, pct, tar_cell

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
            num(v["auc"]["value"], 4),
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
            + (f"; confidence-score margin {num(margin, 4)}" if margin is not None else ""),
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
