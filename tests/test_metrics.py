"""Metrics against scikit-learn, brute-force references and hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfrbench.evaluate import metrics as M
from mfrbench.evaluate.metrics import bootstrap as B

sk = pytest.importorskip("sklearn.metrics")


def _data(seed: int, n: int = 600, ties: bool = False, sep: float = 1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.normal(size=n) + sep * y
    if ties:
        s = np.round(s, 1)  # many tied scores, across both classes
    return y, s


CASES = [(seed, ties) for seed in range(4) for ties in (False, True)]


# ---------------------------------------------------------------- against scikit-learn


@pytest.mark.parametrize(("seed", "ties"), CASES)
def test_roc_and_auc_equal_sklearn(seed: int, ties: bool) -> None:
    y, s = _data(seed, ties=ties)
    far, tar, thr = M.roc(y, s)
    ref_far, ref_tar, ref_thr = sk.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_array_equal(far, ref_far)
    np.testing.assert_array_equal(tar, ref_tar)
    np.testing.assert_array_equal(thr, ref_thr)
    assert M.auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize(("seed", "ties"), CASES)
def test_tar_at_far_is_best_sklearn_roc_point(seed: int, ties: bool) -> None:
    y, s = _data(seed, n=4000, ties=ties)
    fpr, tpr, _ = sk.roc_curve(y, s, drop_intermediate=False)
    n_imp = int((y == 0).sum())
    for far in (0.5, 0.1, 0.01):
        expected = tpr[fpr <= math.floor(far * n_imp + 1e-9) / n_imp].max()
        assert M.tar_at_far(y, s, far) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("seed", "ties"), CASES)
def test_confusion_equals_sklearn(seed: int, ties: bool) -> None:
    y, s = _data(seed, ties=ties)
    for t in (-0.5, 0.3, 0.5, 1.2):
        pred = (s >= t).astype(int)
        c = M.confusion_at(y, s, t)
        assert c["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
        assert c["precision"] == pytest.approx(sk.precision_score(y, pred))
        assert c["recall"] == pytest.approx(sk.recall_score(y, pred))
        assert c["f1"] == pytest.approx(sk.f1_score(y, pred))
        assert c["mse"] == pytest.approx(sk.mean_squared_error(y, pred))
        tn, fp, fn, tp = sk.confusion_matrix(y, pred).ravel()
        assert (c["tn"], c["fp"], c["fn"], c["tp"]) == (tn, fp, fn, tp)


def test_confusion_undefined_ratios_are_none_and_mse_prob_is_brier() -> None:
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4])
    c = M.confusion_at(y, s, 10.0)  # nothing accepted
    assert c["precision"] is None and c["recall"] == 0.0 and c["f1"] == 0.0
    assert M.confusion_at([0, 0], [0.1, 0.2], 10.0)["f1"] is None
    prob = np.array([0.1, 0.4, 0.6, 0.8])
    c = M.confusion_at(y, s, 0.25, probabilities=prob)
    assert c["mse_prob"] == pytest.approx(sk.brier_score_loss(y, prob))
    # one threshold per pair
    per_pair = M.confusion_at(y, s, np.array([0.0, 0.3, 0.3, 0.0]))
    assert (per_pair["tp"], per_pair["fp"], per_pair["tn"], per_pair["fn"]) == (2, 1, 1, 0)


# ---------------------------------------------------------------- EER


def test_eer_hand_cases() -> None:
    # crossing exactly on a ROC point: threshold 0.7 accepts 1/3 impostors, rejects 1/3 genuines
    y = [1, 1, 1, 0, 0, 0]
    s = [0.9, 0.8, 0.4, 0.7, 0.3, 0.2]
    assert M.eer(y, s) == pytest.approx((1 / 3, 0.7))
    # crossing inside a diagonal (tied) segment: ROC (0, .5) -> (2/3, .5) at 3/4 of the way
    y = [1, 1, 0, 0, 0]
    s = [3.0, 1.0, 2.0, 2.0, 0.0]
    e, t = M.eer(y, s)
    assert e == pytest.approx(0.5)
    assert t == pytest.approx(2.25)


@pytest.mark.parametrize(("seed", "ties"), CASES)
def test_eer_is_crossing_of_interpolated_roc(seed: int, ties: bool) -> None:
    y, s = _data(seed, ties=ties)
    fpr, tpr, _ = sk.roc_curve(y, s, drop_intermediate=False)
    # dense parametrisation of the piecewise-linear ROC: find where FAR = 1 - TAR
    t = np.linspace(0, 1, 2001)[:, None]
    far_l = fpr[:-1] + t * np.diff(fpr)
    frr_l = 1 - (tpr[:-1] + t * np.diff(tpr))
    k = np.argmin(np.abs(far_l - frr_l))
    e, thr = M.eer(y, s)
    assert e == pytest.approx(far_l.ravel()[k], abs=2e-3)
    # the threshold lies between the two ROC points that bracket the crossing
    frr_at = np.mean(s[y == 1] < thr)
    far_at = np.mean(s[y == 0] >= thr)
    assert min(frr_at, far_at) - 1e-12 <= e <= max(frr_at, far_at) + 1e-12


# ---------------------------------------------------------------- thresholds and k-fold accuracy


def _brute_best(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    u = np.unique(s)
    cands = [u[0], *((u[:-1] + u[1:]) / 2), np.nextafter(u[-1], np.inf)]
    accs = [np.mean((s >= c) == (y == 1)) for c in cands]
    k = int(np.argmax(accs))
    return float(cands[k]), float(accs[k])


@pytest.mark.parametrize(("seed", "ties"), CASES)
def test_best_threshold_matches_brute_force(seed: int, ties: bool) -> None:
    y, s = _data(seed, n=300, ties=ties)
    thr, acc = M.best_threshold(y, s)
    ref_thr, ref_acc = _brute_best(y, s)
    assert acc == pytest.approx(ref_acc, abs=1e-12)
    assert thr == pytest.approx(ref_thr, abs=1e-12)
    assert np.mean((s >= thr) == (y == 1)) == pytest.approx(acc, abs=1e-12)


@pytest.mark.parametrize(("seed", "ties"), CASES)
def test_kfold_accuracy_matches_naive_loop(seed: int, ties: bool) -> None:
    y, s = _data(seed, n=500, ties=ties)
    folds = np.random.default_rng(seed).integers(0, 10, y.size)
    out = M.kfold_accuracy(y, s, folds)
    per_fold, thresholds = [], []
    for f in range(10):
        t, _ = _brute_best(y[folds != f], s[folds != f])
        test = folds == f
        per_fold.append(np.mean((s[test] >= t) == (y[test] == 1)))
        thresholds.append(t)
    np.testing.assert_allclose(out["per_fold"], per_fold, atol=1e-12)
    np.testing.assert_allclose(out["thresholds"], thresholds, atol=1e-12)
    assert out["mean"] == pytest.approx(np.mean(per_fold))
    assert out["std"] == pytest.approx(np.std(per_fold, ddof=1))
    assert out["sem"] == pytest.approx(np.std(per_fold, ddof=1) / math.sqrt(10))


def test_kfold_accuracy_hand_case() -> None:
    # fold A: genuine .9 .6, impostor .4 .7; fold B: genuine .8 .55, impostor .2 .45
    s = [0.9, 0.6, 0.4, 0.7, 0.8, 0.55, 0.2, 0.45]
    y = [1, 1, 0, 0, 1, 1, 0, 0]
    folds = ["A"] * 4 + ["B"] * 4
    out = M.kfold_accuracy(y, s, folds)
    # A held out: B separates perfectly at (.45 + .55) / 2 = .5; on A, .7 impostor passes: 3/4
    # B held out: on A, cuts .5 and .8 both give 3/4, the lower wins; on B everything right
    assert out["folds"] == ["A", "B"]
    np.testing.assert_allclose(out["thresholds"], [0.5, 0.5])
    np.testing.assert_allclose(out["per_fold"], [0.75, 1.0])
    assert out["mean"] == pytest.approx(0.875)
    assert out["std"] == pytest.approx(0.25 / math.sqrt(2))


def test_weighted_kfold_equals_duplicated_pairs() -> None:
    """The bootstrap's count weights give exactly what duplicating the pairs gives."""
    y, s = _data(7, n=200, ties=True)
    folds = np.arange(200) % 5
    counts = np.random.default_rng(1).integers(0, 3, size=200)
    counts[folds == 0] = 0  # a fold drawn zero times
    idx = np.repeat(np.arange(200), counts)
    ref = M.kfold_accuracy(y[idx], s[idx], folds[idx])
    p = M._prepare(y.astype(bool), s)
    acc, thr, weight = M._kfold_rows(p, folds[p.order], 5, counts[p.order][None, :])
    assert weight[0, 0] == 0 and np.isnan(acc[0, 0])
    np.testing.assert_allclose(acc[0, 1:], ref["per_fold"], atol=1e-12)
    np.testing.assert_allclose(thr[0, 1:], ref["thresholds"], atol=1e-12)


