"""``report.md`` and ``report.json`` of an evaluation run.

The Markdown report renders every block of report.json (``docs/metrics.md``) with the shared
formatters of ``formatting.py``; the plots are drawn by ``plots.py`` and the side-by-side
comparison of runs by ``compare.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mfrbench.evaluate.formatting import (
    MIN_GROUP_PAIRS,
    NIST_HEADER,
    NIST_NOTE,
    THRESHOLD_HEADER,
    accuracy_cell,
    all_impostors_rows,
    ci_num,
    ci_pct,
    gallery_per_space,
    md_table,
    nist_rows,
    num,
    pct,
    summary_row,
    threshold_rows,
    too_small,
)
from mfrbench.evaluate.headline import (
    FOLDS,
    OPTIMISTIC,
    VAL,
    headline_sentence,
    honest_accuracy,
    ordered_pair_types,
    primary_pair_set,
    set_label,
)
from mfrbench.evaluate.preprocess_text import preprocess_text
from mfrbench.manifest import write_bytes_atomic, write_json_atomic

#: report.json layout version: 1 = issues 4-10 (no key), 2 = adds ``all_impostors``,
#: ``calibration``, ``dev_eval``, ``fixed_threshold`` and ``carried_thresholds``; 3 = adds
#: ``verification.headline`` and a ``val_threshold`` on every set of a protocol with val pairs.
REPORT_SCHEMA_VERSION = 3


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
        f"weights `{str(m['identity'].get('weights_digest'))[:16]}`, "
        f"{m['embedding_size']}-D; fit: {m['fit']['how']}",
        f"- preprocessing: {preprocess_text(m['preprocess'])}",
        f"- distance: {report['distance']} ({report['score_convention']}); seed {report['seed']}, "
        f"{report['n_boot']} bootstrap resamples; mfrbench {report['mfrbench_version']}",
        f"- pairs: {report['pairs']['scored']} of {report['pairs']['evaluated']} evaluated pairs "
        f"scored{_not_scored_note(report)}; metrics on the test split",
        f"- embeddings: {e['inputs']} distinct inputs, {e['computed']} computed this run, "
        f"{e['cached']} from the cache, {e['failed']} failed; forward passes {e['forward_passes']} "
        f"vs {e['naive_forward_passes']} naive (two per pair)",
        "",
        "## Verification",
        "",
        f"**{headline_sentence(ver)}**",
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
    primary = primary_pair_set(ver["by_pair_type"])
    types = ordered_pair_types(ver["by_pair_type"])
    rows = [summary_row(set_label(t, primary), ver["by_pair_type"][t]) for t in types]
    if len(types) != 1:  # the pooled set only as the last row, named for what it is
        rows.append(summary_row("all pair types pooled", overall))
    groups: list[tuple[str, Mapping[str, Any]]] = []
    # unmasked pairs ("none") are the pair-type rows above, the control's among them
    groups += [(f"colour {c}", v) for c, v in ver["by_colour"].items() if c != "none"]
    provenance = _provenance(ver)
    for label, by in provenance.items():
        if len(by) > 1:
            groups += [(f"{label} {g}", v) for g, v in by.items()]
    if ver.get("by_mask_type"):
        groups += [(f"mask {t}", v) for t, v in ver["by_mask_type"].items()]
    small = [(name, v) for name, v in groups if too_small(v)]
    rows += [summary_row(name, v) for name, v in groups if not too_small(v)]
    lines += md_table(header, rows)
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
    lead = ver["by_pair_type"].get(primary) or overall
    if "error" not in lead:
        lines += _operating_points(lead, primary if primary in ver["by_pair_type"] else "all")
    if lead.get("val_threshold"):
        vt = lead["val_threshold"]
        lines += [
            f"{primary}: threshold chosen on the val pairs ({num(vt['threshold'], 4)}, val "
            f"accuracy {pct(vt['val_accuracy'])}): test accuracy {pct(vt['accuracy'])}, "
            f"precision {num(vt['precision'])}, recall {num(vt['recall'])}, F1 "
            f"{num(vt['f1'])}.",
            "",
        ]
    lines += _all_impostors_md(ver.get("all_impostors"))
    lines += _thresholds_md(ver, report.get("fixed_threshold"))
    lines += _mask_pairs_md(ver.get("genuine_by_mask_type_pair"))
    lines += _faces_md(report.get("faces"))
    lines += _identification_md(report.get("identification") or {})
    failures = {
        k: v for k, v in report["pairs"]["by_status"].items() if k not in ("ok", "not_scored")
    }
    if failures:
        lines += ["## Pairs without a score", ""]
        lines += md_table(["status", "pairs"], [[k, str(v)] for k, v in failures.items()])
        lines += ["", "Every such pair is listed with its reason in `scores.parquet`.", ""]
    lines += ["## Files", ""]
    lines += [f"- `{name}`" for name in sorted(report.get("files", {}).values())]
    lines += ["- `report.json` (everything above, with confidence intervals and timings)", ""]
    return "\n".join(lines)


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
    out += md_table(*all_impostors_rows(block, ("0.001", "0.0001", "1e-05")))
    rows = nist_rows(block)
    if rows:
        out += ["", NIST_NOTE, ""]
        out += md_table(NIST_HEADER, rows)
    return [*out, ""]


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
            *md_table(THRESHOLD_HEADER, threshold_rows(carried)),
            "",
        ]
    block = ver.get("fixed_threshold")
    if block and fixed:
        out += [
            "## Fixed threshold",
            "",
            f"{fixed['value']:g} ({fixed['units']}), against the {block['impostors']}.",
            "",
            *md_table(THRESHOLD_HEADER, threshold_rows(block)),
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
            *md_table(THRESHOLD_HEADER, threshold_rows(dev)),
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
    return [*lines, *md_table(["mask types", "genuine", "median score", "FNMR"], rows), ""]


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
    h = honest_accuracy(v) or {}
    how = {
        FOLDS: "k-fold cross-validated mean ± standard error over folds (each fold's threshold "
        "chosen on the other folds)",
        VAL: "at the threshold chosen on each set's val pairs, applied to its test pairs "
        "(val thr.)",
        OPTIMISTIC: "at the best threshold on the scored pairs themselves (opt. = optimistic: "
        "this protocol has neither folds nor val pairs)",
    }.get(h.get("how", ""), "–")
    return (
        f"Accuracy: {how}. TAR at FAR and FNMR at FMR as rates (n/e: not enough impostors for "
        "10 expected false accepts)."
    )


def _not_scored_note(report: Mapping[str, Any]) -> str:
    """What the pairs not evaluated are (train pairs are never scored by eval)."""
    p = report["pairs"]
    skipped = int(p["by_status"].get("not_scored", 0))
    return f" (and {skipped} train pairs, for fitting, not scored)" if skipped else ""


def _operating_points(v: Mapping[str, Any], name: str) -> list[str]:
    out = [f"## Operating points ({name} test pairs)", ""]
    rows = []
    for far, entry in v["tar_at_far"].items():
        value = entry.get("value")
        rows.append(
            [
                far,
                "not enough data" if value is None else pct(value) + ci_pct(entry.get("ci95")),
                num(entry.get("threshold"), 4),
            ]
        )
    out += md_table(["FAR", "TAR [95% CI]", "threshold"], rows)
    acc, auc_, eer_ = v["accuracy"], v["auc"], v["eer"]
    out += [
        "",
        f"Accuracy {accuracy_cell(v, with_ci=True)}; AUC {num(auc_['value'], 4)}"
        f"{ci_num(auc_.get('ci95'))}; "
        f"EER {pct(eer_['value'])}{ci_pct(eer_.get('ci95'))} at threshold "
        f"{num(eer_['threshold'], 4)}.",
        "",
    ]
    c = v["confusion"]
    out += md_table(
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
        out += md_table(
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
    per_space = gallery_per_space(ident)
    ranks = [k for k in (1, 5, 10) if k <= len(cmc) and (k == 1 or k < per_space)]
    out += md_table([f"rank-{k}" for k in ranks], [[pct(cmc[k - 1]) for k in ranks]])
    if per_space <= len(cmc):
        out += [
            "",
            f"The gallery has {per_space} identities, so rank-{per_space} and above are 100% by "
            "construction and are not shown.",
        ]
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
