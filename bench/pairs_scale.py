"""Pair generation at dataset scale: seconds and peak memory, no files touched.

    .venv/bin/python bench/pairs_scale.py [--case rmfrd|lfw] [--json]

Cases (each in a fresh subprocess, so peak RSS is its own):

- ``rmfrd``: an RMFRD-sized layout, 525 identities, 5,000 real-masked and 90,000 unmasked
  records (skewed counts per identity, like the real folders), ``rmfrd_pairs`` with
  ``max_per_id=20``. Target: under 10 s and under 1 GiB.
- ``lfw``: an LFW-sized synth manifest, 5,749 identities, 13,233 source photos (heavy-tailed
  counts: most identities have one photo, one has 530), each with an ``unmasked`` and three
  ``mask-<colour>`` variants (52,932 image references), ``lfw_folds`` masked-unmasked, 10 x 300.

Records and image references are synthetic (fake sha256 from the path); nothing is read or
decoded. Reported: seconds to build the inputs, seconds for the strategy, seconds to serialise
the PairSet as canonical JSON (what a protocol file costs), pair and image counts, RSS after
building the inputs and peak RSS (``resource.getrusage``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time

import numpy as np

CASES = ("rmfrd", "lfw")


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _spread(total: int, n: int, alpha: float, rng: np.random.Generator) -> list[int]:
    """``total`` items over ``n`` bins, at least one each, skewed by a Dirichlet(alpha)."""
    return (1 + rng.multinomial(total - n, rng.dirichlet(np.full(n, alpha)))).tolist()


def _fake_sha(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def rmfrd_records() -> list:
    """525 identities, 5,000 masked + 90,000 unmasked records, RMFRD folder names."""
    from mfrbench.datasets.base import Record

    rng = np.random.default_rng(2020)
    n_ids = 525
    masked = _spread(5_000, n_ids, 2.0, rng)
    unmasked = _spread(90_000, n_ids, 0.7, rng)
    records = []
    for k in range(n_ids):
        ident = f"person{k:03d}"
        for folder, count, flag in (
            ("AFDB_masked_face_dataset", masked[k], True),
            ("AFDB_face_dataset", unmasked[k], False),
        ):
            for j in range(count):
                rel = f"{folder}/{ident}/{j:05d}.jpg"
                records.append(Record("rmfrd", ident, rel, _fake_sha(rel), real_mask=flag))
    return records


def lfw_images() -> list[dict]:
    """An LFW-sized synth manifest as image references: 4 variants per source photo."""
    from mfrbench.pairs import IMAGE_KEYS

    rng = np.random.default_rng(2007)
    n_ids, n_photos = 5_749, 13_233
    # 4,069 identities with one photo (as in LFW), one with 530, the rest heavy-tailed.
    counts = [1] * 4_069 + [530]
    rest = n_ids - len(counts)
    counts += _spread(n_photos - sum(counts), rest, 0.3, rng)
    colors = {"black": [0, 0, 0], "white": [255, 255, 255], "blue": [135, 206, 250]}
    blank = dict.fromkeys(IMAGE_KEYS)
    images = []
    for k, count in enumerate(counts):
        ident = f"Person_{k:04d}"
        for j in range(1, count + 1):
            src = f"{ident}/{ident}_{j:04d}.jpg"
            base = {
                **blank,
                "identity": ident,
                "src_path": src,
                "src_sha256": _fake_sha(src),
                "synthetic": True,
                "roi_box": [60, 40, 190, 130],
                "out_wh": [112, 112],
            }
            images.append({**base, "id": f"unmasked:{src}", "variant": "unmasked", "masked": False})
            for name, rgb in colors.items():
                images.append(
                    {
                        **base,
                        "id": f"mask-{name}:{src}",
                        "variant": f"mask-{name}",
                        "masked": True,
                        "color": name,
                        "color_rgb": rgb,
                        "mask_polygon": [[70, 120], [125, 180], [180, 120], [125, 100]],
                    }
                )
    return images


def run_case(case: str) -> dict:
    """Build the inputs, run the strategy, serialise; figures for this process."""
    from mfrbench.pairs import images_from_records, lfw_folds, rmfrd_pairs

    t0 = time.perf_counter()
    if case == "rmfrd":
        records = rmfrd_records()
        n_inputs = len(records)
    else:
        images = lfw_images()
        n_inputs = len(images)
    t1 = time.perf_counter()
    rss_inputs = _rss_mib()
    if case == "rmfrd":
        images = images_from_records(records)
        pairset = rmfrd_pairs(images, max_per_id=20, seed=0)
    else:
        pairset = lfw_folds(images, n_folds=10, per_fold=300, seed=0)
    t2 = time.perf_counter()
    text = json.dumps(pairset.to_dict(), sort_keys=True, separators=(",", ":"))
    t3 = time.perf_counter()
    return {
        "case": case,
        "inputs": n_inputs,
        "build_s": round(t1 - t0, 2),
        "strategy_s": round(t2 - t1, 2),
        "json_s": round(t3 - t2, 2),
        "pairs": len(pairset.pairs),
        "images_used": len(pairset.images),
        "json_mib": round(len(text) / 2**20, 1),
        "rss_after_inputs_mib": round(rss_inputs, 1),
        "peak_rss_mib": round(_peak_mib(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=CASES, help="run one case in this process")
    parser.add_argument("--json", action="store_true", help="print JSON lines only")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case)))
        return
    results = []
    for case in CASES:
        proc = subprocess.run(
            [sys.executable, __file__, "--case", case], capture_output=True, text=True, check=True
        )
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    if args.json:
        for r in results:
            print(json.dumps(r))
        return
    for r in results:
        print(
            f"{r['case']:6s} {r['inputs']:>7,} inputs: build {r['build_s']:.2f} s, "
            f"strategy {r['strategy_s']:.2f} s, json {r['json_s']:.2f} s; "
            f"{r['pairs']:,} pairs over {r['images_used']:,} images ({r['json_mib']} MiB JSON); "
            f"RSS after inputs {r['rss_after_inputs_mib']} MiB, peak {r['peak_rss_mib']} MiB"
        )


if __name__ == "__main__":
    main()
