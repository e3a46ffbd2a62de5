"""`mfrbench train siamese`: a thin wrapper over ``train.siamese.train_siamese``.

Registered by ``cli.main`` as the ``train`` command group. User mistakes raise UserError (one
line, exit 2, printed by ``cli.main``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mfrbench.cli.common import default_root, out_console, parse_model_opts
from mfrbench.cli.options import BackboneOpt, CacheDir, DataRoot, ProtocolOption
from mfrbench.cli.progress import stage_progress
from mfrbench.errors import UserError
from mfrbench.workers import DEFAULT_WORKERS

train_app = typer.Typer(help="Train models on a frozen protocol (never on its test pairs).")


def parse_hidden(text: str) -> tuple[int, ...]:
    """``"512,256"`` -> (512, 256); UserError for anything but positive integers."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--head expects widths like 512,256, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise UserError(f"--head expects positive widths like 512,256, got {text!r}")
    return widths


@train_app.command("siamese")
def siamese_command(
    protocol: ProtocolOption,
    backbone: Annotated[
        str, typer.Option(help="Embedding plugin to train over (plugin:NAME or NAME), frozen.")
    ],
    out: Annotated[Path, typer.Option(help="Folder for the trained model (siamese:OUT).")],
    root: DataRoot = None,
    backbone_opt: BackboneOpt = None,
    head: Annotated[str, typer.Option(help="Fully connected widths; the last is the output.")] = (
        "512,256"
    ),
    dropout: Annotated[float, typer.Option(help="Dropout after each hidden layer.")] = 0.3,
    loss: Annotated[str, typer.Option(help="contrastive|triplet|cosine-bce.")] = "contrastive",
    margin: Annotated[
        float | None,
        typer.Option(help="Loss margin (default: 5.0 contrastive as in the thesis, 0.2 triplet)."),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs (best val epoch is kept).")] = 20,
    batch_size: Annotated[int, typer.Option(help="Pairs per optimisation step.")] = 32,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-4,
    weight_decay: Annotated[float, typer.Option(help="Adam weight decay.")] = 0.0,
    folds: Annotated[
        int | None,
        typer.Option(help="K-fold cross-validation over train identities (split protocols)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, batches and folds.")] = 0,
    unfreeze_last: Annotated[
        int,
        typer.Option(help="Also fine-tune the backbone's last N blocks (resnet50, facenet)."),
    ] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda (for --unfreeze-last).")] = "cpu",
    backbone_lr: Annotated[
        float | None, typer.Option(help="Learning rate of unfrozen blocks (default: --lr).")
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Backbone embedding worker processes (default: the usable CPUs).")
    ] = DEFAULT_WORKERS,
    cache_dir: CacheDir = None,
    plots: Annotated[bool, typer.Option(help="Write loss.png and accuracy.png.")] = True,
) -> None:
    """Train a Siamese head over frozen backbone embeddings; evaluate it as siamese:OUT."""
    from mfrbench.evaluate.formatting import num, pct
    from mfrbench.train.siamese import train_siamese

    options = parse_model_opts(backbone_opt, "--backbone-opt")
    data_root = root if root is not None else default_root(protocol)
    progress, on_progress = stage_progress()
    with progress:
        result = train_siamese(
            protocol,
            root=data_root,
            backbone=backbone,
            backbone_options=options,
            out=out,
            hidden=parse_hidden(head),
            dropout=dropout,
            loss=loss,
            margin=margin,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            folds=folds,
            seed=seed,
            unfreeze_last=unfreeze_last,
            device=device,
            backbone_lr=backbone_lr,
            workers=workers,
            cache_dir=cache_dir,
            plots=plots,
            progress=on_progress,
        )
    cfg = result.config
    table = Table(title=f"siamese heads on {cfg['protocol']['id']}", show_edge=False)
    for col in ("head", "train pairs", "val pairs", "best epoch", "val accuracy"):
        table.add_column(col, justify="left" if col == "head" else "right")
    for e in cfg["heads"]:
        table.add_row(
            e["name"],
            str(e["train_pairs"]),
            str(e["val_pairs"]),
            str(e["best_epoch"]),
            pct(e["best_val_accuracy"]),
        )
    out_console.print(table)
    cv = cfg.get("cross_validation")
    if cv and cv["val_accuracy_mean"] is not None:
        out_console.print(
            f"{cv['folds']}-fold CV over train identities: val accuracy "
            f"{pct(cv['val_accuracy_mean'])} ± {pct(cv['val_accuracy_std'])}",
            highlight=False,
        )
    out_console.print(
        f"checkpoint sha256 {result.checkpoint_sha256}; {num(result.timings.get('train', 0), 1)} "
        f"s training, peak RSS {num(result.peak_rss_mib, 0)} MiB\n"
        f"evaluate: mfrbench eval --model siamese:{result.out_dir} --protocol {protocol}",
        highlight=False,
    )
