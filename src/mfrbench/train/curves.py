"""Training curves as PNG: loss and validation accuracy per epoch, one colour per run.

Drawn with matplotlib's Agg canvas on a private ``Figure`` (no pyplot state), with a fixed size,
DPI and no software/date metadata, so the same log gives byte-identical files. The legend sits
to the right of the axes, so it never hides a curve however many runs there are.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mfrbench.manifest import write_bytes_atomic

_SIZE = (7.0, 4.5)
_DPI = 100


def _runs(log: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Rows grouped by run (first-appearance order), each sorted by epoch."""
    runs: dict[str, list[Mapping[str, Any]]] = {}
    for row in log:
        runs.setdefault(str(row.get("run", "")), []).append(row)
    return {k: sorted(v, key=lambda r: int(r["epoch"])) for k, v in runs.items()}


def _series(rows: list[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if v is not None and math.isfinite(float(v)):
            xs.append(int(r["epoch"]))
            ys.append(float(v))
    return xs, ys


def _figure() -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=_SIZE, dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _colour(i: int) -> Any:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if i < 10 else "tab20"]
    return cmap(i % cmap.N)


def _finish(ax: Any, ylabel: str, title: str, has_data: bool, empty: str) -> None:
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if has_data:
        n = len(ax.get_legend_handles_labels()[0])
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=1 + n // 16)
    else:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
    ax.xaxis.get_major_locator().set_params(integer=True)


def plot_curves(log: Sequence[Mapping[str, Any]], out_dir: Path) -> dict[str, Path]:
    """Write ``loss.png`` and ``accuracy.png`` to ``out_dir``; returns ``{"loss", "accuracy"}``.

    ``log`` rows are :func:`mfrbench.train.loop.train_head` log rows (``run``, ``epoch``,
    ``train_loss``, ``val_loss``, ``val_accuracy``). ``loss.png``: train loss (solid) and val
    loss (dashed) per epoch, one colour per run. ``accuracy.png``: val accuracy per epoch per
    run (best-threshold accuracy on the val pairs); runs without validation are absent, and a
    plot without any data says so. Files are written atomically.
    """
    out_dir = Path(out_dir)
    runs = _runs(log)
    colours = {name: _colour(i) for i, name in enumerate(runs)}

    fig, ax = _figure()
    drawn = False
    for name, rows in runs.items():
        label = name or "run"
        for key, style, what in (("train_loss", "-", "train"), ("val_loss", "--", "val")):
            xs, ys = _series(rows, key)
            if xs:
                ax.plot(xs, ys, style, color=colours[name], marker=".", label=f"{label} {what}")
                drawn = True
    _finish(ax, "loss", "Training and validation loss", drawn, "no epochs logged")
    loss_png = _png(fig)

    fig, ax = _figure()
    drawn = False
    for name, rows in runs.items():
        xs, ys = _series(rows, "val_accuracy")
        if xs:
            ax.plot(xs, ys, "-", color=colours[name], marker=".", label=name or "run")
            drawn = True
    _finish(ax, "val accuracy (best threshold)", "Validation accuracy", drawn, "no validation")
    acc_png = _png(fig)

    paths = {"loss": out_dir / "loss.png", "accuracy": out_dir / "accuracy.png"}
    write_bytes_atomic(paths["loss"], loss_png)
    write_bytes_atomic(paths["accuracy"], acc_png)
    return paths
