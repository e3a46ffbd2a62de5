"""The report blocks a run computes from its embeddings beyond the verification block.

- :func:`faces_summary`: how the evaluated images' faces were prepared (alignment, fallbacks);
- :func:`identification`: unmasked gallery (one image per test identity), masked probes
  (another photo), rank-1 / CMC and the open-set confidence-score margin, pooled over the
  run's embedding spaces (sets from :func:`identification_sets`);
- :func:`all_vs_all_impostors`: every probe against every reference of another identity, one
  summary per stratum (``impostors.py`` scores and summarises), for ``--impostors all``.

The verification block is ``breakdown.verification_sets``; the metrics are ``metrics``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mfrbench.evaluate import metrics
from mfrbench.evaluate.embedding import Progress
from mfrbench.evaluate.impostors import ScoreSummary, Stratum, all_vs_all, score_range
from mfrbench.evaluate.planning import Group
from mfrbench.evaluate.prepare import fallback_count
from mfrbench.evaluate.scores import pair_colour, similarity_matrix

CMC_MAX_RANK = 10
_PROBE_BLOCK = 512


def faces_summary(refs: Sequence[Mapping[str, Any]], preprocess: Any) -> dict[str, Any]:
    """How the evaluated images' faces were prepared: alignment, where its points come from,
    and how many real source photos had no face found (the fallback box; see prepare)."""
    from mfrbench.models.base import ALIGNED_CROPS

    sources: dict[str, Mapping[str, Any]] = {}
    for ref in refs:
        sources.setdefault(ref["src_path"], ref)
    status = Counter(str(r.get("face_status")) for r in sources.values())
    aligned = preprocess.crop in ALIGNED_CROPS
    return {
        "crop": preprocess.crop,
        "landmarks": preprocess.landmarks if aligned else None,
        "source_photos": len(sources),
        "face_found": status.get("ok", 0),
        "no_face_fallback": fallback_count(sources.values()),
        "never_detected": status.get("None", 0),
        "fallback": "a real photo with no face found (or never detected: never_detected) is "
        "prepared from the frame inset 10% on every side (unaligned square crop; dlib-chip: "
        "dlib's 5-point predictor inside it)",
    }


def identification_sets(
    image_ids: Sequence[str], images: Mapping[str, Mapping[str, Any]]
) -> tuple[list[str], list[str], list[str], str]:
    """(gallery ids, target probe ids, non-target probe ids, description) for one space.

    Gallery: per identity, its unmasked image with the smallest id. Probes: masked images
    (unmasked ones when the space has no masked image: the control); a probe is a target when
    its identity is in the gallery and it is another photo than the gallery image (a probe of
    the gallery's own photo is left out), else a non-target.
    """
    unmasked = sorted(i for i in image_ids if not images[i]["masked"])
    masked = sorted(i for i in image_ids if images[i]["masked"])
    gallery: dict[str, str] = {}
    for i in unmasked:
        gallery.setdefault(images[i]["identity"], i)
    if masked:
        pool, kind = masked, "masked probes"
    else:
        chosen = set(gallery.values())
        pool, kind = [i for i in unmasked if i not in chosen], "unmasked probes (control)"
    targets, nontargets = [], []
    for i in pool:
        g = gallery.get(images[i]["identity"])
        if g is None:
            nontargets.append(i)
        elif images[g]["src_path"] != images[i]["src_path"]:
            targets.append(i)
    desc = f"unmasked gallery (one image per identity), {kind}"
    return sorted(gallery.values()), targets, nontargets, desc


def identification(
    spaces: list[tuple[list[str], Callable[[list[str]], np.ndarray]]],
    images: Mapping[str, Mapping[str, Any]],
    metric: str,
    cs_scale: float,
) -> dict[str, Any]:
    """Rank-1 / CMC (closed set) and confidence-score margin (open set), pooled over spaces."""
    ranks_weighted = np.zeros(CMC_MAX_RANK)
    n_targets = n_gallery = 0
    cs_t: list[np.ndarray] = []
    cs_u: list[np.ndarray] = []
    desc = ""
    for ids, lookup in spaces:
        gallery, targets, nontargets, desc = identification_sets(ids, images)
        if len(gallery) < 2 or not targets:
            continue
        g_emb = lookup(gallery)
        g_ids = np.asarray([images[i]["identity"] for i in gallery])
        target_set = set(targets)
        n_gallery += len(gallery)
        probes = targets + nontargets
        for start in range(0, len(probes), _PROBE_BLOCK):
            block = probes[start : start + _PROBE_BLOCK]
            sim = similarity_matrix(lookup(block), g_emb, metric)
            t_sel = np.asarray([p in target_set for p in block], dtype=bool)
            if t_sel.any():
                p_ids = np.asarray([images[p]["identity"] for p in np.asarray(block)[t_sel]])
                cmc = metrics.cmc_from_similarities(sim[t_sel], g_ids, p_ids, CMC_MAX_RANK)
                ranks_weighted += cmc * int(t_sel.sum())
                n_targets += int(t_sel.sum())
            cs = metrics.confidence_scores(sim, g_ids, scale=cs_scale)
            cs_t.append(cs[t_sel])
            cs_u.append(cs[~t_sel])
    if n_targets == 0:
        return {"error": "no identity has both an unmasked gallery image and another probe"}
    cmc = ranks_weighted / n_targets
    out: dict[str, Any] = {
        "setup": desc,
        "spaces": len(spaces),
        "gallery_size": n_gallery,
        "n_target_probes": n_targets,
        "n_nontarget_probes": int(sum(u.size for u in cs_u)),
        "rank1": float(cmc[0]),
        "cmc": [float(v) for v in cmc],
        "confidence_score": {"scale": cs_scale},
    }
    t_all = np.concatenate(cs_t) if cs_t else np.zeros(0)
    u_all = np.concatenate(cs_u) if cs_u else np.zeros(0)
    if t_all.size and u_all.size:
        out["confidence_score"].update(metrics.open_set_margin(t_all, u_all))
    else:
        out["confidence_score"]["error"] = "needs target and non-target probes"
    if len(spaces) > 1:
        out["note"] = "a gallery per fitted fold; CMC pooled over folds, weighted by probes"
    return out


def all_vs_all_impostors(
    groups: Sequence[Group],
    pairs: Sequence[Mapping[str, Any]],
    images: Mapping[str, Mapping[str, Any]],
    space_emb: Sequence[Mapping[str, np.ndarray]],
    metric: str,
    progress: Progress | None,
) -> list[tuple[Stratum, ScoreSummary]]:
    """Every probe against every reference of another identity, per embedding space, pair type,
    split and fold, one stratum per mask colour of the pair (``impostors.py``).

    References are the ``a`` sides, probes the ``b`` sides of that stratum's listed pairs (both
    labels); images without an embedding are left out, as their pairs are.
    """
    max_norm = max(
        (float(np.linalg.norm(np.stack(list(e.values())), axis=1).max()) for e in space_emb if e),
        default=1.0,
    )
    lo, hi = score_range(metric, max_norm)
    plan: list[tuple[int, str, str, Any, list[str], list[str]]] = []
    for gi, group in enumerate(groups):
        cells: dict[tuple[str, str, Any], tuple[set[str], set[str]]] = {}
        for i in group.pair_idx:
            p = pairs[i]
            if p["a"] not in space_emb[gi] or p["b"] not in space_emb[gi]:
                continue
            refs, probes = cells.setdefault((p["pair_type"], p["split"], p["fold"]), (set(), set()))
            refs.add(p["a"])
            probes.add(p["b"])
        for (ptype, split, fold), (refs, probes) in sorted(
            cells.items(), key=lambda kv: (kv[0][0], kv[0][1], -1 if kv[0][2] is None else kv[0][2])
        ):
            plan.append((gi, ptype, split, fold, sorted(refs), sorted(probes)))
    out: dict[Stratum, ScoreSummary] = {}
    for step, (gi, ptype, split, fold, ref_ids, probe_ids) in enumerate(plan):
        if progress:
            progress("impostors", step, len(plan))
        by_colour_r: dict[Any, list[str]] = defaultdict(list)
        by_colour_p: dict[Any, list[str]] = defaultdict(list)
        for image_id in ref_ids:
            by_colour_r[images[image_id].get("color")].append(image_id)
        for image_id in probe_ids:
            by_colour_p[images[image_id].get("color")].append(image_id)
        emb = space_emb[gi]
        for rc, r_ids in sorted(by_colour_r.items(), key=lambda kv: str(kv[0])):
            r = np.stack([emb[i] for i in r_ids])
            r_who = [images[i]["identity"] for i in r_ids]
            for pc, p_ids in sorted(by_colour_p.items(), key=lambda kv: str(kv[0])):
                summary = all_vs_all(
                    r,
                    r_who,
                    np.stack([emb[i] for i in p_ids]),
                    [images[i]["identity"] for i in p_ids],
                    metric,
                    lo,
                    hi,
                )
                colour = pair_colour({"color": rc}, {"color": pc})
                key = Stratum(ptype, split, fold, colour)
                out[key] = summary if key not in out else out[key].merge(summary)
    if progress:
        progress("impostors", len(plan), len(plan))
    return list(out.items())
