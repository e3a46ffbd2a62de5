"""One run as a single self-contained HTML file: open it anywhere, mail it, attach it.

Everything is inside the file: inline CSS, no script, and every image (the run's ROC, DET and
score-histogram PNGs, the failure thumbnails of :mod:`mfrbench.evaluate.failures`) as a
``data:image/png;base64`` URI, so it shows offline and nothing is fetched. The tables are the
ones ``report.md`` has (formatted by the same helpers of :mod:`mfrbench.evaluate.report`):
headline metrics by pair type, by mask colour (and detector / landmark backend when a run has
several), all-vs-all impostors when the run has them, identification. The same run, root and
options give the same bytes.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mfrbench.evaluate.failures import Failure, FailureSet
from mfrbench.evaluate.formatting import (
    MIN_GROUP_PAIRS,
    NIST_HEADER,
    NIST_NOTE,
    THRESHOLD_HEADER,
    all_impostors_rows,
    nist_rows,
    pct,
    summary_row,
    threshold_rows,
    too_small,
)

#: The run's plots, in page order: (report.json ``files`` key, heading).
PLOTS = (("roc", "ROC"), ("det", "DET"), ("scores_hist", "Score distributions"))
_HEADER: tuple[str, ...] = ("pairs", "n (gen/imp)", "accuracy", "AUC", "EER", "TAR@1%", "TAR@0.1%")
_HEADER += ("FNMR@FMR 0.1%", "d'")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 margin:24px auto;max-width:1120px;padding:0 16px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;
 padding-bottom:4px}p.sub{color:#555;margin:0 0 12px}code{font-size:13px;background:#f3f3f5;
 padding:0 3px;border-radius:3px}ul.meta{margin:0;padding-left:18px;color:#333}
table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #e4e4e7;text-align:right;white-space:nowrap}
th{background:#f6f6f8;font-weight:600}th:first-child,td:first-child{text-align:left}
.note{color:#555;font-size:13px;max-width:960px}
.plots{display:grid;grid-template-columns:1fr 1fr;gap:12px;align-items:start}
.plots figure{margin:0;min-width:0}.plots .scores_hist{grid-column:2;grid-row:1 / span 2}
.plots img{width:100%;height:auto;border:1px solid #e4e4e7}
@media (max-width:760px){.plots{grid-template-columns:1fr}.plots .scores_hist{grid-column:1;
 grid-row:auto}}
.gallery{display:flex;flex-wrap:wrap;gap:14px}
.gallery figure{margin:0;border:1px solid #e4e4e7;padding:6px;background:#fafafa}
.gallery img{display:block;max-width:100%;height:auto}
figcaption{font-size:12px;color:#333;text-align:center;margin-top:3px;
 overflow-wrap:anywhere}
"""