# ---------------------------------------------------------------- perfect and random models


def test_perfect_model() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2000)
    s = np.where(y == 1, 1.0, -1.0) + 0.1 * rng.normal(size=y.size)
    folds = np.arange(y.size) % 10
    assert M.kfold_accuracy(y, s, folds)["mean"] == 1.0
    assert M.auc(y, s) == 1.0
    assert M.eer(y, s)[0] == 0.0
    assert M.tar_at_far(y, s, 0.01) == 1.0
    assert M.confusion_at(y, s, M.best_threshold(y, s)[0])["f1"] == 1.0


def test_random_model_auc_is_one_half() -> None:
    rng = np.random.default_rng(4)
    y = np.repeat([0, 1], 5000)
    s = rng.normal(size=y.size)
    sd = math.sqrt((5000 + 5000 + 1) / (12 * 5000 * 5000))  # AUC std under the null
    assert abs(M.auc(y, s) - 0.5) < 4 * sd
    assert abs(M.eer(y, s)[0] - 0.5) < 0.03
    assert abs(M.kfold_accuracy(y, s, np.arange(y.size) % 10)["mean"] - 0.5) < 0.03


# ---------------------------------------------------------------- FAR / FMR operating points


def test_tar_at_far_none_with_too_few_impostors() -> None:
    rng = np.random.default_rng(5)
    for n_imp, expect_none in ((999, True), (1000, False)):
        y = np.r_[np.ones(500), np.zeros(n_imp)]
        s = rng.normal(size=y.size) + y
        assert (M.tar_at_far(y, s, 0.01) is None) == expect_none
    assert M.min_impostors(1e-4) == 100_000 and M.min_impostors(0.1) == 100


