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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfrbench.digest import jsonable

#: FARs / FMRs reported by :func:`verification_report`.
DEFAULT_FARS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)

#: An operating point needs at least this many impostor pairs per expected false accept.
MIN_FALSE_ACCEPTS = 10

_CHUNK_ELEMENTS = 2_000_000  # bootstrap rows per chunk = this // number of pairs


# ---------------------------------------------------------------- validation and preparation


def _as_labels(labels: Any, name: str = "labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {y.shape}")
    if y.dtype == bool:
        return y
    if y.size and not np.isin(y, (0, 1)).all():
        bad = y[~np.isin(y, (0, 1))][0]
        raise ValueError(f"{name} must be 1 (genuine) or 0 (impostor), found {bad!r}")
    return y.astype(bool)


def _as_scores(scores: Any, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {s.shape}")
    finite = np.isfinite(s)
    if not finite.all():
        i = int(np.argmin(finite))
        raise ValueError(f"{name} must be finite; {name}[{i}] is {s[i]}")
    return s


def _as_pairs(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = _as_labels(labels)
    s = _as_scores(scores)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} != {s.size}")
    return y, s


def _need_both_classes(y: np.ndarray, what: str) -> None:
    n_gen = int(np.count_nonzero(y))
    if n_gen == 0 or n_gen == y.size:
        raise ValueError(
            f"{what} needs genuine and impostor pairs; got {n_gen} genuine and "
            f"{y.size - n_gen} impostor"
        )


@dataclass(frozen=True)
class _Sorted:
    """Pairs sorted once by ascending score, with their tie groups (equal scores)."""

    order: np.ndarray  # sorted position -> original index
    y: np.ndarray  # labels in sorted order (int64 0/1)
    values: np.ndarray  # the score of each tie group, ascending, unique
    group: np.ndarray  # tie-group index of each sorted position

    def group_sums(
        self, w: np.ndarray | None = None, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Genuine and impostor weight per tie group, each (B, groups), and the groups' indices.

        ``w`` is (B, n) weights in sorted order (one row per resample) or None for weight 1.
        ``rows`` restricts the sums to those sorted positions (ascending), e.g. one fold; then
        only the tie groups present there are returned, compactly, with their indices.
        """
        y, group = self.y, self.group
        if rows is not None:
            y, group = y[rows], group[rows]
        if w is None:
            ww = np.ones((1, y.size), dtype=np.int64)
        else:
            ww = w if rows is None else w[:, rows]
        new = np.empty(y.size, dtype=bool)
        new[:1] = True
        np.not_equal(group[1:], group[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        gen = ww * y
        if starts.size == y.size:  # no ties: each pair is its own group
            return gen, ww - gen, group
        gen_sum = np.add.reduceat(gen, starts, axis=1)
        return gen_sum, np.add.reduceat(ww, starts, axis=1) - gen_sum, group[starts]


def _prepare(y: np.ndarray, s: np.ndarray) -> _Sorted:
    order = np.argsort(s, kind="stable")
    ss = s[order]
    new = np.empty(ss.size, dtype=bool)
    new[:1] = True
    np.not_equal(ss[1:], ss[:-1], out=new[1:])
    return _Sorted(
        order=order,
        y=y[order].astype(np.int64),
        values=ss[new],
        group=np.cumsum(new) - 1,
    )


def _cumsum1(x: np.ndarray) -> np.ndarray:
    """Cumulative sum along axis 1 with a leading column of zeros."""
    out = np.zeros((x.shape[0], x.shape[1] + 1), dtype=x.dtype)
    np.cumsum(x, axis=1, out=out[:, 1:])
    return out


def _roc_counts(gen: np.ndarray, imp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative impostor and genuine weight accepted at each descending threshold.

    Column 0 is the threshold +inf (nothing accepted); column k accepts the k highest tie
    groups. One row per resample.
    """
    return _cumsum1(imp[:, ::-1]), _cumsum1(gen[:, ::-1])


def _auc_rows(far: np.ndarray, tar: np.ndarray) -> np.ndarray:
    return np.sum(np.diff(far, axis=1) * (tar[:, 1:] + tar[:, :-1]), axis=1) / 2.0


def _eer_rows(far: np.ndarray, tar: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EER per row by linear interpolation on the ROC; also the segment end index and fraction."""
    d = far - (1.0 - tar)  # FAR - FRR: -1 at the first point, +1 at the last, non-decreasing
    i = np.argmax(d >= 0.0, axis=1)
    r = np.arange(far.shape[0])
    d0, d1 = d[r, i - 1], d[r, i]
    a = d0 / (d0 - d1)  # d0 < 0 <= d1, so a is in (0, 1]
    far_x = far[r, i - 1] + a * (far[r, i] - far[r, i - 1])
    frr_x = (1.0 - tar[r, i - 1]) + a * (tar[r, i - 1] - tar[r, i])
    return (far_x + frr_x) / 2.0, i, a


def _max_false_accepts(far: float, n_impostors: np.ndarray | int) -> np.ndarray:
    """Largest impostor count accepted at a false accept rate of at most ``far``."""
    return np.floor(np.asarray(n_impostors, dtype=np.float64) * far + 1e-9)


def _tar_rows(fp: np.ndarray, tp: np.ndarray, far: float) -> np.ndarray:
    k = _max_false_accepts(far, fp[:, -1])
    last = np.sum(fp <= k[:, None], axis=1) - 1  # fp is non-decreasing along each row
    return tp[np.arange(fp.shape[0]), last] / tp[:, -1]


def _check_rate(rate: float, name: str) -> float:
    rate = float(rate)
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {rate}")
    return rate


def min_impostors(far: float) -> int:
    """Fewest impostor pairs that resolve ``far``: ``ceil(10 / far)``, 10 expected false accepts."""
    far = _check_rate(far, "far")
    return math.ceil(MIN_FALSE_ACCEPTS / far - 1e-9)


# ---------------------------------------------------------------- ROC family


def roc(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact ROC curve: false accept rate, true accept rate and the thresholds that give them.

    Equal to ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)``: one point
    per distinct score (tied scores move together, giving diagonal segments), thresholds in
    decreasing order with ``thresholds[0] = inf`` (nothing accepted, FAR = TAR = 0). At
    ``thresholds[k]`` the pairs with ``score >= thresholds[k]`` are accepted.

    Returns ``(far, tar, thresholds)``, each of length (distinct scores + 1).
    """
    y, s = _as_pairs(labels, scores)
    _need_both_classes(y, "roc")
    p = _prepare(y, s)
    gen, imp, _ = p.group_sums()
    fp, tp = _roc_counts(gen, imp)
    thresholds = np.concatenate([[np.inf], p.values[::-1]])
    return fp[0] / float(fp[0, -1]), tp[0] / float(tp[0, -1]), thresholds


def auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve (trapezoidal over :func:`roc`, so a tie counts one half).

    Equals ``sklearn.metrics.roc_auc_score`` and the Mann-Whitney probability
    P(genuine score > impostor score) + P(equal) / 2.
    """
    far, tar, _ = roc(labels, scores)
    return float(_auc_rows(far[None], tar[None])[0])


def eer(labels: Any, scores: Any) -> tuple[float, float]:
    """Equal error rate and its threshold, interpolated where FAR and FRR = 1 - TAR cross.

    The ROC points are joined by straight lines (as :func:`auc` does) and the EER is the rate
    where the segment crosses FAR = FRR. The threshold is the same linear interpolation between
    the two points' thresholds (the upper one when the first segment starts at +inf); applied
    with ``score >= threshold`` it gives one of the two neighbouring ROC points, so its
    empirical FAR and FRR bracket the EER.

    Returns ``(eer, threshold)``.
    """
    far, tar, thresholds = roc(labels, scores)
    e, i, a = _eer_rows(far[None], tar[None])
    i0, frac = int(i[0]), float(a[0])
    lo, hi = thresholds[i0 - 1], thresholds[i0]
    threshold = float(hi) if (i0 == 1 or frac == 1.0) else float(lo + frac * (hi - lo))
    return float(e[0]), threshold


def threshold_at_fmr(impostor_scores: Any, fmr: float) -> float:
    """Lowest threshold whose false match rate on these impostor scores is at most ``fmr``.

    With ``k = floor(fmr * N)`` over N impostor scores, the threshold accepts exactly the scores
    strictly above the (k+1)-th highest impostor score ``v``: it is ``nextafter(v, +inf)``, so
    at most k impostors pass ``score >= threshold``. ``-inf`` when k >= N (accept everything).
    Only impostors set it, as NIST does when it fixes the threshold on one population (e.g.
    unmasked controls) and measures FNMR on another.
    """
    imp = _as_scores(impostor_scores, "impostor_scores")
    fmr = _check_rate(fmr, "fmr")
    if imp.size == 0:
        raise ValueError("threshold_at_fmr needs at least one impostor score")
    k = int(_max_false_accepts(fmr, imp.size))
    if k >= imp.size:
        return -math.inf
    v = np.partition(imp, imp.size - 1 - k)[imp.size - 1 - k]  # (k+1)-th highest
    return float(np.nextafter(v, np.inf))


def fnmr_at_fmr_threshold(genuine_scores: Any, threshold: float) -> float:
    """False non-match rate of genuine scores at a fixed threshold: mean(score < threshold)."""
    gen = _as_scores(genuine_scores, "genuine_scores")
    if gen.size == 0:
        raise ValueError("fnmr_at_fmr_threshold needs at least one genuine score")
    return float(np.count_nonzero(gen < threshold) / gen.size)


def tar_at_far(labels: Any, scores: Any, far: float) -> float | None:
    """True accept rate at the lowest threshold whose FAR is at most ``far``.

    The threshold is :func:`threshold_at_fmr` on the impostor scores, so this is the highest TAR
    of any ROC point with FAR <= ``far`` (no interpolation). ``None`` ("not enough data") when
    there are fewer than ``ceil(10 / far)`` impostors: below that the operating point rests on
    fewer than 10 expected false accepts.
    """
    y, s = _as_pairs(labels, scores)
    _need_both_classes(y, "tar_at_far")
    imp = s[~y]
    if imp.size < min_impostors(far):
        return None
    return 1.0 - fnmr_at_fmr_threshold(s[y], threshold_at_fmr(imp, far))


# ---------------------------------------------------------------- thresholds and accuracy


def _best_cut(
    c_gen: np.ndarray, c_imp: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy-maximising threshold per row; returns (thresholds, accuracies).

    ``c_gen`` / ``c_imp`` (B, groups + 1): genuine / impostor weight in the tie groups below
    each cut (:func:`_cumsum1` of the group sums). Candidates: the lowest present score (accept
    all), the midpoints between consecutive present scores, just above the highest (reject
    all). The first maximum wins, i.e. the lowest threshold. Rows without weight give NaN.
    """
    rows, m = c_gen.shape[0], c_gen.shape[1] - 1
    r = np.arange(rows)
    n_gen = c_gen[:, -1]
    # column j: reject tie groups 0..j-1 (impostors right), accept the rest (genuines right)
    correct = c_imp + (n_gen[:, None] - c_gen)
    j = np.argmax(correct, axis=1)
    total = n_gen + c_imp[:, -1]
    # j == 0: accept all; otherwise group j-1 has weight (it is the first maximum), and the
    # threshold goes halfway to the next group with weight
    present = np.diff(c_gen + c_imp, axis=1) > 0
    after = present & (np.arange(m)[None, :] >= j[:, None])
    nxt = np.argmax(after, axis=1)
    has_next = after[r, nxt]
    lo = values[np.maximum(j - 1, 0)]
    hi = values[nxt]
    mid = 0.5 * lo + 0.5 * hi
    mid = np.where(mid > lo, mid, hi)  # adjacent floats: the midpoint rounds onto lo
    thr = np.where(j == 0, hi, np.where(has_next, mid, np.nextafter(lo, np.inf)))
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = correct[r, j] / total.astype(np.float64)
    bad = total <= 0
    thr[bad] = np.nan
    acc[bad] = np.nan
    return thr, acc


def best_threshold(labels: Any, scores: Any) -> tuple[float, float]:
    """Threshold that maximises accuracy on these pairs, and that accuracy.

    Exact: every distinct decision is tried, with the threshold placed at the midpoint between
    consecutive sorted unique scores (or at the lowest score to accept all, or just above the
    highest to reject all). Ties in accuracy go to the lowest threshold.

    Returns ``(threshold, accuracy)``.
    """
    y, s = _as_pairs(labels, scores)
    if y.size == 0:
        raise ValueError("best_threshold needs at least one pair")
    p = _prepare(y, s)
    gen, imp, _ = p.group_sums()
    thr, acc = _best_cut(_cumsum1(gen), _cumsum1(imp), p.values)
    return float(thr[0]), float(acc[0])


def _as_folds(folds: Any, n: int) -> np.ndarray:
    f = np.asarray(folds)
    if f.shape != (n,):
        raise ValueError(f"folds must give one fold per pair: shape {f.shape} != ({n},)")
    return f


def _kfold_rows(
    p: _Sorted,
    fold_index: np.ndarray,
    n_folds: int,
    w: np.ndarray | None,
    fold_sizes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-fold held-out accuracy, threshold and weight, each (B, n_folds), per weight row.

    ``fold_index`` holds each sorted pair's fold as 0..n_folds-1. A fold's weight is its total
    resampled weight over its size (1 without resampling; a fold drawn twice counts twice);
    folds that lost all their pairs get weight 0 and NaN accuracy. Training sums are all-pairs
    cumulative sums minus the fold's, which are computed on the fold's own tie groups only.
    ``fold_sizes`` gives the folds' pair counts when a position stands for several pairs (the
    bootstrap's pooled cells); by default each position is one pair.
    """
    rows = 1 if w is None else w.shape[0]
    r = np.arange(rows)
    gen_all, imp_all, _ = p.group_sums(w)
    c_gen_all, c_imp_all = _cumsum1(gen_all), _cumsum1(imp_all)
    cuts = np.arange(p.values.size + 1)
    if fold_sizes is None:
        fold_sizes = np.bincount(fold_index, minlength=n_folds)
    sizes = np.asarray(fold_sizes, dtype=np.float64)
    acc = np.full((rows, n_folds), np.nan)
    thr = np.full((rows, n_folds), np.nan)
    weight = np.zeros((rows, n_folds))
    for f in range(n_folds):
        gen_f, imp_f, groups_f = p.group_sums(w, rows=np.flatnonzero(fold_index == f))
        c_gen_f, c_imp_f = _cumsum1(gen_f), _cumsum1(imp_f)
        below = np.searchsorted(groups_f, cuts)  # fold groups below each cut
        t, _ = _best_cut(
            c_gen_all - np.take(c_gen_f, below, axis=1),
            c_imp_all - np.take(c_imp_f, below, axis=1),
            p.values,
        )
        ok = np.isfinite(t)
        j0 = np.searchsorted(p.values, np.where(ok, t, np.inf), side="left")  # first accepted
        k = np.searchsorted(groups_f, j0)
        total = c_gen_f[:, -1] + c_imp_f[:, -1]
        correct = (c_gen_f[:, -1] - c_gen_f[r, k]) + c_imp_f[r, k]
        ok &= total > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            acc[:, f] = np.where(ok, correct / total, np.nan)
        thr[:, f] = t
        weight[:, f] = np.where(ok, total / sizes[f], 0.0)
    return acc, thr, weight


def kfold_accuracy(labels: Any, scores: Any, folds: Any) -> dict[str, Any]:
    """Cross-validated verification accuracy, as the LFW protocol reports it.

    For each fold, the threshold is :func:`best_threshold` on all other folds and accuracy is
    measured on the held-out fold. ``mean`` is the unweighted mean of the per-fold accuracies,
    ``std`` their sample standard deviation (ddof=1) and ``sem = std / sqrt(k)``, the standard
    error LFW publishes as "mean ± S_E".

    Returns ``dict(mean, std, sem, ddof, n_folds, folds, per_fold, thresholds)``; ``folds``
    lists the fold labels in sorted order, matching ``per_fold`` and ``thresholds``.
    """
    y, s = _as_pairs(labels, scores)
    f = _as_folds(folds, y.size)
    names, index = np.unique(f, return_inverse=True)
    if names.size < 2:
        raise ValueError(f"kfold_accuracy needs at least 2 folds, got {names.size}")
    p = _prepare(y, s)
    acc, thr, _ = _kfold_rows(p, index[p.order], names.size, None)
    per_fold = acc[0]
    std = float(np.std(per_fold, ddof=1))
    return {
        "mean": float(np.mean(per_fold)),
        "std": std,
        "sem": std / math.sqrt(names.size),
        "ddof": 1,
        "n_folds": int(names.size),
        "folds": [_py(v) for v in names],
        "per_fold": [float(v) for v in per_fold],
        "thresholds": [float(v) for v in thr[0]],
    }


def confusion_at(
    labels: Any, scores: Any, threshold: Any, probabilities: Any = None
) -> dict[str, Any]:
    """Confusion counts and the Siamese paper's table metrics at a decision threshold.

    A pair is predicted genuine when ``score >= threshold``; ``threshold`` may be a scalar or
    one value per pair (e.g. each pair's cross-validation fold threshold). Genuine is the
    positive class. ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``,
    ``f1 = 2 tp / (2 tp + fp + fn)``; each is ``None`` when its denominator is 0.
    ``mse`` is the mean squared error between the label and the 0/1 decision, which equals the
    error rate ``1 - accuracy``. When ``probabilities`` (model outputs in [0, 1]) are given,
    ``mse_prob`` is the mean squared error between label and probability (the Brier score),
    the MSE a network with a sigmoid output would report.
    """
    y, s = _as_pairs(labels, scores)
    if y.size == 0:
        raise ValueError("confusion_at needs at least one pair")
    t = np.asarray(threshold, dtype=np.float64)
    if t.ndim not in (0, 1) or (t.ndim == 1 and t.shape != y.shape):
        raise ValueError(f"threshold must be a scalar or one value per pair, got {t.shape}")
    if np.isnan(t).any():
        raise ValueError("threshold must not be NaN")
    pred = s >= t
    tp = int(np.count_nonzero(pred & y))
    fp = int(np.count_nonzero(pred & ~y))
    fn = int(np.count_nonzero(~pred & y))
    tn = y.size - tp - fp - fn
    out: dict[str, Any] = {
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "accuracy": (tp + tn) / y.size,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
        "mse": (fp + fn) / y.size,
    }
    if probabilities is not None:
        prob = _as_scores(probabilities, "probabilities")
        if prob.shape != y.shape or ((prob < 0) | (prob > 1)).any():
            raise ValueError("probabilities must give one value in [0, 1] per pair")
        out["mse_prob"] = float(np.mean((y - prob) ** 2))
    return out


# ---------------------------------------------------------------- score distributions


def distance_stats(labels: Any, distances: Any) -> dict[str, Any]:
    """The thesis's GMean / IMean and median genuine / impostor distances (Table 5.1).

    ``distances`` are DISTANCES (lower = more alike), e.g. the squared L2 distance of
    L2-normalised embeddings. ``gmean`` / ``imean``: mean distance over genuine / impostor
    pairs; ``gmedian`` / ``imedian``: their medians; ``mean_gap = imean - gmean`` and
    ``median_gap = imedian - gmedian`` (positive when impostors are farther apart, the thesis's
    Figure 5.5); ``gstd`` / ``istd`` with ddof=0. A class without pairs gives ``None``.
    """
    y, d = _as_pairs(labels, distances)
    gen, imp = d[y], d[~y]

    def stat(x: np.ndarray, fn: Callable[[np.ndarray], Any]) -> float | None:
        return float(fn(x)) if x.size else None

    out: dict[str, Any] = {
        "n_genuine": int(gen.size),
        "n_impostor": int(imp.size),
        "gmean": stat(gen, np.mean),
        "imean": stat(imp, np.mean),
        "gmedian": stat(gen, np.median),
        "imedian": stat(imp, np.median),
        "gstd": stat(gen, np.std),
        "istd": stat(imp, np.std),
    }
    both = gen.size and imp.size
    out["mean_gap"] = out["imean"] - out["gmean"] if both else None
    out["median_gap"] = out["imedian"] - out["gmedian"] if both else None
    return out


def d_prime(labels: Any, scores: Any) -> float | None:
    """Decidability index d' = (mean_g - mean_i) / sqrt((var_g + var_i) / 2).

    Variances with ddof=0. Signed: positive when genuine scores are higher (good for
    similarities). ``None`` when both variances are zero.
    """
    y, s = _as_pairs(labels, scores)
    _need_both_classes(y, "d_prime")
    gen, imp = s[y], s[~y]
    pooled = math.sqrt((float(np.var(gen)) + float(np.var(imp))) / 2.0)
    if pooled == 0.0:
        return None
    return (float(np.mean(gen)) - float(np.mean(imp))) / pooled


# ---------------------------------------------------------------- bootstrap

#: Up to this many pairs a resample reweights every pair; above, pairs are pooled (:class:`_Pool`).
_EXACT_MAX_PAIRS = 20_000

#: Cells (score bin x fold x class) per resample for pooled sets; sets the number of bins.
_CELL_BUDGET = 8192

#: Second seed word of the per-bin streams that draw a pooled bin's pairs (see ``_bin_weights``).
_BIN_STREAM = 0x6D667262


def _batched_statistic(
    name: str,
    p: _Sorted,
    fold_index: np.ndarray | None,
    n_folds: int,
    fold_sizes: np.ndarray | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """Vectorised statistic over (B, n) count weights in sorted order, one value per row."""
    if name in ("auc", "eer") or name.startswith("tar@"):
        far_target = _far_of(name)

        def curve(w: np.ndarray) -> np.ndarray:
            gen, imp, _ = p.group_sums(w)
            fp, tp = _roc_counts(gen, imp)
            fp, tp = fp.astype(np.float64), tp.astype(np.float64)
            ok = (fp[:, -1] > 0) & (tp[:, -1] > 0)
            out = np.full(w.shape[0], np.nan)
            if ok.any():
                fp, tp = fp[ok], tp[ok]
                if name == "auc":
                    out[ok] = _auc_rows(fp / fp[:, -1:], tp / tp[:, -1:])
                elif name == "eer":
                    out[ok] = _eer_rows(fp / fp[:, -1:], tp / tp[:, -1:])[0]
                else:
                    out[ok] = _tar_rows(fp, tp, far_target)
            return out

        return curve
    if name == "accuracy":
        if fold_index is None:

            def best(w: np.ndarray) -> np.ndarray:
                gen, imp, _ = p.group_sums(w)
                return _best_cut(_cumsum1(gen), _cumsum1(imp), p.values)[1]

            return best

        def cv(w: np.ndarray) -> np.ndarray:
            acc, _, weight = _kfold_rows(p, fold_index, n_folds, w, fold_sizes)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.nansum(acc * weight, axis=1) / weight.sum(axis=1)

        return cv
    raise ValueError(
        f"unknown statistic {name!r}: use 'auc', 'eer', 'accuracy', 'tar@FAR' or a callable"
    )


def _far_of(name: str) -> float:
    """The FAR of a ``"tar@FAR"`` statistic name (0 for other names)."""
    if not name.startswith("tar@"):
        return 0.0
    try:
        far = float(name[4:])
    except ValueError:
        raise ValueError(
            f"unknown statistic {name!r}: the FAR in 'tar@FAR' must be a number"
        ) from None
    return _check_rate(far, "far")


@dataclass(frozen=True)
class _Pool:
    """A large pair set pooled for the bootstrap: score bins cut into cells by fold and class.

    The sorted pairs are cut into ``K`` bins of consecutive scores holding about equally many
    pairs and whole tie groups (each tie group its own bin when there are at most ``K`` groups),
    and each bin into cells by fold and class. A resample is a count per cell; the pairs inside
    a bin are drawn only for the one bin where an operating point (EER, TAR at FAR) falls.
    """

    p: _Sorted  # the pairs, sorted
    bin_group0: np.ndarray  # (K + 1,) first tie group of each bin, then the number of groups
    bin_start: np.ndarray  # (K + 1,) first sorted position of each bin, then the pair count
    bin_cell0: np.ndarray  # (K + 1,) first cell of each bin, then the cell count
    cells: _Sorted  # one position per cell: its class, its bin as tie group, bins' lowest scores
    cell_fold: np.ndarray  # (C,) fold index of each cell (0 without folds)
    cell_of_pair: np.ndarray  # (n,) cell of each sorted position
    cell_size: np.ndarray  # (C,) pairs in each cell
    cell_first: np.ndarray  # (C + 1,) where each cell's pairs start in ``member``
    member: np.ndarray  # (n,) sorted positions, cell by cell, ascending within a cell
    concordance: np.ndarray  # (K,) within-bin P(genuine > impostor) + P(tie) / 2; 0.5 if none

    @property
    def n_bins(self) -> int:
        return self.bin_start.size - 1


def _pool(p: _Sorted, fold_index: np.ndarray | None, n_folds: int, budget: int) -> _Pool:
    """Cut sorted pairs into about ``budget`` cells (score bin x fold x class)."""
    n, n_groups = p.y.size, p.values.size
    n_fold_cells = 2 * max(n_folds, 1)
    k = max(1, budget // n_fold_cells)
    group_start = np.searchsorted(p.group, np.arange(n_groups + 1))  # + n at the end
    if n_groups <= k:
        bin_group0 = np.arange(n_groups + 1)
    else:
        first = np.searchsorted(group_start[:-1], np.arange(k) * (n / k), side="left")
        bin_group0 = np.append(np.unique(first[first < n_groups]), n_groups)
    n_bins = bin_group0.size - 1
    bin_start = group_start[bin_group0]
    bin_of_pair = np.repeat(np.arange(n_bins), np.diff(bin_start))
    fold = np.zeros(n, dtype=np.int64) if fold_index is None else fold_index
    key = (bin_of_pair * max(n_folds, 1) + fold) * 2 + p.y
    cell_key, cell_of_pair, cell_size = np.unique(key, return_inverse=True, return_counts=True)
    cell_bin = cell_key // n_fold_cells
    member = np.argsort(cell_of_pair, kind="stable")

    # within-bin concordance: impostors below each genuine inside its bin, ties counting half
    imp = np.concatenate([[0], np.cumsum(1 - p.y)])
    own_start = group_start[p.group]
    below = imp[own_start] - imp[bin_start[bin_of_pair]]
    tied = imp[group_start[p.group + 1]] - imp[own_start]
    gen = p.y == 1
    wins = np.bincount(bin_of_pair[gen], weights=below[gen] + 0.5 * tied[gen], minlength=n_bins)
    n_gen = np.bincount(bin_of_pair, weights=p.y, minlength=n_bins)
    pairs = n_gen * (np.diff(bin_start) - n_gen)
    with np.errstate(invalid="ignore", divide="ignore"):
        concordance = np.where(pairs > 0, wins / pairs, 0.5)

    return _Pool(
        p=p,
        bin_group0=bin_group0,
        bin_start=bin_start,
        bin_cell0=np.searchsorted(cell_bin, np.arange(n_bins + 1)),
        cells=_Sorted(
            order=np.arange(cell_key.size),
            y=(cell_key % 2).astype(np.int64),
            values=p.values[bin_group0[:-1]],
            group=cell_bin,
        ),
        cell_fold=(cell_key // 2) % max(n_folds, 1),
        cell_of_pair=cell_of_pair,
        cell_size=cell_size,
        cell_first=np.concatenate([[0], np.cumsum(cell_size)]),
        member=member,
        concordance=concordance,
    )


@dataclass(frozen=True)
class _Draws:
    """Resamples ``first .. first + B - 1`` of a pooled bootstrap."""

    first: int
    w: np.ndarray  # (B, C) resampled pair count of each cell
    units: np.ndarray | None  # (B, U) times each group was drawn (group bootstrap), else None


def _bin_weights(
    pool: _Pool, d: _Draws, row: int, k: int, seed: int, unit: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor weight of each tie group in bin ``k`` for resample ``d.first + row``.

    Resampling pairs: given the row's cell counts, each cell's count is spread over its pairs
    by drawing that many of them uniformly with replacement, which is the exact conditional law
    of a pair-level draw. The stream is keyed by (seed, resample, bin), so every statistic that
    looks inside this bin of this resample sees the same pairs. Resampling groups: each pair
    weighs its group's count (``unit`` gives each sorted pair's group).
    """
    p = pool.p
    g0, m = pool.bin_group0[k], pool.bin_group0[k + 1] - pool.bin_group0[k]
    if d.units is None:
        c0, c1 = pool.bin_cell0[k], pool.bin_cell0[k + 1]
        t = d.w[row, c0:c1]
        rng = np.random.default_rng([seed, _BIN_STREAM, d.first + row, k])
        pick = rng.integers(0, np.repeat(pool.cell_size[c0:c1], t))
        pos = pool.member[pick + np.repeat(pool.cell_first[c0:c1], t)]
        weight = None
    else:
        assert unit is not None
        pos = np.arange(pool.bin_start[k], pool.bin_start[k + 1])
        weight = d.units[row, unit[pos]]
    local = p.group[pos] - g0
    is_gen = p.y[pos] == 1
    gen = np.bincount(local[is_gen], None if weight is None else weight[is_gen], minlength=m)
    imp = np.bincount(local[~is_gen], None if weight is None else weight[~is_gen], minlength=m)
    return gen.astype(np.int64, copy=False), imp.astype(np.int64, copy=False)


def _pooled_statistic(
    name: str,
    pool: _Pool,
    fold_sizes: np.ndarray | None,
    n_folds: int,
    seed: int,
    unit: np.ndarray | None,
) -> Callable[[_Draws], np.ndarray]:
    """A named statistic over pooled resamples, one value per resample.

    ``fold_sizes`` (pairs per fold) selects k-fold accuracy; ``seed`` keys the bins' pair draws
    and ``unit`` gives each sorted pair's group under the group bootstrap (else None).

    AUC: comparisons between bins exactly, those within a bin at the bin's original concordance
    times its resampled genuine and impostor weight (their expectation given the cell counts).
    EER and TAR at FAR: the bin where the operating point falls is found from the bin totals
    and its pairs are drawn (:func:`_bin_weights`), which makes them exact. Accuracy: the bins
    act as tie groups, so thresholds are chosen among the bin boundaries.
    """
    if name == "accuracy":
        fold_index = None if fold_sizes is None else pool.cell_fold
        stat = _batched_statistic(name, pool.cells, fold_index, n_folds, fold_sizes)
        return lambda d: stat(d.w)
    if name not in ("auc", "eer") and not name.startswith("tar@"):
        _batched_statistic(name, pool.cells, None, 0)  # raises the unknown-name error
    far_target = _far_of(name)
    n_bins = pool.n_bins

    def fine(d: _Draws, rows: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-tie-group weights of each row's bin, highest score first, zero-padded."""
        sizes = pool.bin_group0[bins + 1] - pool.bin_group0[bins]
        width = int(sizes.max()) if sizes.size else 0
        gen = np.zeros((rows.size, width), dtype=np.int64)
        imp = np.zeros((rows.size, width), dtype=np.int64)
        for j, (row, k) in enumerate(zip(rows.tolist(), bins.tolist(), strict=True)):
            g, i = _bin_weights(pool, d, row, k, seed, unit)
            gen[j, : g.size], imp[j, : i.size] = g[::-1], i[::-1]
        return gen, imp

    def curve(d: _Draws) -> np.ndarray:
        gen, imp, _ = pool.cells.group_sums(d.w)  # (B, K): bins as tie groups
        fp, tp = _roc_counts(gen, imp)
        out = np.full(d.w.shape[0], np.nan)
        rows = np.flatnonzero((fp[:, -1] > 0) & (tp[:, -1] > 0))
        if rows.size == 0:
            return out
        fp, tp, gen, imp = fp[rows], tp[rows], gen[rows], imp[rows]
        n_imp = fp[:, -1:].astype(np.float64)
        n_gen = tp[:, -1:].astype(np.float64)
        r = np.arange(rows.size)
        if name == "auc":
            within = np.sum((pool.concordance - 0.5) * gen * imp, axis=1) / (n_imp * n_gen)[:, 0]
            out[rows] = _auc_rows(fp / n_imp, tp / n_gen) + within
        elif name == "eer":
            d_rate = fp / n_imp - (1.0 - tp / n_gen)
            i = np.argmax(d_rate >= 0.0, axis=1)  # step i accepts bin K - i: the crossing's
            f_gen, f_imp = fine(d, rows, n_bins - i)
            fp_f = fp[r, i - 1][:, None] + _cumsum1(f_imp)
            tp_f = tp[r, i - 1][:, None] + _cumsum1(f_gen)
            out[rows] = _eer_rows(fp_f / n_imp, tp_f / n_gen)[0]
        else:
            k = _max_false_accepts(far_target, fp[:, -1])
            last = np.sum(fp <= k[:, None], axis=1) - 1  # last bin step within the budget
            value = tp[r, last] / n_gen[:, 0]
            inside = np.flatnonzero(last < n_bins)  # the exact point lies in bin K - last - 1
            if inside.size:
                f_gen, f_imp = fine(d, rows[inside], n_bins - 1 - last[inside])
                lo = last[inside]
                fp_f = fp[inside, lo][:, None] + _cumsum1(f_imp)
                tp_f = tp[inside, lo][:, None] + _cumsum1(f_gen)
                last_f = np.sum(fp_f <= k[inside, None], axis=1) - 1
                value[inside] = tp_f[np.arange(inside.size), last_f] / n_gen[inside, 0]
            out[rows] = value
        return out

    return curve


def _percentile_interval(values: list[np.ndarray], alpha: float) -> tuple[float, float] | None:
    v = np.concatenate(values)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    lo, hi = np.quantile(v, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def _check_bootstrap_args(y: np.ndarray, n: int, alpha: float) -> None:
    if y.size == 0:
        raise ValueError("bootstrap_ci needs at least one pair")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _units(groups: Any, n: int) -> tuple[np.ndarray, int]:
    """Resampling unit of each pair and the number of units: the pairs, or their groups."""
    if groups is None:
        return np.arange(n), n
    _, unit = np.unique(_as_folds(groups, n), return_inverse=True)
    return unit, int(unit.max()) + 1


def _bootstrap_intervals(
    names: Sequence[str],
    y: np.ndarray,
    s: np.ndarray,
    *,
    n: int,
    seed: int,
    alpha: float,
    groups: Any,
    folds: Any,
) -> dict[str, tuple[float, float] | None]:
    """:func:`bootstrap_ci` for several named statistics on the same resamples."""
    _check_bootstrap_args(y, n, alpha)
    unit, n_units = _units(groups, y.size)
    p = _prepare(y, s)
    fold_index, n_folds = None, 0
    if folds is not None:
        fold_names, idx = np.unique(_as_folds(folds, y.size), return_inverse=True)
        fold_index, n_folds = idx[p.order], fold_names.size
    unit_sorted = unit[p.order]
    rng = np.random.default_rng(seed)
    values: dict[str, list[np.ndarray]] = {name: [] for name in names}

    def unit_counts(rows: int) -> np.ndarray:
        draws = rng.integers(0, n_units, size=(rows, n_units))
        offsets = (np.arange(rows) * n_units)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=rows * n_units)
        # integer count weights: exact sums, and numpy's integer cumsum is the fastest
        return counts.reshape(rows, n_units).astype(np.int64, copy=False)

    if y.size <= _EXACT_MAX_PAIRS:
        stats = {name: _batched_statistic(name, p, fold_index, n_folds) for name in names}
        rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(y.size, n_units))
        for start in range(0, n, rows_per_chunk):
            w = np.take(unit_counts(min(rows_per_chunk, n - start)), unit_sorted, axis=1)
            for name, stat in stats.items():
                values[name].append(stat(w))
    else:
        pool = _pool(p, fold_index, n_folds, _CELL_BUDGET)
        fold_sizes = None
        if fold_index is not None:
            fold_sizes = np.bincount(pool.cell_fold, pool.cell_size, minlength=n_folds)
        pooled = {
            name: _pooled_statistic(name, pool, fold_sizes, n_folds, seed, unit_sorted)
            for name in names
        }
        if groups is not None:  # each cell's count is a sum of its (group, pairs) pieces
            piece, mult = np.unique(pool.cell_of_pair * n_units + unit_sorted, return_counts=True)
            piece_unit = piece % n_units
            piece_start = np.searchsorted(piece // n_units, np.arange(pool.cell_size.size))
        width = pool.cell_size.size if groups is None else max(piece.size, n_units)
        rows_per_chunk = max(1, _CHUNK_ELEMENTS // width)
        p_cell = pool.cell_size / y.size
        for start in range(0, n, rows_per_chunk):
            rows = min(rows_per_chunk, n - start)
            if groups is None:
                d = _Draws(start, rng.multinomial(y.size, p_cell, size=rows), None)
            else:
                counts = unit_counts(rows)
                w = np.add.reduceat(counts[:, piece_unit] * mult, piece_start, axis=1)
                d = _Draws(start, w, counts)
            for name, stat in pooled.items():
                values[name].append(stat(d))
    return {name: _percentile_interval(v, alpha) for name, v in values.items()}


def bootstrap_ci(
    fn: str | Callable[[np.ndarray, np.ndarray], float | None],
    labels: Any,
    scores: Any,
    *,
    n: int = 1000,
    seed: int,
    alpha: float = 0.05,
    groups: Any = None,
    folds: Any = None,
) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval ``(lo, hi)`` of a statistic, seeded.

    Each of the ``n`` resamples draws, with replacement, as many pairs as there are (or, when
    ``groups`` gives each pair a group such as its fold, as many whole groups as there are,
    keeping every pair of a drawn group). The interval is the ``alpha / 2`` and
    ``1 - alpha / 2`` quantiles (numpy's default linear interpolation) of the statistic over
    the resamples where it is defined; ``None`` if it is defined on none.

    ``fn`` is a callable ``fn(labels, scores) -> float | None`` evaluated on each resample, or
    one of these names, computed for all resamples at once from count weights:

    - ``"auc"``, ``"eer"``: as :func:`auc` and the first value of :func:`eer`;
    - ``"tar@FAR"`` (e.g. ``"tar@1e-3"``): TAR at FAR as :func:`tar_at_far`, without the
      minimum-impostor rule (apply it to the point estimate);
    - ``"accuracy"``: with ``folds``, :func:`kfold_accuracy`'s mean, the thresholds re-chosen on
      every resample (a fold drawn twice is held out as one and counts twice in the mean);
      without, :func:`best_threshold`'s accuracy.

    Draws come from ``numpy.random.default_rng(seed)`` in a fixed order, so the same seed gives
    the same interval, however the resamples are batched. Up to 20,000 pairs a named statistic
    and the equivalent callable see the same resamples. Above that, named statistics work on
    pooled cells (``docs/metrics.md``, section 6): about 8192 cells of consecutive scores split
    by fold and class, whose counts are drawn jointly (exactly the totals a pair-level draw
    gives). EER and TAR then draw the pairs of the one bin where they fall and are exact; AUC
    counts the comparisons inside a bin at their expected rate given the cell counts; accuracy
    chooses its thresholds among the bin boundaries. ``folds`` shape the cells, so pass the
    same ``folds`` to reproduce an interval of :func:`verification_report`.
    """
    y, s = _as_pairs(labels, scores)
    if not callable(fn):
        return _bootstrap_intervals(
            [fn], y, s, n=n, seed=seed, alpha=alpha, groups=groups, folds=folds
        )[fn]
    _check_bootstrap_args(y, n, alpha)
    unit, n_units = _units(groups, y.size)
    rng = np.random.default_rng(seed)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(y.size, n_units))
    members = []
    if groups is not None:
        members = np.split(np.argsort(unit, kind="stable"), np.cumsum(np.bincount(unit))[:-1])
    values: list[np.ndarray] = []
    for start in range(0, n, rows_per_chunk):
        draws = rng.integers(0, n_units, size=(min(rows_per_chunk, n - start), n_units))
        for row in draws:
            idx = np.concatenate([members[u] for u in row]) if groups is not None else row
            v = fn(y[idx], s[idx])
            values.append(np.array([np.nan if v is None else float(v)]))
    return _percentile_interval(values, alpha)


# ---------------------------------------------------------------- identification


def _as_embeddings(x: Any, name: str) -> np.ndarray:
    e = np.asarray(x, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (n, dim) array, got shape {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return e


def _unit_rows(e: np.ndarray, name: str) -> np.ndarray:
    norm = np.linalg.norm(e, axis=1, keepdims=True)
    if (norm == 0).any():
        raise ValueError(f"{name} contains a zero vector; cosine similarity is undefined")
    return e / norm


def _identity_groups(gallery_ids: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unique ids, gallery order grouping them, start of each id's block in that order)."""
    ids = np.asarray(gallery_ids)
    if ids.shape != (n,):
        raise ValueError(f"gallery_ids must give one id per gallery item: {ids.shape} != ({n},)")
    names, inverse = np.unique(ids, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(names.size))
    return names, order, starts


def _ranks(id_scores: np.ndarray, true_index: np.ndarray) -> np.ndarray:
    """Rank of each probe's true identity; ties count against it (pessimistic)."""
    true_score = id_scores[np.arange(id_scores.shape[0]), true_index]
    return np.count_nonzero(id_scores >= true_score[:, None], axis=1)


def _true_index(names: np.ndarray, probe_ids: Any, n: int) -> np.ndarray:
    ids = np.asarray(probe_ids)
    if ids.shape != (n,):
        raise ValueError(f"probe_ids must give one id per probe: {ids.shape} != ({n},)")
    pos = np.clip(np.searchsorted(names, ids), 0, names.size - 1)
    missing = names[pos] != ids
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} probe(s) have no gallery identity (closed-set CMC), "
            f"e.g. {ids[missing][0]!r}"
        )
    return pos


def cmc_from_similarities(
    similarities: Any, gallery_ids: Any, probe_ids: Any, max_rank: int = 10
) -> np.ndarray:
    """Closed-set cumulative match characteristic from a probe x gallery similarity matrix.

    An identity's score for a probe is its best (maximum) similarity over that identity's
    gallery items, and identities are ranked by it; the true identity's rank is the number of
    identities scoring at least as high (ties count as misses). ``cmc[k - 1]`` is the fraction
    of probes whose true identity has rank <= k, for k = 1..max_rank. Every probe id must be in
    the gallery.
    """
    sim = np.asarray(similarities, dtype=np.float64)
    if sim.ndim != 2 or 0 in sim.shape:
        raise ValueError(f"similarities must be a non-empty (probes, gallery) array: {sim.shape}")
    if not np.isfinite(sim).all():
        raise ValueError("similarities contain NaN or infinite values")
    if max_rank < 1:
        raise ValueError(f"max_rank must be at least 1, got {max_rank}")
    names, order, starts = _identity_groups(gallery_ids, sim.shape[1])
    true = _true_index(names, probe_ids, sim.shape[0])
    id_scores = np.maximum.reduceat(sim[:, order], starts, axis=1)
    ranks = _ranks(id_scores, true)
    return np.mean(ranks[:, None] <= np.arange(1, max_rank + 1)[None, :], axis=0)


def _similarity_block(probe: np.ndarray, gallery: np.ndarray, similarity: str) -> np.ndarray:
    if similarity == "cosine":
        return probe @ gallery.T
    sq = (probe**2).sum(1)[:, None] + (gallery**2).sum(1)[None, :] - 2.0 * (probe @ gallery.T)
    return -np.sqrt(np.maximum(sq, 0.0))


def cmc(
    gallery_emb: Any,
    gallery_ids: Any,
    probe_emb: Any,
    probe_ids: Any,
    max_rank: int = 10,
    *,
    similarity: str = "cosine",
) -> np.ndarray:
    """Closed-set CMC of probe embeddings against a gallery (e.g. unmasked gallery, masked probes).

    ``similarity`` is ``"cosine"`` (embeddings L2-normalised) or ``"euclidean"`` (negated L2
    distance). Ranking as :func:`cmc_from_similarities`; computed in probe blocks so memory stays
    bounded. Returns an array of length ``max_rank``.
    """
    if similarity not in ("cosine", "euclidean"):
        raise ValueError(f"similarity must be 'cosine' or 'euclidean', got {similarity!r}")
    if max_rank < 1:
        raise ValueError(f"max_rank must be at least 1, got {max_rank}")
    g = _as_embeddings(gallery_emb, "gallery_emb")
    q = _as_embeddings(probe_emb, "probe_emb")
    if g.shape[1] != q.shape[1]:
        raise ValueError(f"embedding sizes differ: gallery {g.shape[1]}, probes {q.shape[1]}")
    if similarity == "cosine":
        g, q = _unit_rows(g, "gallery_emb"), _unit_rows(q, "probe_emb")
    names, order, starts = _identity_groups(gallery_ids, g.shape[0])
    true = _true_index(names, probe_ids, q.shape[0])
    g = g[order]
    block = max(1, _CHUNK_ELEMENTS // g.shape[0])
    ranks = np.empty(q.shape[0], dtype=np.int64)
    for a in range(0, q.shape[0], block):
        sim = _similarity_block(q[a : a + block], g, similarity)
        ranks[a : a + block] = _ranks(np.maximum.reduceat(sim, starts, axis=1), true[a : a + block])
    return np.mean(ranks[:, None] <= np.arange(1, max_rank + 1)[None, :], axis=0)


def rank1(
    gallery_emb: Any,
    gallery_ids: Any,
    probe_emb: Any,
    probe_ids: Any,
    *,
    similarity: str = "cosine",
) -> float:
    """Rank-1 identification rate: the first value of :func:`cmc`."""
    return float(cmc(gallery_emb, gallery_ids, probe_emb, probe_ids, 1, similarity=similarity)[0])


def confidence_scores(similarities: Any, gallery_ids: Any, *, scale: float = 1.0) -> np.ndarray:
    """The LFW masking paper's open-set confidence score, one per probe.

    The paper (eq. 1) defines ``CS = max_k exp(F_k(x)) / ((1/n) sum_k exp(F_k(x)))`` over the
    n = 50 outputs of a classifier, one per enrolled identity. For an embedding model the
    output for identity k is ``F_k = scale * mean similarity of the probe to k's gallery
    items``; so CS is n times the largest softmax probability and lies in [1, n]. Give one
    gallery column per identity (``gallery_ids = range(n)``) to apply the formula to
    classifier logits directly. ``scale`` (an inverse temperature) spreads cosine
    similarities, which live in [-1, 1], over a useful range; CS depends on it and on n, so
    compare scores only under the same gallery and scale.
    """
    sim = np.asarray(similarities, dtype=np.float64)
    if sim.ndim != 2 or 0 in sim.shape:
        raise ValueError(f"similarities must be a non-empty (probes, gallery) array: {sim.shape}")
    if not np.isfinite(sim).all():
        raise ValueError("similarities contain NaN or infinite values")
    _, order, starts = _identity_groups(gallery_ids, sim.shape[1])
    sizes = np.diff(np.append(starts, sim.shape[1]))
    f = scale * np.add.reduceat(sim[:, order], starts, axis=1) / sizes[None, :]
    return 1.0 / np.mean(np.exp(f - f.max(axis=1, keepdims=True)), axis=1)


def open_set_margin(target_scores: Any, nontarget_scores: Any, pct: float = 85.0) -> dict[str, Any]:
    """The LFW masking paper's "exponential margin" between target and non-target CS.

    Following the paper's Table 6 (target 15th percentile 49.61, non-target 85th percentile
    46.18, margin 3.42, strangers rejected below 49.61): with ``pct = 85``, the target value is
    the (100 - pct)th percentile of target confidence scores (85% of targets lie above it), the
    non-target value is the pct-th percentile of non-target scores (85% lie below) and
    ``margin = target_value - nontarget_value``; positive means the two 15% tails do not
    overlap. ``threshold`` is the target value, the paper's stranger-rejection threshold;
    ``target_accept`` / ``nontarget_accept`` are the fractions with ``score >= threshold``.
    Percentiles use numpy's default linear interpolation.
    """
    t = _as_scores(target_scores, "target_scores")
    u = _as_scores(nontarget_scores, "nontarget_scores")
    if t.size == 0 or u.size == 0:
        raise ValueError("open_set_margin needs target and non-target scores")
    if not 50.0 <= pct < 100.0:
        raise ValueError(f"pct must be in [50, 100), got {pct}")
    t_val = float(np.percentile(t, 100.0 - pct))
    u_val = float(np.percentile(u, pct))
    return {
        "pct": float(pct),
        "target_percentile": 100.0 - pct,
        "target_value": t_val,
        "nontarget_percentile": float(pct),
        "nontarget_value": u_val,
        "margin": t_val - u_val,
        "threshold": t_val,
        "target_accept": float(np.mean(t >= t_val)),
        "nontarget_accept": float(np.mean(u >= t_val)),
        "n_target": int(t.size),
        "n_nontarget": int(u.size),
    }


# ---------------------------------------------------------------- report


def _py(x: Any) -> Any:
    """Plain JSON value: numpy scalars to Python, non-finite floats to None, recursively."""
    return jsonable(x, nonfinite="null")


def _rate_key(rate: float) -> str:
    return f"{rate:g}"


def _not_enough(n_impostors: int, rate: float) -> str:
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
        intervals = _bootstrap_intervals(
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
            entry.update(value=None, threshold=None, ci95=None, reason=_not_enough(imp.size, far))
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
            entry.update(value=None, threshold=None, reason=_not_enough(control_imp.size, fmr))
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
