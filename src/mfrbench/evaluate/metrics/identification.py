"""Identification metrics: closed-set CMC and rank-1, the LFW masking paper's open-set scores.

Probes are ranked against a gallery grouped by identity; inputs are validated as in the rest of
the package (:mod:`mfrbench.evaluate.metrics`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mfrbench.evaluate.metrics.core import _as_scores

_BLOCK_ELEMENTS = 2_000_000  # similarity entries per probe block in cmc = probes x gallery


def _as_embeddings(x: Any, name: str) -> np.ndarray:
    e = np.asarray(x, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (n, dim) array, got shape {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return e


def _unit_rows(e: np.ndarray, name: str) -> np.ndarray:
    norm = np.linalg.norm(e, axis=1, keepdims=True)
    if (norm == 0).any():
        raise ValueError(f"{name} contains a zero vector; cosine similarity is undefined")
    return e / norm


def _identity_groups(gallery_ids: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unique ids, gallery order grouping them, start of each id's block in that order)."""
    ids = np.asarray(gallery_ids)
    if ids.shape != (n,):
        raise ValueError(f"gallery_ids must give one id per gallery item: {ids.shape} != ({n},)")
    names, inverse = np.unique(ids, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(names.size))
    return names, order, starts


def _ranks(id_scores: np.ndarray, true_index: np.ndarray) -> np.ndarray:
    """Rank of each probe's true identity; ties count against it (pessimistic)."""
    true_score = id_scores[np.arange(id_scores.shape[0]), true_index]
    return np.count_nonzero(id_scores >= true_score[:, None], axis=1)


def _true_index(names: np.ndarray, probe_ids: Any, n: int) -> np.ndarray:
    ids = np.asarray(probe_ids)
    if ids.shape != (n,):
        raise ValueError(f"probe_ids must give one id per probe: {ids.shape} != ({n},)")
    pos = np.clip(np.searchsorted(names, ids), 0, names.size - 1)
    missing = names[pos] != ids
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} probe(s) have no gallery identity (closed-set CMC), "
            f"e.g. {ids[missing][0]!r}"
        )
    return pos


def cmc_from_similarities(
    similarities: Any, gallery_ids: Any, probe_ids: Any, max_rank: int = 10
) -> np.ndarray:
    """Closed-set cumulative match characteristic from a probe x gallery similarity matrix.

    An identity's score for a probe is its best (maximum) similarity over that identity's
    gallery items, and identities are ranked by it; the true identity's rank is the number of
    identities scoring at least as high (ties count as misses). ``cmc[k - 1]`` is the fraction
    of probes whose true identity has rank <= k, for k = 1..max_rank. Every probe id must be in
    the gallery.
    """
    sim = np.asarray(similarities, dtype=np.float64)
    if sim.ndim != 2 or 0 in sim.shape:
        raise ValueError(f"similarities must be a non-empty (probes, gallery) array: {sim.shape}")
    if not np.isfinite(sim).all():
        raise ValueError("similarities contain NaN or infinite values")
    if max_rank < 1:
        raise ValueError(f"max_rank must be at least 1, got {max_rank}")
    names, order, starts = _identity_groups(gallery_ids, sim.shape[1])
    true = _true_index(names, probe_ids, sim.shape[0])
    id_scores = np.maximum.reduceat(sim[:, order], starts, axis=1)
    ranks = _ranks(id_scores, true)
    return np.mean(ranks[:, None] <= np.arange(1, max_rank + 1)[None, :], axis=0)


def _similarity_block(probe: np.ndarray, gallery: np.ndarray, similarity: str) -> np.ndarray:
    if similarity == "cosine":
        return probe @ gallery.T
    sq = (probe**2).sum(1)[:, None] + (gallery**2).sum(1)[None, :] - 2.0 * (probe @ gallery.T)
    return -np.sqrt(np.maximum(sq, 0.0))


