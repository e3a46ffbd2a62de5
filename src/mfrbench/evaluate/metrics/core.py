"""The ROC / threshold core: ROC, AUC, EER, TAR at FAR, thresholds, accuracy, confusion, d'.

Pure functions over one labelled score set, under the conventions of the package docstring
(:mod:`mfrbench.evaluate.metrics`). The validation helpers and the sorted-pairs kernel
(:class:`_Sorted`, the ``_*_rows`` curve functions, :func:`_kfold_rows`) are shared with the
bootstrap, which evaluates the same curves over many weight rows at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfrbench.digest import jsonable

#: An operating point needs at least this many impostor pairs per expected false accept.
MIN_FALSE_ACCEPTS = 10


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


def _py(x: Any) -> Any:
    """Plain JSON value: numpy scalars to Python, non-finite floats to None, recursively."""
    return jsonable(x, nonfinite="null")
