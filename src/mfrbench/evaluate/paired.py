"""Paired comparison of two runs on the same protocol: the same pairs, scored by both.

Each run decides every test pair of a pair set as it would be reported
(:mod:`~mfrbench.evaluate.headline`): on a fold protocol with the threshold chosen on the other
folds, on a split protocol with the threshold chosen on the val pairs, and only when a
protocol has neither, at the best threshold on the test pairs (flagged optimistic). On the
pairs both runs scored:

- accuracy difference (run B minus run A) with a 95% paired bootstrap interval (pairs
  resampled together, thresholds fixed) and the exact McNemar test on the pairs the runs
  decide differently (two-sided binomial on the discordant pairs);
- AUC difference with a 95% paired bootstrap interval (threshold-free).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from mfrbench.evaluate import metrics
from mfrbench.evaluate.headline import FOLDS, OPTIMISTIC, VAL

_COLUMNS = ("pair_id", "a", "b", "label", "score", "split", "fold", "pair_type", "status")
#: One decided pair: (label, score, decided correctly, "a|b" image ids).
Decision = tuple[int, float, bool, str]


def _columns(scores: pa.Table, pair_set: str) -> dict[str, np.ndarray]:
    t = scores.select(list(_COLUMNS)).to_pydict()
    keep = np.asarray(
        [
            st == "ok" and (pair_set == "all" or pt == pair_set)
            for st, pt in zip(t["status"], t["pair_type"], strict=True)
        ],
        dtype=bool,
    )
    return {
        "pair_id": np.asarray(t["pair_id"], dtype=np.int64)[keep],
        "images": np.asarray([f"{a}|{b}" for a, b in zip(t["a"], t["b"], strict=True)])[keep],
        "label": np.asarray(t["label"], dtype=np.int64)[keep],
        "score": np.asarray(t["score"], dtype=np.float64)[keep],
        "split": np.asarray(t["split"], dtype=object)[keep],
        "fold": np.asarray([-1 if f is None else f for f in t["fold"]], dtype=np.int64)[keep],
    }


def decisions(scores: pa.Table, pair_set: str) -> tuple[dict[int, Decision], str]:
    """``{pair_id: (label, score, decided correctly, image ids)}`` over the test pairs of
    ``pair_set`` (``all`` or a pair type), and how the thresholds were chosen (folds | val |
    optimistic)."""
    c = _columns(scores, pair_set)
    test = c["split"] == "test"
    val = c["split"] == "val"
    y, s, folds = c["label"], c["score"], c["fold"]
    thr = np.full(y.size, np.nan)
    fold_ids = sorted(set(folds[test].tolist()) - {-1})
    if len(fold_ids) >= 2:
        how = FOLDS
        for f in fold_ids:
            train = test & (folds != f)
            thr[test & (folds == f)] = metrics.best_threshold(y[train], s[train])[0]
    elif val.any() and 0 < int(y[val].sum()) < int(val.sum()):
        how = VAL
        thr[test] = metrics.best_threshold(y[val], s[val])[0]
    else:
        how = OPTIMISTIC
        if test.any():
            thr[test] = metrics.best_threshold(y[test], s[test])[0]
    out = {}
    for i in np.flatnonzero(test & np.isfinite(thr)):
        correct = bool((s[i] >= thr[i]) == (y[i] == 1))
        out[int(c["pair_id"][i])] = (int(y[i]), float(s[i]), correct, str(c["images"][i]))
    return out, how


def mcnemar_exact(b_only: int, a_only: int) -> float:
    """Two-sided exact McNemar p-value: ``b_only`` pairs only run B decides correctly,
    ``a_only`` only run A (binomial with p = 1/2 on the discordant pairs)."""
    n = b_only + a_only
    if n == 0:
        return 1.0
    k = min(b_only, a_only)
    log_half = n * math.log(0.5)
    tail = sum(math.exp(_log_comb(n, i) + log_half) for i in range(k + 1))
    return min(1.0, 2.0 * tail)


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _auc_many(y: np.ndarray, s: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """AUC (Mann-Whitney, ties one half) of each resample ``idx[r]`` of the pairs."""
    out = np.empty(idx.shape[0])
    for r, rows in enumerate(idx):
        yy, ss = y[rows], s[rows]
        n1 = int(yy.sum())
        n0 = yy.size - n1
        if n1 == 0 or n0 == 0:
            out[r] = np.nan
            continue
        order = np.argsort(ss, kind="stable")
        ranks = np.empty(ss.size)
        sorted_s = ss[order]
        # average ranks of ties: each run of equal scores gets its mean position (1-based)
        starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
        ends = np.r_[starts[1:], ss.size]
        mean_rank = (starts + ends + 1) / 2.0
        ranks[order] = np.repeat(mean_rank, ends - starts)
        out[r] = (ranks[yy == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    return out


def paired_difference(
    a: Mapping[int, Decision],
    b: Mapping[int, Decision],
    *,
    seed: int = 0,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Run B against run A on the pairs both decided: accuracy and AUC differences (B - A)
    with paired bootstrap 95% intervals, and McNemar's exact test on the decisions.

    Pairs are matched by id and must be the same pairs: the same label and image ids (two
    protocols that differ only in the masks drawn on the same photos, ``pairs --probe-masks``
    or ``synth --masks``, qualify; ``mask-<colour>`` variants of one photo do not)."""
    common = sorted(set(a) & set(b))
    if not common:
        return {"error": "no test pair is scored by both runs"}
    ya = np.asarray([a[i][0] for i in common])
    if any(b[i][0] != a[i][0] or b[i][3] != a[i][3] for i in common):
        return {"error": "not the same pairs (pair ids with other images or labels)"}
    ca = np.asarray([a[i][2] for i in common])
    cb = np.asarray([b[i][2] for i in common])
    sa = np.asarray([a[i][1] for i in common])
    sb = np.asarray([b[i][1] for i in common])
    b_only, a_only = int((cb & ~ca).sum()), int((ca & ~cb).sum())
    out: dict[str, Any] = {
        "n_pairs": len(common),
        "accuracy_a": float(ca.mean()),
        "accuracy_b": float(cb.mean()),
        "delta_accuracy": float(cb.mean() - ca.mean()),
        "mcnemar": {"b_only_correct": b_only, "a_only_correct": a_only,
                    "p_value": mcnemar_exact(b_only, a_only)},
        "delta_auc": float(metrics.auc(ya, sb) - metrics.auc(ya, sa)),
        "n_boot": n_boot,
        "seed": seed,
        "how": "paired bootstrap over pairs (both runs resampled together, thresholds fixed), "
        "percentile 95% intervals; McNemar exact two-sided test on the discordant decisions",
    }  # fmt: skip
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(common), size=(n_boot, len(common)))
        d_acc = cb[idx].mean(axis=1) - ca[idx].mean(axis=1)
        d_auc = _auc_many(ya, sb, idx) - _auc_many(ya, sa, idx)
        out["delta_accuracy_ci95"] = [float(v) for v in np.percentile(d_acc, [2.5, 97.5])]
        finite = d_auc[np.isfinite(d_auc)]
        if finite.size:
            out["delta_auc_ci95"] = [float(v) for v in np.percentile(finite, [2.5, 97.5])]
    return out
