"""Thresholds that travel: set on one score set, applied to another (docs/metrics.md §7).

Every function here takes genuine scores (exact) and impostors as :class:`ScoreSummary`
(all-vs-all summaries, or the listed impostors kept exactly), through :class:`ScoreSets`:

- :func:`calibration`: the thresholds at FMR 1e-3..1e-5 and at the EER of each pair set, stored
  in a report so that another run can apply them (``mfrbench eval --thresholds-from RUN``);
- :func:`apply_thresholds`: FNMR and FMR of each pair set at given thresholds (a fixed user
  threshold, ``--threshold``; or another run's calibration: NIST's FNMR at the unmasked
  FMR = 1e-5 threshold and the FMR that threshold really gives on masked impostors);
- :func:`dev_eval`: thresholds chosen on a dev set and measured on an eval set (bob's dev ->
  eval): the val split -> the test split when the protocol has val pairs, otherwise each test
  fold with the threshold chosen on the other folds, pooled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mfrbench.evaluate import metrics
from mfrbench.evaluate import summary_metrics as sm
from mfrbench.evaluate.impostors import ScoreSummary, Stratum, merged

Selector = Callable[[np.ndarray], np.ndarray]

#: Rates at which thresholds are calibrated and carried.
CALIBRATION_FMRS: tuple[float, ...] = (1e-3, 1e-4, 1e-5)


def _any(_: int) -> bool:
    return True


@dataclass
class ScoreSets:
    """The scored listed pairs (column arrays) and, optionally, all-vs-all impostor summaries.

    ``sets`` maps a pair-set name (``all``, a pair type) to a boolean mask over the pairs and
    the matching stratum filter over the summaries.
    """

    labels: np.ndarray  # int, 1 genuine
    scores: np.ndarray  # NaN where not scored
    usable: np.ndarray  # bool: scored (status ok)
    split: np.ndarray  # object
    fold: np.ndarray  # int, -1 for none
    pair_type: np.ndarray  # object
    items: Sequence[tuple[Stratum, ScoreSummary]] | None = None

    @property
    def impostor_kind(self) -> str:
        return "all-vs-all impostors" if self.items is not None else "listed impostors"

    def _rows(self, pair_set: str, split: str, fold: Callable[[int], bool]) -> np.ndarray:
        sel = self.usable & (self.split == split)
        if pair_set != "all":
            sel &= self.pair_type == pair_set
        return sel & np.asarray([fold(int(f)) for f in self.fold], dtype=bool)

    def genuine(self, pair_set: str, split: str, fold: Callable[[int], bool] = _any) -> np.ndarray:
        sel = self._rows(pair_set, split, fold) & (self.labels == 1)
        return np.sort(self.scores[sel])

    def impostors(
        self, pair_set: str, split: str, fold: Callable[[int], bool] = _any
    ) -> ScoreSummary | None:
        """The impostors of a pair set in a split (and folds where ``fold(f)``); None: none."""
        if self.items is not None:
            chosen = [
                (s, v)
                for s, v in self.items
                if s.split == split
                and (pair_set == "all" or s.pair_type == pair_set)
                and fold(-1 if s.fold is None else s.fold)
            ]
            out = merged(chosen)
            return out if out is not None and out.n else None
        sel = self._rows(pair_set, split, fold) & (self.labels == 0)
        if not sel.any():
            return None
        s = self.scores[sel]
        return ScoreSummary.exact(s, float(s.min()), float(s.max()) + 1e-12, bins=1)


def _threshold(gen: np.ndarray, imp: ScoreSummary, criterion: str) -> float | None:
    """The threshold a criterion picks on (gen, imp): ``fmr=R`` or ``eer``; None when the
    impostors cannot resolve the rate (fewer than ceil(10 / R))."""
    if criterion == "eer":
        return sm.eer(gen, imp)[1] if gen.size else None
    rate = float(criterion.split("=", 1)[1])
    if imp.n < metrics.min_impostors(rate):
        return None
    return imp.threshold_at_fmr(rate)[0]


def _criteria(fmrs: Sequence[float]) -> list[str]:
    return [f"fmr={r:g}" for r in fmrs] + ["eer"]


def calibration(
    sets: ScoreSets, pair_sets: Sequence[str], fmrs: Sequence[float] = CALIBRATION_FMRS
) -> dict[str, Any]:
    """Thresholds at each FMR and at the EER of each pair set's test pairs (pooled folds)."""
    out: dict[str, Any] = {"impostors": sets.impostor_kind, "sets": {}}
    for name in pair_sets:
        gen, imp = sets.genuine(name, "test", _any), sets.impostors(name, "test", _any)
        if imp is None or not gen.size:
            continue
        out["sets"][name] = {
            "n_genuine": int(gen.size),
            "n_impostors": imp.n,
            "thresholds": {c: _threshold(gen, imp, c) for c in _criteria(fmrs)},
        }
    return metrics._py(out)


def _rates_at(gen: np.ndarray, imp: ScoreSummary | None, t: float) -> dict[str, Any]:
    fnmr = sm.fnmr_at(gen, t) if gen.size else None
    fmr, exact = imp.fmr_at(t) if imp is not None else (None, True)
    hter = None if fnmr is None or fmr is None else (fnmr + fmr) / 2
    return {
        "fnmr": fnmr,
        "fmr": fmr,
        "fmr_exact": exact,
        "hter": hter,
        "n_genuine": int(gen.size),
        "n_impostors": 0 if imp is None else imp.n,
    }