def data_uri(png: bytes) -> str:
    """``png`` bytes as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(title: str, *parts: str) -> str:
    return f"<h2>{_e(title)}</h2>" + "".join(parts)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _meta(report: Mapping[str, Any]) -> str:
    from mfrbench.evaluate.preprocess_text import preprocess_text

    p, m, e = report["protocol"], report["model"], report["embedding"]
    pre = m["preprocess"]
    items = [
        f"protocol <code>{_e(p['id'])}</code>: {_e(p['name'])} v{_e(p['version'])} on "
        f"{_e(p['dataset'])}, strategy {_e(p['strategy'])}",
        f"model <code>{_e(m['spec'])}</code> ({_e(m['identity'].get('name'))} "
        f"{_e(m['identity'].get('version'))}, weights "
        f"<code>{_e(str(m['identity'].get('weights_digest'))[:16])}</code>), "
        f"{_e(m['embedding_size'])}-D; fit: {_e(m['fit']['how'])}",
        f"preprocessing: {_e(preprocess_text(pre))}",
        f"distance {_e(report['distance'])} ({_e(report['score_convention'])}); seed "
        f"{_e(report['seed'])}, {_e(report['n_boot'])} bootstrap resamples; mfrbench "
        f"{_e(report['mfrbench_version'])}",
        f"{_e(report['pairs']['scored'])} of {_e(report['pairs']['evaluated'])} evaluated pairs "
        "scored; metrics on the test split",
        f"embeddings: {_e(e['inputs'])} distinct inputs, {_e(e['failed'])} failed",
    ]
    return '<ul class="meta">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _verification(ver: Mapping[str, Any]) -> str:
    from mfrbench.evaluate.headline import (
        headline_sentence,
        ordered_pair_types,
        primary_pair_set,
        set_label,
    )

    by_type = ver["by_pair_type"]
    primary = primary_pair_set(by_type)
    types = ordered_pair_types(by_type)
    rows = [summary_row(set_label(t, primary), by_type[t]) for t in types]
    if len(types) != 1:
        rows.append(summary_row("all pair types pooled", ver["overall"]))
    return _section(
        "Headline metrics",
        f"<p><strong>{_e(headline_sentence(ver))}</strong></p>" + _table(_HEADER, rows),
        _note(
            "Accuracy: cross-validated mean ± standard error over folds where the protocol has "
            "folds; else at the threshold chosen on the val pairs, applied to the test pairs "
            "(val thr.); only without either at the best threshold on the same pairs (opt., "
            "optimistic). n/e: not enough impostors for 10 expected false accepts. "
            f"FNMR@FMR 0.1%: {ver['control']}."
        ),
    )


def _breakdowns(ver: Mapping[str, Any]) -> str:
    out = []
    groups = (
        ("by_colour", "By mask colour", "colour"),
        ("by_detector", "By face detector", "detector"),
        ("by_landmarks", "By landmark backend", "landmarks"),
        ("by_mask_type", "By mask type (dataset label or drawn kind)", "mask"),
    )
    for key, title, label in groups:
        block = ver.get(key)
        if not isinstance(block, Mapping) or not block:
            continue
        if key != "by_colour" and len(block) < 2:
            continue
        named = [  # unmasked pairs (colour "none") are the pair-type rows of the headline table
            (f"{label} {name}", v)
            for name, v in block.items()
            if key != "by_colour" or name != "none"
        ]
        if not named:
            continue
        rows = [summary_row(name, v) for name, v in named if not too_small(v)]
        small = [f"{name} ({v.get('n_pairs', 0)})" for name, v in named if too_small(v)]
        parts = [_table(_HEADER, rows)] if rows else []
        if small:  # as report.md: a row of dashes says nothing and breaks the table's width
            parts.append(
                _note(
                    f"Left out (fewer than {MIN_GROUP_PAIRS} pairs, or not both genuine and "
                    f"impostor pairs; pair counts in brackets): {', '.join(small)}."
                )
            )
        out.append(_section(title, *parts))
    return "".join(out)


def _all_impostors(block: Mapping[str, Any] | None) -> str:
    if not block:
        return ""
    header, rows = all_impostors_rows(block, ("0.01", "0.001", "0.0001", "1e-05"))
    nist = nist_rows(block)
    return _section(
        "All-vs-all impostors",
        _table(header, rows),
        _note(f"Impostors: {block['how']} ({block['n_impostors']:,} in the test split)."),
        *([_note(NIST_NOTE), _table(NIST_HEADER, nist)] if nist else []),
    )


def _thresholds(ver: Mapping[str, Any], fixed: Mapping[str, Any] | None) -> str:
    """Thresholds set elsewhere and measured here (as report.md): another run's, fixed, dev."""
    out = []
    carried = ver.get("carried_thresholds")
    if carried:
        src = carried["source"]
        out.append(
            _section(
                "Thresholds from another run",
                _note(
                    f"Set on {src['protocol_id']} ({src['pair_set']}, {src['n_impostors']:,} "
                    f"{src['impostors']}), measured here against the {carried['impostors']}. "
                    "FMR shift = FMR here / the FMR the threshold was set for (NIST)."
                ),
                _table(THRESHOLD_HEADER, threshold_rows(carried)),
            )
        )
    block = ver.get("fixed_threshold")
    if block and fixed:
        out.append(
            _section(
                "Fixed threshold",
                _note(f"{fixed['value']:g} ({fixed['units']}), against the {block['impostors']}."),
                _table(THRESHOLD_HEADER, threshold_rows(block)),
            )
        )
    dev = ver.get("dev_eval")
    if dev:
        out.append(
            _section(
                "Dev -> eval thresholds",
                _note(f"{dev['how'][0].upper()}{dev['how'][1:]} ({dev['impostors']})."),
                _table(THRESHOLD_HEADER, threshold_rows(dev)),
            )
        )
    return "".join(out)


def _identification(ident: Mapping[str, Any]) -> str:
    if not ident:
        return ""
    if "error" in ident:
        return _section("Identification", _note(f"Not computed: {ident['error']}."))
    cmc = ident["cmc"]
    rows = [[pct(cmc[0]), pct(cmc[min(4, len(cmc) - 1)]), pct(cmc[-1])]]
    return _section(
        "Identification",
        _table(("rank-1", "rank-5", f"rank-{len(cmc)}"), rows),
        _note(
            f"{ident['setup']}: {ident['gallery_size']} gallery identities, "
            f"{ident['n_target_probes']} target probes, {ident['n_nontarget_probes']} non-target."
        ),
    )


