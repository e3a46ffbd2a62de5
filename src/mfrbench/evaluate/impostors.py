"""Impostor scores too many to keep one by one: all-vs-all scoring into compact summaries.

``mfrbench eval --impostors all`` scores, for every pair type of the protocol and every
split/fold, each probe (``b`` side) of that pair type's listed pairs against each reference
(``a`` side) of another identity. On LFW view 2 that is millions of impostor scores per pair
type; they are scored blockwise from the embeddings (one matrix product per block of
:data:`REF_BLOCK` x :data:`PROBE_BLOCK`) and kept as a :class:`ScoreSummary`:

- **exact tail**: every score at or above ``floor``, sorted: the top
  ``min(floor(TAIL_FMR * n) + 1, TAIL_MAX)`` scores (and any tied with the last; a stratum
  of at most :data:`EXACT_MAX` scores keeps every one, so all about it is exact). Thresholds
  at FMR <= min(:data:`TAIL_FMR`, TAIL_MAX / n) (the operating points the field reports: 1e-3,
  1e-4, 1e-5) and the FMR at any threshold >= ``floor`` are exact, the same numbers keeping
  every score would give; the entries computed from the histogram instead say so
  (``exact: false``);
- **histogram** of all scores over :data:`N_BINS` equal bins of the measure's score range
  (cosine [-1, 1], sql2 [-4, 0], euclidean [-2 max norm, 0]): counts are exact at bin edges, so
  EER, AUC and FMR above :data:`TAIL_FMR` are known to within one bin (3e-5 in cosine);
- ``n``, sum and sum of squares (d' exactly, up to float rounding).

Memory is flat in the number of images: one block at a time, plus a tail of at most
``TAIL_MAX`` floats (8 MB) per stratum; ``bench/all_vs_all.py`` measures it. Listed impostor
scores become an exact summary (:meth:`ScoreSummary.exact`), so every metric takes one kind of
object.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

#: Histogram bins over the score range.
N_BINS = 1 << 16

#: The tail keeps every score down to at least this false match rate ...
TAIL_FMR = 1e-2

#: ... but no more than this many scores per stratum (memory flat beyond 100 million scores).
TAIL_MAX = 1_000_000

#: A stratum with at most this many scores keeps all of them (everything about it is exact).
EXACT_MAX = 100_000

#: Block shape of the all-vs-all matrix products (references x probes).
REF_BLOCK = 512
PROBE_BLOCK = 4096

IMPOSTORS_SCHEMA = pa.schema(
    [
        pa.field("pair_type", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("fold", pa.int32()),
        pa.field("colour", pa.string()),
        pa.field("n", pa.int64(), nullable=False),
        pa.field("n_references", pa.int64(), nullable=False),
        pa.field("n_probes", pa.int64(), nullable=False),
        pa.field("lo", pa.float64(), nullable=False),
        pa.field("hi", pa.float64(), nullable=False),
        pa.field("hist", pa.list_(pa.int64()), nullable=False),
        pa.field("tail", pa.list_(pa.float64()), nullable=False),
        pa.field("floor", pa.float64(), nullable=False),
        pa.field("sum", pa.float64(), nullable=False),
        pa.field("sum_sq", pa.float64(), nullable=False),
    ]
)


def score_range(metric: str, max_norm: float = 1.0) -> tuple[float, float]:
    """The interval every score of ``metric`` lies in (``max_norm``: largest embedding norm)."""
    if metric == "cosine":
        return -1.0, 1.0
    if metric == "sql2":
        return -4.0, 0.0
    return -2.0 * max(float(max_norm), 1e-12) * (1 + 1e-9), 0.0


@dataclass
class ScoreSummary:
    """Impostor scores as count, histogram, exact tail and moments (module docstring)."""

    n: int
    lo: float
    hi: float
    hist: np.ndarray  # int64 (N_BINS,)
    tail: np.ndarray  # float64, descending: every score >= floor
    floor: float  # -inf when the tail holds every score
    total: float = 0.0
    total_sq: float = 0.0
    n_references: int = 0
    n_probes: int = 0

    # ------------------------------------------------------------------ building

    @classmethod
    def empty(cls, lo: float, hi: float, bins: int = N_BINS) -> ScoreSummary:
        return cls(0, lo, hi, np.zeros(bins, np.int64), np.zeros(0), -math.inf)

    @classmethod
    def exact(cls, scores: Any, lo: float, hi: float, bins: int = N_BINS) -> ScoreSummary:
        """Every score kept (the listed impostors of a protocol)."""
        s = np.asarray(scores, dtype=np.float64)
        out = cls.empty(lo, hi, bins)
        out.n = int(s.size)
        out.hist = _histogram(s, lo, hi, bins)
        out.tail = np.sort(s)[::-1].copy()
        out.total, out.total_sq = float(s.sum()), float(np.square(s).sum())
        return out

    @property
    def exact_all(self) -> bool:
        """Whether every score is in the tail (thresholds and counts are exact everywhere)."""
        return self.floor == -math.inf

    def merge(self, other: ScoreSummary) -> ScoreSummary:
        """The summary of both score sets; the tail is exact down to the higher floor."""
        return merge_all([self, other])

    # ------------------------------------------------------------------ queries

    def edges(self) -> np.ndarray:
        """The ``bins + 1`` bin edges."""
        return np.linspace(self.lo, self.hi, self.hist.size + 1)

    def count_at_least(self, t: float) -> tuple[float, bool]:
        """(number of scores >= t, exact?). Exact at or above the floor; else the histogram,
        linear within the bin holding ``t``."""
        if t >= self.floor or self.exact_all:
            return float(np.count_nonzero(self.tail >= t)), True
        pos = (t - self.lo) / (self.hi - self.lo) * self.hist.size
        if pos <= 0:
            return float(self.n), True
        i = min(math.floor(pos), self.hist.size - 1)
        above = float(self.hist[i + 1 :].sum())
        return above + float(self.hist[i]) * (1.0 - (pos - i)), False

    def fmr_at(self, t: float) -> tuple[float | None, bool]:
        """(false match rate at threshold ``t`` with ``score >= t``, exact?)."""
        if self.n == 0:
            return None, True
        c, exact = self.count_at_least(t)
        return c / self.n, exact

    def threshold_at_fmr(self, fmr: float) -> tuple[float, bool]:
        """(lowest threshold with FMR <= ``fmr``, exact?), as ``metrics.threshold_at_fmr``.

        With ``k = floor(fmr * n)`` it is just above the (k+1)-th highest score when the tail
        holds it; otherwise the lowest bin edge with at most k scores at or above it (FMR still
        <= ``fmr``, the threshold up to one bin too high)."""
        if self.n == 0:
            raise ValueError("no impostor scores")
        k = math.floor(self.n * fmr + 1e-9)
        if k >= self.n:
            return -math.inf, True
        if k < self.tail.size:
            return float(np.nextafter(self.tail[k], np.inf)), True
        above = np.concatenate([np.cumsum(self.hist[::-1])[::-1], [0]])  # count >= edge i
        i = int(np.argmax(above <= k))
        return float(self.edges()[i]), False

    def mean_var(self) -> tuple[float, float]:
        """Mean and variance (ddof=0) of the scores."""
        mean = self.total / self.n
        return mean, max(self.total_sq / self.n - mean * mean, 0.0)

    # ------------------------------------------------------------------ storage

    def to_row(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "n_references": self.n_references,
            "n_probes": self.n_probes,
            "lo": self.lo,
            "hi": self.hi,
            "hist": self.hist.tolist(),
            "tail": self.tail.tolist(),
            "floor": self.floor,
            "sum": self.total,
            "sum_sq": self.total_sq,
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ScoreSummary:
        return cls(
            int(row["n"]),
            float(row["lo"]),
            float(row["hi"]),
            np.asarray(row["hist"], dtype=np.int64),
            np.asarray(row["tail"], dtype=np.float64),
            float(row["floor"]),
            float(row["sum"]),
            float(row["sum_sq"]),
            int(row["n_references"]),
            int(row["n_probes"]),
        )


def _histogram(s: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Counts of ``s`` in ``bins`` equal bins of [lo, hi] (the top edge in the last bin)."""
    idx = np.floor((s - lo) * (bins / (hi - lo))).astype(np.int64)
    np.clip(idx, 0, bins - 1, out=idx)
    return np.bincount(idx, minlength=bins).astype(np.int64)


