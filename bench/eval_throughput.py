"""Evaluator throughput: embedding rate with 1 and 2 workers, forward passes against the naive
count, a warm-cache re-run, and scoring + metrics time for one million synthetic pairs, without
and with the bootstrap confidence intervals (``--boot``, default 1000 resamples as the evaluator).

    python bench/eval_throughput.py --root ../shared/data/lfw            # everything
    python bench/eval_throughput.py --skip-model                         # only the 1M-pair part

The model part takes a subset of ``protocols/lfw-view2-unmasked-v1.json`` (fold 0, the first
``--pairs / 2`` genuine and impostor pairs), re-frozen as its own protocol, and runs
``plugin:dlib-resnet`` (or ``--model``) through :func:`mfrbench.evaluate.runner.evaluate`
with a fresh cache for each worker count, then once more on the warm cache. Figures are printed
for ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def subset_protocol(source: Path, n_pairs: int, dest: Path) -> Path:
    """Fold 0's first n/2 genuine and n/2 impostor pairs of ``source``, frozen as a protocol."""
    from mfrbench.protocol import freeze, load_protocol, write_protocol

    proto = load_protocol(source)
    fold0 = [p for p in proto["pairs"] if p["fold"] == proto["pairs"][0]["fold"]]
    half = n_pairs // 2
    pairs = [p for p in fold0 if p["label"] == 1][:half] + [p for p in fold0 if p["label"] == 0][
        :half
    ]
    used = {p[s] for p in pairs for s in ("a", "b")}
    pairset = {
        "strategy": proto["generation"]["strategy"],
        "params": {**proto["generation"]["params"], "subset_of": proto["digest"], "n": n_pairs},
        "images": [img for img in proto["images"] if img["id"] in used],
        "pairs": [{**p, "id": None} for p in pairs],
        "summary": {"subset_of": f"{proto['name']}@{proto['digest'][:12]}"},
    }
    frozen = freeze(pairset, name=f"{proto['name']}-first{n_pairs}", dataset="lfw")
    write_protocol(frozen, dest)
    return dest