def test_threshold_at_fmr_nist_style() -> None:
    rng = np.random.default_rng(6)
    control_imp = rng.normal(size=5000)
    masked_gen = rng.normal(loc=1.5, size=3000)
    for fmr in (0.1, 0.01, 0.001):
        t = M.threshold_at_fmr(control_imp, fmr)
        k = math.floor(fmr * control_imp.size + 1e-9)
        assert np.count_nonzero(control_imp >= t) <= k
        # the next lower impostor score as threshold would exceed the budget
        assert np.count_nonzero(control_imp >= np.max(control_imp[control_imp < t])) > k
        assert M.fnmr_at_fmr_threshold(masked_gen, t) == np.mean(masked_gen < t)
    assert M.threshold_at_fmr([0.1, 0.2], 1.0) == -math.inf


# ---------------------------------------------------------------- distributions


def test_distance_stats_and_d_prime_hand() -> None:
    y = [1, 1, 1, 0, 0, 0, 0]
    d = [0.2, 0.4, 0.9, 1.0, 1.2, 1.4, 2.0]
    out = M.distance_stats(y, d)
    assert out["gmean"] == pytest.approx(0.5) and out["imean"] == pytest.approx(1.4)
    assert out["gmedian"] == pytest.approx(0.4) and out["imedian"] == pytest.approx(1.3)
    assert out["median_gap"] == pytest.approx(0.9) and out["mean_gap"] == pytest.approx(0.9)
    assert M.distance_stats([1, 1], [0.1, 0.2])["imean"] is None
    g, i = np.array(d[:3]), np.array(d[3:])
    expected = (g.mean() - i.mean()) / math.sqrt((g.var() + i.var()) / 2)
    assert M.d_prime(y, d) == pytest.approx(expected)
    assert M.d_prime([1, 1, 0, 0], [1.0, 1.0, 0.0, 0.0]) is None


