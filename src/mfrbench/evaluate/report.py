"""Reports of an evaluation run: report.json, report.md, ROC / DET / score-histogram plots,
and the side-by-side comparison of several runs (``mfrbench report compare``).

Plots are drawn with matplotlib's object API on the Agg canvas (no pyplot, no global backend
state), so they work headless and from worker threads.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from mfrbench.evaluate import metrics
from mfrbench.manifest import write_bytes_atomic, write_json_atomic

_FARS_SHOWN = ("0.1", "0.01", "0.001", "0.0001", "1e-05")


# ----------------------------------------------------------------------------- formatting


#: report.json layout version: 1 = issues 4-10 (no key), 2 = adds ``all_impostors``,
#: ``calibration``, ``dev_eval``, ``fixed_threshold`` and ``carried_thresholds``.
REPORT_SCHEMA_VERSION = 2


def pct(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{100.0 * float(value):.{digits}f}%"


def num(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def _ci_pct(ci: Any) -> str:
    if not ci:
        return ""
    return f" [{100.0 * ci[0]:.2f}, {100.0 * ci[1]:.2f}]"


def _ci_num(ci: Any) -> str:
    return f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""


def accuracy_cell(v: Mapping[str, Any], with_ci: bool = False) -> str:
    acc = v.get("accuracy") or {}
    if acc.get("value") is None:
        return "–"
    text = pct(acc["value"])
    if not acc.get("optimistic") and acc.get("sem") is not None:
        text += f" ± {100.0 * acc['sem']:.2f}"
    elif acc.get("optimistic"):
        text += " (opt.)"
    return text + (_ci_pct(acc.get("ci95")) if with_ci else "")


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


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
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


# ----------------------------------------------------------------------------- report.md


def render_markdown(report: Mapping[str, Any]) -> str:
    """The human-readable report: what was run, the headline table, operating points."""
    p, m, e = report["protocol"], report["model"], report["embedding"]
    ver = report["verification"]
    overall = ver["overall"]
    lines = [
        f"# {m['id']} on {p['id']}",
        "",
        f"Protocol **`{p['id']}`** ({p['dataset']}, strategy {p['strategy']}, version "
        f"{p['version']}). Cite this id with any number below.",
        "",
        f"- model: `{m['spec']}`, {m['identity'].get('name')} {m['identity'].get('version')}, "
        f"weights `{str(m['identity'].get('weights_digest'))[:16]}`, crop "
        f"`{m['preprocess']['crop']}`, input {m['preprocess']['size'] or 'native'}, "
        f"{m['embedding_size']}-D; fit: {m['fit']['how']}",
        f"- distance: {report['distance']} ({report['score_convention']}); seed {report['seed']}, "
        f"{report['n_boot']} bootstrap resamples; mfrbench {report['mfrbench_version']}",
        f"- pairs: {report['pairs']['scored']} of {report['pairs']['evaluated']} evaluated pairs "
        f"scored; metrics on the test split ({report['evaluation']['cross_validation']})",
        f"- embeddings: {e['inputs']} distinct inputs, {e['computed']} computed this run, "
        f"{e['cached']} from the cache, {e['failed']} failed; forward passes {e['forward_passes']} "
        f"vs {e['naive_forward_passes']} naive (two per pair)",
        "",
        "## Verification",
        "",
        _accuracy_note(overall),
        "",
    ]
    header = [
        "pairs",
        "n (gen/imp)",
        "accuracy",
        "AUC",
        "EER",
        "TAR@1%",
        "TAR@0.1%",
        "FNMR@FMR 0.1%",
        "d'",
    ]
    rows = [summary_row("all", overall)]
    rows += [summary_row(t, v) for t, v in ver["by_pair_type"].items()]
    groups: list[tuple[str, Mapping[str, Any]]] = []
    if len(ver["by_colour"]) > 1 or "none" not in ver["by_colour"]:
        groups += [(f"colour {c}", v) for c, v in ver["by_colour"].items()]
    provenance = _provenance(ver)
    for label, by in provenance.items():
        if len(by) > 1:
            groups += [(f"{label} {g}", v) for g, v in by.items()]
    if ver.get("by_mask_type"):
        groups += [(f"mask {t}", v) for t, v in ver["by_mask_type"].items()]
    small = [(name, v) for name, v in groups if too_small(v)]
    rows += [summary_row(name, v) for name, v in groups if not too_small(v)]
    lines += _md_table(header, rows)
    if small:
        listed = ", ".join(f"{name} ({v.get('n_pairs', 0)})" for name, v in small)
        lines += [
            "",
            f"Left out of the table (fewer than {MIN_GROUP_PAIRS} pairs, or not both genuine and "
            f"impostor pairs; pair counts in brackets, all in `report.json`): {listed}.",
        ]
    lines += ["", f"FNMR@FMR 0.1%: {ver['control']}."]
    single = [f"{label} {next(iter(g))}" for label, g in provenance.items() if len(g) == 1]
    if single:
        lines += [f"Every scored test pair: {', '.join(single)}."]
    lines += [""]
    if "error" not in overall:
        lines += _operating_points(overall)
    if ver.get("val_threshold"):
        vt = ver["val_threshold"]
        lines += [
            f"Threshold chosen on the val pairs ({num(vt['threshold'], 4)}, val accuracy "
            f"{pct(vt['val_accuracy'])}): test accuracy {pct(vt['accuracy'])}, precision "
            f"{num(vt['precision'])}, recall {num(vt['recall'])}, F1 {num(vt['f1'])}.",
            "",
        ]
    lines += _all_impostors_md(ver.get("all_impostors"))
    lines += _thresholds_md(ver, report.get("fixed_threshold"))
    lines += _mask_pairs_md(ver.get("genuine_by_mask_type_pair"))
    lines += _faces_md(report.get("faces"))
    lines += _identification_md(report.get("identification") or {})
    failures = {k: v for k, v in report["pairs"]["by_status"].items() if k != "ok"}
    if failures:
        lines += ["## Pairs without a score", ""]
        lines += _md_table(["status", "pairs"], [[k, str(v)] for k, v in failures.items()])
        lines += ["", "Every such pair is listed with its reason in `scores.parquet`.", ""]
    lines += ["## Files", ""]
    lines += [f"- `{name}`" for name in sorted(report.get("files", {}).values())]
    lines += ["- `report.json` (everything above, with confidence intervals and timings)", ""]
    return "\n".join(lines)


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


def _all_impostors_md(block: Mapping[str, Any] | None) -> list[str]:
    """Genuine pairs against every impostor comparison (``--impostors all``)."""
    if not block:
        return []
    out = [
        "## All-vs-all impostors",
        "",
        f"Impostors: {block['how']} ({block['n_impostors']:,} impostor scores in the test "
        f"split). Values marked ~ come from a {block['histogram_bins']:,}-bin histogram "
        "(within one bin); the rest are exact: each stratum keeps its highest impostor scores "
        f"down to FMR {block['exact_tail_fmr']:g} (at most "
        f"{block.get('exact_tail_max', 0):,} of them).",
        "",
    ]
    out += _md_table(*all_impostors_rows(block, ("0.001", "0.0001", "1e-05")))
    rows = nist_rows(block)
    if rows:
        out += ["", NIST_NOTE, ""]
        out += _md_table(NIST_HEADER, rows)
    return [*out, ""]


def _criterion_order(crit: str) -> tuple[float, ...]:
    """fmr=R from the loosest R down, then eer, accuracy, the rest (report.json sorts keys)."""
    if crit.startswith("fmr="):
        return (0.0, -float(crit.split("=", 1)[1]))
    return ({"eer": 1.0, "accuracy": 2.0}.get(crit, 3.0),)


def threshold_rows(block: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for name, crits in block["sets"].items():
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


def _thresholds_md(ver: Mapping[str, Any], fixed: Mapping[str, Any] | None) -> list[str]:
    """Thresholds set elsewhere and measured here: another run's, a fixed one, dev -> eval."""
    out: list[str] = []
    carried = ver.get("carried_thresholds")
    if carried:
        src = carried["source"]
        out += [
            "## Thresholds from another run",
            "",
            f"Set on `{src['protocol_id']}` ({src['pair_set']}, {src['n_impostors']:,} "
            f"{src['impostors']}; run `{src['run']}`), measured here on the test pairs against "
            f"the {carried['impostors']}. FMR shift = FMR here / the FMR the threshold was set "
            "for.",
            "",
            *_md_table(THRESHOLD_HEADER, threshold_rows(carried)),
            "",
        ]
    block = ver.get("fixed_threshold")
    if block and fixed:
        out += [
            "## Fixed threshold",
            "",
            f"{fixed['value']:g} ({fixed['units']}), against the {block['impostors']}.",
            "",
            *_md_table(THRESHOLD_HEADER, threshold_rows(block)),
            "",
        ]
    dev = ver.get("dev_eval")
    if dev:
        out += [
            "## Dev -> eval thresholds",
            "",
            f"{dev['how'][0].upper()}{dev['how'][1:]} ({dev['impostors']}; accuracy on the "
            "listed pairs only). Threshold: the median over folds where each fold has its own.",
            "",
            *_md_table(THRESHOLD_HEADER, threshold_rows(dev)),
            "",
        ]
    return out


