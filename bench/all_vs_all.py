"""All-vs-all impostor scoring + metrics: time and peak memory, and memory as the images double.

    python bench/all_vs_all.py                      # synthetic: N, 2N, 4N images (N = 4,600)
    python bench/all_vs_all.py --view2 --root ../shared/data/lfw   # + the real view-2 run

Synthetic part: N 128-D embeddings of LFW-like identities (the view-2 test split has about
4,600 distinct probe and reference images), every probe against every reference of another
identity in one stratum (split-wide, no folds: N^2 scores, 21 million at N = 4,600), then every
summary metric against 3,000 genuine scores. Each size runs in a fresh child process so its
peak RSS (``ru_maxrss``) is its own; the baseline RSS after imports and embeddings is printed
beside it. "Working memory" is the peak of everything allocated during scoring + metrics
(``tracemalloc``, which numpy reports to), measured on a second, traced pass: RSS also holds
what glibc keeps after freeing large blocks (its dynamic mmap threshold), which
``MALLOC_MMAP_THRESHOLD_=131072`` removes.

``--view2``: ``mfrbench eval --impostors all`` of plugin:dlib-resnet on
``protocols/lfw-view2-unmasked-v1.json`` from a warm embedding cache, in a child process; the
run's own timings (impostors, metrics) and the child's peak RSS. Needs the embeddings cached
(one cold run takes about 8 minutes here).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_synthetic(n: int, seed: int) -> dict:
    import numpy as np

    from mfrbench.evaluate.impostors import all_vs_all, score_range
    from mfrbench.evaluate.summary_metrics import summary_report

    rng = np.random.default_rng(seed)
    n_ids = max(n // 2, 1)  # LFW view 2: about two images per identity in a fold
    centres = rng.normal(size=(n_ids, 128)).astype(np.float32)
    ids = rng.integers(0, n_ids, size=(2, n))
    refs = centres[ids[0]] + 1.2 * rng.normal(size=(n, 128)).astype(np.float32)
    probes = centres[ids[1]] + 1.2 * rng.normal(size=(n, 128)).astype(np.float32)
    genuine = rng.normal(0.75, 0.1, size=3000)
    base = _rss_mib()
    lo, hi = score_range("cosine")
    t0 = time.perf_counter()
    args = ("cosine", lo, hi)
    summary = all_vs_all(refs, ids[0].tolist(), probes, ids[1].tolist(), *args)
    t1 = time.perf_counter()
    rep = summary_report(genuine, summary)
    t2 = time.perf_counter()
    peak_rss = _rss_mib()
    tracemalloc.start()  # again, traced: the scoring's own working memory (numpy included)
    summary_report(genuine, all_vs_all(refs, ids[0].tolist(), probes, ids[1].tolist(), *args))
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {
        "images": n,
        "impostors": summary.n,
        "tail": int(summary.tail.size),
        "score_s": round(t1 - t0, 3),
        "metrics_s": round(t2 - t1, 3),
        "baseline_rss_mib": round(base, 1),
        "peak_rss_mib": round(peak_rss, 1),
        "traced_peak_mib": round(traced, 1),
        "tar_1e-5": rep["tar_at_far"]["1e-05"]["value"],
    }


def child_view2(root: str) -> dict:
    from mfrbench.evaluate.runner import evaluate

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        run = evaluate(
            REPO / "protocols/lfw-view2-unmasked-v1.json",
            "plugin:dlib-resnet",
            root=root,
            out_dir=out,
            n_boot=0,
            plots=False,
            impostors="all",
        )
        wall = time.perf_counter() - t0
    rep = run.report
    emb = rep["embedding"]
    return {
        "impostors": rep["verification"]["all_impostors"]["n_impostors"],
        "computed": emb["computed"],
        "cached": emb["cached"],
        "impostors_s": rep["timings"]["impostors"],
        "metrics_s": rep["timings"]["metrics"],
        "total_s": round(wall, 2),
        "peak_rss_mib": round(_rss_mib(), 1),
    }


def _spawn(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4600, help="images at the smallest size")
    ap.add_argument("--repeats", type=int, default=3, help="runs per size (median time)")
    ap.add_argument("--view2", action="store_true")
    ap.add_argument("--root", default=str(REPO.parent / "shared/data/lfw"))
    ap.add_argument("--child", choices=["synthetic", "view2"], help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.child == "synthetic":
        print(json.dumps(child_synthetic(a.n, a.seed)))
        return
    if a.child == "view2":
        print(json.dumps(child_view2(a.root)))
        return
    print(f"# {os.cpu_count()} CPUs; {sys.version.split()[0]}")
    print(
        "| images | impostor scores | scoring s | metrics s | working memory MiB "
        "| baseline RSS MiB | peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|")
    for mult in (1, 2, 4):
        n = a.n * mult
        runs = [
            _spawn(["--child", "synthetic", "--n", str(n), "--seed", str(r)])
            for r in range(a.repeats)
        ]
        med = sorted(runs, key=lambda r: r["score_s"])[len(runs) // 2]
        print(
            f"| {n:,} | {med['impostors']:,} | {med['score_s']:.2f} | {med['metrics_s']:.2f} | "
            f"{max(r['traced_peak_mib'] for r in runs):.0f} | {med['baseline_rss_mib']:.0f} | "
            f"{max(r['peak_rss_mib'] for r in runs):.0f} |"
        )
    if a.view2:
        r = _spawn(["--child", "view2", "--root", a.root])
        print(
            f"\nview 2 (dlib-resnet, {r['cached']} embeddings cached, {r['computed']} computed): "
            f"{r['impostors']:,} impostor scores; impostors {r['impostors_s']:.2f} s, metrics "
            f"{r['metrics_s']:.2f} s, whole run {r['total_s']:.1f} s, peak RSS "
            f"{r['peak_rss_mib']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
