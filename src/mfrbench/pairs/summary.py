"""A PairSet's summary: per-fold rows and totals as the strategies record them, and printing.

The summary is JSON that goes into the protocol file (so its keys are part of the digest);
:func:`summary_table` turns it into rows for the CLI's table.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from mfrbench.pairs.pairset import PairDraft, PairSet
from mfrbench.pairs.sources import Source
from mfrbench.records import ImageRef


def count_sides(
    row: dict[str, Any], pairs: Sequence[PairDraft], by_id: Mapping[str, ImageRef]
) -> None:
    """Distinct masked and unmasked images used by ``pairs`` (all pair types), set on ``row``."""
    used = {p["a"] for p in pairs} | {p["b"] for p in pairs}
    row["masked"] = sum(1 for i in used if by_id[i]["masked"])
    row["unmasked"] = len(used) - row["masked"]


def color_counts(pairs: Sequence[PairDraft], by_id: Mapping[str, ImageRef]) -> dict[str, int]:
    """Distinct masked images used, counted by mask colour."""
    used = {p["a"] for p in pairs} | {p["b"] for p in pairs}
    colors = Counter(c for i in used if (c := by_id[i]["color"]) is not None)
    return dict(sorted(colors.items()))


def fold_summary(
    rows: list[dict[str, Any]],
    pairs: Sequence[PairDraft],
    by_id: Mapping[str, ImageRef],
    types: list[str],
) -> dict[str, Any]:
    """The summary of a fold strategy: its rows, their total, pair types and colour counts."""
    keys = ("assigned", "subjects", "photos", "masked", "unmasked", "genuine", "impostor")
    total = {k: sum(r[k] for r in rows) for k in keys if k in rows[0]}
    return {
        "by": "fold",
        "rows": rows,
        "total": {"split": "total", **total},
        "pair_types": types,
        "pairs_per_type": len(pairs) // max(1, len(types)),
        "colors": color_counts(pairs, by_id),
    }


def fold_rows(
    entries: Sequence[tuple[int, Source, Source, int]],
    pairs: Sequence[PairDraft],
    by_id: Mapping[str, ImageRef],
) -> list[dict[str, Any]]:
    """One summary row per fold of a listed strategy's (fold, source a, source b, label)."""
    folds: dict[int, list[tuple[int, Source, Source, int]]] = defaultdict(list)
    for e in entries:
        folds[e[0]].append(e)
    rows = []
    for f, es in sorted(folds.items()):
        imp = [e for e in es if e[3] == 0]
        row = {
            "split": "test",
            "fold": f,
            "subjects": len({s.identity for e in es for s in e[1:3]}),
            "photos": len({s.src_path for e in es for s in e[1:3]}),
            "genuine": len(es) - len(imp),
            "impostor": len(imp),
            "impostor_ids": len({s.identity for e in imp for s in e[1:3]}),
        }
        count_sides(row, [p for p in pairs if p["fold"] == f], by_id)
        rows.append(row)
    return rows


def summary_table(pairset: PairSet) -> list[dict[str, Any]]:
    """Rows for printing a PairSet's summary: one per split or fold, then a total row.

    Columns: ``split`` (rmfrd) or ``fold``; subjects; masked and unmasked images; genuine and
    impostor pairs; identities the impostors cover (rmfrd: probe/reference sides, with the
    first-N-in-listing-order figure beside it).
    """
    summary = pairset.summary
    by_split = summary.get("by") == "split"
    out = []
    for row in [*summary["rows"], summary["total"]]:
        is_total = row.get("split") == "total"
        shown: dict[str, Any] = {}
        if by_split:
            shown["split"] = row["split"]
        else:
            shown["fold"] = "total" if is_total else row["fold"]
        for key in ("subjects", "masked", "unmasked", "genuine", "impostor"):
            shown[key] = row.get(key, "")
        if by_split:
            shown["impostor ids (probe/ref)"] = (
                "" if is_total else f"{row['impostor_ids_masked']}/{row['impostor_ids_unmasked']}"
            )
            shown["first-N ids (probe/ref)"] = (
                "" if is_total else f"{row['first_n_ids_masked']}/{row['first_n_ids_unmasked']}"
            )
        else:
            shown["impostor ids"] = "" if is_total else row["impostor_ids"]
        out.append(shown)
    return out
