"""Ray executor vs the local pool: synth throughput, manifest digest and peak memory.

    .venv/bin/python bench/ray_scaling.py [--dataset lfw-mini] [--limit N] [--repeats 3]
                                          [--sizes 300,1000]

One machine, two ways to use its CPUs: the local pool with 2 workers, and a Ray cluster of 2
nodes x 1 CPU (``ray.cluster_utils.Cluster``: a head and one more node, each its own raylet,
so the run really crosses nodes; actors = the cluster's 2 CPUs). Each run is a fresh
subprocess, alternating local and Ray, ``--repeats`` times; the Ray cluster is started before
the clock starts (a cluster is up before jobs on a real deployment; its start-up is printed
apart), actor start-up and model loading are inside the clock, as the local pool's spawn and
model loading are. Prints per run: source images/s, sha256 of manifest.parquet, peak RSS of the
driver and of the largest worker (local: children's maxrss; Ray: the actor processes' RSS
sampled at every finished chunk). Then the median throughput ratio ray/local. ``--sizes`` runs
both at several dataset sizes (full LFW) to show that memory stays flat.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ACTOR_TITLE = b"ray::ChunkActor"


def data_root() -> Path:
    env = os.environ.get("MFRBENCH_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def _rss_mib(pid: str = "self") -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _actor_rss() -> float:
    """Largest RSS (MiB) among this machine's Ray chunk actors right now."""
    best = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(ACTOR_TITLE):
                    best = max(best, _rss_mib(entry.name))
            except OSError:
                continue
    return best


def one(kind: str, dataset: str, limit: int | None, out: Path) -> dict:
    """One synth run in this process (``kind`` local|ray) and its figures."""
    from mfrbench.executors import Executor
    from mfrbench.synth import SynthConfig, run_synth

    extra: dict = {}
    executor = Executor()
    if kind == "ray":
        import ray
        from ray.cluster_utils import Cluster

        t0 = time.perf_counter()
        cluster = Cluster(
            initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
        )
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        extra["cluster_start_s"] = round(time.perf_counter() - t0, 2)
        executor = Executor("ray")
    peak_actor = [0.0]

    def sample(_done: int, _failed: int) -> None:
        if kind == "ray":
            peak_actor[0] = max(peak_actor[0], _actor_rss())

    root = data_root() / dataset
    config = SynthConfig(dataset="lfw", root=str(root), limit=limit)
    result = run_synth(config, out, workers=2, executor=executor, on_progress=sample)
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "kind": kind,
        "sources": result.sources,
        "seconds": round(result.elapsed, 2),
        "images_per_s": round(result.sources / result.elapsed, 1),
        "manifest_sha256": hashlib.sha256(result.manifest.read_bytes()).hexdigest(),
        "peak_rss_driver_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_rss_worker_mib": round(peak_actor[0] if kind == "ray" else child_kb / 1024),
        **extra,
    }


def run(kind: str, dataset: str, limit: int | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--one", kind, "--dataset", dataset]
        cmd += ["--out", str(Path(tmp) / "out")]
        if limit is not None:
            cmd += ["--limit", str(limit)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            sys.exit(r.stderr[-3000:])
        return json.loads(r.stdout.strip().splitlines()[-1])


def compare(dataset: str, limit: int | None, repeats: int) -> None:
    rows: dict[str, list[dict]] = {"local": [], "ray": []}
    for _ in range(repeats):
        for kind in ("local", "ray"):
            fig = run(kind, dataset, limit)
            rows[kind].append(fig)
            print(json.dumps(fig), flush=True)
    med = {k: statistics.median(r["images_per_s"] for r in v) for k, v in rows.items()}
    digests = {r["manifest_sha256"] for v in rows.values() for r in v}
    print(
        f"{dataset} limit={limit}: median images/s local(2 workers) {med['local']}, "
        f"ray(2 nodes x 1 CPU) {med['ray']}, ratio ray/local {med['ray'] / med['local']:.2f}; "
        f"manifest digests identical: {len(digests) == 1}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="lfw-mini", help="folder under the data root")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="", help="also one run each at these sizes (full LFW)")
    ap.add_argument("--one", choices=("local", "ray"), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.dataset, args.limit, args.out)))
        return
    if args.repeats > 0:
        compare(args.dataset, args.limit, args.repeats)
    for size in [int(s) for s in args.sizes.split(",") if s]:
        compare("lfw", size, 1)


if __name__ == "__main__":
    main()
