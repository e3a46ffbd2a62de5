"""Formatters for report tables: percent and number cells, and the row builders that
``report.md``, the HTML page, the LaTeX table and the CLI summaries share.

Every cell shows ``–`` for a missing value and ``n/e`` for a rate there are not enough
impostors to estimate; a value marked ``~`` comes from the impostor histogram, not the exact
tail. Row builders take report.json blocks (``docs/metrics.md``) and return lists of strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def pct(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{100.0 * float(value):.{digits}f}%"


def num(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def ci_pct(ci: Any) -> str:
    if not ci:
        return ""
    return f" [{100.0 * ci[0]:.2f}, {100.0 * ci[1]:.2f}]"


def ci_num(ci: Any) -> str:
    return f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""


def accuracy_cell(v: Mapping[str, Any], with_ci: bool = False) -> str:
    """The set's citable accuracy (:func:`~mfrbench.evaluate.headline.accuracy_text`): k-fold
    ``± s.e.``, the val-chosen threshold on test ``(val thr.)``, or ``(opt.)`` when the protocol
    leaves nothing else."""
    from mfrbench.evaluate.headline import accuracy_text

    return accuracy_text(v, with_ci)


def gallery_per_space(ident: Mapping[str, Any]) -> int:
    """Gallery identities per embedding space of an identification block: rank-N of an
    N-identity gallery is 100% by construction, so ranks from N up say nothing."""
    return int(ident["gallery_size"]) // max(1, int(ident.get("spaces", 1)))


def _rate_entry(v: Mapping[str, Any], table: str, rate: str) -> dict[str, Any]:
    return ((v.get(table) or {}).get(rate)) or {}


def tar_cell(v: Mapping[str, Any], far: str) -> str:
    entry = _rate_entry(v, "tar_at_far", far)
    if not entry:
        return "–"
    return "n/e" if entry.get("value") is None else pct(entry["value"])


def fnmr_cell(v: Mapping[str, Any], fmr: str) -> str:
    entry = _rate_entry(v, "fnmr_at_fmr", fmr)
    if not entry:
        return "–"
    return "n/e" if entry.get("value") is None else pct(entry["value"])


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


#: Breakdown groups (colour, detector, mask type...) smaller than this are listed in one line
#: under report.md's table rather than given a row: their figures mean little.
MIN_GROUP_PAIRS = 20


def too_small(v: Mapping[str, Any]) -> bool:
    return "error" in v or int(v.get("n_pairs", 0)) < MIN_GROUP_PAIRS


def summary_row(name: str, v: Mapping[str, Any]) -> list[str]:
    if "error" in v:
        return [name, str(v.get("n_pairs", 0)), f"({v['error']})", *["–"] * 6]
    return [
        name,
        f"{v['n_pairs']} ({v['n_genuine']}/{v['n_impostor']})",
        accuracy_cell(v),
        num(v["auc"]["value"], 4),
        pct(v["eer"]["value"]),
        tar_cell(v, "0.01"),
        tar_cell(v, "0.001"),
        fnmr_cell(v, "0.001"),
        num(v.get("d_prime"), 2),
    ]


def rate_cell(entry: Mapping[str, Any] | None, key: str = "value", digits: int = 3) -> str:
    """A rate from an operating-point entry; ``n/e`` without enough impostors, ``~`` when
    it comes from the histogram rather than the exact tail."""
    if not entry or entry.get(key) is None:
        return "n/e"
    approx = entry.get("exact") is False if key == "value" else entry.get(f"{key}_exact") is False
    return ("~" if approx else "") + pct(entry[key], digits)


NIST_HEADER = ["pairs", "control FMR", "threshold", "FNMR", "FMR here", "shift"]
NIST_NOTE = (
    "NIST-style: FNMR at the threshold that gives FMR = f on the unmasked control's impostors, "
    "and the FMR that threshold gives here."
)


def nist_rows(block: Mapping[str, Any]) -> list[list[str]]:
    """Rows of the NIST-style table of an ``all_impostors`` block: each masked pair type's FNMR
    at the control's FMR thresholds and the FMR there (empty without control pairs, and without
    rates the control's impostors can resolve)."""
    rows = []
    for t, v in block["by_pair_type"].items():
        source = v["fnmr_at_fmr"].get("0.001", {}).get("threshold_source", "")
        if t == "unmasked-unmasked" or not source.startswith("control"):
            continue
        for f in ("0.001", "0.0001", "1e-05"):
            e = v["fnmr_at_fmr"].get(f) or {}
            if e.get("value") is None:  # the control cannot resolve f: the TAR table says n/e
                continue
            rows.append(
                [
                    t,
                    f,
                    num(e.get("threshold"), 4),
                    rate_cell(e),
                    rate_cell(e, "fmr_here", 5),  # 1e-6 shows as 0.00010%
                    num(e.get("fmr_shift"), 2),
                ]
            )
    return rows


_FAR_LABEL = {"0.01": "1e-2", "0.001": "1e-3", "0.0001": "1e-4", "1e-05": "1e-5"}


def all_impostors_rows(
    block: Mapping[str, Any], fars: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the all-vs-all table: per pair type and mask colour, genuine and
    impostor counts, TAR at each of ``fars`` (report.json keys), EER and d'."""
    sets = list(block["by_pair_type"].items())
    sets += [(f"colour {c}", v) for c, v in block["by_colour"].items() if c != "none"]
    header = ["pairs", "genuine", "impostors", *(f"TAR@{_FAR_LABEL[f]}" for f in fars), "EER", "d'"]
    rows = [
        [
            name,
            f"{v['n_genuine']:,}",
            f"{v['n_impostor']:,}",
            *(rate_cell(v["tar_at_far"].get(f)) for f in fars),
            ("~" if not v["eer"]["exact"] else "") + pct(v["eer"]["value"]),
            num(v.get("d_prime"), 2),
        ]
        for name, v in sets
    ]
    return header, rows


def _criterion_order(crit: str) -> tuple[float, ...]:
    """fmr=R from the loosest R down, then eer, accuracy, the rest (report.json sorts keys)."""
    if crit.startswith("fmr="):
        return (0.0, -float(crit.split("=", 1)[1]))
    return ({"eer": 1.0, "accuracy": 2.0}.get(crit, 3.0),)


def threshold_rows(block: Mapping[str, Any]) -> list[list[str]]:
    """Rows of a thresholds block: the headline pair type first, the pooled ``all`` last."""
    from mfrbench.evaluate.headline import ordered_pair_types

    sets = block["sets"]
    order = [
        *ordered_pair_types(n for n in sets if n != "all"),
        *(["all"] if "all" in sets else []),
    ]
    rows = []
    for name, crits in ((n, sets[n]) for n in order):
        for crit, e in sorted(crits.items(), key=lambda kv: _criterion_order(kv[0])):
            if e.get("threshold") is None:
                rows.append([name, crit, "–", e.get("reason", "–"), "", "", ""])
                continue
            rows.append(
                [
                    name,
                    crit,
                    num(e["threshold"], 4),
                    pct(e.get("fnmr"), 3),
                    ("" if e.get("fmr_exact", True) else "~") + pct(e.get("fmr"), 4),
                    num(e.get("fmr_shift"), 2),
                    pct(e.get("hter"), 3),
                ]
            )
    return rows


THRESHOLD_HEADER = ["pairs", "criterion", "threshold", "FNMR", "FMR", "FMR shift", "HTER"]