@dataclass
class _TailKeeper:
    """The top ``k`` values seen so far (and every value tied with the k-th)."""

    k: int
    cut: float = -math.inf
    parts: list[np.ndarray] = field(default_factory=list)
    held: int = 0

    def add(self, values: np.ndarray) -> None:
        if self.k <= 0:
            return
        keep = values[values >= self.cut]
        if keep.size:
            self.parts.append(keep)
            self.held += keep.size
        if self.held > 2 * self.k + REF_BLOCK * PROBE_BLOCK:
            self._shrink()

    def _shrink(self) -> None:
        v = np.concatenate(self.parts)
        self.parts = []
        if v.size > self.k:
            v.partition(v.size - self.k)  # in place: one copy of the held values at a time
            self.cut = float(v[v.size - self.k])
            v = v[v >= self.cut]  # ties with the k-th stay: counts at the floor are exact
        self.parts, self.held = [v], v.size

    def result(self, n: int) -> tuple[np.ndarray, float]:
        """(descending tail, floor): floor = -inf when all ``n`` values are held."""
        v = np.concatenate(self.parts) if self.parts else np.zeros(0)
        if v.size >= n and n <= EXACT_MAX:
            return np.sort(v)[::-1].copy(), -math.inf
        if v.size > self.k:
            cut = float(np.partition(v, v.size - self.k)[v.size - self.k])
            v = v[v >= cut]
        v = np.sort(v)[::-1].copy()
        return v, float(v[-1]) if v.size else math.inf