def bench_model(args: argparse.Namespace) -> None:
    """Embedding rates, forward passes and the warm re-run, in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="mfrbench-evalbench-") as tmp:
        _bench_model(args, Path(tmp))


def _bench_model(args: argparse.Namespace, work: Path) -> None:
    from mfrbench.evaluate.runner import evaluate

    proto = subset_protocol(
        REPO / "protocols" / "lfw-view2-unmasked-v1.json", args.pairs, work / "subset.json"
    )
    print(f"protocol subset: {args.pairs} pairs -> {proto}")
    for workers in args.workers:
        cache = work / f"cache-w{workers}"
        t0 = time.perf_counter()
        run = evaluate(
            proto,
            args.model,
            root=args.root,
            out_dir=work / f"res-w{workers}",
            workers=workers,
            batch_size=args.batch_size,
            cache_dir=cache,
            n_boot=0,
            plots=False,
        )
        wall = time.perf_counter() - t0
        e, t = run.report["embedding"], run.report["timings"]
        rate = e["computed"] / max(t["embed"], 1e-9)
        saving = e["naive_forward_passes"] / max(1, e["forward_passes"])
        auc = run.report["verification"]["overall"]["auc"]["value"]
        print(
            f"workers={workers}: {e['computed']} images embedded in {t['embed']:.1f} s "
            f"({rate:.2f} img/s), forward passes {e['forward_passes']} vs naive "
            f"{e['naive_forward_passes']} ({saving:.2f}x fewer); run wall {wall:.1f} s; "
            f"AUC {auc:.4f}"
        )
    t0 = time.perf_counter()
    run = evaluate(
        proto,
        args.model,
        root=args.root,
        out_dir=work / "res-warm",
        workers=1,
        batch_size=args.batch_size,
        cache_dir=work / f"cache-w{args.workers[0]}",
        n_boot=0,
        plots=False,
    )
    wall = time.perf_counter() - t0
    e = run.report["embedding"]
    print(
        f"warm-cache re-run: {e['computed']} computed, {e['cached']} cached, wall {wall:.2f} s "
        f"(timings {run.report['timings']})"
    )


def bench_million(n_pairs: int, n_ids: int, per_id: int, dim: int, n_boot: int) -> None:
    from mfrbench.evaluate import metrics
    from mfrbench.evaluate.scores import pair_scores, scores_table, write_scores

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(n_ids, dim))
    ident = np.repeat(np.arange(n_ids), per_id)
    emb = (centres[ident] + 1.2 * rng.normal(size=(ident.size, dim))).astype(np.float32)
    half = n_pairs // 2
    a_g = rng.integers(0, ident.size, half)
    b_g = (a_g // per_id) * per_id + (a_g % per_id + rng.integers(1, per_id, half)) % per_id
    a_i = rng.integers(0, ident.size, half)
    b_i = (a_i + per_id * rng.integers(1, n_ids, half)) % ident.size
    ia, ib = np.concatenate([a_g, a_i]), np.concatenate([b_g, b_i])
    labels = (ident[ia] == ident[ib]).astype(np.int8)
    folds = np.arange(ia.size) % 10
    t0 = time.perf_counter()
    score, dist, _ = pair_scores(emb, ia, ib, "cosine")
    t_score = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids = np.char.add("img", ia.astype(str)).astype(object)
    table = scores_table(
        {
            "pair_id": np.arange(ia.size),
            "a": ids,
            "b": np.char.add("img", ib.astype(str)),
            "score": score,
            "distance": dist,
            "label": labels,
            "split": ["test"] * ia.size,
            "fold": folds.astype(np.int32),
            "pair_type": ["unmasked-unmasked"] * ia.size,
            "colour": [None] * ia.size,
            "detector": [None] * ia.size,  # real-image columns; ignored by older schemas
            "landmarks": [None] * ia.size,
            "mask_type": [None] * ia.size,
            "status": ["ok"] * ia.size,
            "reason": [""] * ia.size,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_scores(table, Path(tmp) / "scores.parquet")
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = metrics.verification_report(labels, score, folds, distances=dist, n_boot=0)
    t_metrics = time.perf_counter() - t0
    print(
        f"{ia.size:,} synthetic pairs ({dim}-D, {ident.size:,} images): scoring {t_score:.2f} s, "
        f"scores.parquet {t_write:.2f} s, metrics without bootstrap {t_metrics:.2f} s -> "
        f"scoring + metrics {t_score + t_metrics:.2f} s (target < 5 s); accuracy "
        f"{rep['accuracy']['value']:.4f}, AUC {rep['auc']['value']:.4f}"
    )
    if n_boot:
        t0 = time.perf_counter()
        rep = metrics.verification_report(labels, score, folds, distances=dist, n_boot=n_boot)
        t_boot = time.perf_counter() - t0
        n_tar = sum(e["ci95"] is not None for e in rep["tar_at_far"].values())
        lo, hi = rep["auc"]["ci95"]
        print(
            f"  verification_report with {n_boot} bootstrap resamples (10 folds; ci95 of "
            f"accuracy, AUC, EER and {n_tar} TARs): {t_boot:.2f} s, i.e. bootstrap "
            f"{t_boot - t_metrics:.2f} s on top; AUC ci95 [{lo:.5f}, {hi:.5f}]"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--root",
        type=Path,
        default=Path(os.environ.get("MFRBENCH_DATA", REPO.parent / "shared" / "data")) / "lfw",
    )
    ap.add_argument("--model", default="plugin:dlib-resnet")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--skip-model", action="store_true")
    ap.add_argument("--million", type=int, default=1_000_000)
    ap.add_argument(
        "--boot",
        type=int,
        default=1000,
        help="also time verification_report with N bootstrap resamples on the 1M pairs (0: skip)",
    )
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    if not args.skip_model:
        bench_model(args)
    bench_million(args.million, n_ids=20_000, per_id=5, dim=128, n_boot=args.boot)


if __name__ == "__main__":
    main()