def _mask_pairs_md(block: Mapping[str, Any] | None) -> list[str]:
    """Genuine pairs by the pair's two dataset mask labels (MFR2), at the overall EER threshold."""
    if not block or not block.get("rows"):
        return []
    lines = [
        "Genuine pairs by mask-type pair (FNMR at the overall EER threshold "
        f"{num(block['threshold'], 4)}):",
        "",
    ]
    rows = [
        [t, str(r["n_genuine"]), num(r["median_score"], 4), pct(r["fnmr_at_eer_threshold"])]
        for t, r in block["rows"].items()
    ]
    return [*lines, *_md_table(["mask types", "genuine", "median score", "FNMR"], rows), ""]


def _faces_md(faces: Mapping[str, Any] | None) -> list[str]:
    """One paragraph: how faces were prepared, and the real photos with no face found."""
    if not faces:
        return []
    how = f"crop `{faces['crop']}`"
    if faces.get("landmarks"):
        how += f", points from `{faces['landmarks']}`"
    text = (
        f"Faces: {how}; {faces['source_photos']} source photos, {faces['face_found']} with a "
        f"face frozen in the protocol"
    )
    if faces.get("no_face_fallback"):
        text += f", {faces['no_face_fallback']} with none found ({faces['fallback']})"
    return [text + ".", ""]


