"""Brute-force cross-check of an ``--impostors all`` run: every impostor score kept, plain numpy.

    python bench/all_vs_all_check.py RUN_DIR PROTOCOL.json [--model plugin:dlib-resnet]

Takes the run's embeddings from the evaluator's cache (the only mfrbench pieces used are the
cache lookup and the model's cache key), builds each fold's full reference x probe score matrix
with numpy (no blocks, no histogram, no tail), keeps every impostor score in one array, and
computes TAR at FAR 1e-3/1e-4/1e-5 by sorting, the way docs/metrics.md §2 defines them. Prints
them beside the run's report.json ``all_impostors`` numbers; they must agree exactly.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("protocol", type=Path)
    ap.add_argument("--model", default="plugin:dlib-resnet")
    a = ap.parse_args()

    from mfrbench.evaluate.prepare import content_key
    from mfrbench.evaluate.runner import model_cache
    from mfrbench.models.registry import create_model

    report = json.loads((a.run / "report.json").read_text())
    proto = json.loads(a.protocol.read_text())
    model = create_model(a.model, {})
    images = {img["id"]: img for img in proto["images"]}
    keys = {i: content_key(img, model.preprocess) for i, img in images.items()}
    emb = model_cache(model).load(set(keys.values()))
    metric = report["distance"]

    cells: dict[tuple, tuple[set, set]] = defaultdict(lambda: (set(), set()))
    genuine: dict[str, list[float]] = defaultdict(list)
    scores = {r["pair_id"]: r for r in _rows(a.run / "scores.parquet")}
    for p in proto["pairs"]:
        if p["split"] != "test":
            continue
        cells[(p["pair_type"], p["fold"])][0].add(p["a"])
        cells[(p["pair_type"], p["fold"])][1].add(p["b"])
        row = scores[p["id"]]
        if p["label"] == 1 and row["status"] == "ok":
            genuine[p["pair_type"]].append(row["score"])

    imp: dict[str, list[np.ndarray]] = defaultdict(list)
    for (ptype, _fold), (refs, probes) in sorted(cells.items(), key=lambda kv: str(kv[0])):
        r_ids = [i for i in sorted(refs) if keys[i] in emb]
        p_ids = [i for i in sorted(probes) if keys[i] in emb]
        r = np.stack([emb[keys[i]] for i in r_ids]).astype(np.float64)
        p = np.stack([emb[keys[i]] for i in p_ids]).astype(np.float64)
        if metric == "euclidean":
            s = -np.sqrt(((r[:, None, :] - p[None, :, :]) ** 2).sum(-1))
        else:
            rn = r / np.linalg.norm(r, axis=1, keepdims=True)
            pn = p / np.linalg.norm(p, axis=1, keepdims=True)
            s = rn @ pn.T if metric == "cosine" else -(2 - 2 * (rn @ pn.T))
        who_r = np.array([images[i]["identity"] for i in r_ids])
        who_p = np.array([images[i]["identity"] for i in p_ids])
        imp[ptype].append(s[who_r[:, None] != who_p[None, :]])

    got = report["verification"]["all_impostors"]["by_pair_type"]
    print("| pairs | impostors (brute / run) | FAR | TAR brute force | TAR run | exact? |")
    print("|---|---|---|---|---|---|")
    for ptype, parts in imp.items():
        all_imp = np.sort(np.concatenate(parts))[::-1]
        g = np.asarray(genuine[ptype])
        for far in (1e-3, 1e-4, 1e-5):
            k = math.floor(far * all_imp.size + 1e-9)
            t = np.nextafter(all_imp[k], np.inf)  # accept scores above the (k+1)-th highest
            tar = float(np.mean(g >= t))
            run = got[ptype]["tar_at_far"][f"{far:g}"]
            print(
                f"| {ptype} | {all_imp.size:,} / {got[ptype]['n_impostor']:,} | {far:g} | "
                f"{tar:.5%} | {run['value']:.5%} | {run.get('exact')} |"
            )


def _rows(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["pair_id", "score", "status"]).to_pylist()


if __name__ == "__main__":
    main()
