"""Side by side: one column per run, one row per headline metric (``mfrbench report compare``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mfrbench.evaluate.formatting import accuracy_cell, fnmr_cell, md_table, num, pct, tar_cell


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


_COMPARE_ROWS: tuple[tuple[str, Any], ...] = (
    ("protocol", lambda r, v: f"`{r['protocol']['id']}`"),
    ("model", lambda r, v: f"`{r['model']['id']}`"),
    ("distance", lambda r, v: r["distance"]),
    ("pairs scored", lambda r, v: f"{r['pairs']['scored']}/{r['pairs']['evaluated']}"),
    ("pairs in this set", lambda r, v: v["n_pairs"]),
    ("accuracy", lambda r, v: accuracy_cell(v)),
    ("AUC", lambda r, v: num(_get(v, "auc", "value"), 4)),
    ("EER", lambda r, v: pct(_get(v, "eer", "value"))),
    ("TAR@FAR 1%", lambda r, v: tar_cell(v, "0.01")),
    ("TAR@FAR 0.1%", lambda r, v: tar_cell(v, "0.001")),
    ("FNMR@FMR 0.1%", lambda r, v: fnmr_cell(v, "0.001")),
    ("d'", lambda r, v: num(_get(v, "d_prime"), 2)),
    (
        "GMean / IMean",
        lambda r, v: "{} / {}".format(
            num(_get(v, "distance_stats", "gmean"), 4),
            num(_get(v, "distance_stats", "imean"), 4),
        ),
    ),
    ("rank-1", lambda r, v: pct(_get(r, "identification", "rank1"))),
    ("CS margin", lambda r, v: num(_get(r, "identification", "confidence_score", "margin"), 4)),
)


def pair_set(report: Mapping[str, Any], which: str = "all") -> Mapping[str, Any]:
    """A report's verification results for ``all`` pairs, a pair type, or ``colour:NAME``."""
    ver = report["verification"]
    if which == "all":
        return ver["overall"]
    if which.startswith("colour:"):
        return ver["by_colour"][which.split(":", 1)[1]]
    return ver["by_pair_type"][which]


def compare_table(reports: Sequence[Mapping[str, Any]], pairs: str = "all") -> str:
    """A side-by-side Markdown table: one column per run, one row per headline metric.

    ``pairs`` picks the verification set: ``all``, a pair type (``masked-unmasked``) or
    ``colour:NAME``; a run without that set shows dashes.
    """
    header = [f"pairs: {pairs}", *[f"run {i + 1}" for i in range(len(reports))]]
    rows = []
    for name, fn in _COMPARE_ROWS:
        cells = []
        for r in reports:
            try:
                cells.append(str(fn(r, pair_set(r, pairs))))
            except (KeyError, TypeError):
                cells.append("–")
        rows.append([name, *cells])
    return "\n".join(md_table(header, rows))