def _unit_rows(x: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` divided by its row norms in place (the same floats as ``scores.normalise``), rows
    with a zero vector dropped with their ids."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    keep = norms[:, 0] != 0
    if not keep.all():
        x, ids, norms = x[keep], ids[keep], norms[keep]
    x /= norms
    return x, ids


def _block_scores(r: np.ndarray, p: np.ndarray, metric: str) -> np.ndarray:
    """(R, P) scores of prepared rows (unit rows for cosine/sql2) in the pairs' convention."""
    if metric == "euclidean":
        sq = (r * r).sum(1)[:, None] + (p * p).sum(1)[None, :] - 2.0 * (r @ p.T)
        return -np.sqrt(np.maximum(sq, 0.0))
    cos = np.clip(r @ p.T, -1.0, 1.0)
    return cos if metric == "cosine" else -(2.0 - 2.0 * cos)


def all_vs_all(
    references: np.ndarray,
    ref_identity: Sequence[Any],
    probes: np.ndarray,
    probe_identity: Sequence[Any],
    metric: str,
    lo: float,
    hi: float,
    bins: int = N_BINS,
) -> ScoreSummary:
    """The summary of every (reference, probe) score between different identities.

    Rows with a zero vector are left out under cosine/sql2 (no direction), as pairs with one get
    status ``zero_norm``.
    """
    r = np.array(references, dtype=np.float64)  # one copy each: memory is the inputs, once
    p = np.array(probes, dtype=np.float64)
    _, r_ids = np.unique(np.asarray(list(ref_identity) + list(probe_identity)), return_inverse=True)
    p_ids, r_ids = r_ids[len(r) :], r_ids[: len(r)]
    if metric != "euclidean":
        r, r_ids = _unit_rows(r, r_ids)
        p, p_ids = _unit_rows(p, p_ids)
    same = np.bincount(r_ids, minlength=int(max(r_ids.max(initial=0), p_ids.max(initial=0)) + 1))
    n = int(len(r) * len(p) - np.sum(same[p_ids])) if len(r) and len(p) else 0
    out = ScoreSummary.empty(lo, hi, bins)
    out.n_references, out.n_probes = len(r), len(p)
    keeper = _TailKeeper(min(n, math.floor(TAIL_FMR * n + 1e-9) + 1, TAIL_MAX) if n else 0)
    hist = np.zeros(bins, np.int64)
    total = total_sq = 0.0
    for i in range(0, len(r), REF_BLOCK):
        rb, rid = r[i : i + REF_BLOCK], r_ids[i : i + REF_BLOCK]
        for j in range(0, len(p), PROBE_BLOCK):
            s = _block_scores(rb, p[j : j + PROBE_BLOCK], metric)
            v = s[rid[:, None] != p_ids[None, j : j + PROBE_BLOCK]]
            hist += _histogram(v, lo, hi, bins)
            total += float(v.sum())
            total_sq += float(np.dot(v, v))
            keeper.add(v)
    out.n, out.hist, out.total, out.total_sq = n, hist, total, total_sq
    out.tail, out.floor = keeper.result(n)
    return out


# ---------------------------------------------------------------- strata


@dataclass(frozen=True)
class Stratum:
    """Where a summary's impostors come from: pair type, split, fold, mask colour of the pair."""

    pair_type: str
    split: str
    fold: int | None
    colour: str | None


def merge_all(summaries: Sequence[ScoreSummary]) -> ScoreSummary:
    """One summary of several (over one score range); the tail is exact down to the highest
    floor. One concatenation and one sort, however many summaries."""
    first = summaries[0]
    if len(summaries) == 1:
        return first
    for other in summaries[1:]:
        if (other.lo, other.hi, other.hist.size) != (first.lo, first.hi, first.hist.size):
            raise ValueError("cannot merge summaries over different score ranges")
    floor = max(x.floor for x in summaries)
    tail = np.concatenate([x.tail[x.tail >= floor] for x in summaries])
    tail[::-1].sort()  # descending, in place
    return ScoreSummary(
        sum(x.n for x in summaries),
        first.lo,
        first.hi,
        np.sum([x.hist for x in summaries], axis=0),
        tail,
        floor,
        sum(x.total for x in summaries),
        sum(x.total_sq for x in summaries),
        sum(x.n_references for x in summaries),
        sum(x.n_probes for x in summaries),
    )


def merged(items: Iterable[tuple[Stratum, ScoreSummary]], **where: Any) -> ScoreSummary | None:
    """The merge of the summaries whose stratum matches every ``field=value`` (None: none)."""
    chosen = [
        summary
        for stratum, summary in items
        if all(getattr(stratum, k) == v for k, v in where.items())
    ]
    return merge_all(chosen) if chosen else None


def impostors_table(items: Sequence[tuple[Stratum, ScoreSummary]]) -> pa.Table:
    """``impostors.parquet``: one row per stratum (:data:`IMPOSTORS_SCHEMA`)."""
    rows = [
        {
            "pair_type": s.pair_type,
            "split": s.split,
            "fold": s.fold,
            "colour": s.colour,
            **summary.to_row(),
        }
        for s, summary in items
    ]
    cols = {f.name: [r[f.name] for r in rows] for f in IMPOSTORS_SCHEMA}
    return pa.table(cols, schema=IMPOSTORS_SCHEMA)


def read_impostors(table: pa.Table) -> list[tuple[Stratum, ScoreSummary]]:
    """The strata and summaries of an ``impostors.parquet`` table."""
    out = []
    for row in table.to_pylist():
        stratum = Stratum(row["pair_type"], row["split"], row["fold"], row["colour"])
        out.append((stratum, ScoreSummary.from_row(row)))
    return out


__all__ = [
    "EXACT_MAX",
    "IMPOSTORS_SCHEMA",
    "N_BINS",
    "TAIL_FMR",
    "TAIL_MAX",
    "ScoreSummary",
    "Stratum",
    "all_vs_all",
    "impostors_table",
    "merge_all",
    "merged",
    "read_impostors",
    "score_range",
]
