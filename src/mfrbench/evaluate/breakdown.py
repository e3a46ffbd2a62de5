"""Verification metrics of the scored pairs, overall and broken down into pair sets.

:func:`verification_sets` takes the column lists of ``scores.parquet`` (as the evaluator builds
them, or as read back from a score file) and returns the ``verification`` block of a report:
overall, by pair type (masked types take their FNMR@FMR threshold from the unmasked control
pairs when the protocol has them, NIST's method), by mask colour, detector, landmark backend
and dataset mask label, and the val-split threshold applied to the test pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mfrbench.evaluate import metrics
from mfrbench.evaluate.headline import headline, primary_pair_set, wilson_interval
from mfrbench.evaluate.impostors import N_BINS, TAIL_FMR, TAIL_MAX, ScoreSummary, Stratum, merged
from mfrbench.evaluate.summary_metrics import summary_report
from mfrbench.evaluate.thresholds import ScoreSets, apply_thresholds, calibration, dev_eval


def _safe_report(labels: np.ndarray, scores: np.ndarray, **kw: Any) -> dict[str, Any]:
    """verification_report, or ``{"error": ...}`` when the subset cannot support it."""
    if labels.size == 0:
        return {"error": "no scored pairs", "n_pairs": 0}
    n_gen = int(labels.sum())
    if n_gen in (0, labels.size):
        return {
            "error": f"needs genuine and impostor pairs ({n_gen} genuine, "
            f"{labels.size - n_gen} impostor)",
            "n_pairs": int(labels.size),
        }
    folds = kw.get("folds")
    if folds is not None and len(set(np.asarray(folds).tolist())) < 2:
        kw = {**kw, "folds": None}
    try:
        return metrics.verification_report(labels, scores, **kw)
    except ValueError as exc:
        return {"error": str(exc), "n_pairs": int(labels.size)}


def _val_threshold(val: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]):
    """Accuracy etc. on test at the accuracy-maximising threshold of the val pairs, with the
    95% Wilson interval of that accuracy (the threshold fixed) and both pair counts."""
    y, s = val
    if y.size == 0 or int(y.sum()) in (0, y.size) or test[0].size == 0:
        return None
    thr, val_acc = metrics.best_threshold(y, s)
    out = metrics.confusion_at(test[0], test[1], thr)
    n = int(test[0].size)
    return {
        "threshold": thr,
        "val_accuracy": val_acc,
        **out,
        "n_val": int(y.size),
        "n_test": n,
        "ci95": wilson_interval(out["tp"] + out["tn"], n),
    }


def verification_sets(
    cols: dict[str, Any],
    ok: np.ndarray,
    test: np.ndarray,
    val: np.ndarray,
    *,
    use_folds: bool,
    seed: int,
    n_boot: int,
    impostors: Sequence[tuple[Stratum, ScoreSummary]] | None = None,
    threshold: float | None = None,
    carried: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Overall, by pair type, colour, detector and landmark backend; control-pair thresholds
    for masked types. Pairs of two real images (no detector recorded) group as ``real``.

    Beside the listed pairs' metrics: ``all_impostors`` (genuine pairs against the all-vs-all
    impostor summaries, when ``impostors`` is given), ``calibration`` (thresholds at FMR
    1e-3..1e-5 and the EER, for other runs to apply), ``dev_eval`` (dev -> eval thresholds),
    ``fixed_threshold`` (``threshold``, in score units) and ``carried_thresholds`` (``carried``
    = ``{"source": ..., "thresholds": {criterion: score threshold}}`` from another run).
    """
    labels = np.asarray(cols["label"], dtype=np.int64)
    score = np.asarray(cols["score"], dtype=np.float64)
    dist = np.asarray(cols["distance"], dtype=np.float64)
    folds = np.asarray([-1 if f is None else f for f in cols["fold"]], dtype=np.int64)
    ptype = np.asarray(cols["pair_type"], dtype=object)
    colour = np.asarray([c or "none" for c in cols["colour"]], dtype=object)

    has_val = bool((ok & val).any())
    lead = ptype == primary_pair_set(ptype[ok & test].tolist())

    def report(sel: np.ndarray, thresholds_from=None, val_from=None) -> dict[str, Any]:
        """Metrics of the test pairs in ``sel``; on a split protocol also the accuracy at the
        threshold chosen on the val pairs of ``val_from`` (default: ``sel``'s own). Breakdown
        groups (colour, detector, mask label) take the primary pair type's, one threshold
        as a deployed system has, rather than one tuned on a handful of val pairs each."""
        on_val = (sel if val_from is None else val_from) & ok & val
        sel = sel & ok & test
        out = _safe_report(
            labels[sel],
            score[sel],
            folds=folds[sel] if use_folds else None,
            thresholds_from=thresholds_from,
            distances=dist[sel],
            seed=seed,
            n_boot=n_boot,
        )
        if has_val and "error" not in out:
            vt = _val_threshold((labels[on_val], score[on_val]), (labels[sel], score[sel]))
            if vt is not None:  # the honest accuracy of this set (evaluate.headline)
                out["val_threshold"] = vt
        return out

    everything = np.ones(labels.size, dtype=bool)
    out: dict[str, Any] = {"overall": report(everything)}
    control = ok & test & (ptype == "unmasked-unmasked")
    has_control = bool(control.any()) and bool((ok & test & (ptype != "unmasked-unmasked")).any())
    out["control"] = (
        "masked pair types take the threshold set on the unmasked-unmasked control "
        "impostors (NIST's method)"
        if has_control
        else "no unmasked-unmasked control pairs beside masked ones in this protocol, so each "
        "set's threshold comes from its own impostors"
    )
    out["by_pair_type"] = {}
    for t in sorted(set(ptype[ok & test].tolist())):
        ctrl = None
        if has_control and t != "unmasked-unmasked":
            ctrl = (labels[control], score[control])
        out["by_pair_type"][t] = report(ptype == t, ctrl)
    out["by_colour"] = {
        c: report(colour == c, val_from=lead) for c in sorted(set(colour[ok & test].tolist()))
    }
    for key, col, what in (
        ("by_detector", "detector", "a detector"),
        ("by_landmarks", "landmarks", "a landmark backend"),
    ):
        value = np.asarray([v or "none" for v in cols[col]], dtype=object)
        present = sorted(set(value[ok & test].tolist()))
        out[key] = (
            {v: report(value == v, val_from=lead) for v in present}
            if set(present) - {"none"}
            else f"not available: no evaluated pair records {what} (no face was found or "
            "detected for them)"
        )
    _mask_type_breakdown(
        out, cols, lambda sel: report(sel, val_from=lead), labels, score, ok & test
    )
    if has_val:  # the pooled set's, kept where reports have always had it
        out["val_threshold"] = out["overall"].get("val_threshold")
    out["headline"] = headline(out)
    if impostors is not None:
        out["all_impostors"] = _all_impostors_block(
            impostors, labels, score, ok & test, ptype, colour, has_control
        )
    sets = ScoreSets(
        labels,
        np.where(ok, score, np.nan),
        ok,
        np.asarray(cols["split"], dtype=object),
        folds,
        ptype,
        impostors,
    )
    names = ["all", *out["by_pair_type"]]
    out["calibration"] = calibration(sets, names)
    dev = dev_eval(sets, names)
    if dev is not None:
        out["dev_eval"] = dev
    if threshold is not None:
        out["fixed_threshold"] = {
            "threshold": threshold,
            **apply_thresholds(sets, names, {"fixed": threshold}),
        }
    if carried is not None:
        out["carried_thresholds"] = {
            "source": carried["source"],
            **apply_thresholds(sets, names, carried["thresholds"]),
        }
    return out


