"""Side by side: one column per run, one row per headline metric (``mfrbench report compare``).

Runs are named by their model and the options in which they differ (:func:`run_labels`);
:func:`comparability` says what makes columns not comparable (different protocols: refused
unless asked; different distances or score conventions: figures in score units left out);
the default pair set is the protocols' headline one (:func:`~mfrbench.evaluate.headline.
primary_pair_set`), never a pooled ``all``. With the runs' scores, each run after the first
gets a paired difference against the first (:mod:`mfrbench.evaluate.paired`). The table comes
as Markdown, CSV or LaTeX.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from mfrbench.evaluate.formatting import accuracy_cell, fnmr_cell, md_table, num, pct, tar_cell
from mfrbench.evaluate.headline import honest_accuracy, primary_pair_set


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def _flat(report: Mapping[str, Any]) -> dict[str, str]:
    """What distinguishes one run from another, as ``key -> text``."""
    m = report["model"]
    out = {
        "protocol": str(_get(report, "protocol", "id")),
        "model": str(m.get("spec")),
        "weights": str(_get(m, "identity", "weights_digest") or "")[:12],
        "distance": str(report.get("distance")),
        "impostors": str(_get(report, "impostors", "mode")),
        "fit": str(_get(m, "fit", "how")),
    }
    for key, value in sorted((_get(m, "identity", "options") or {}).items()):
        out[key] = str(value)
    for key, value in sorted((m.get("options") or {}).items()):
        out[key] = str(value)
    for key, value in sorted((m.get("preprocess") or {}).items()):
        out[f"preprocess.{key}"] = str(value)
    return out


def run_labels(reports: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each run's column name: its model's name, then the settings that differ between runs
    (``dlib-resnet (jitters=10)``); runs alike in everything get ``#i``."""
    flats = [_flat(r) for r in reports]
    # settings every run records (a field only newer reports write is not a setting that differs)
    keys = sorted(set.intersection(*(set(f) for f in flats)))
    differ = [k for k in keys if len({f[k] for f in flats}) > 1 and k != "model"]
    labels = []
    for r, f in zip(reports, flats, strict=True):
        name = str(_get(r, "model", "identity", "name") or f["model"])
        if len({fl["model"] for fl in flats}) > 1 and f["model"] != f"plugin:{name}":
            name = f["model"]
        extra = ", ".join(f"{k.removeprefix('preprocess.')}={f[k]}" for k in differ)
        labels.append(f"{name} ({extra})" if extra else name)
    if len(set(labels)) < len(labels):
        labels = [f"{lab} #{i + 1}" for i, lab in enumerate(labels)]
    return labels


