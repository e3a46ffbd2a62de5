"""EER, FNMR at FMR 1% / 0.1% and d' of a run's listed pairs: mfrbench against pyeer.

    python bench/pyeer_check.py RUN_DIR [RUN_DIR ...]

Reads each run's scores.parquet through ``mfrbench report export --format bob-csv`` and
``report_from_scores`` (the path a score file from another tool takes), and gives the same
genuine and impostor scores to pyeer's ``get_eer_stats``. pyeer's EER is the nearest ROC point,
mfrbench's the interpolated crossing (docs/metrics.md §1), so they may differ by up to half a
step of the ROC; the FMR operating points and d' must agree. mfrbench reports no FNMR at an FMR
its impostors cannot resolve (fewer than 10 expected false accepts); pyeer does, so that value
is also printed without the rule.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np


def main() -> None:
    import pyarrow.parquet as pq

    from mfrbench.evaluate.score_files import export_scores, report_from_scores

    with warnings.catch_warnings():  # pyeer imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        from pyeer.eer_info import get_eer_stats

    print("| run | genuine/impostor | EER mfrbench / pyeer | FNMR@FMR1% | FNMR@FMR0.1% | d' |")
    print("|---|---|---|---|---|---|")
    for run in map(Path, sys.argv[1:]):
        t = pq.read_table(run / "scores.parquet", columns=["score", "label", "status", "split"])
        d = t.to_pydict()
        ok = [s == "ok" and sp == "test" for s, sp in zip(d["status"], d["split"], strict=True)]
        s, y = np.asarray(d["score"], float)[ok], np.asarray(d["label"])[ok]
        ref = get_eer_stats(s[y == 1], s[y == 0])
        with tempfile.TemporaryDirectory() as tmp:
            f = export_scores(run, "bob-csv", Path(tmp) / "scores.csv").path
            ours = report_from_scores(f, n_boot=0)["verification"]["overall"]
        fnmr = ours["fnmr_at_fmr"]
        print(
            f"| {run.parent.name} | {int((y == 1).sum())}/{int((y == 0).sum())} | "
            f"{ours['eer']['value']:.4%} / {ref.eer:.4%} | "
            f"{fnmr['0.01']['value']:.4%} / {ref.fmr100:.4%} | "
            f"{_v(fnmr['0.001'])} ({_raw(s, y, 1e-3):.4%} without the rule) / {ref.fmr1000:.4%} | "
            f"{ours['d_prime']:.4f} / {abs(ref.decidability):.4f} |"
        )


def _raw(s: np.ndarray, y: np.ndarray, fmr: float) -> float:
    """FNMR at the FMR threshold, ignoring the 10-expected-false-accepts rule (as pyeer does)."""
    from mfrbench.evaluate import metrics

    t = metrics.threshold_at_fmr(s[y == 0], fmr)
    return metrics.fnmr_at_fmr_threshold(s[y == 1], t)


def _v(entry: dict) -> str:
    return "n/e" if entry.get("value") is None else f"{entry['value']:.4%}"


if __name__ == "__main__":
    main()