# ---------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("stat", ["auc", "eer", "tar@0.05", "accuracy"])
def test_bootstrap_vectorised_equals_loop_and_is_deterministic(stat: str) -> None:
    y, s = _data(8, n=400, ties=True)

    def ref(yy: np.ndarray, ss: np.ndarray) -> float | None:
        if yy.all() or not yy.any():
            return None
        if stat == "auc":
            return M.auc(yy, ss)
        if stat == "eer":
            return M.eer(yy, ss)[0]
        if stat == "accuracy":
            return M.best_threshold(yy, ss)[1]
        return 1.0 - M.fnmr_at_fmr_threshold(ss[yy], M.threshold_at_fmr(ss[~yy], 0.05))

    fast = M.bootstrap_ci(stat, y, s, n=200, seed=11)
    slow = M.bootstrap_ci(ref, y, s, n=200, seed=11)
    assert fast == pytest.approx(slow, abs=1e-12)
    assert M.bootstrap_ci(stat, y, s, n=200, seed=11) == fast
    assert M.bootstrap_ci(stat, y, s, n=200, seed=12) != fast


def test_bootstrap_ci_contains_point_estimates() -> None:
    y, s = _data(9, n=2000)
    folds = np.arange(y.size) % 10
    checks = {
        "auc": M.auc(y, s),
        "eer": M.eer(y, s)[0],
        "tar@0.1": M.tar_at_far(y, s, 0.1),
    }
    for stat, point in checks.items():
        lo, hi = M.bootstrap_ci(stat, y, s, n=300, seed=0)
        assert lo < point < hi, stat
    point = M.kfold_accuracy(y, s, folds)["mean"]
    for groups in (None, folds):
        lo, hi = M.bootstrap_ci("accuracy", y, s, n=200, seed=0, folds=folds, groups=groups)
        assert lo < point < hi
    # whole-fold resampling with a callable sees whole folds
    sizes = M.bootstrap_ci(lambda yy, ss: float(yy.size), y, s, n=20, seed=0, groups=folds)
    assert sizes == (2000.0, 2000.0)


