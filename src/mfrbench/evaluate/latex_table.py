"""Headline metrics of one or several runs as a LaTeX ``booktabs`` table, for a paper.

One row per pair set (all pairs, then each pair type) of each run: pairs (genuine/impostor),
accuracy, AUC, EER and TAR at FAR 1e-3 / 1e-4 where some run can estimate them (a column no
run can fill is left out; a cell that cannot be estimated is ``n/e``). A TAR the listed pairs
cannot give but the run's all-vs-all impostors can (``--impostors all``) is taken from those and
marked with a dagger. The caption names the protocol id(s), which a reader needs to cite the
numbers, and the model id(s). Every string from a report is escaped, so ids with ``_``, ``%``,
``&`` or ``#`` compile. Needs ``\\usepackage{booktabs}``; :func:`latex_document` wraps a table
into a document that compiles on its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mfrbench.errors import UserError

#: TAR at these FARs (report.json keys) get a column when some run can estimate them.
DEFAULT_FARS = ("0.001", "0.0001")

_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"$<$",
    ">": r"$>$",
}
_DAGGER = r"$^\dagger$"


def escape_latex(text: Any) -> str:
    """``text`` with every LaTeX special character escaped (safe in text mode)."""
    return "".join(_SPECIALS.get(ch, ch) for ch in str(text))


def _far_tex(far: str) -> str:
    exponent = f"{float(far):.0e}".split("e")[1]
    return f"$10^{{{int(exponent)}}}$"


def _pct(value: Any) -> str:
    return f"{100.0 * float(value):.2f}"


def _pair_sets(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The headline pair type first, the control labelled, the pooled set last (if several)."""
    from mfrbench.evaluate.headline import ordered_pair_types, primary_pair_set, set_label

    ver = report["verification"]
    by_type = ver["by_pair_type"]
    primary = primary_pair_set(by_type)
    types = [(set_label(t, primary), by_type[t]) for t in ordered_pair_types(by_type)]
    if len(types) == 1:  # "all" is that one pair type: one row, named for what it is
        return types
    return [*types, ("all pair types pooled", ver["overall"])]


def _tar(report: Mapping[str, Any], name: str, v: Mapping[str, Any], far: str) -> str | None:
    """The TAR cell for one pair set: a percentage (daggered from all-vs-all), ``n/e``, or
    None when the run has no such entry at all."""
    entry = (v.get("tar_at_far") or {}).get(far)
    if entry and entry.get("value") is not None:
        return _pct(entry["value"])
    block = (report["verification"].get("all_impostors") or {}).get("by_pair_type") or {}
    key = name.removesuffix(" (control)")  # the row label of the control
    wide = ((block.get(key) or {}).get("tar_at_far") or {}).get(far)
    if wide and wide.get("value") is not None:
        return _pct(wide["value"]) + _DAGGER
    return "n/e" if entry or wide else None


def _accuracy(v: Mapping[str, Any]) -> str:
    r"""The honest accuracy (evaluate.headline): k-fold ``± s.e.``, val-chosen threshold
    (``$^\ddagger$``), or best on the same pairs (``$^\ast$``, optimistic)."""
    from mfrbench.evaluate.headline import FOLDS, VAL, honest_accuracy

    h = honest_accuracy(v)
    if h is None:
        return "--"
    if h["how"] == FOLDS and h.get("sem") is not None:
        return f"${_pct(h['value'])} \\pm {_pct(h['sem'])}$"
    if h["how"] == VAL:
        return _pct(h["value"]) + r"$^\ddagger$"
    if h["how"] == FOLDS:
        return _pct(h["value"])
    return _pct(h["value"]) + r"$^\ast$"


def _row(report: Mapping[str, Any], name: str, v: Mapping[str, Any], fars: Sequence[str]):
    if "error" in v:
        return [escape_latex(name), str(v.get("n_pairs", 0)), "--", "--", "--"] + ["--"] * len(fars)
    tars = [_tar(report, name, v, f) or "--" for f in fars]
    return [
        escape_latex(name),
        f"{v['n_genuine']}/{v['n_impostor']}",
        _accuracy(v),
        f"{float(v['auc']['value']):.4f}",
        _pct(v["eer"]["value"]),
        *tars,
    ]


