"""Seeded percentile bootstrap of verification statistics, vectorised as count weights.

Up to :data:`EXACT_MAX_PAIRS` pairs a resample is a count per pair (or per group), and a named
statistic is computed for a whole chunk of resamples with the core's curve kernels. Above it the
pairs are pooled into cells of consecutive scores (:class:`Pool`, ``docs/metrics.md``, section
6). :func:`bootstrap_ci` is the entry point; :func:`bootstrap_intervals` gives several statistics
from the same resamples (as :func:`~mfrbench.evaluate.metrics.verification_report` needs).

The engine's pieces are public so tests and tools can check the pooled path against the
pair-level one: the knobs :data:`EXACT_MAX_PAIRS`, :data:`CELL_BUDGET` and
:data:`CHUNK_ELEMENTS` (read at call time, so set them on this module), :func:`pool_pairs`,
:class:`Pool`, :class:`Draws`, :func:`bin_weights`, :func:`batched_statistic` and
:func:`pooled_statistic`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfrbench.evaluate.metrics.core import (
    _as_folds,
    _as_pairs,
    _auc_rows,
    _best_cut,
    _check_rate,
    _cumsum1,
    _eer_rows,
    _kfold_rows,
    _max_false_accepts,
    _prepare,
    _roc_counts,
    _Sorted,
    _tar_rows,
)

#: Up to this many pairs a resample reweights every pair; above, pairs are pooled (:class:`Pool`).
EXACT_MAX_PAIRS = 20_000

#: Cells (score bin x fold x class) per resample for pooled sets; sets the number of bins.
CELL_BUDGET = 8192

#: Weights per batch of resamples: rows per chunk = this // pairs (or cells) per row.
CHUNK_ELEMENTS = 2_000_000

#: Second seed word of the per-bin streams that draw a pooled bin's pairs (see ``bin_weights``).
_BIN_STREAM = 0x6D667262


def batched_statistic(
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
class Pool:
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


def pool_pairs(p: _Sorted, fold_index: np.ndarray | None, n_folds: int, budget: int) -> Pool:
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

    return Pool(
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
class Draws:
    """Resamples ``first .. first + B - 1`` of a pooled bootstrap."""

    first: int
    w: np.ndarray  # (B, C) resampled pair count of each cell
    units: np.ndarray | None  # (B, U) times each group was drawn (group bootstrap), else None


def bin_weights(
    pool: Pool, d: Draws, row: int, k: int, seed: int, unit: np.ndarray | None
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


def pooled_statistic(
    name: str,
    pool: Pool,
    fold_sizes: np.ndarray | None,
    n_folds: int,
    seed: int,
    unit: np.ndarray | None,
) -> Callable[[Draws], np.ndarray]:
    """A named statistic over pooled resamples, one value per resample.

    ``fold_sizes`` (pairs per fold) selects k-fold accuracy; ``seed`` keys the bins' pair draws
    and ``unit`` gives each sorted pair's group under the group bootstrap (else None).

    AUC: comparisons between bins exactly, those within a bin at the bin's original concordance
    times its resampled genuine and impostor weight (their expectation given the cell counts).
    EER and TAR at FAR: the bin where the operating point falls is found from the bin totals
    and its pairs are drawn (:func:`bin_weights`), which makes them exact. Accuracy: the bins
    act as tie groups, so thresholds are chosen among the bin boundaries.
    """
    if name == "accuracy":
        fold_index = None if fold_sizes is None else pool.cell_fold
        stat = batched_statistic(name, pool.cells, fold_index, n_folds, fold_sizes)
        return lambda d: stat(d.w)
    if name not in ("auc", "eer") and not name.startswith("tar@"):
        batched_statistic(name, pool.cells, None, 0)  # raises the unknown-name error
    far_target = _far_of(name)
    n_bins = pool.n_bins

    def fine(d: Draws, rows: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-tie-group weights of each row's bin, highest score first, zero-padded."""
        sizes = pool.bin_group0[bins + 1] - pool.bin_group0[bins]
        width = int(sizes.max()) if sizes.size else 0
        gen = np.zeros((rows.size, width), dtype=np.int64)
        imp = np.zeros((rows.size, width), dtype=np.int64)
        for j, (row, k) in enumerate(zip(rows.tolist(), bins.tolist(), strict=True)):
            g, i = bin_weights(pool, d, row, k, seed, unit)
            gen[j, : g.size], imp[j, : i.size] = g[::-1], i[::-1]
        return gen, imp

    def curve(d: Draws) -> np.ndarray:
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


def bootstrap_intervals(
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

    if y.size <= EXACT_MAX_PAIRS:
        stats = {name: batched_statistic(name, p, fold_index, n_folds) for name in names}
        rows_per_chunk = max(1, CHUNK_ELEMENTS // max(y.size, n_units))
        for start in range(0, n, rows_per_chunk):
            w = np.take(unit_counts(min(rows_per_chunk, n - start)), unit_sorted, axis=1)
            for name, stat in stats.items():
                values[name].append(stat(w))
    else:
        pool = pool_pairs(p, fold_index, n_folds, CELL_BUDGET)
        fold_sizes = None
        if fold_index is not None:
            fold_sizes = np.bincount(pool.cell_fold, pool.cell_size, minlength=n_folds)
        pooled = {
            name: pooled_statistic(name, pool, fold_sizes, n_folds, seed, unit_sorted)
            for name in names
        }
        if groups is not None:  # each cell's count is a sum of its (group, pairs) pieces
            piece, mult = np.unique(pool.cell_of_pair * n_units + unit_sorted, return_counts=True)
            piece_unit = piece % n_units
            piece_start = np.searchsorted(piece // n_units, np.arange(pool.cell_size.size))
        width = pool.cell_size.size if groups is None else max(piece.size, n_units)
        rows_per_chunk = max(1, CHUNK_ELEMENTS // width)
        p_cell = pool.cell_size / y.size
        for start in range(0, n, rows_per_chunk):
            rows = min(rows_per_chunk, n - start)
            if groups is None:
                d = Draws(start, rng.multinomial(y.size, p_cell, size=rows), None)
            else:
                counts = unit_counts(rows)
                w = np.add.reduceat(counts[:, piece_unit] * mult, piece_start, axis=1)
                d = Draws(start, w, counts)
            for name, pooled_stat in pooled.items():
                values[name].append(pooled_stat(d))
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
        return bootstrap_intervals(
            [fn], y, s, n=n, seed=seed, alpha=alpha, groups=groups, folds=folds
        )[fn]
    _check_bootstrap_args(y, n, alpha)
    unit, n_units = _units(groups, y.size)
    rng = np.random.default_rng(seed)
    rows_per_chunk = max(1, CHUNK_ELEMENTS // max(y.size, n_units))
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
