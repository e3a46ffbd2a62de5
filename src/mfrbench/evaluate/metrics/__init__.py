"""Verification and identification metrics: pure functions over numpy arrays.

Conventions, shared by every function (definitions and sources: ``docs/metrics.md``):

- ``labels``: 1 for a genuine pair (same identity), 0 for an impostor pair; bool or int.
- ``scores``: SIMILARITIES, higher = more likely genuine. Callers negate distances.
- A pair is accepted (declared genuine) at threshold ``t`` when ``score >= t``, as in
  scikit-learn's ``roc_curve``.
- Non-finite scores, labels other than 0/1 and mismatched lengths raise ``ValueError``: a metric
  never silently returns a wrong number. A metric undefined for the data (TAR at a FAR the
  impostor count cannot resolve, d' with zero spread) returns ``None``.

Everything is vectorised: the scores are sorted once per call and every curve is a cumulative
sum over tie groups, so one million pairs take well under a second per metric. The bootstrap
resamples as count weights over the same sorted data, so 1000 resamples are a few matrix
operations instead of 1000 calls; above 20,000 pairs it draws counts of cells of consecutive
scores instead of pairs (:func:`bootstrap_ci`).

One module per job, every public name re-exported here (``metrics.auc``, ...):

- :mod:`~mfrbench.evaluate.metrics.core`: ROC, AUC, EER, TAR at FAR, FMR thresholds, accuracy
  (best threshold, k-fold), confusion, distance statistics, d';
- :mod:`~mfrbench.evaluate.metrics.bootstrap`: the seeded bootstrap engine (:func:`bootstrap_ci`);
- :mod:`~mfrbench.evaluate.metrics.identification`: CMC, rank-1, open-set confidence scores;
- :mod:`~mfrbench.evaluate.metrics.verification`: :func:`verification_report`, assembling the
  above into a report's verification block.
"""

from __future__ import annotations

from mfrbench.evaluate.metrics.bootstrap import bootstrap_ci
from mfrbench.evaluate.metrics.core import (
    MIN_FALSE_ACCEPTS,
    auc,
    best_threshold,
    confusion_at,
    d_prime,
    distance_stats,
    eer,
    fnmr_at_fmr_threshold,
    kfold_accuracy,
    min_impostors,
    roc,
    tar_at_far,
    threshold_at_fmr,
)

# package-private helpers that sibling evaluate modules (``_py``) and tests use
from mfrbench.evaluate.metrics.core import _kfold_rows as _kfold_rows
from mfrbench.evaluate.metrics.core import _prepare as _prepare
from mfrbench.evaluate.metrics.core import _py as _py
from mfrbench.evaluate.metrics.identification import (
    cmc,
    cmc_from_similarities,
    confidence_scores,
    open_set_margin,
    rank1,
)
from mfrbench.evaluate.metrics.verification import (
    DEFAULT_FARS,
    not_enough_reason,
    verification_report,
)

__all__ = [
    "DEFAULT_FARS",
    "MIN_FALSE_ACCEPTS",
    "auc",
    "best_threshold",
    "bootstrap_ci",
    "cmc",
    "cmc_from_similarities",
    "confidence_scores",
    "confusion_at",
    "d_prime",
    "distance_stats",
    "eer",
    "fnmr_at_fmr_threshold",
    "kfold_accuracy",
    "min_impostors",
    "not_enough_reason",
    "open_set_margin",
    "rank1",
    "roc",
    "tar_at_far",
    "threshold_at_fmr",
    "verification_report",
]