def comparability(reports: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """(problems that make a comparison meaningless, warnings) for these runs.

    Different protocol ids are a problem (the pairs differ); different distances or score
    conventions, or accuracies obtained differently, are warnings."""
    problems, warnings = [], []
    ids = sorted({r["protocol"]["id"] for r in reports})
    if len(ids) > 1:
        problems.append(
            f"the runs are on different protocols ({', '.join(ids)}): side by side their "
            "numbers compare only as far as the protocols do (paired rows only where both "
            "score the same pairs of the same photos)"
        )
    for key, what in (("distance", "distances"), ("score_convention", "score conventions")):
        values = sorted({str(r.get(key)) for r in reports})
        if len(values) > 1:
            warnings.append(
                f"{what} differ ({' vs '.join(values)}): thresholds and GMean/IMean are in "
                "different units and are left out; rates and AUC still compare"
            )
    return problems, warnings


def pair_set(report: Mapping[str, Any], which: str) -> Mapping[str, Any]:
    """A report's verification results for ``all`` pairs, a pair type, or ``colour:NAME``."""
    ver = report["verification"]
    if which == "all":
        return ver["overall"]
    if which.startswith("colour:"):
        return ver["by_colour"][which.split(":", 1)[1]]
    return ver["by_pair_type"][which]


def default_pair_set(reports: Sequence[Mapping[str, Any]]) -> str:
    """The headline pair set of the runs (that of the first run's protocol)."""
    return primary_pair_set(reports[0]["verification"].get("by_pair_type") or {})


def _acc_how(v: Mapping[str, Any]) -> str:
    h = honest_accuracy(v)
    return "–" if h is None else h["text"]


def compare_rows(
    reports: Sequence[Mapping[str, Any]],
    pairs: str,
    paired: Sequence[Mapping[str, Any] | None] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison; ``paired[i]`` (from ``paired.paired_difference``,
    None for the first run) adds the difference rows."""
    same_units = not comparability(reports)[1]
    rows_spec: list[tuple[str, Any]] = [
        ("protocol", lambda r, v: f"`{r['protocol']['id']}`"),
        ("model", lambda r, v: f"`{r['model']['id']}`"),
        ("distance", lambda r, v: r["distance"]),
        ("pairs scored", lambda r, v: f"{r['pairs']['scored']}/{r['pairs']['evaluated']}"),
        ("pairs in this set", lambda r, v: v["n_pairs"]),
        ("accuracy", lambda r, v: accuracy_cell(v, with_ci=True)),
        ("accuracy: how", lambda r, v: _acc_how(v)),
        ("AUC", lambda r, v: num(_get(v, "auc", "value"), 4)),
        ("EER", lambda r, v: pct(_get(v, "eer", "value"))),
        ("TAR@FAR 1%", lambda r, v: tar_cell(v, "0.01")),
        ("TAR@FAR 0.1%", lambda r, v: tar_cell(v, "0.001")),
        ("FNMR@FMR 0.1%", lambda r, v: fnmr_cell(v, "0.001")),
        ("d'", lambda r, v: num(_get(v, "d_prime"), 2)),
    ]
    if same_units:
        rows_spec.append(
            (
                f"GMean / IMean ({reports[0]['distance']})",
                lambda r, v: "{} / {}".format(
                    num(_get(v, "distance_stats", "gmean"), 4),
                    num(_get(v, "distance_stats", "imean"), 4),
                ),
            )
        )
    rows_spec += [
        ("rank-1", lambda r, v: pct(_get(r, "identification", "rank1"))),
        (
            "CS margin",
            lambda r, v: num(_get(r, "identification", "confidence_score", "margin"), 4),
        ),
    ]
    header = [f"pairs: {pairs}", *run_labels(reports)]
    rows = []
    for name, fn in rows_spec:
        cells = []
        for r in reports:
            try:
                cells.append(str(fn(r, pair_set(r, pairs))))
            except (KeyError, TypeError):
                cells.append("–")
        rows.append([name, *cells])
    if paired and any(p is not None for p in paired):
        rows += _paired_rows(paired)
    return header, rows


def _paired_rows(paired: Sequence[Mapping[str, Any] | None]) -> list[list[str]]:
    def ci(d: Mapping[str, Any], key: str, scale: float, digits: int) -> str:
        lo_hi = d.get(f"{key}_ci95")
        value = f"{scale * d[key]:+.{digits}f}"
        return value + (f" [{scale * lo_hi[0]:+.{digits}f}, {scale * lo_hi[1]:+.{digits}f}]"
                        if lo_hi else "")  # fmt: skip

    names = (
        "paired pairs (both scored)",
        "Δ accuracy vs run 1, points [95% CI]",
        "McNemar exact p (discordant: this / run 1 only correct)",
        "Δ AUC vs run 1 [95% CI]",
    )
    rows: list[list[str]] = [[n] for n in names]
    for p in paired:
        if p is None:
            cells = ["(reference)"] * 4
        elif "error" in p:
            cells = [p["error"], "–", "–", "–"]
        else:
            mc = p["mcnemar"]
            cells = [
                str(p["n_pairs"]),
                ci(p, "delta_accuracy", 100.0, 2),
                f"{mc['p_value']:.3g} ({mc['b_only_correct']} / {mc['a_only_correct']})",
                ci(p, "delta_auc", 1.0, 4),
            ]
        for row, cell in zip(rows, cells, strict=True):
            row.append(cell)
    return rows


def render_markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return "\n".join(md_table(header, rows))


def render_csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([h.replace("`", "") for h in header])
    for row in rows:
        writer.writerow([c.replace("`", "") for c in row])
    return buf.getvalue()


def _tex(text: str) -> str:
    out = text.replace("`", "").replace("\\", r"\textbackslash{}")
    for ch in "&%$#_{}":
        out = out.replace(ch, "\\" + ch)
    return (
        out.replace("~", r"\textasciitilde{}")
        .replace("^", r"\textasciicircum{}")
        .replace("Δ", r"$\Delta$")
        .replace("±", r"$\pm$")
        .replace("–", "--")
    )


def render_latex(header: Sequence[str], rows: Sequence[Sequence[str]], label: str) -> str:
    """A booktabs table (``\\usepackage{booktabs}``)."""
    cols = "l" + "r" * (len(header) - 1)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + _tex(f"Comparison ({header[0]})") + "}",
        r"\label{" + label + "}",
        r"\begin{tabular}{" + cols + "}",
        r"\toprule",
        " & ".join(_tex(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_tex(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def compare_table(reports: Sequence[Mapping[str, Any]], pairs: str | None = None) -> str:
    """The Markdown comparison (no paired rows), on ``pairs`` or the headline pair set."""
    header, rows = compare_rows(reports, pairs or default_pair_set(reports))
    return render_markdown(header, rows)