def cmc(
    gallery_emb: Any,
    gallery_ids: Any,
    probe_emb: Any,
    probe_ids: Any,
    max_rank: int = 10,
    *,
    similarity: str = "cosine",
) -> np.ndarray:
    """Closed-set CMC of probe embeddings against a gallery (e.g. unmasked gallery, masked probes).

    ``similarity`` is ``"cosine"`` (embeddings L2-normalised) or ``"euclidean"`` (negated L2
    distance). Ranking as :func:`cmc_from_similarities`; computed in probe blocks so memory stays
    bounded. Returns an array of length ``max_rank``.
    """
    if similarity not in ("cosine", "euclidean"):
        raise ValueError(f"similarity must be 'cosine' or 'euclidean', got {similarity!r}")
    if max_rank < 1:
        raise ValueError(f"max_rank must be at least 1, got {max_rank}")
    g = _as_embeddings(gallery_emb, "gallery_emb")
    q = _as_embeddings(probe_emb, "probe_emb")
    if g.shape[1] != q.shape[1]:
        raise ValueError(f"embedding sizes differ: gallery {g.shape[1]}, probes {q.shape[1]}")
    if similarity == "cosine":
        g, q = _unit_rows(g, "gallery_emb"), _unit_rows(q, "probe_emb")
    names, order, starts = _identity_groups(gallery_ids, g.shape[0])
    true = _true_index(names, probe_ids, q.shape[0])
    g = g[order]
    block = max(1, _BLOCK_ELEMENTS // g.shape[0])
    ranks = np.empty(q.shape[0], dtype=np.int64)
    for a in range(0, q.shape[0], block):
        sim = _similarity_block(q[a : a + block], g, similarity)
        ranks[a : a + block] = _ranks(np.maximum.reduceat(sim, starts, axis=1), true[a : a + block])
    return np.mean(ranks[:, None] <= np.arange(1, max_rank + 1)[None, :], axis=0)


def rank1(
    gallery_emb: Any,
    gallery_ids: Any,
    probe_emb: Any,
    probe_ids: Any,
    *,
    similarity: str = "cosine",
) -> float:
    """Rank-1 identification rate: the first value of :func:`cmc`."""
    return float(cmc(gallery_emb, gallery_ids, probe_emb, probe_ids, 1, similarity=similarity)[0])


def confidence_scores(similarities: Any, gallery_ids: Any, *, scale: float = 1.0) -> np.ndarray:
    """The LFW masking paper's open-set confidence score, one per probe.

    The paper (eq. 1) defines ``CS = max_k exp(F_k(x)) / ((1/n) sum_k exp(F_k(x)))`` over the
    n = 50 outputs of a classifier, one per enrolled identity. For an embedding model the
    output for identity k is ``F_k = scale * mean similarity of the probe to k's gallery
    items``; so CS is n times the largest softmax probability and lies in [1, n]. Give one
    gallery column per identity (``gallery_ids = range(n)``) to apply the formula to
    classifier logits directly. ``scale`` (an inverse temperature) spreads cosine
    similarities, which live in [-1, 1], over a useful range; CS depends on it and on n, so
    compare scores only under the same gallery and scale.
    """
    sim = np.asarray(similarities, dtype=np.float64)
    if sim.ndim != 2 or 0 in sim.shape:
        raise ValueError(f"similarities must be a non-empty (probes, gallery) array: {sim.shape}")
    if not np.isfinite(sim).all():
        raise ValueError("similarities contain NaN or infinite values")
    _, order, starts = _identity_groups(gallery_ids, sim.shape[1])
    sizes = np.diff(np.append(starts, sim.shape[1]))
    f = scale * np.add.reduceat(sim[:, order], starts, axis=1) / sizes[None, :]
    return 1.0 / np.mean(np.exp(f - f.max(axis=1, keepdims=True)), axis=1)


def open_set_margin(target_scores: Any, nontarget_scores: Any, pct: float = 85.0) -> dict[str, Any]:
    """The LFW masking paper's "exponential margin" between target and non-target CS.

    Following the paper's Table 6 (target 15th percentile 49.61, non-target 85th percentile
    46.18, margin 3.42, strangers rejected below 49.61): with ``pct = 85``, the target value is
    the (100 - pct)th percentile of target confidence scores (85% of targets lie above it), the
    non-target value is the pct-th percentile of non-target scores (85% lie below) and
    ``margin = target_value - nontarget_value``; positive means the two 15% tails do not
    overlap. ``threshold`` is the target value, the paper's stranger-rejection threshold;
    ``target_accept`` / ``nontarget_accept`` are the fractions with ``score >= threshold``.
    Percentiles use numpy's default linear interpolation.
    """
    t = _as_scores(target_scores, "target_scores")
    u = _as_scores(nontarget_scores, "nontarget_scores")
    if t.size == 0 or u.size == 0:
        raise ValueError("open_set_margin needs target and non-target scores")
    if not 50.0 <= pct < 100.0:
        raise ValueError(f"pct must be in [50, 100), got {pct}")
    t_val = float(np.percentile(t, 100.0 - pct))
    u_val = float(np.percentile(u, pct))
    return {
        "pct": float(pct),
        "target_percentile": 100.0 - pct,
        "target_value": t_val,
        "nontarget_percentile": float(pct),
        "nontarget_value": u_val,
        "margin": t_val - u_val,
        "threshold": t_val,
        "target_accept": float(np.mean(t >= t_val)),
        "nontarget_accept": float(np.mean(u >= t_val)),
        "n_target": int(t.size),
        "n_nontarget": int(u.size),
    }