def _pooled(monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    """Make every set large enough to be pooled, into about ``budget`` cells."""
    monkeypatch.setattr(B, "EXACT_MAX_PAIRS", 0)
    monkeypatch.setattr(B, "CELL_BUDGET", budget)


def _pair_weights(n: int, rows: int, seed: int) -> np.ndarray:
    """Pair-level bootstrap counts, one resample per row."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(rows)])


def _cell_counts(pool: B.Pool, w: np.ndarray) -> np.ndarray:
    """The cell totals of pair-level weights (in sorted order)."""
    size = pool.cell_size.size
    return np.stack([np.bincount(pool.cell_of_pair, row, size) for row in w]).astype(np.int64)


@pytest.mark.parametrize("ties", [False, True])
def test_pooled_operating_points_equal_pair_level(ties: bool) -> None:
    """EER and TAR from bin totals plus the one bin where they fall are exact."""
    y, s = _data(14, n=3000, ties=ties)
    folds = np.arange(y.size) % 5
    p = M._prepare(y.astype(bool), s)
    pool = B.pool_pairs(p, folds[p.order], 5, budget=300)  # 30 bins of ~100 pairs
    assert pool.n_bins == (30 if not ties else pool.n_bins) and pool.n_bins < p.values.size
    w = _pair_weights(y.size, 40, seed=2)[:, p.order]
    # group bootstrap with one pair per group: each pair weighs its own draw count
    cells = _cell_counts(pool, w)
    d = B.Draws(0, cells, w)
    unit = np.arange(y.size)
    sizes = np.bincount(pool.cell_fold, pool.cell_size)
    for name in ("eer", "tar@0.1", "tar@0.01", "tar@0.002"):
        pooled = B.pooled_statistic(name, pool, sizes, 5, 0, unit)(d)
        exact = B.batched_statistic(name, p, None, 0)(w)
        np.testing.assert_allclose(pooled, exact, rtol=0, atol=1e-12, err_msg=name)
    # unresampled, the within-bin concordance makes the pooled AUC the exact one
    np.testing.assert_allclose(
        B.pooled_statistic("auc", pool, sizes, 5, 0, unit)(B.Draws(0, pool.cell_size[None], None)),
        M.auc(y, s),
        atol=1e-12,
    )


def test_pooled_auc_is_the_pair_level_auc_expected_given_the_cell_counts() -> None:
    """Within a bin, AUC counts the resampled pairs at their expected (original) rate."""
    y, s = _data(21, n=600)
    p = M._prepare(y.astype(bool), s)
    pool = B.pool_pairs(p, None, 0, budget=20)  # 10 bins of 60 pairs
    cells = np.random.default_rng(7).multinomial(y.size, pool.cell_size / y.size, size=1)
    pooled = B.pooled_statistic("auc", pool, None, 0, 0, None)(B.Draws(0, cells, None))[0]
    # the pair-level AUC of many resamples with these cell counts (every bin drawn in full)
    full = []
    for seed in range(400):
        parts = [B.bin_weights(pool, B.Draws(0, cells, None), 0, k, seed, None) for k in range(10)]
        w = np.zeros(y.size, dtype=np.int64)
        gen = np.concatenate([g for g, _ in parts])
        imp = np.concatenate([i for _, i in parts])
        w[p.y == 1], w[p.y == 0] = gen[p.group[p.y == 1]], imp[p.group[p.y == 0]]
        full.append(B.batched_statistic("auc", p, None, 0)(w[None])[0])
    assert pooled == pytest.approx(np.mean(full), abs=4 * np.std(full) / math.sqrt(len(full)))
    assert np.std(full) > 0


def test_pooled_one_bin_per_tie_group_is_exact_for_every_statistic() -> None:
    y, s = _data(15, n=2000, ties=True)  # about 60 distinct scores
    folds = np.arange(y.size) % 4
    p = M._prepare(y.astype(bool), s)
    pool = B.pool_pairs(p, folds[p.order], 4, budget=8 * p.values.size)
    assert pool.n_bins == p.values.size
    w = _pair_weights(y.size, 30, seed=3)[:, p.order]
    cells = _cell_counts(pool, w)
    d = B.Draws(0, cells, None)  # pair bootstrap: no bin is ever split
    sizes = np.bincount(pool.cell_fold, pool.cell_size)
    for name in ("auc", "eer", "tar@0.05", "accuracy"):
        pooled = B.pooled_statistic(name, pool, sizes, 4, 0, None)(d)
        exact = B.batched_statistic(name, p, folds[p.order], 4)(w)
        np.testing.assert_allclose(pooled, exact, rtol=0, atol=1e-12, err_msg=name)


def test_pooled_bin_draws_spread_the_cell_counts() -> None:
    y, s = _data(16, n=2000)
    p = M._prepare(y.astype(bool), s)
    pool = B.pool_pairs(p, None, 0, budget=40)  # 20 bins of 100 pairs
    cells = np.random.default_rng(4).multinomial(y.size, pool.cell_size / y.size, size=3)
    d = B.Draws(10, cells, None)
    for k in (0, 7, 19):
        gen, imp = B.bin_weights(pool, d, 1, k, 5, None)
        c0, c1 = pool.bin_cell0[k], pool.bin_cell0[k + 1]
        by_class = dict(zip(pool.cells.y[c0:c1].tolist(), cells[1, c0:c1].tolist(), strict=True))
        assert (gen.sum(), imp.sum()) == (by_class.get(1, 0), by_class.get(0, 0))
        g0, g1 = pool.bin_group0[k], pool.bin_group0[k + 1]
        # only pairs of the right class get weight
        in_bin = p.y[pool.bin_start[k] : pool.bin_start[k + 1]]
        assert gen.size == g1 - g0 and not gen[in_bin == 0].any() and not imp[in_bin == 1].any()
        # keyed by (seed, resample, bin): the same pairs every time, others for another resample
        again = B.bin_weights(pool, d, 1, k, 5, None)
        assert (again[0] == gen).all() and (again[1] == imp).all()
        other = B.bin_weights(pool, B.Draws(11, cells, None), 0, k, 5, None)
        assert not (other[0] == gen).all() or not (other[1] == imp).all()


@pytest.mark.parametrize("pooled", [False, True])
def test_bootstrap_same_seed_same_interval_however_batched(
    pooled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    y, s = _data(17, n=1500, ties=True)
    folds = np.arange(y.size) % 10
    if pooled:
        _pooled(monkeypatch, 400)
    names = ["accuracy", "auc", "eer", "tar@0.05"]
    ref = {m: M.bootstrap_ci(m, y, s, n=90, seed=4, folds=folds) for m in names}
    grouped = M.bootstrap_ci("eer", y, s, n=90, seed=4, folds=folds, groups=folds)
    monkeypatch.setattr(B, "CHUNK_ELEMENTS", 7 * 1500)  # 7 resamples a batch, or 1
    for m in names:
        assert M.bootstrap_ci(m, y, s, n=90, seed=4, folds=folds) == ref[m], m
    assert M.bootstrap_ci("eer", y, s, n=90, seed=4, folds=folds, groups=folds) == grouped
    assert M.bootstrap_ci("auc", y, s, n=90, seed=5, folds=folds) != ref["auc"]


@pytest.mark.parametrize("pooled", [False, True])
def test_report_intervals_equal_bootstrap_ci(pooled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    y, s = _data(18, n=3000)
    folds = np.arange(y.size) % 10
    if pooled:
        _pooled(monkeypatch, 2000)
    for boot_by, groups in (("pairs", None), ("folds", folds)):
        rep = M.verification_report(y, s, folds, n_boot=60, seed=2, boot_by=boot_by)
        kw = {"n": 60, "seed": 2, "folds": folds, "groups": groups}
        assert rep["accuracy"]["ci95"] == list(M.bootstrap_ci("accuracy", y, s, **kw))
        assert rep["auc"]["ci95"] == list(M.bootstrap_ci("auc", y, s, **kw))
        assert rep["eer"]["ci95"] == list(M.bootstrap_ci("eer", y, s, **kw))
        assert rep["tar_at_far"]["0.01"]["ci95"] == list(M.bootstrap_ci("tar@0.01", y, s, **kw))


def test_pooled_intervals_match_pair_level_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drawing cell counts, then one bin's pairs, resamples like drawing pairs."""
    y, s = _data(19, n=8000)
    exact = {m: M.bootstrap_ci(m, y, s, n=1000, seed=6) for m in ("auc", "eer", "tar@0.01")}
    _pooled(monkeypatch, 512)  # 256 bins of about 31 pairs
    for m, (lo, hi) in exact.items():
        p_lo, p_hi = M.bootstrap_ci(m, y, s, n=1000, seed=6)
        # the 2.5% / 97.5% quantiles of 1000 resamples move by about 2% of the width
        assert abs(p_lo - lo) < 0.1 * (hi - lo) and abs(p_hi - hi) < 0.1 * (hi - lo), m


def test_large_set_auc_interval_has_the_analytic_centre_and_width() -> None:
    """200,000 pairs (pooled): normal scores shifted by 1.5 for genuine pairs."""
    rng = np.random.default_rng(20)
    y = np.repeat([0, 1], 100_000)
    s = rng.normal(size=y.size) + 1.5 * y
    a = float(0.5 * math.erfc(-1.5 / 2))  # P(N(1.5, 1) > N(0, 1)) = Phi(1.5 / sqrt 2)
    assert y.size > B.EXACT_MAX_PAIRS
    lo, hi = M.bootstrap_ci("auc", y, s, n=400, seed=0)
    assert lo < a < hi
    # Hanley & McNeil (1982) standard error of the AUC
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    n1 = n0 = 100_000
    se = math.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0))
    assert hi - lo == pytest.approx(2 * 1.959964 * se, rel=0.2)
    e_lo, e_hi = M.bootstrap_ci("eer", y, s, n=400, seed=0)
    assert e_lo < 0.5 * math.erfc(0.75 / math.sqrt(2)) < e_hi  # EER = Phi(-1.5 / 2)


