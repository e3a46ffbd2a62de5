"""Score every pair of a protocol into the columns of ``scores.parquet``.

Each pair gets a row: its ids, label, split, fold, type, both identities, mask colour, detector,
landmark backend and mask types, and a status. ``train`` pairs are ``not_scored``; a pair whose
image failed takes that image's status and reason; a zero embedding under cosine is
``zero_norm``. Scored pairs get ``score`` (higher = more alike) and ``distance``, computed per
embedding space, since spaces may differ in dimension (per-fold fits).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mfrbench.evaluate.planning import Group, image_ids
from mfrbench.evaluate.scores import pair_colour, pair_mask_types, pair_scores, pair_value
from mfrbench.evaluate.spaces import Spaces
from mfrbench.records import ImageRef, Pair

NOT_SCORED = "train split: used for fitting, not evaluated"


def score_rows(
    pairs: Sequence[Pair],
    images: Mapping[str, ImageRef],
    groups: Sequence[Group],
    spaces: Spaces,
    metric: str,
) -> dict[str, Any]:
    """Column name -> values for every pair, in protocol order (``score``/``distance`` arrays)."""
    group_of = {i: gi for gi, group in enumerate(groups) for i in group.pair_idx}
    rows: dict[str, Any] = defaultdict(list)
    scored: list[list[int]] = [[] for _ in groups]  # pair indices to score, per space
    for i, p in enumerate(pairs):
        a, b = images[p["a"]], images[p["b"]]
        for k in ("a", "b", "label", "split", "fold", "pair_type"):
            rows[k].append(p[k])
        rows["pair_id"].append(p["id"])
        rows["a_identity"].append(a["identity"])
        rows["b_identity"].append(b["identity"])
        rows["colour"].append(pair_colour(a, b))
        rows["detector"].append(pair_value(a, b, "detector"))
        rows["landmarks"].append(pair_value(a, b, "landmarks"))
        rows["mask_type"].append(pair_mask_types(a, b))
        status, reason = "ok", ""
        space = group_of.get(i)
        if space is None:
            status, reason = "not_scored", NOT_SCORED
        else:
            for side in ("a", "b"):
                failure = spaces.failures[space].get(p[side])
                if failure is not None:
                    status, reason = failure[0], f"{side} ({p[side]}): {failure[1]}"
                    break
            if status == "ok":
                scored[space].append(i)
        rows["status"].append(status)
        rows["reason"].append(reason)
    n = len(pairs)
    score, dist = np.full(n, np.nan), np.full(n, np.nan)
    for gi, idx in enumerate(scored):
        if not idx:
            continue
        ids = image_ids(pairs, idx)
        at = {image_id: k for k, image_id in enumerate(ids)}
        matrix = np.stack([spaces.embeddings[gi][image_id] for image_id in ids])
        ia = np.asarray([at[pairs[i]["a"]] for i in idx])
        ib = np.asarray([at[pairs[i]["b"]] for i in idx])
        s, d, zero = pair_scores(matrix, ia, ib, metric)
        score[idx], dist[idx] = s, d
        for j in np.flatnonzero(zero):
            rows["status"][idx[j]] = "zero_norm"
            rows["reason"][idx[j]] = f"a zero embedding has no direction ({metric})"
    rows["score"], rows["distance"] = score, dist
    return rows