def _plots(plots: Mapping[str, bytes]) -> str:
    figures = [
        f'<figure class="{key}"><img alt="{_e(title)}" src="{data_uri(plots[key])}"></figure>'
        for key, title in PLOTS
        if key in plots
    ]
    if not figures:
        return _section("Plots", _note("This run has no plots (it was evaluated without them)."))
    return _section("Plots", '<div class="plots">' + "".join(figures) + "</div>")


def _figure(f: Failure, png: bytes | None) -> str:
    who = f.a_identity if f.a_identity == f.b_identity else f"{f.a_identity} vs {f.b_identity}"
    files = " / ".join(i.rsplit(":", 1)[-1].rsplit("/", 1)[-1] for i in (f.a, f.b))
    img, style = "", ""
    if png:
        w, h = png_size(png)
        img = f'<img alt="pair {f.pair_id}" width="{w}" height="{h}" src="{data_uri(png)}">'
        style = f' style="width:{w}px"'
    return (
        f'<figure data-pair-id="{f.pair_id}" data-score="{f.score!r}"{style} '
        f'title="{_e(f.a)} / {_e(f.b)}">{img}'
        f"<figcaption><b>{_e(who)}</b><br>{_e(files)}</figcaption></figure>"
    )


def _galleries(fs: FailureSet | None) -> str:
    if fs is None:
        return ""
    thr = fs.threshold
    how = (
        f"Threshold: {thr.source} (score {thr.value:.4f}; accept when score ≥ threshold). "
        "Scored test pairs; each thumbnail shows the two images as the model saw them "
        "(reference left, probe right)."
    )
    out = []
    for title, items, n, of, what in (
        (
            "Worst false non-matches",
            fs.false_non_matches,
            fs.n_false_non_matches,
            fs.n_genuine,
            "genuine",
        ),
        ("Worst false matches", fs.false_matches, fs.n_false_matches, fs.n_impostor, "impostor"),
    ):
        head = _note(
            f"{n} of {of} {what} pairs wrongly decided, the worst {len(items)} shown. " + how
        )
        if not items:
            body = _note(f"None: every {what} pair is decided correctly at this threshold.")
        else:
            figs = "".join(_figure(f, fs.thumbnails.get(f.pair_id)) for f in items)
            body = f'<div class="gallery">{figs}</div>'
        out.append(_section(title, head, body))
    return "".join(out)


def render_html(
    report: Mapping[str, Any],
    plots: Mapping[str, bytes] | None = None,
    failures: FailureSet | None = None,
) -> str:
    """The whole page for one run: ``report`` (report.json), ``plots`` (files key -> PNG bytes)
    and the failure galleries."""
    p, m = report["protocol"], report["model"]
    ver = report["verification"]
    title = f"{m['id']} on {p['id']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">Cite the protocol id <code>{_e(p["id"])}</code> with any number '
        "below.</p>",
        _meta(report),
        _verification(ver),
        _breakdowns(ver),
        _all_impostors(ver.get("all_impostors")),
        _thresholds(ver, report.get("fixed_threshold")),
        _identification(report.get("identification") or {}),
        _plots(plots or {}),
        _galleries(failures),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def run_plots(run_dir: str | Path, report: Mapping[str, Any]) -> dict[str, bytes]:
    """The PNG bytes of a run's plots that exist (report.json ``files`` names them)."""
    files = report.get("files") or {}
    out = {}
    for key, _ in PLOTS:
        path = Path(run_dir) / str(files.get(key, f"{key}.png"))
        if key in files and path.is_file():
            out[key] = path.read_bytes()
    return out


def write_html_report(
    run_dir: str | Path,
    root: str | Path,
    out: str | Path | None = None,
    *,
    n_failures: int = 8,
    at: str = "eer",
    protocol: str | Path | None = None,
) -> Path:
    """Write the HTML report of a run (default ``<run>/report.html``) and return its path.

    ``root`` is the image root the run was evaluated on (for the failure thumbnails); ``at``
    and ``protocol`` as in :func:`mfrbench.evaluate.failures.run_failures`.
    """
    from mfrbench.errors import UserError
    from mfrbench.evaluate.failures import run_failures
    from mfrbench.evaluate.runner import load_run
    from mfrbench.manifest import write_bytes_atomic

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    report = load_run(run_dir)
    failures = run_failures(run_dir, root, n=n_failures, at=at, protocol=protocol, report=report)
    page = render_html(report, run_plots(run_dir, report), failures)
    dest = Path(out) if out is not None else run_dir / "report.html"
    if dest.is_dir():
        raise UserError(f"--out {dest} is a folder; give a file name such as report.html")
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(dest, page.encode("utf-8"))
    return dest


__all__ = ["PLOTS", "data_uri", "png_size", "render_html", "run_plots", "write_html_report"]
