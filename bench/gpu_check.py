"""GPU check (issue 13): synth and a torch embedding on ``--device``, compared with the CPU.

    .venv/bin/python bench/gpu_check.py [--device cuda] [--synth 1000] [--compare 64]

1. ``run_synth`` of the first ``--synth`` LFW images (MTCNN cascade, 3 colours, 1 worker) on
   the device: source images/s. Then the first ``--compare`` images again on the CPU; every
   MTCNN box, score and five points must agree within the golden tolerance (2 px, 1e-3), with
   the same status per row.
2. ``plugin:resnet50`` (random weights saved to a file, seed 0: throughput and numerics do not
   need trained ones; no download) embeds every image of LFW view 2 (``pairs.txt``) on the
   device: images/s; the first ``--compare`` embeddings must match the CPU's (cosine > 0.9999).

Refuses with one line and exit 2 when the device is not usable (e.g. no GPU), before any work.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOX_ATOL, SCORE_ATOL, COSINE_MIN = 2.0, 1e-3, 0.9999


def data_root() -> Path:
    env = os.environ.get("MFRBENCH_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def view2_images(lfw: Path) -> list[Path]:
    """Every image named by LFW's view-2 ``pairs.txt``, sorted, each once."""
    names: set[str] = set()
    for line in (lfw / "pairs.txt").read_text().splitlines()[1:]:
        f = line.split()
        pairs = [(f[0], f[1]), (f[0], f[2])] if len(f) == 3 else [(f[0], f[1]), (f[2], f[3])]
        names.update(f"{n}/{n}_{int(i):04d}.jpg" for n, i in pairs)
    return [lfw / n for n in sorted(names)]


def synth_check(device: str, lfw: Path, n: int, k: int, tmp: Path) -> None:
    import pyarrow.parquet as pq

    from mfrbench.synth import SynthConfig, run_synth

    def run(dev: str, limit: int) -> tuple[float, list[dict]]:
        config = SynthConfig(dataset="lfw", root=str(lfw), limit=limit, device=dev)
        t = time.perf_counter()
        result = run_synth(config, tmp / f"synth-{dev}-{limit}", workers=1)
        return time.perf_counter() - t, pq.read_table(result.manifest).to_pylist()

    took, rows = run(device, n)
    print(f"synth {device}: {n} images in {took:.1f} s = {n / took:.1f} source images/s")
    cpu_took, cpu_rows = run("cpu", k)
    print(f"synth cpu: {k} images in {cpu_took:.1f} s = {k / cpu_took:.1f} source images/s")
    worst = 0.0
    for a, b in zip(cpu_rows, rows[: len(cpu_rows)], strict=True):
        assert a["key"] == b["key"] and a["status"] == b["status"], (a["key"], a["status"])
        if a["det_box"] is None or a["detector"] != "mtcnn":
            continue
        boxes = zip(a["det_box"], b["det_box"], strict=True)
        coords = [*boxes, *zip(a["det_points5"], b["det_points5"], strict=True)]
        worst = max(worst, max(abs(x - y) for x, y in coords))
        assert abs(a["det_score"] - b["det_score"]) <= SCORE_ATOL, a["key"]
    assert worst <= BOX_ATOL, worst
    print(f"synth {device} vs cpu on {k} images: same statuses, max coordinate diff {worst:.2e} px")


def embed_check(device: str, lfw: Path, k: int, tmp: Path, limit: int | None) -> None:
    import numpy as np
    import torch
    from PIL import Image

    from mfrbench.models.nets.resnet import resnet50
    from mfrbench.models.resnet50 import ResNet50

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        weights = tmp / "resnet50-random.pth"
        torch.save(resnet50().state_dict(), weights)
    paths = view2_images(lfw)[:limit]
    images = [np.asarray(Image.open(p).convert("RGB"))[25:225, 25:225] for p in paths]
    gpu = ResNet50(weights=str(weights), device=device)
    gpu.embed(images[:8], [None] * 8)  # warm-up: kernels, allocator
    t = time.perf_counter()
    emb = gpu.embed(images, [None] * len(images))
    took = time.perf_counter() - t
    print(
        f"embed {device}: {len(images)} view-2 images in {took:.1f} s = {len(images) / took:.1f}/s"
    )
    cpu = ResNet50(weights=str(weights)).embed(images[:k], [None] * k)
    cos = (emb[:k] * cpu).sum(1) / np.linalg.norm(emb[:k], axis=1) / np.linalg.norm(cpu, axis=1)
    assert cos.min() > COSINE_MIN, cos.min()
    print(f"embed {device} vs cpu on {k} images: min cosine {cos.min():.7f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--synth", type=int, default=1000)
    ap.add_argument("--compare", type=int, default=64)
    ap.add_argument("--embed", type=int, default=None, help="first N view-2 images (all)")
    args = ap.parse_args()
    from mfrbench.errors import UserError
    from mfrbench.vision.device import resolve_device

    try:
        resolve_device(args.device)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    lfw = data_root() / "lfw"
    if not (lfw / "pairs.txt").is_file():
        print(
            f"error: full LFW with pairs.txt not found at {lfw} (set MFRBENCH_DATA)",
            file=sys.stderr,
        )
        sys.exit(2)
    with tempfile.TemporaryDirectory() as tmp:
        synth_check(args.device, lfw, args.synth, args.compare, Path(tmp))
        embed_check(args.device, lfw, args.compare, Path(tmp), args.embed)
    print("gpu check: OK")


if __name__ == "__main__":
    main()
