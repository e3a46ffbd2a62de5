"""ROC, DET and score-histogram plots of an evaluation run (roc.png, det.png, scores_hist.png).

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend state), so
they work headless and from worker threads; PNGs are written atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from mfrbench.evaluate import metrics
from mfrbench.manifest import write_bytes_atomic


def _curves(rows: Mapping[str, Any], mask: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, labels, scores) for all pairs in ``mask`` and each pair type with both classes."""
    labels = np.asarray(rows["label"], dtype=np.int64)
    scores = np.asarray(rows["score"], dtype=np.float64)
    ptype = np.asarray(rows["pair_type"], dtype=object)
    out = [("all", labels[mask], scores[mask])]
    types = sorted(set(ptype[mask].tolist()))
    if len(types) > 1:
        for t in types:
            sel = mask & (ptype == t)
            out.append((t, labels[sel], scores[sel]))
    return [(n, y, s) for n, y, s in out if 0 < int(y.sum()) < y.size]


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    write_bytes_atomic(path, buf.getvalue())
    return path


def _figure(w: float = 6.0, h: float = 4.6) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


_PROBIT_TICKS = (0.0001, 0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95)


def _probit(p: np.ndarray) -> np.ndarray:
    inv = NormalDist().inv_cdf
    clipped = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.fromiter((inv(v) for v in clipped), dtype=np.float64, count=clipped.size)


def plot_roc(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """ROC: TAR against FAR on a log FAR axis, one curve per pair set, AUC in the legend."""
    fig = _figure()
    ax = fig.add_subplot()
    floor = 1.0
    for name, y, s in curves:
        far, tar, _ = metrics.roc(y, s)
        floor = min(floor, 1.0 / max(1, int((y == 0).sum())))
        ax.step(
            np.maximum(far, 1e-6), tar, where="post", label=f"{name} (AUC {metrics.auc(y, s):.4f})"
        )
    ax.set_xscale("log")
    ax.set_xlim(max(floor, 1e-5), 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("true accept rate (TAR)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_det(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """DET: FNMR against FMR, both on normal-deviate (probit) axes, EER in the legend."""
    fig = _figure()
    ax = fig.add_subplot()
    for name, y, s in curves:
        far, tar, _ = metrics.roc(y, s)
        e, _ = metrics.eer(y, s)
        ax.plot(_probit(far), _probit(1.0 - tar), label=f"{name} (EER {100 * e:.2f}%)")
    ticks = _probit(np.asarray(_PROBIT_TICKS))
    labels = [f"{100 * t:g}%" for t in _PROBIT_TICKS]
    lim = (_probit(np.asarray([1e-4]))[0], _probit(np.asarray([0.95]))[0])
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_ticks(ticks, labels)
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.plot(lim, lim, color="0.7", lw=0.8, ls="--")
    ax.set_xlabel("false match rate (FMR)")
    ax.set_ylabel("false non-match rate (FNMR)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_hist(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """Genuine vs impostor score histograms, one panel per pair set, EER threshold marked."""
    n = len(curves)
    fig = _figure(6.0, 2.4 + 1.9 * n)
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    for ax, (name, y, s) in zip(axes, curves, strict=True):
        bins = np.linspace(float(s.min()), float(s.max()), 61) if s.max() > s.min() else 10
        ax.hist(
            s[y == 1],
            bins=bins,
            alpha=0.55,
            density=True,
            color="tab:green",
            label=f"genuine ({int((y == 1).sum())})",
        )
        ax.hist(
            s[y == 0],
            bins=bins,
            alpha=0.55,
            density=True,
            color="tab:red",
            label=f"impostor ({int((y == 0).sum())})",
        )
        _, thr = metrics.eer(y, s)
        if math.isfinite(thr):
            ax.axvline(thr, color="k", lw=0.8, ls="--", label="EER threshold")
        ax.set_ylabel(f"{name}\ndensity", fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("score (higher = more alike)")
    axes[0].set_title(title, fontsize=9)
    return _save(fig, path)


def write_plots(
    rows: Mapping[str, Any], mask: np.ndarray, out: Path, title: str
) -> dict[str, Path]:
    """roc.png, det.png and scores_hist.png for the pairs in ``mask`` (scored test pairs)."""
    curves = _curves(rows, np.asarray(mask, dtype=bool))
    if not curves:
        return {}
    out = Path(out)
    return {
        "roc": plot_roc(curves, out / "roc.png", title),
        "det": plot_det(curves, out / "det.png", title),
        "scores_hist": plot_hist(curves, out / "scores_hist.png", title),
    }
