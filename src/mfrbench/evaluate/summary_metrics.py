"""Verification metrics of genuine scores against an impostor :class:`ScoreSummary`.

The genuine side is always exact (the listed genuine pairs); the impostor side is a summary
(``impostors.py``). Where the summary holds every score the numbers are those of
``evaluate.metrics`` on the full arrays; otherwise each entry says whether it is exact:

- TAR at FAR f and the threshold: exact for f <= TAIL_FMR (the threshold comes from the exact
  tail), as :func:`metrics.tar_at_far`; the "not enough data" rule (fewer than ``ceil(10 / f)``
  impostors) stays;
- EER: FAR and FRR compared at the histogram's bin edges (FAR exact there, FRR exact anywhere),
  linear between the two edges where they cross: within one bin of the exact EER threshold;
- AUC: each genuine score against the impostor histogram, linear within its bin;
- d': from the impostors' sum and sum of squares, as :func:`metrics.d_prime` (ddof=0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mfrbench.evaluate import metrics
from mfrbench.evaluate.impostors import ScoreSummary


def _gen(genuine: Any) -> np.ndarray:
    g = np.sort(np.asarray(genuine, dtype=np.float64))
    if g.size == 0:
        raise ValueError("needs at least one genuine score")
    return g


def fnmr_at(genuine: np.ndarray, threshold: float) -> float:
    """Share of (sorted) genuine scores below ``threshold``."""
    return float(np.searchsorted(genuine, threshold, side="left") / genuine.size)


def eer(genuine: Any, imp: ScoreSummary) -> tuple[float, float, bool]:
    """(EER, threshold, exact?) of genuine scores against the summary."""
    g = _gen(genuine)
    if imp.exact_all:
        y = np.concatenate([np.ones(g.size), np.zeros(imp.n)])
        e, t = metrics.eer(y, np.concatenate([g, imp.tail]))
        return e, t, True
    edges = imp.edges()
    above = np.concatenate([np.cumsum(imp.hist[::-1])[::-1], [0]]) / imp.n
    frr = np.searchsorted(g, edges, side="left") / g.size
    i = int(np.argmax(frr >= above))  # frr rises, far falls along the edges
    if i == 0:
        return float(above[0]), float(edges[0]), False
    d0, d1 = above[i - 1] - frr[i - 1], above[i] - frr[i]
    a = d0 / (d0 - d1) if d0 != d1 else 0.0
    rate = (1 - a) * (above[i - 1] + frr[i - 1]) / 2 + a * (above[i] + frr[i]) / 2
    return float(rate), float(edges[i - 1] + a * (edges[i] - edges[i - 1])), False


def auc(genuine: Any, imp: ScoreSummary) -> tuple[float, bool]:
    """(P(genuine > impostor) + P(equal) / 2, exact?)."""
    g = _gen(genuine)
    if imp.exact_all:
        y = np.concatenate([np.ones(g.size), np.zeros(imp.n)])
        return metrics.auc(y, np.concatenate([g, imp.tail])), True
    bins = imp.hist.size
    pos = np.clip((g - imp.lo) / (imp.hi - imp.lo) * bins, 0, bins)
    i = np.minimum(np.floor(pos).astype(np.int64), bins - 1)
    below_edge = np.concatenate([[0], np.cumsum(imp.hist)])  # count < edge i
    below = below_edge[i] + imp.hist[i] * (pos - i)
    return float(np.mean(below) / imp.n), False


def d_prime(genuine: Any, imp: ScoreSummary) -> float | None:
    """(mean_g - mean_i) / sqrt((var_g + var_i) / 2), variances with ddof=0."""
    g = _gen(genuine)
    mi, vi = imp.mean_var()
    pooled = math.sqrt((float(np.var(g)) + vi) / 2.0)
    return None if pooled == 0.0 else (float(np.mean(g)) - mi) / pooled


def tar_at_far(genuine: Any, imp: ScoreSummary, far: float) -> dict[str, Any]:
    """TAR at the lowest threshold with FAR <= ``far`` on the summary, with the threshold."""
    g = _gen(genuine)
    entry: dict[str, Any] = {
        "far": far,
        "n_impostors": imp.n,
        "min_impostors": metrics.min_impostors(far),
    }
    if imp.n < entry["min_impostors"]:
        return {
            **entry,
            "value": None,
            "threshold": None,
            "reason": metrics.not_enough_reason(imp.n, far),
        }
    t, exact = imp.threshold_at_fmr(far)
    return {**entry, "value": 1.0 - fnmr_at(g, t), "threshold": t, "exact": exact}


def fnmr_at_fmr(
    genuine: Any, imp: ScoreSummary, control: ScoreSummary, fmr: float, source: str
) -> dict[str, Any]:
    """FNMR of ``genuine`` at the threshold giving FMR = ``fmr`` on ``control``'s impostors,
    and the FMR that threshold gives on ``imp`` (NIST's FMR shift)."""
    g = _gen(genuine)
    entry: dict[str, Any] = {"fmr": fmr, "threshold_source": source, "n_impostors": control.n}
    if control.n < metrics.min_impostors(fmr):
        return {
            **entry,
            "value": None,
            "threshold": None,
            "reason": metrics.not_enough_reason(control.n, fmr),
        }
    t, exact = control.threshold_at_fmr(fmr)
    here, here_exact = imp.fmr_at(t)
    return {
        **entry,
        "value": fnmr_at(g, t),
        "threshold": t,
        "exact": exact,
        "fmr_here": here,
        "fmr_here_exact": here_exact,
        "fmr_shift": None if here is None or fmr == 0 else here / fmr,
    }


def summary_report(
    genuine: Any,
    imp: ScoreSummary,
    *,
    control: ScoreSummary | None = None,
    fars: Sequence[float] = metrics.DEFAULT_FARS,
) -> dict[str, Any]:
    """Every metric of the genuine scores against the impostor summary, JSON-able."""
    g = _gen(genuine)
    e, e_thr, e_exact = eer(g, imp)
    a, a_exact = auc(g, imp)
    source = "control impostors (unmasked-unmasked, all-vs-all)" if control else "these impostors"
    ctrl = control if control is not None else imp
    return metrics._py(
        {
            "n_genuine": int(g.size),
            "n_impostor": imp.n,
            "n_references": imp.n_references,
            "n_probes": imp.n_probes,
            "impostor_tail": {"n": int(imp.tail.size), "floor": imp.floor},
            "auc": {"value": a, "exact": a_exact},
            "eer": {"value": e, "threshold": e_thr, "exact": e_exact},
            "tar_at_far": {f"{f:g}": tar_at_far(g, imp, f) for f in fars},
            "fnmr_at_fmr": {f"{f:g}": fnmr_at_fmr(g, imp, ctrl, f, source) for f in fars},
            "d_prime": d_prime(g, imp),
        }
    )


__all__ = ["auc", "d_prime", "eer", "fnmr_at", "fnmr_at_fmr", "summary_report", "tar_at_far"]
