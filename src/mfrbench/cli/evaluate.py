"""`mfrbench eval` and `mfrbench models`: thin wrappers over evaluate.runner and the registry.

User mistakes raise UserError (one line, exit 2, printed by ``cli.main``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mfrbench.cli.common import console, default_root, out_console, parse_model_opts
from mfrbench.cli.options import (
    BootstrapSeed,
    CacheDir,
    DataRoot,
    ExecutorKind,
    ModelOpt,
    NBoot,
    ProtocolOption,
    RayAddress,
    Workdir,
    executor_from,
)
from mfrbench.cli.progress import stage_progress
from mfrbench.workers import DEFAULT_WORKERS


def eval_command(
    model: Annotated[
        str,
        typer.Option(
            help="plugin:NAME (or a bare plugin name), onnx:PATH, python:package.module:factory "
            "or siamese:DIR; mfrbench models --details NAME lists options."
        ),
    ],
    protocol: ProtocolOption,
    root: DataRoot = None,
    model_opt: ModelOpt = None,
    distance: Annotated[
        str | None, typer.Option(help="cosine|euclidean|sql2 (default: the model's).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Results folder; the run goes to OUT/<protocol id>/<model id>/ "
            "(default: WORKDIR/results)."
        ),
    ] = None,
    workdir: Workdir = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace a different run (other model options, distance, seed, --n-boot, "
            "--impostors, thresholds) already in the run's folder, removing its files first; "
            "without it that is refused. The same run again needs no flag."
        ),
    ] = False,
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
    from mfrbench.paths import earlier_default, embeddings_dir, results_dir

    options = parse_model_opts(model_opt)
    if out is None:
        out = results_dir(workdir)
        earlier = earlier_default("results", workdir)
        if earlier is not None:
            console.print(
                f"note: runs now go to {out}; earlier ones are in {earlier} (--out {earlier} "
                "keeps writing there)",
                highlight=False,
            )
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
            cache_dir=cache_dir if cache_dir is not None else embeddings_dir(workdir),
            seed=seed,
            n_boot=n_boot,
            plots=plots,
            progress=on_progress,
            impostors=impostors,
            threshold=threshold,
            thresholds_from=thresholds_from,
            executor=where,
            overwrite=overwrite,
        )
    print_summary(run.report, run.out_dir)


def print_summary(report: Mapping[str, Any], out_dir: Path) -> None:
    """The terminal summary: one row per pair set, then identification and where files are."""
    from mfrbench.evaluate.formatting import fnmr_cell, num, pct, tar_cell
    from mfrbench.evaluate.headline import (
        accuracy_header,
        accuracy_text,
        headline_sentence,
        ordered_pair_types,
        primary_pair_set,
        set_label,
    )

    ver = report["verification"]
    table = Table(
        title=f"{report['model']['id']} on {report['protocol']['id']} ({report['distance']})",
        show_edge=False,
    )
    acc_col = accuracy_header(ver)
    for col in ("pairs", "n", acc_col, "AUC", "EER", "TAR@FAR 0.1%", "FNMR@FMR 0.1%"):
        table.add_column(col, justify="left" if col == "pairs" else "right")
    by_type = ver["by_pair_type"]
    primary = primary_pair_set(by_type)
    types = ordered_pair_types(by_type)
    sets = [(set_label(t, primary), by_type[t]) for t in types]
    if not sets:
        sets = [("all", ver["overall"])]
    sets += [(f"colour {c}", v) for c, v in ver["by_colour"].items() if c != "none"]
    for name, v in sets:
        if "error" in v:
            table.add_row(name, str(v.get("n_pairs", 0)), v["error"], "", "", "", "")
            continue
        table.add_row(
            name,
            str(v["n_pairs"]),
            accuracy_text(v, label=False),
            num(v["auc"]["value"], 4),
            pct(v["eer"]["value"]),
            tar_cell(v, "0.001"),
            fnmr_cell(v, "0.001"),
        )
    out_console.print(headline_sentence(ver), highlight=False)
    out_console.print(table)
    ident = report.get("identification") or {}
    if "rank1" in ident:
        margin = (ident.get("confidence_score") or {}).get("margin")
        out_console.print(
            f"identification: rank-1 {pct(ident['rank1'])}{_rank_k(ident)}"
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


def _rank_k(ident: Mapping[str, Any]) -> str:
    """`, rank-K x%` for the largest K under the gallery size (rank-N of an N-identity gallery
    is 100% by construction), and the gallery size when it is that small."""
    from mfrbench.evaluate.formatting import gallery_per_space

    per_space = gallery_per_space(ident)
    k = min(len(ident["cmc"]), per_space - 1)
    rank = f", rank-{k} {ident['cmc'][k - 1] * 100:.2f}%" if k > 1 else ""
    small = per_space <= len(ident["cmc"])
    return (
        rank
        + f" over {ident['n_target_probes']} probes"
        + (f" (gallery of {per_space} identities)" if small else "")
    )


def models_command(
    details: Annotated[
        str | None,
        typer.Option(
            "--details",
            metavar="NAME",
            help="Describe one model (dlib-resnet, plugin:facenet, onnx, siamese, ...): its "
            "options with defaults, default preprocessing, distance and weights.",
        ),
    ] = None,
) -> None:
    """List the embedding-model plugins, whether each can run here, and how to fix it if not."""
    if details is not None:
        _print_details(details)
        return
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
    out_console.print(
        "options, defaults, preprocessing and weights of one: mfrbench models --details NAME "
        "(e.g. dlib-resnet, onnx); all of them: docs/models.md",
        highlight=False,
    )


def _print_details(name: str) -> None:
    """``models --details NAME``: the facts, then the options table (models.info declares them)."""
    from rich.markup import escape

    from mfrbench.evaluate.model_details import model_details

    d = model_details(name)
    runs = "yes" if d.ok else f"no: {d.reason}"
    out_console.print(f"[bold]{escape(d.spec)}[/] ({escape(d.source)})", highlight=False)
    out_console.print(f"runs here: {escape(runs)}", highlight=False)
    for label, text in d.facts:
        out_console.print(f"{label}: {escape(text)}", highlight=False)
    if not d.options:
        out_console.print("options: none declared", highlight=False)
        return
    table = Table(title="options (--model-opt NAME=VALUE)", show_edge=False, title_justify="left")
    for col in ("option", "default", "values", "meaning"):
        table.add_column(col, overflow="fold")
    for row in d.options:
        table.add_row(*(escape(cell) for cell in row))
    out_console.print(table)