# ---------------------------------------------------------------- identification


def test_cmc_hand_case() -> None:
    gallery_ids = ["a", "a", "b", "c"]
    sim = np.array(
        [
            [0.2, 0.9, 0.5, 0.1],  # a: best 0.9 -> rank 1
            [0.8, 0.1, 0.6, 0.7],  # b: a .8 > c .7 > b .6 -> rank 3
            [0.3, 0.3, 0.3, 0.3],  # c: all tied -> counted as rank 3 (pessimistic)
            [0.1, 0.2, 0.3, 0.4],  # c: rank 1
        ]
    )
    out = M.cmc_from_similarities(sim, gallery_ids, ["a", "b", "c", "c"], max_rank=4)
    np.testing.assert_allclose(out, [0.5, 0.5, 1.0, 1.0])
    with pytest.raises(ValueError, match="no gallery identity"):
        M.cmc_from_similarities(sim, gallery_ids, ["a", "b", "c", "z"])


def test_cmc_from_embeddings_matches_similarity_matrix() -> None:
    rng = np.random.default_rng(10)
    centres = rng.normal(size=(20, 16))
    g_ids = np.repeat(np.arange(20), 3)
    gallery = centres[g_ids] + 0.5 * rng.normal(size=(60, 16))
    p_ids = np.repeat(np.arange(20), 2)
    probes = centres[p_ids] + 0.8 * rng.normal(size=(40, 16))
    gn = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    pn = probes / np.linalg.norm(probes, axis=1, keepdims=True)
    ref = M.cmc_from_similarities(pn @ gn.T, g_ids, p_ids, max_rank=5)
    out = M.cmc(gallery, g_ids, probes, p_ids, max_rank=5)
    np.testing.assert_allclose(out, ref)
    assert M.rank1(gallery, g_ids, probes, p_ids) == pytest.approx(ref[0])
    assert np.all(np.diff(out) >= 0) and out[0] > 0.5
    dist = np.linalg.norm(probes[:, None] - gallery[None], axis=2)
    ref_e = M.cmc_from_similarities(-dist, g_ids, p_ids, max_rank=5)
    out_e = M.cmc(gallery, g_ids, probes, p_ids, 5, similarity="euclidean")
    np.testing.assert_allclose(out_e, ref_e)


