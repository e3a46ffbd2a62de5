"""The verification report: every verification metric of one score set as one JSON-able dict.

Assembles the core metrics and the bootstrap intervals (all drawn once, from the same
resamples) into the ``verification`` block that ``report.json`` holds per score set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mfrbench.evaluate.metrics.bootstrap import bootstrap_intervals
from mfrbench.evaluate.metrics.core import (
    _as_folds,
    _as_pairs,
    _need_both_classes,
    _py,
    auc,
    best_threshold,
    confusion_at,
    d_prime,
    distance_stats,
    eer,
    fnmr_at_fmr_threshold,
    kfold_accuracy,
    min_impostors,
    threshold_at_fmr,
)

#: FARs / FMRs reported by :func:`verification_report`.
DEFAULT_FARS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)


def _rate_key(rate: float) -> str:
    return f"{rate:g}"


def not_enough_reason(n_impostors: int, rate: float) -> str:
    return f"not enough data: {n_impostors} impostors < {min_impostors(rate)} (10 / {rate:g})"


def verification_report(
    labels: Any,
    scores: Any,
    folds: Any = None,
    *,
    thresholds_from: tuple[Any, Any] | None = None,
    distances: Any = None,
    seed: int = 0,
    n_boot: int = 1000,
    boot_by: str = "pairs",
    alpha: float = 0.05,
    fars: Sequence[float] = DEFAULT_FARS,
) -> dict[str, Any]:
    """All verification metrics of one score set as a JSON-able dict (None where undefined).

    - ``accuracy``: :func:`kfold_accuracy` when ``folds`` is given; otherwise the accuracy at
      :func:`best_threshold` on the same pairs, marked ``"optimistic": True``.
    - ``confusion``: :func:`confusion_at` with each pair's own fold threshold (pooled over the
      held-out folds), or the best threshold when there are no folds.
    - ``auc``, ``eer`` (with threshold), ``tar_at_far`` for each of ``fars`` (``None`` value
      and a ``reason`` below ``ceil(10 / far)`` impostors), ``d_prime``.
    - ``fnmr_at_fmr``: for each of ``fars`` as FMR, the threshold :func:`threshold_at_fmr` sets
      on the impostors of ``thresholds_from = (labels, scores)`` (e.g. the unmasked control
      pairs, as NIST did) or, without it, on this set's impostors; the FNMR of this set's
      genuine pairs and the FMR of its impostors at that threshold.
    - ``distance_stats``: :func:`distance_stats` when ``distances`` (one per pair) are given.
    - ``ci95`` (or the ``1 - alpha`` level) entries: :func:`bootstrap_ci` with ``n_boot``
      resamples from ``seed``, by ``pairs`` or by ``folds`` (``boot_by``); ``n_boot=0`` skips
      them.
    """
    y, s = _as_pairs(labels, scores)
    _need_both_classes(y, "verification_report")
    if boot_by not in ("pairs", "folds"):
        raise ValueError(f"boot_by must be 'pairs' or 'folds', got {boot_by!r}")
    if boot_by == "folds" and folds is None:
        raise ValueError("boot_by='folds' needs folds")
    gen, imp = s[y], s[~y]
    intervals: dict[str, tuple[float, float] | None] = {}
    if n_boot > 0:  # every interval from the same resamples, drawn once
        stats = ["accuracy", "auc", "eer"]
        stats += [f"tar@{far!r}" for far in fars if imp.size >= min_impostors(far)]
        intervals = bootstrap_intervals(
            stats,
            y,
            s,
            n=n_boot,
            seed=seed,
            alpha=alpha,
            groups=folds if boot_by == "folds" else None,
            folds=folds,
        )

    def ci(stat: str) -> list[float] | None:
        out = intervals.get(stat)
        return None if out is None else list(out)

    report: dict[str, Any] = {
        "n_pairs": int(y.size),
        "n_genuine": int(gen.size),
        "n_impostor": int(imp.size),
        "score_convention": "similarity; accept when score >= threshold",
    }

    if folds is not None:
        acc = kfold_accuracy(y, s, folds)
        _, index = np.unique(_as_folds(folds, y.size), return_inverse=True)
        per_pair = np.asarray(acc["thresholds"])[index]
        report["accuracy"] = {**acc, "value": acc["mean"], "optimistic": False}
        report["confusion"] = {
            **confusion_at(y, s, per_pair),
            "threshold": "per-fold thresholds from kfold_accuracy",
        }
    else:
        thr, value = best_threshold(y, s)
        report["accuracy"] = {"value": value, "threshold": thr, "optimistic": True}
        report["confusion"] = {**confusion_at(y, s, thr), "threshold": thr}
    report["accuracy"]["ci95"] = ci("accuracy")

    report["auc"] = {"value": auc(y, s), "ci95": ci("auc")}
    e, e_thr = eer(y, s)
    report["eer"] = {"value": e, "threshold": e_thr, "ci95": ci("eer")}

    report["tar_at_far"] = {}
    for far in fars:
        entry: dict[str, Any] = {"far": far, "n_impostors": int(imp.size)}
        entry["min_impostors"] = min_impostors(far)
        if imp.size < entry["min_impostors"]:
            entry.update(
                value=None, threshold=None, ci95=None, reason=not_enough_reason(imp.size, far)
            )
        else:
            t = threshold_at_fmr(imp, far)
            entry.update(value=1.0 - fnmr_at_fmr_threshold(gen, t), threshold=t)
            entry["ci95"] = ci(f"tar@{far!r}")
        report["tar_at_far"][_rate_key(far)] = entry

    if thresholds_from is not None:
        cy, cs = _as_pairs(*thresholds_from)
        control_imp, source = cs[~cy], "thresholds_from impostors (control pairs)"
    else:
        control_imp, source = imp, "this set's impostors"
    report["fnmr_at_fmr"] = {}
    for fmr in fars:
        entry = {"fmr": fmr, "threshold_source": source, "n_impostors": int(control_imp.size)}
        if control_imp.size < min_impostors(fmr):
            entry.update(
                value=None, threshold=None, reason=not_enough_reason(control_imp.size, fmr)
            )
        else:
            t = threshold_at_fmr(control_imp, fmr)
            entry.update(
                value=fnmr_at_fmr_threshold(gen, t),
                threshold=t,
                fmr_here=float(np.count_nonzero(imp >= t) / imp.size),
            )
        report["fnmr_at_fmr"][_rate_key(fmr)] = entry

    report["d_prime"] = d_prime(y, s)
    if distances is not None:
        report["distance_stats"] = distance_stats(y, distances)
    report["bootstrap"] = {
        "n": int(n_boot),
        "seed": int(seed),
        "alpha": float(alpha),
        "by": boot_by,
        "method": "percentile",
    }
    return _py(report)