def apply_thresholds(
    sets: ScoreSets, pair_sets: Sequence[str], thresholds: Mapping[str, float | None]
) -> dict[str, Any]:
    """FNMR / FMR / HTER of each pair set's test pairs at each named threshold (score units).

    A threshold set for a target FMR (name ``fmr=R``) also gets ``fmr_shift`` = FMR here / R.
    """
    out: dict[str, Any] = {"impostors": sets.impostor_kind, "sets": {}}
    for name in pair_sets:
        gen, imp = sets.genuine(name, "test", _any), sets.impostors(name, "test", _any)
        rows = {}
        for crit, t in thresholds.items():
            if t is None:
                rows[crit] = {"threshold": None, "reason": "no threshold (not enough data there)"}
                continue
            row = {"threshold": t, **_rates_at(gen, imp, t)}
            if crit.startswith("fmr=") and row["fmr"] is not None:
                row["fmr_shift"] = row["fmr"] / float(crit.split("=", 1)[1])
            rows[crit] = row
        out["sets"][name] = rows
    return metrics._py(out)


def dev_eval(
    sets: ScoreSets, pair_sets: Sequence[str], fmrs: Sequence[float] = CALIBRATION_FMRS
) -> dict[str, Any] | None:
    """Thresholds chosen on dev, rates measured on eval (module docstring); None when the
    protocol has neither val pairs nor two test folds."""
    has_val = bool((sets.usable & (sets.split == "val")).any())
    test_folds = sorted({int(f) for f in sets.fold[sets.usable & (sets.split == "test")]})
    if not has_val and (len(test_folds) < 2 or -1 in test_folds):
        return None
    how = (
        "threshold chosen on the val split, measured on the test split"
        if has_val
        else "each test fold measured at the threshold chosen on the other test folds, "
        "counts pooled over folds"
    )
    out: dict[str, Any] = {"how": how, "impostors": sets.impostor_kind, "sets": {}}
    for name in pair_sets:
        rows: dict[str, Any] = {}
        for crit in [*_criteria(fmrs), "accuracy"]:
            rows[crit] = (
                _dev_eval_one(sets, name, crit, "val", [None])
                if has_val
                else _dev_eval_one(sets, name, crit, "test", test_folds)
            )
        out["sets"][name] = rows
    return metrics._py(out)


def _dev_eval_one(
    sets: ScoreSets, name: str, crit: str, dev_split: str, folds: Sequence[int | None]
) -> dict[str, Any]:
    fn = fm = n_gen = 0.0
    n_imp = 0
    exact = True
    thresholds: list[float] = []
    ev: Callable[[int], bool]
    t: float | None
    for f in folds:
        if f is None:
            dev_gen, dev_imp = sets.genuine(name, dev_split), sets.impostors(name, dev_split)
            ev = _any
            dev_sel = sets._rows(name, dev_split, _any)
        else:

            def in_fold(x: int, f: int = f) -> bool:
                return x == f

            def dv(x: int, f: int = f) -> bool:
                return x != f

            ev = in_fold
            dev_gen, dev_imp = sets.genuine(name, "test", dv), sets.impostors(name, "test", dv)
            dev_sel = sets._rows(name, "test", dv)
        if dev_imp is None or not dev_gen.size:
            return {"threshold": None, "reason": "the dev set has no genuine or no impostor pair"}
        if crit == "accuracy":  # on the listed pairs: all-vs-all impostors would swamp it
            t = metrics.best_threshold(sets.labels[dev_sel], sets.scores[dev_sel])[0]
        else:
            t = _threshold(dev_gen, dev_imp, crit)
        if t is None:
            return {"threshold": None, "reason": f"the dev impostors cannot resolve {crit}"}
        gen, imp = sets.genuine(name, "test", ev), sets.impostors(name, "test", ev)
        thresholds.append(t)
        fn += float(np.searchsorted(gen, t, side="left"))
        n_gen += gen.size
        if imp is not None:
            c, ok = imp.count_at_least(t)
            fm, n_imp, exact = fm + c, n_imp + imp.n, exact and ok
    fnmr = fn / n_gen if n_gen else None
    fmr = fm / n_imp if n_imp else None
    row: dict[str, Any] = {
        "fnmr": fnmr,
        "fmr": fmr,
        "fmr_exact": exact,
        "hter": None if fnmr is None or fmr is None else (fnmr + fmr) / 2,
        "n_genuine": int(n_gen),
        "n_impostors": n_imp,
    }
    if len(thresholds) == 1:
        row["threshold"] = thresholds[0]
    else:
        row["thresholds"] = thresholds
        row["threshold"] = float(np.median(thresholds))
    if crit.startswith("fmr=") and fmr is not None:
        row["fmr_shift"] = fmr / float(crit.split("=", 1)[1])
    return row


def user_threshold(value: float, distance: str) -> float:
    """A ``--threshold`` in the measure's own units as a score threshold: a cosine similarity
    is accepted at ``score >= value``; a distance (euclidean, sql2) at ``distance <= value``,
    i.e. ``score = -distance >= -value``."""
    if not math.isfinite(value):
        raise ValueError("the threshold must be a finite number")
    return float(value) if distance == "cosine" else -float(value)


__all__ = [
    "CALIBRATION_FMRS",
    "ScoreSets",
    "apply_thresholds",
    "calibration",
    "dev_eval",
    "user_threshold",
]