def _provenance(ver: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The detector and landmark-backend breakdowns that exist (a string says they do not).

    Two or more groups become table rows; a single group is one sentence under the table (its
    metrics are the overall ones). ``a+b`` groups hold pairs whose two images differ.
    """
    out = {}
    for key, label in (("by_detector", "detector"), ("by_landmarks", "landmarks")):
        groups = ver.get(key)
        if isinstance(groups, Mapping) and groups:
            out[label] = groups
    return out


def _accuracy_note(v: Mapping[str, Any]) -> str:
    acc = v.get("accuracy") or {}
    if acc.get("n_folds"):
        how = (
            f"{acc['n_folds']}-fold cross-validated mean ± standard error (each fold's threshold "
            "chosen on the other folds)"
        )
    else:
        how = "at the best threshold on the same pairs (opt. = optimistic: no folds)"
    return (
        f"Accuracy: {how}. TAR at FAR and FNMR at FMR as rates (n/e: not enough impostors for "
        "10 expected false accepts)."
    )


def _operating_points(v: Mapping[str, Any]) -> list[str]:
    out = ["## Operating points (all test pairs)", ""]
    rows = []
    for far, entry in v["tar_at_far"].items():
        value = entry.get("value")
        rows.append(
            [
                far,
                "not enough data" if value is None else pct(value) + _ci_pct(entry.get("ci95")),
                num(entry.get("threshold"), 4),
            ]
        )
    out += _md_table(["FAR", "TAR [95% CI]", "threshold"], rows)
    acc, auc_, eer_ = v["accuracy"], v["auc"], v["eer"]
    out += [
        "",
        f"Accuracy {accuracy_cell(v, with_ci=True)}; AUC {num(auc_['value'], 4)}"
        f"{_ci_num(auc_.get('ci95'))}; "
        f"EER {pct(eer_['value'])}{_ci_pct(eer_.get('ci95'))} at threshold "
        f"{num(eer_['threshold'], 4)}.",
        "",
    ]
    c = v["confusion"]
    out += _md_table(
        ["at the accuracy threshold", "precision", "recall", "F1", "MSE", "TP", "FP", "TN", "FN"],
        [
            [
                "",
                num(c["precision"]),
                num(c["recall"]),
                num(c["f1"]),
                num(c["mse"]),
                str(c["tp"]),
                str(c["fp"]),
                str(c["tn"]),
                str(c["fn"]),
            ]
        ],
    )
    d = v.get("distance_stats")
    if d:
        out += [""]
        out += _md_table(
            ["distances", "GMean", "IMean", "gap", "median genuine", "median impostor", "gap"],
            [
                [
                    "",
                    num(d["gmean"], 4),
                    num(d["imean"], 4),
                    num(d["mean_gap"], 4),
                    num(d["gmedian"], 4),
                    num(d["imedian"], 4),
                    num(d["median_gap"], 4),
                ]
            ],
        )
    _ = acc
    return [*out, ""]


def _identification_md(ident: Mapping[str, Any]) -> list[str]:
    out = ["## Identification", ""]
    if "error" in ident:
        return [*out, f"Not computed: {ident['error']}.", ""]
    cmc = ident["cmc"]
    out.append(
        f"{ident['setup']}: {ident['gallery_size']} gallery identities, "
        f"{ident['n_target_probes']} target probes, {ident['n_nontarget_probes']} non-target."
    )
    out.append("")
    out += _md_table(
        ["rank-1", "rank-5", "rank-10"],
        [[pct(cmc[0]), pct(cmc[min(4, len(cmc) - 1)]), pct(cmc[-1])]],
    )
    cs = ident.get("confidence_score") or {}
    if "margin" in cs:
        out += [
            "",
            f"Open-set confidence score (scale {cs['scale']}): target "
            f"{cs['target_percentile']:g}th percentile {cs['target_value']:.4f}, non-target "
            f"{cs['nontarget_percentile']:g}th percentile {cs['nontarget_value']:.4f}, "
            f"margin {cs['margin']:.4f}.",
        ]
    if ident.get("note"):
        out += ["", ident["note"] + "."]
    return [*out, ""]


def write_reports(report: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """Write ``report.json`` (sorted keys, 2-space indent) and ``report.md`` atomically."""
    out = Path(out)
    paths = {"report_json": out / "report.json", "report_md": out / "report.md"}
    write_json_atomic(paths["report_json"], report)
    write_bytes_atomic(paths["report_md"], (render_markdown(report) + "\n").encode("utf-8"))
    return paths


# ----------------------------------------------------------------------------- plots


def _curves(rows: Mapping[str, Any], mask: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, labels, scores) for all pairs in ``mask`` and each pair type with both classes."""
    labels = np.asarray(rows["label"], dtype=np.int64)
    scores = np.asarray(rows["score"], dtype=np.float64)
    ptype = np.asarray(rows["pair_type"], dtype=object)
    out = [("all", labels[mask], scores[mask])]
    types = sorted(set(ptype[mask].tolist()))
    if len(types) > 1:
        for t in types:
            sel = mask & (ptype == t)
            out.append((t, labels[sel], scores[sel]))
    return [(n, y, s) for n, y, s in out if 0 < int(y.sum()) < y.size]


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    write_bytes_atomic(path, buf.getvalue())
    return path


def _figure(w: float = 6.0, h: float = 4.6) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


_PROBIT_TICKS = (0.0001, 0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95)


def _probit(p: np.ndarray) -> np.ndarray:
    inv = NormalDist().inv_cdf
    clipped = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.fromiter((inv(v) for v in clipped), dtype=np.float64, count=clipped.size)


def plot_roc(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """ROC: TAR against FAR on a log FAR axis, one curve per pair set, AUC in the legend."""
    fig = _figure()
    ax = fig.add_subplot()
    floor = 1.0
    for name, y, s in curves:
        far, tar, _ = metrics.roc(y, s)
        floor = min(floor, 1.0 / max(1, int((y == 0).sum())))
        ax.step(
            np.maximum(far, 1e-6), tar, where="post", label=f"{name} (AUC {metrics.auc(y, s):.4f})"
        )
    ax.set_xscale("log")
    ax.set_xlim(max(floor, 1e-5), 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("true accept rate (TAR)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_det(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """DET: FNMR against FMR, both on normal-deviate (probit) axes, EER in the legend."""
    fig = _figure()
    ax = fig.add_subplot()
    for name, y, s in curves:
        far, tar, _ = metrics.roc(y, s)
        e, _ = metrics.eer(y, s)
        ax.plot(_probit(far), _probit(1.0 - tar), label=f"{name} (EER {100 * e:.2f}%)")
    ticks = _probit(np.asarray(_PROBIT_TICKS))
    labels = [f"{100 * t:g}%" for t in _PROBIT_TICKS]
    lim = (_probit(np.asarray([1e-4]))[0], _probit(np.asarray([0.95]))[0])
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_ticks(ticks, labels)
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.plot(lim, lim, color="0.7", lw=0.8, ls="--")
    ax.set_xlabel("false match rate (FMR)")
    ax.set_ylabel("false non-match rate (FNMR)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_hist(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], path: Path, title: str) -> Path:
    """Genuine vs impostor score histograms, one panel per pair set, EER threshold marked."""
    n = len(curves)
    fig = _figure(6.0, 2.4 + 1.9 * n)
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    for ax, (name, y, s) in zip(axes, curves, strict=True):
        bins = np.linspace(float(s.min()), float(s.max()), 61) if s.max() > s.min() else 10
        ax.hist(
            s[y == 1],
            bins=bins,
            alpha=0.55,
            density=True,
            color="tab:green",
            label=f"genuine ({int((y == 1).sum())})",
        )
        ax.hist(
            s[y == 0],
            bins=bins,
            alpha=0.55,
            density=True,
            color="tab:red",
            label=f"impostor ({int((y == 0).sum())})",
        )
        _, thr = metrics.eer(y, s)
        if math.isfinite(thr):
            ax.axvline(thr, color="k", lw=0.8, ls="--", label="EER threshold")
        ax.set_ylabel(f"{name}\ndensity", fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("score (higher = more alike)")
    axes[0].set_title(title, fontsize=9)
    return _save(fig, path)


def write_plots(
    rows: Mapping[str, Any], mask: np.ndarray, out: Path, title: str
) -> dict[str, Path]:
    """roc.png, det.png and scores_hist.png for the pairs in ``mask`` (scored test pairs)."""
    curves = _curves(rows, np.asarray(mask, dtype=bool))
    if not curves:
        return {}
    out = Path(out)
    return {
        "roc": plot_roc(curves, out / "roc.png", title),
        "det": plot_det(curves, out / "det.png", title),
        "scores_hist": plot_hist(curves, out / "scores_hist.png", title),
    }


# ----------------------------------------------------------------------------- compare


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
    return "\n".join(_md_table(header, rows))