ALL_IMPOSTORS_HOW = (
    "every probe (b side) of a pair type's listed pairs against every reference (a side) of "
    "another identity in the same split and fold; genuine pairs: the listed ones"
)


def _all_impostors_block(
    items: Sequence[tuple[Stratum, ScoreSummary]],
    labels: np.ndarray,
    score: np.ndarray,
    used: np.ndarray,
    ptype: np.ndarray,
    colour: np.ndarray,
    has_control: bool,
) -> dict[str, Any]:
    """Test genuine pairs against the all-vs-all impostors: by pair type (masked types with the
    unmasked control's thresholds when present) and by mask colour."""
    test_items = [(s, v) for s, v in items if s.split == "test"]
    gen = used & (labels == 1)
    control = merged(test_items, pair_type="unmasked-unmasked") if has_control else None
    out: dict[str, Any] = {
        "how": ALL_IMPOSTORS_HOW,
        "histogram_bins": N_BINS,
        "exact_tail_fmr": TAIL_FMR,
        "exact_tail_max": TAIL_MAX,
        "n_impostors": int(sum(v.n for _, v in test_items)),
        "by_pair_type": {},
        "by_colour": {},
    }
    for t in sorted(set(ptype[used].tolist())):
        imp = merged(test_items, pair_type=t)
        g = score[gen & (ptype == t)]
        if imp is None or not imp.n or not g.size:
            continue
        ctrl = control if t != "unmasked-unmasked" else None
        out["by_pair_type"][t] = summary_report(g, imp, control=ctrl)
    for c in sorted(set(colour[used].tolist())):
        imp = merged(test_items, colour=None if c == "none" else c)
        g = score[gen & (colour == c)]
        if imp is None or not imp.n or not g.size:
            continue
        out["by_colour"][c] = summary_report(g, imp)
    return out


def _mask_type_breakdown(
    out: dict[str, Any],
    cols: dict[str, Any],
    report: Any,
    labels: np.ndarray,
    score: np.ndarray,
    used: np.ndarray,
) -> None:
    """``by_mask_type`` (verification per probe mask label, each with the impostors of that
    label) and ``genuine_by_mask_type_pair`` (genuine pairs per label pair: count, median score
    and FNMR at the overall EER threshold), where the dataset labels masks (MFR2)."""
    pairs = list(cols["mask_type"])
    if not any(v is not None for v in pairs):
        return
    probe = np.asarray(
        [probe_mask_type_of(v) or "no-mask" if v is not None else "unlabelled" for v in pairs],
        dtype=object,
    )
    out["by_mask_type"] = {
        t: report(probe == t) for t in sorted(set(probe[used].tolist())) if t != "unlabelled"
    }
    thr = (out["overall"].get("eer") or {}).get("threshold")
    kinds = np.asarray([v or "unlabelled" for v in pairs], dtype=object)
    genuine = used & (labels == 1)
    rows: dict[str, Any] = {}
    for t in sorted(set(kinds[genuine].tolist()) - {"unlabelled"}):
        sel = genuine & (kinds == t)
        s = score[sel]
        rows[t] = {
            "n_genuine": int(sel.sum()),
            "median_score": float(np.median(s)),
            "fnmr_at_eer_threshold": None if thr is None else float(np.mean(s < thr)),
        }
    out["genuine_by_mask_type_pair"] = {"threshold": thr, "rows": rows}


def probe_mask_type_of(pair_types: str) -> str | None:
    """The masked side's label(s) from a ``mask_type`` pair value (``no-mask`` left out)."""
    values = [v for v in pair_types.split("+") if v != "no-mask"]
    return "+".join(values) if values else None