def _check_label(label: str) -> str:
    """``label`` if it is a plain LaTeX label (letters, digits, ``:._-``), else UserError."""
    if not re.fullmatch(r"[A-Za-z0-9:._-]+", label):
        raise UserError(f"a LaTeX label may hold letters, digits and :._- only, got {label!r}")
    return label


def _ids(values: Sequence[str]) -> str:
    unique = list(dict.fromkeys(values))
    return ", ".join(r"\texttt{" + escape_latex(u) + "}" for u in unique)


def latex_table(
    reports: Sequence[Mapping[str, Any]],
    *,
    fars: Sequence[str] = DEFAULT_FARS,
    caption: str | None = None,
    label: str = "tab:mfrbench",
) -> str:
    """The ``table`` environment for ``reports`` (report.json dicts), one block per run.

    ``fars``: report.json FAR keys to give TAR columns (kept where some run estimates them);
    ``caption``: text put before the generated one (escaped).
    """
    if not reports:
        raise ValueError("latex_table needs at least one report")
    sets = [(r, name, v) for r in reports for name, v in _pair_sets(r)]
    shown = [f for f in fars if any(_tar(r, n, v, f) not in (None, "n/e") for r, n, v in sets)]
    protocols = [r["protocol"]["id"] for r in reports]
    models = [r["model"]["id"] for r in reports]
    several = len(set(models)) > 1  # one model: the caption names it, no column
    two_protocols = len(set(protocols)) > 1
    lead = ["Model"] if several else []
    lead += ["Protocol"] if two_protocols else []
    header = [*lead, "Pairs", "Gen./imp.", r"Acc.\ (\%)", "AUC", r"EER (\%)"]
    header += [f"TAR@{_far_tex(f)} (\\%)" for f in shown]
    spec = "l" * (len(lead) + 1) + "r" * (len(header) - len(lead) - 1)
    body: list[str] = []
    for k, report in enumerate(reports):
        if k:
            body.append(r"\midrule")
        for j, (name, v) in enumerate(_pair_sets(report)):
            cells = []
            if several:
                cells.append(r"\texttt{" + escape_latex(models[k]) + "}" if j == 0 else "")
            if two_protocols:
                cells.append(r"\texttt{" + escape_latex(protocols[k]) + "}" if j == 0 else "")
            cells += _row(report, name, v, shown)
            body.append(" & ".join(cells) + r" \\")
    notes = []
    folds = {(_pair_sets(r)[0][1].get("accuracy") or {}).get("n_folds") for r in reports}
    folds.discard(None)
    if folds:
        notes.append(
            "accuracy: mean $\\pm$ standard error over "
            + "/".join(str(f) for f in sorted(f for f in folds if f is not None))
            + " cross-validation folds"
        )
    if any(r"$^\ddagger$" in line for line in body):
        notes.append(r"$^\ddagger$ at the threshold chosen on the val pairs")
    if any(r"$^\ast$" in line for line in body):
        notes.append(r"$^\ast$ at the best threshold on the same pairs (optimistic)")
    if any(_DAGGER in line for line in body):
        notes.append(_DAGGER + " against all-vs-all impostors")
    if any("n/e" in line for line in body):
        notes.append("n/e: too few impostors for 10 expected false accepts")
    text = (escape_latex(caption) + " ") if caption else ""
    text += f"Verification on protocol {_ids(protocols)}, model {_ids(models)}"
    if shown:
        notes.append("TAR@$x$: true accept rate at false accept rate $x$")
    text += (" (" + "; ".join(notes) + ")") if notes else ""
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            f"\\caption{{{text}.}}",
            f"\\label{{{_check_label(label)}}}",
            f"\\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            " & ".join(header) + r" \\",
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    )


def latex_document(table: str) -> str:
    """A minimal article around ``table`` that compiles with pdflatex (booktabs only)."""
    return "\n".join(
        [
            r"\documentclass{article}",
            r"\usepackage[margin=2cm,landscape]{geometry}",
            r"\usepackage{booktabs}",
            r"\begin{document}",
            table.rstrip("\n"),
            r"\end{document}",
            "",
        ]
    )


__all__ = ["DEFAULT_FARS", "escape_latex", "latex_document", "latex_table"]
