"""Thresholds that travel: calibration, dev -> eval, fixed and carried thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from mfrbench.evaluate import metrics
from mfrbench.evaluate.impostors import ScoreSummary, Stratum
from mfrbench.evaluate.thresholds import (
    ScoreSets,
    apply_thresholds,
    calibration,
    dev_eval,
    user_threshold,
)


def _pairs(seed: int = 0, n_folds: int = 4, per_fold: int = 8000, split: str = "test"):
    """Listed pairs: half genuine, scores from two overlapping normals, in folds."""
    rng = np.random.default_rng(seed)
    n = n_folds * per_fold
    labels = np.tile(np.r_[np.ones(per_fold // 2), np.zeros(per_fold // 2)], n_folds)
    scores = np.where(labels == 1, rng.normal(0.6, 0.15, n), rng.normal(0.1, 0.12, n))
    folds = np.repeat(np.arange(1, n_folds + 1), per_fold)
    return labels.astype(np.int64), scores, folds, np.full(n, split, dtype=object)


def _sets(labels, scores, folds, split, items=None, ptype="masked-unmasked"):
    return ScoreSets(
        labels,
        scores,
        np.isfinite(scores),
        split,
        folds,
        np.full(labels.size, ptype, dtype=object),
        items,
    )


def test_user_threshold_units():
    assert user_threshold(0.6, "cosine") == 0.6
    assert user_threshold(0.6, "euclidean") == -0.6  # distance <= 0.6 <=> score >= -0.6
    assert user_threshold(1.2, "sql2") == -1.2
    with pytest.raises(ValueError):
        user_threshold(float("nan"), "cosine")


def test_calibration_and_apply_on_listed_pairs():
    labels, scores, folds, split = _pairs()
    sets = _sets(labels, scores, folds, split)
    cal = calibration(sets, ["all", "masked-unmasked"])
    thr = cal["sets"]["all"]["thresholds"]
    imp = scores[labels == 0]
    assert cal["impostors"] == "listed impostors"
    assert thr["fmr=0.001"] == metrics.threshold_at_fmr(imp, 1e-3)
    assert thr["fmr=0.0001"] is None  # 16,000 impostors cannot resolve 1e-4
    assert thr["eer"] == pytest.approx(metrics.eer(labels, scores)[1], abs=1e-9)

    applied = apply_thresholds(sets, ["all"], {"fixed": 0.35, "fmr=0.001": thr["fmr=0.001"]})
    row = applied["sets"]["all"]["fixed"]
    assert row["fnmr"] == pytest.approx(np.mean(scores[labels == 1] < 0.35))
    assert row["fmr"] == pytest.approx(np.mean(imp >= 0.35))
    assert row["hter"] == pytest.approx((row["fnmr"] + row["fmr"]) / 2)
    shifted = applied["sets"]["all"]["fmr=0.001"]
    assert shifted["fmr"] <= 1e-3 and shifted["fmr_shift"] == pytest.approx(shifted["fmr"] / 1e-3)


def test_dev_eval_cross_fold_matches_brute_force():
    labels, scores, folds, split = _pairs(seed=1)
    out = dev_eval(_sets(labels, scores, folds, split), ["all"])
    assert out is not None and "other test folds" in out["how"]
    row = out["sets"]["all"]["fmr=0.001"]
    fn = fm = 0
    ts = []
    for f in range(1, 5):
        dev, ev = folds != f, folds == f
        t = metrics.threshold_at_fmr(scores[dev & (labels == 0)], 1e-3)
        ts.append(t)
        fn += np.count_nonzero(scores[ev & (labels == 1)] < t)
        fm += np.count_nonzero(scores[ev & (labels == 0)] >= t)
    assert row["thresholds"] == pytest.approx(ts)
    assert row["fnmr"] == pytest.approx(fn / np.count_nonzero(labels == 1))
    assert row["fmr"] == pytest.approx(fm / np.count_nonzero(labels == 0))
    assert row["fmr_shift"] == pytest.approx(row["fmr"] / 1e-3)
    acc = out["sets"]["all"]["accuracy"]
    t0 = metrics.best_threshold(labels[folds != 1], scores[folds != 1])[0]
    assert acc["thresholds"][0] == t0
    # the dev impostors (12,000 per held-out fold) cannot resolve 1e-4: said, not guessed
    assert out["sets"]["all"]["fmr=0.0001"]["threshold"] is None


def test_dev_eval_val_split_to_test():
    labels, scores, folds, _ = _pairs(seed=2, n_folds=2)
    split = np.where(folds == 1, "val", "test").astype(object)
    out = dev_eval(_sets(labels, scores, np.full(labels.size, -1), split), ["all"])
    assert out is not None and "val split" in out["how"]
    val, test = split == "val", split == "test"
    t = metrics.eer(labels[val], scores[val])[1]
    row = out["sets"]["all"]["eer"]
    assert row["threshold"] == pytest.approx(t, abs=1e-9)
    assert row["fnmr"] == pytest.approx(np.mean(scores[test & (labels == 1)] < row["threshold"]))


def test_dev_eval_needs_two_folds_or_val():
    labels, scores, _, split = _pairs(n_folds=1)
    assert dev_eval(_sets(labels, scores, np.full(labels.size, -1), split), ["all"]) is None


def test_all_vs_all_summaries_replace_listed_impostors():
    labels, scores, folds, split = _pairs(seed=3)
    rng = np.random.default_rng(9)
    many = {f: rng.normal(0.1, 0.12, 300_000) for f in range(1, 5)}
    items = [
        (Stratum("masked-unmasked", "test", f, None), ScoreSummary.exact(v, -1.0, 1.0))
        for f, v in many.items()
    ]
    sets = _sets(labels, scores, folds, split, items)
    cal = calibration(sets, ["all"])
    pooled = np.concatenate(list(many.values()))
    assert cal["impostors"] == "all-vs-all impostors"
    assert cal["sets"]["all"]["n_impostors"] == pooled.size
    assert cal["sets"]["all"]["thresholds"]["fmr=1e-05"] == metrics.threshold_at_fmr(pooled, 1e-5)
    row = dev_eval(sets, ["all"])["sets"]["all"]["fmr=0.0001"]
    assert row["n_impostors"] == pooled.size and row["fmr_exact"]
    t1 = metrics.threshold_at_fmr(np.concatenate([many[f] for f in (2, 3, 4)]), 1e-4)
    assert row["thresholds"][0] == t1
