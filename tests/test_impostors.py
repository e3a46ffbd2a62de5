"""All-vs-all impostor summaries and the metrics over them, against brute force on full arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mfrbench.evaluate import impostors as imp_mod
from mfrbench.evaluate import metrics
from mfrbench.evaluate import summary_metrics as sm
from mfrbench.evaluate.impostors import (
    ScoreSummary,
    Stratum,
    all_vs_all,
    impostors_table,
    merged,
    read_impostors,
    score_range,
)


def _embeddings(rng: np.random.Generator, n_ids: int, per_id: int, dim: int = 16):
    """Clustered embeddings: each identity a random centre plus noise (realistic score tails)."""
    centres = rng.normal(size=(n_ids, dim))
    ids = np.repeat(np.arange(n_ids), per_id)
    emb = centres[ids] + 0.9 * rng.normal(size=(ids.size, dim))
    return emb, [f"id{i:03d}" for i in ids]


def _brute(refs, ref_ids, probes, probe_ids, metric):
    r, p = np.asarray(refs, float), np.asarray(probes, float)
    if metric == "euclidean":
        s = -np.linalg.norm(r[:, None, :] - p[None, :, :], axis=2)
    else:
        rn = r / np.linalg.norm(r, axis=1, keepdims=True)
        pn = p / np.linalg.norm(p, axis=1, keepdims=True)
        cos = np.clip(rn @ pn.T, -1, 1)
        s = cos if metric == "cosine" else -(2 - 2 * cos)
    diff = np.asarray(ref_ids)[:, None] != np.asarray(probe_ids)[None, :]
    return s[diff]


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(7)
    refs, ref_ids = _embeddings(rng, 60, 6)  # 360 references
    probes, probe_ids = _embeddings(np.random.default_rng(8), 60, 6)
    return refs, ref_ids, probes, probe_ids


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "sql2"])
def test_all_vs_all_matches_brute_force(sample, metric, monkeypatch):
    # small blocks: many blocks and tail shrinks, the paths the view-2 protocol takes
    monkeypatch.setattr(imp_mod, "REF_BLOCK", 37)
    monkeypatch.setattr(imp_mod, "PROBE_BLOCK", 53)
    refs, ref_ids, probes, probe_ids = sample
    max_norm = max(np.linalg.norm(refs, axis=1).max(), np.linalg.norm(probes, axis=1).max())
    lo, hi = score_range(metric, max_norm)
    summ = all_vs_all(refs, ref_ids, probes, probe_ids, metric, lo, hi)
    full = _brute(refs, ref_ids, probes, probe_ids, metric)

    assert summ.n == full.size == 360 * 360 - 60 * 36  # same-identity pairs left out
    assert (summ.n_references, summ.n_probes) == (360, 360)
    assert int(summ.hist.sum()) == full.size
    assert not summ.exact_all and summ.tail.size >= math.floor(imp_mod.TAIL_FMR * full.size) + 1
    assert np.all(np.diff(summ.tail) <= 0) and summ.tail[-1] == summ.floor
    np.testing.assert_allclose(summ.tail, np.sort(full)[::-1][: summ.tail.size], atol=1e-12)
    for fmr in (1e-2, 1e-3, 1e-4):
        t, exact = summ.threshold_at_fmr(fmr)
        assert exact
        assert t == pytest.approx(metrics.threshold_at_fmr(full, fmr), abs=1e-12)
    mean, var = summ.mean_var()
    assert mean == pytest.approx(full.mean(), abs=1e-9)
    assert var == pytest.approx(full.var(), rel=1e-7)
    # above the floor counts are exact; below it the histogram is within one bin
    for q in (0.5, 0.9, 0.999):
        t = float(np.quantile(full, q))
        c, exact = summ.count_at_least(t)
        truth = int(np.count_nonzero(full >= t))
        if t >= summ.floor:
            assert exact and c == truth
        else:
            width = (hi - lo) / summ.hist.size
            slack = np.count_nonzero((full >= t - width) & (full < t + width))
            assert not exact and abs(c - truth) <= slack


def test_zero_vectors_are_left_out_under_cosine():
    rng = np.random.default_rng(1)
    refs, probes = rng.normal(size=(5, 4)), rng.normal(size=(4, 4))
    refs[2] = 0.0
    summ = all_vs_all(refs, list("abcde"), probes, list("axyz"), "cosine", -1.0, 1.0)
    # 4 usable refs (a, b, d, e) x 4 probes, minus the a-a pair
    assert summ.n == 4 * 4 - 1 and summ.n_references == 4
    assert summ.exact_all  # fewer than 1 / TAIL_FMR scores: all of them in the tail


def test_tail_is_capped(sample, monkeypatch):
    monkeypatch.setattr(imp_mod, "TAIL_MAX", 50)
    monkeypatch.setattr(imp_mod, "REF_BLOCK", 37)
    monkeypatch.setattr(imp_mod, "PROBE_BLOCK", 53)
    refs, ref_ids, probes, probe_ids = sample
    summ = all_vs_all(refs, ref_ids, probes, probe_ids, "cosine", -1.0, 1.0)
    full = np.sort(_brute(refs, ref_ids, probes, probe_ids, "cosine"))[::-1]
    assert 50 <= summ.tail.size <= 51  # 50, and a score tied with the 50th if any
    np.testing.assert_allclose(summ.tail[:50], full[:50], atol=1e-12)
    assert summ.threshold_at_fmr(1e-4)[1]  # 12 scores: inside the tail
    assert not summ.threshold_at_fmr(1e-3)[1]  # 127 scores: from the histogram, and says so


def test_exact_strata_merge_exactly(sample):
    refs, ref_ids, probes, probe_ids = sample  # 63,720 scores per half: every one kept
    a = all_vs_all(refs[:180], ref_ids[:180], probes, probe_ids, "cosine", -1.0, 1.0)
    b = all_vs_all(refs[180:], ref_ids[180:], probes, probe_ids, "cosine", -1.0, 1.0)
    m = a.merge(b)
    full = np.sort(_brute(refs, ref_ids, probes, probe_ids, "cosine"))[::-1]
    assert a.exact_all and b.exact_all and m.exact_all
    np.testing.assert_allclose(m.tail, full, atol=1e-12)


def test_merge_equals_summary_of_the_union(sample, monkeypatch):
    monkeypatch.setattr(imp_mod, "EXACT_MAX", 1000)  # cut tails, as strata of view 2 have
    refs, ref_ids, probes, probe_ids = sample
    lo, hi = -1.0, 1.0
    a = all_vs_all(refs[:180], ref_ids[:180], probes, probe_ids, "cosine", lo, hi)
    b = all_vs_all(refs[180:], ref_ids[180:], probes, probe_ids, "cosine", lo, hi)
    whole = all_vs_all(refs, ref_ids, probes, probe_ids, "cosine", lo, hi)
    m = a.merge(b)
    assert m.n == whole.n and np.array_equal(m.hist, whole.hist)
    assert m.floor == max(a.floor, b.floor)
    # the merged tail is exact down to the higher floor: enough for the rates the field reports
    assert m.tail.size == np.count_nonzero(whole.tail >= m.floor)
    for fmr in (1e-3, 1e-4):
        assert m.threshold_at_fmr(fmr) == whole.threshold_at_fmr(fmr)
    # above the merged tail the threshold comes from the histogram, and says so
    t, exact = m.threshold_at_fmr(1e-2)
    width = 2.0 / m.hist.size
    assert (
        exact or abs(t - whole.threshold_at_fmr(1e-2)[0]) <= width
    ) and t >= whole.threshold_at_fmr(1e-2)[0]
    assert m.mean_var() == pytest.approx(whole.mean_var())
    with pytest.raises(ValueError, match="different score ranges"):
        a.merge(ScoreSummary.empty(-4.0, 0.0))


def test_table_round_trip_and_strata(sample):
    refs, ref_ids, probes, probe_ids = sample
    s1 = all_vs_all(refs[:100], ref_ids[:100], probes, probe_ids, "cosine", -1.0, 1.0)
    s2 = ScoreSummary.exact([0.1, 0.5, -0.2], -1.0, 1.0)
    items = [
        (Stratum("masked-unmasked", "test", 1, "blue"), s1),
        (Stratum("masked-unmasked", "test", 2, "white"), s2),
        (Stratum("unmasked-unmasked", "test", 1, None), s2),
    ]
    back = read_impostors(impostors_table(items))
    assert [s for s, _ in back] == [s for s, _ in items]
    for (_, x), (_, y) in zip(items, back, strict=True):
        assert x.n == y.n and np.array_equal(x.hist, y.hist) and np.array_equal(x.tail, y.tail)
        assert (x.floor, x.total, x.n_probes) == (y.floor, y.total, y.n_probes)
    mu = merged(back, pair_type="masked-unmasked")
    assert mu is not None and mu.n == s1.n + 3
    assert merged(back, pair_type="masked-unmasked", colour="white").n == 3
    assert merged(back, pair_type="masked-masked") is None


# ---------------------------------------------------------------- metrics over summaries


@pytest.fixture(scope="module")
def scored(sample):
    refs, ref_ids, probes, probe_ids = sample
    full = _brute(refs, ref_ids, probes, probe_ids, "cosine")
    with pytest.MonkeyPatch.context() as mp:  # small blocks: the tail is cut, as at scale
        mp.setattr(imp_mod, "REF_BLOCK", 37)
        mp.setattr(imp_mod, "PROBE_BLOCK", 53)
        summ = all_vs_all(refs, ref_ids, probes, probe_ids, "cosine", -1.0, 1.0)
    assert not summ.exact_all
    rng = np.random.default_rng(3)
    genuine = np.clip(rng.normal(0.55, 0.18, size=900), -1, 1)
    return genuine, full, summ


def _labels_scores(genuine, impostor):
    return np.r_[np.ones(genuine.size), np.zeros(impostor.size)], np.r_[genuine, impostor]


def test_summary_metrics_equal_full_array_metrics(scored):
    genuine, full, summ = scored
    y, s = _labels_scores(genuine, full)
    e, _, exact = sm.eer(genuine, summ)
    assert not exact and e == pytest.approx(metrics.eer(y, s)[0], abs=2e-4)
    a, exact = sm.auc(genuine, summ)
    assert not exact and a == pytest.approx(metrics.auc(y, s), abs=1e-5)
    assert sm.d_prime(genuine, summ) == pytest.approx(metrics.d_prime(y, s), rel=1e-6)
    for far in (1e-2, 1e-3, 1e-4):
        entry = sm.tar_at_far(genuine, summ, far)
        assert entry["exact"] and entry["value"] == metrics.tar_at_far(y, s, far)
    # the "not enough data" rule stays: 1e-5 needs 1,000,000 impostors
    low = sm.tar_at_far(genuine, summ, 1e-5)
    assert low["value"] is None and "not enough data" in low["reason"]


def test_exact_summary_is_metrics_module(scored):
    genuine, full, _ = scored
    listed = full[::40]
    ex = ScoreSummary.exact(listed, -1.0, 1.0)
    y, s = _labels_scores(genuine, listed)
    assert ex.exact_all
    e, t, exact = sm.eer(genuine, ex)
    assert exact and (e, t) == metrics.eer(y, s)
    assert sm.auc(genuine, ex) == (metrics.auc(y, s), True)
    rep = sm.summary_report(genuine, ex, fars=(1e-2, 1e-3))
    assert rep["tar_at_far"]["0.01"]["value"] == metrics.tar_at_far(y, s, 1e-2)
    assert rep["tar_at_far"]["0.001"]["value"] is None  # 2,000 listed impostors < 10,000


def test_fnmr_at_control_threshold_and_fmr_shift(scored):
    genuine, full, control = scored
    # "masked" impostors: the same population shifted up, as masks raise impostor scores
    masked_full = full + 0.05
    masked = ScoreSummary.exact(masked_full, -1.0, 1.1)
    for fmr in (1e-3, 1e-4):
        entry = sm.fnmr_at_fmr(genuine - 0.1, masked, control, fmr, "control")
        t = metrics.threshold_at_fmr(full, fmr)
        assert entry["threshold"] == pytest.approx(t, abs=1e-12)
        assert entry["value"] == pytest.approx(np.mean(genuine - 0.1 < t))
        here = np.mean(masked_full >= entry["threshold"])
        assert entry["fmr_here"] == pytest.approx(here) and entry["fmr_here_exact"]
        assert entry["fmr_shift"] == pytest.approx(here / fmr) and entry["fmr_shift"] > 1
