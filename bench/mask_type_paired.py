"""Paired differences between the per-type runs of bench/mask_type_accuracy.sh (same pairs).

    .venv/bin/python bench/mask_type_paired.py WORK "surgical n95 kn95 cloth paper"

Each type against the first, on the masked-unmasked test pairs both scored (evaluate.paired:
the 10-fold decisions, paired bootstrap intervals, McNemar exact test).
"""

import sys
from pathlib import Path

import pyarrow.parquet as pq

from mfrbench.evaluate.paired import decisions, paired_difference

work = Path(sys.argv[1])
types = sys.argv[2].split()
runs = {t: next((work / f"run-{t}").rglob("scores.parquet")) for t in types}
dec = {t: decisions(pq.read_table(p), "masked-unmasked") for t, p in runs.items()}
ref = types[0]
for t in types[1:]:
    d = paired_difference(dec[ref][0], dec[t][0], seed=0, n_boot=1000)
    lo, hi = d["delta_accuracy_ci95"]
    alo, ahi = d["delta_auc_ci95"]
    mc = d["mcnemar"]
    print(
        f"{t} vs {ref} ({dec[t][1]}): n {d['n_pairs']}, accuracy {100 * d['accuracy_a']:.2f} -> "
        f"{100 * d['accuracy_b']:.2f}, delta {100 * d['delta_accuracy']:+.2f} points "
        f"[{100 * lo:+.2f}, {100 * hi:+.2f}], McNemar p {mc['p_value']:.3g} "
        f"({mc['b_only_correct']}/{mc['a_only_correct']}), delta AUC {d['delta_auc']:+.4f} "
        f"[{alo:+.4f}, {ahi:+.4f}]"
    )