def test_confidence_score_hand_case() -> None:
    # identity 0: mean(1, 3) = 2; identity 1: 0 -> CS = e^2 / ((e^2 + e^0) / 2)
    cs = M.confidence_scores([[1.0, 3.0, 0.0]], [0, 0, 1])
    assert cs[0] == pytest.approx(2 * math.e**2 / (math.e**2 + 1))
    # classifier logits: one column per identity gives the paper's formula directly
    logits = np.array([[2.0, 0.5, -1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    ex = np.exp(logits)
    np.testing.assert_allclose(M.confidence_scores(logits, np.arange(4)), ex.max(1) / ex.mean(1))
    assert M.confidence_scores(logits, np.arange(4), scale=50.0)[0] == pytest.approx(4, rel=1e-6)


def test_open_set_margin_follows_table_6() -> None:
    target = np.arange(1.0, 101.0)  # 15th percentile = 1 + .15 * 99 = 15.85
    nontarget = np.arange(0.0, 100.0) / 10  # 85th percentile = 84.15 / 10
    out = M.open_set_margin(target, nontarget, pct=85)
    assert out["target_value"] == pytest.approx(15.85)
    assert out["nontarget_value"] == pytest.approx(8.415)
    assert out["margin"] == pytest.approx(15.85 - 8.415)
    assert out["threshold"] == out["target_value"]
    assert out["target_accept"] == pytest.approx(0.85)
    assert out["nontarget_accept"] == 0.0


# ---------------------------------------------------------------- report and bad input


def test_verification_report_is_json_and_nan_free() -> None:
    y, s = _data(12, n=3000)
    folds = np.arange(y.size) % 10
    control_y, control_s = _data(13, n=3000, sep=3.0)
    rep = M.verification_report(
        y, s, folds, thresholds_from=(control_y, control_s), distances=-s, n_boot=50
    )
    text = json.dumps(rep, allow_nan=False)
    assert json.loads(text) == rep
    assert rep["accuracy"]["value"] == M.kfold_accuracy(y, s, folds)["mean"]
    assert rep["auc"]["value"] == M.auc(y, s)
    assert rep["tar_at_far"]["0.1"]["value"] == M.tar_at_far(y, s, 0.1)
    assert rep["tar_at_far"]["0.001"]["value"] is None
    assert "not enough data" in rep["tar_at_far"]["0.001"]["reason"]
    t = M.threshold_at_fmr(control_s[control_y == 0], 0.1)
    assert rep["fnmr_at_fmr"]["0.1"]["threshold"] == t
    assert rep["fnmr_at_fmr"]["0.1"]["value"] == M.fnmr_at_fmr_threshold(s[y == 1], t)
    assert rep["confusion"]["accuracy"] == pytest.approx(rep["accuracy"]["value"], abs=1e-3)
    lo, hi = rep["auc"]["ci95"]
    assert lo < rep["auc"]["value"] < hi
    plain = M.verification_report(y, s, n_boot=0)
    assert plain["accuracy"]["optimistic"] is True and plain["auc"]["ci95"] is None


@pytest.mark.parametrize(
    ("labels", "scores", "match"),
    [
        ([0, 1], [0.1, float("nan")], "finite"),
        ([0, 2], [0.1, 0.2], "genuine"),
        ([0, 1, 1], [0.1, 0.2], "length"),
        ([1, 1], [0.1, 0.2], "impostor"),
    ],
)
def test_bad_input_raises(labels, scores, match) -> None:
    with pytest.raises(ValueError, match=match):
        M.auc(labels, scores)


# ---------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 30)), min_size=2, max_size=60
    ).filter(lambda p: len({label for label, _ in p}) == 2),
    steps=st.lists(st.floats(0.01, 100.0), min_size=31, max_size=31),
    offset=st.floats(-1e3, 1e3),
)
def test_rank_metrics_invariant_to_monotone_transforms(pairs, steps, offset) -> None:
    y = np.array([label for label, _ in pairs])
    s = np.array([score for _, score in pairs], dtype=float)
    table = offset + np.cumsum(steps)  # a strictly increasing map of 0..30
    transformed = table[s.astype(int)]
    assert M.auc(y, transformed) == pytest.approx(M.auc(y, s), abs=1e-12)
    assert M.auc(y, transformed) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert M.eer(y, transformed)[0] == pytest.approx(M.eer(y, s)[0], abs=1e-12)
    # rank-based, so also invariant; held-out k-fold accuracy is not (midpoints move)
    assert M.best_threshold(y, transformed)[1] == pytest.approx(M.best_threshold(y, s)[1])
