"""Score files other tools read, and other tools' score files in.

Formats (``docs/score-files.md``):

- ``bob-csv``: bob.bio.base's CSV score file, a header then one comparison per row:
  ``probe_reference_id, probe_subject_id, probe_key, bio_ref_reference_id, bio_ref_subject_id,
  score``; mfrbench adds per-pair metadata columns (:data:`META_COLUMNS`). A pair is genuine
  when ``probe_subject_id == bio_ref_subject_id`` (how bob splits such files).
- ``bob-4col``: bob's legacy text format ``claimed_id real_id probe_label score`` (space
  separated, no header); genuine when ``claimed_id == real_id``.
- ``bob-5col``: ``claimed_id model_label real_id probe_label score`` (read only).
- ``csv``: a plain CSV with header ``label,score`` (label 1/0 or genuine/impostor), optionally
  with the metadata columns.

Scores are similarities (higher = more alike, bob's convention); files of distances are read
with ``distance=True``, which negates them. :func:`report_from_scores` turns any of them into
a report whose ``verification`` block is built exactly as a run's (``breakdown``).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfrbench import __version__
from mfrbench.digest import sha256_file
from mfrbench.errors import UserError
from mfrbench.evaluate.breakdown import verification_sets
from mfrbench.evaluate.report import REPORT_SCHEMA_VERSION
from mfrbench.evaluate.scores import read_scores
from mfrbench.manifest import write_bytes_atomic

#: Formats :func:`read_score_file` understands; ``auto`` detects one of them.
READ_FORMATS: tuple[str, ...] = ("bob-csv", "bob-4col", "bob-5col", "csv")
#: Formats :func:`export_scores` writes.
EXPORT_FORMATS: tuple[str, ...] = ("bob-csv", "bob-4col")

#: bob.bio.base's CSV columns, in the order its CSVScoreWriter writes them.
BOB_CSV_COLUMNS: tuple[str, ...] = (
    "probe_reference_id",
    "probe_subject_id",
    "probe_key",
    "bio_ref_reference_id",
    "bio_ref_subject_id",
    "score",
)
#: Per-pair metadata mfrbench writes after bob's columns and reads from either CSV format.
META_COLUMNS: tuple[str, ...] = (
    "pair_id",
    "pair_type",
    "colour",
    "detector",
    "landmarks",
    "mask_type",
    "split",
    "fold",
    "label",
)
#: Pair type given to pairs of a file without a ``pair_type`` column.
UNSPECIFIED = "unspecified"

_LABELS = {"1": 1, "0": 0, "genuine": 1, "impostor": 0}
_TEXT_FIELDS = {"bob-4col": 4, "bob-5col": 5}


# ----------------------------------------------------------------------------- export


@dataclass(frozen=True)
class Export:
    """What :func:`export_scores` wrote: the file, its format, rows written and left out."""

    path: Path
    fmt: str
    rows: int
    skipped: int


def _check_choice(value: str, choices: Sequence[str], what: str) -> str:
    if value not in choices:
        raise UserError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


def _run_scores(run: Path) -> Path:
    run = Path(run)
    return run / "scores.parquet" if run.is_dir() else run


def _num(value: float) -> str:
    """Shortest text that reads back as the same float64."""
    return repr(float(value))


def export_scores(run: str | Path, fmt: str, out: str | Path) -> Export:
    """Write a run's ``scores.parquet`` as a bob score file (``bob-csv`` or ``bob-4col``).

    ``run`` is a run folder or its ``scores.parquet``. Only pairs with status ``ok`` are
    written (the others have no score; bob has no row for them), in ``pair_id`` order, so the
    same run always gives the same bytes. The probe is the pair's ``b`` side, the reference its
    ``a`` side. UserError when a pair's label disagrees with its identities (bob derives the
    label from them) or, for ``bob-4col``, when an id holds whitespace.
    """
    _check_choice(fmt, EXPORT_FORMATS, "export format")
    path = _run_scores(Path(run))
    cols = read_scores(path).to_pydict()
    order = sorted(
        (i for i, s in enumerate(cols["status"]) if s == "ok"), key=lambda i: cols["pair_id"][i]
    )
    for i in order:
        same = cols["a_identity"][i] == cols["b_identity"][i]
        if same != bool(cols["label"][i]):
            raise UserError(
                f"{path}: pair {cols['pair_id'][i]} is labelled "
                f"{'genuine' if cols['label'][i] else 'impostor'} but its identities are "
                f"{cols['a_identity'][i]!r} and {cols['b_identity'][i]!r}; bob score files "
                "take the label from the identities, so they cannot hold this pair"
            )
    buf = io.StringIO()
    if fmt == "bob-csv":
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([*BOB_CSV_COLUMNS, *META_COLUMNS])
        for i in order:
            meta = ["" if cols[k][i] is None else str(cols[k][i]) for k in META_COLUMNS]
            writer.writerow(
                [
                    cols["b"][i],
                    cols["b_identity"][i],
                    cols["b"][i],
                    cols["a"][i],
                    cols["a_identity"][i],
                    _num(cols["score"][i]),
                    *meta,
                ]
            )
    else:
        for i in order:
            fields = (cols["a_identity"][i], cols["b_identity"][i], cols["b"][i])
            bad = next((f for f in fields if not f or re.search(r"\s", f)), None)
            if bad is not None:
                raise UserError(
                    f"{path}: pair {cols['pair_id'][i]}: {bad!r} is empty or holds whitespace, "
                    "which the space-separated bob-4col format cannot carry; use bob-csv"
                )
            buf.write(f"{fields[0]} {fields[1]} {fields[2]} {_num(cols['score'][i])}\n")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, buf.getvalue().encode("utf-8"))
    return Export(out, fmt, len(order), len(cols["status"]) - len(order))


# ----------------------------------------------------------------------------- reading


@dataclass
class ScoreFile:
    """A score file read into the column lists that ``breakdown.verification_sets`` takes.

    ``cols`` has one entry per data row (``label``, ``score``, ``distance``, ``split``,
    ``fold``, ``pair_type``, ``colour``, ``detector``, ``landmarks``, ``mask_type``); a NaN
    score (bob's failure to acquire) stays as a row with ``ok`` False. ``present`` names the
    metadata columns the file had; the others hold defaults.
    """

    path: Path
    fmt: str
    cols: dict[str, list[Any]]
    present: frozenset[str]
    sha256: str
    distance: bool = False
    n_rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.n_rows = len(self.cols["label"])

    @property
    def ok(self) -> np.ndarray:
        """Rows with a finite score."""
        return np.isfinite(np.asarray(self.cols["score"], dtype=np.float64))


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise UserError(f"score file not found: {path}")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a text score file ({exc.reason})") from None


def detect_format(path: Path, lines: Sequence[str]) -> str:
    """The format of a score file from its first non-empty line (see the module docstring)."""
    first = next(((n, ln) for n, ln in enumerate(lines, 1) if ln.strip()), None)
    if first is None:
        raise UserError(f"{path}: empty score file")
    n, line = first
    if "," in line:
        header = {h.strip() for h in next(csv.reader([line]))}
        if {"probe_subject_id", "bio_ref_subject_id", "score"} <= header:
            return "bob-csv"
        if {"label", "score"} <= header:
            return "csv"
        raise UserError(
            f"{path}:{n}: CSV header has neither bob's probe_subject_id, bio_ref_subject_id, "
            "score nor label, score"
        )
    k = len(line.split())
    for fmt, want in _TEXT_FIELDS.items():
        if k == want:
            return fmt
    raise UserError(
        f"{path}:{n}: {k} fields; expected 4 (bob-4col) or 5 (bob-5col) space-separated fields "
        "or a CSV header"
    )


def _score(path: Path, n: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{path}:{n}: score {text!r} is not a number") from None
    if math.isinf(value):
        raise UserError(f"{path}:{n}: score {text!r} is infinite")
    return value


def _text_rows(path: Path, lines: Sequence[str], fmt: str) -> Iterator[tuple[int, int, str]]:
    """(line number, label, score text) of a bob 4/5-column file."""
    want = _TEXT_FIELDS[fmt]
    claimed, real = 0, 2 if want == 5 else 1
    for n, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != want:
            raise UserError(f"{path}:{n}: {len(fields)} fields; {fmt} has {want}")
        yield n, int(fields[claimed] == fields[real]), fields[-1]


def _csv_rows(path: Path, lines: Sequence[str], fmt: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV score file; values stripped of surrounding spaces."""
    reader = csv.reader(lines, skipinitialspace=True)
    header: list[str] | None = None
    for row in reader:
        if not row or not any(v.strip() for v in row):
            continue
        if header is None:
            header = [h.strip() for h in row]
            dup = sorted({h for h in header if header.count(h) > 1})
            if dup:
                raise UserError(f"{path}:{reader.line_num}: repeated column {', '.join(dup)}")
            continue
        if len(row) != len(header):
            raise UserError(
                f"{path}:{reader.line_num}: {len(row)} columns; the header has {len(header)}"
            )
        yield reader.line_num, {h: v.strip() for h, v in zip(header, row, strict=True)}


def _label(path: Path, n: int, text: str) -> int:
    value = _LABELS.get(text.lower())
    if value is None:
        raise UserError(f"{path}:{n}: label {text!r}; expected 1, 0, genuine or impostor")
    return value


def _fold(path: Path, n: int, text: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise UserError(f"{path}:{n}: fold {text!r} is not an integer") from None


def read_score_file(
    path: str | Path, fmt: str | None = None, *, distance: bool = False
) -> ScoreFile:
    """Read a score file (``fmt`` one of :data:`READ_FORMATS`; None or ``auto``: detect it).

    ``distance=True``: the file holds distances (lower = more alike); scores become their
    negation and ``distance`` keeps the values. UserError naming the file and line for a
    non-numeric or infinite score, a wrong column count, an unknown label, a bob-csv ``label``
    that disagrees with the subject ids, and for a file without genuine or impostor rows.
    """
    path = Path(path)
    lines = _lines(path)
    if fmt in (None, "auto"):
        fmt = detect_format(path, lines)
    _check_choice(fmt, READ_FORMATS, "score file format")
    keys = ("label", "score", "split", "fold", "pair_type", "colour", "detector", "landmarks")
    cols: dict[str, list[Any]] = {k: [] for k in (*keys, "mask_type")}
    present: set[str] = set()
    lnum: list[int] = []

    def add(n: int, label: int, score_text: str, meta: dict[str, str]) -> None:
        value = _score(path, n, score_text)
        cols["label"].append(label)
        cols["score"].append(-value if distance else value)
        cols["split"].append(meta.get("split") or "test")
        cols["fold"].append(_fold(path, n, meta.get("fold", "")))
        cols["pair_type"].append(meta.get("pair_type") or UNSPECIFIED)
        for k in ("colour", "detector", "landmarks", "mask_type"):
            cols[k].append(meta.get(k) or None)
        lnum.append(n)

    if fmt in _TEXT_FIELDS:
        for n, label, text in _text_rows(path, lines, fmt):
            add(n, label, text, {})
    else:
        need: tuple[str, ...] = ("label", "score")
        if fmt == "bob-csv":
            need = ("probe_subject_id", "bio_ref_subject_id", "score")
        for n, row in _csv_rows(path, lines, fmt):
            missing = [c for c in need if c not in row]
            if missing:
                raise UserError(f"{path}: {fmt} needs column(s) {', '.join(missing)}")
            present |= {k for k in META_COLUMNS if k in row}
            if fmt == "csv":
                label = _label(path, n, row["label"])
            else:
                label = int(row["probe_subject_id"] == row["bio_ref_subject_id"])
                if row.get("label") and _label(path, n, row["label"]) != label:
                    raise UserError(
                        f"{path}:{n}: label {row['label']!r} disagrees with the subject ids "
                        f"{row['probe_subject_id']!r} and {row['bio_ref_subject_id']!r}"
                    )
            add(n, label, row["score"], row)
    if not lnum:
        raise UserError(f"{path}: no score rows")
    score = np.asarray(cols["score"], dtype=np.float64)
    # the file's distances with distance=True; else a stand-in (reports drop distance_stats)
    cols["distance"] = (-score).tolist()
    _check_classes(path, cols, np.isfinite(score))
    digest = sha256_file(path)
    return ScoreFile(path, fmt, cols, frozenset(present), digest, distance)


def _check_classes(path: Path, cols: dict[str, list[Any]], ok: np.ndarray) -> None:
    """UserError unless the scored test rows hold both genuine and impostor pairs."""
    labels = np.asarray(cols["label"], dtype=np.int64)
    test = ok & (np.asarray(cols["split"], dtype=object) == "test")
    if not test.any():
        splits = sorted(set(cols["split"]))
        raise UserError(
            f"{path}: no scored row in split 'test' (splits: {', '.join(splits)}); metrics are "
            "computed on the test split"
        )
    n_gen = int(labels[test].sum())
    if n_gen == 0 or n_gen == int(test.sum()):
        raise UserError(
            f"{path}: needs genuine and impostor rows; the scored test rows have {n_gen} "
            f"genuine and {int(test.sum()) - n_gen} impostor"
        )


# ----------------------------------------------------------------------------- report


def _strip(block: Any, key: str) -> Any:
    """``block`` without ``key`` at any depth."""
    if isinstance(block, dict):
        return {k: _strip(v, key) for k, v in block.items() if k != key}
    if isinstance(block, list):
        return [_strip(v, key) for v in block]
    return block


def report_from_scores(
    path: str | Path,
    fmt: str | None = None,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    distance: bool = False,
) -> dict[str, Any]:
    """A report of a score file: the ``verification`` block of a run (``verification_sets``
    over the file's test rows, val rows setting ``val_threshold``), with the keys
    ``report.render_markdown`` reads filled from the file (there is no model or protocol).

    Scores are similarities; ``distance=True`` negates a file of distances, so thresholds in
    the report are negated distances. ``distance_stats`` is reported only then (a similarity
    file has no distances). Breakdowns by a column the file lacks say so.
    """
    return score_report(read_score_file(path, fmt, distance=distance), seed=seed, n_boot=n_boot)


def score_report(sf: ScoreFile, *, seed: int = 0, n_boot: int = 1000) -> dict[str, Any]:
    """:func:`report_from_scores` of a score file already read."""
    distance = sf.distance
    cols, ok = sf.cols, sf.ok
    split = np.asarray(cols["split"], dtype=object)
    test, val = split == "test", split == "val"
    use_folds = all(f is not None for f, t in zip(cols["fold"], test, strict=True) if t)
    ver = verification_sets(cols, ok, test, val, use_folds=use_folds, seed=seed, n_boot=n_boot)
    if not distance:
        ver = _strip(ver, "distance_stats")
    for key, col in (("by_detector", "detector"), ("by_landmarks", "landmarks")):
        if col not in sf.present:
            ver[key] = f"not available: the score file has no {col} column"
    n_ok = int(ok.sum())
    by_status = {"ok": n_ok, **({"nan_score": sf.n_rows - n_ok} if n_ok < sf.n_rows else {})}
    convention = (
        "score = -value (the file holds distances; lower = more alike)"
        if distance
        else "score = the file's value (similarity, higher = more alike; bob's convention)"
    )
    na = "n/a (score file)"
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "mfrbench_version": __version__,
        "source": {
            "file": str(sf.path),
            "format": sf.fmt,
            "sha256": sf.sha256,
            "rows": sf.n_rows,
            "metadata_columns": sorted(sf.present),
            "distance": distance,
        },
        "protocol": {
            "id": sf.path.name,
            "name": sf.path.stem,
            "version": na,
            "digest": None,
            "file": None,
            "description": f"pairs of the score file {sf.path.name}",
            "dataset": na,
            "strategy": na,
        },
        "model": {
            "id": f"scores:{sf.path.stem}",
            "spec": f"scores:{sf.path}",
            "options": {},
            "identity": {"name": f"{sf.fmt} score file", "version": "", "weights_digest": None},
            "preprocess": {"crop": na, "size": None},
            "embedding_size": na,
            "needs_fit": False,
            "fit": {"how": na, "fits": []},
            "backbone": None,
        },
        "distance": "distance (negated)" if distance else "similarity",
        "score_convention": convention,
        "seed": seed,
        "n_boot": n_boot,
        "evaluation": {
            "splits_scored": sorted(set(split[ok].tolist())),
            "metrics_on": "test",
            "cross_validation": "folds"
            if use_folds
            else "none (the headline accuracy is the val-chosen threshold's where the file has val "
            "rows: verification.headline)",
        },
        "embedding": {
            "inputs": na,
            "computed": na,
            "cached": na,
            "failed": na,
            "forward_passes": na,
            "naive_forward_passes": na,
        },
        "pairs": {
            "total": sf.n_rows,
            "evaluated": sf.n_rows,
            "scored": n_ok,
            "by_status": by_status,
        },
        "verification": ver,
        "identification": {"error": "a score file holds pair scores, not embeddings"},
        "files": {},
    }


def render_score_markdown(report: dict[str, Any]) -> str:
    """``report.render_markdown`` of a score-file report, its run header (model, protocol,
    embeddings) replaced by what the file is."""
    from mfrbench.evaluate.report import render_markdown

    md = render_markdown(report)
    src = report["source"]
    head = [
        f"# Scores of {Path(src['file']).name}",
        "",
        f"- file: `{src['file']}` ({src['format']}, {src['rows']} rows, sha256 "
        f"`{src['sha256'][:16]}`); metadata columns: "
        f"{', '.join(src['metadata_columns']) or 'none'}",
        f"- {report['score_convention']}; seed {report['seed']}, {report['n_boot']} bootstrap "
        f"resamples; mfrbench {report['mfrbench_version']}",
        f"- pairs: {report['pairs']['scored']} of {report['pairs']['total']} rows scored; "
        f"metrics on the test split ({report['evaluation']['cross_validation']})",
        "",
    ]
    _, sep, rest = md.partition("## Verification")
    body = sep + rest if sep else md
    body = body.replace("listed with its reason in `scores.parquet`", "a row of the score file")
    return "\n".join(head) + "\n" + body


def write_score_report(
    report: dict[str, Any], sf: ScoreFile, out: str | Path, *, plots: bool = True
) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and (``plots``: of the scored test rows of ``sf``)
    ``roc.png``, ``det.png`` and ``scores_hist.png`` into ``out``."""
    from mfrbench.evaluate.plots import write_plots
    from mfrbench.manifest import write_json_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    if plots:
        test = np.asarray(sf.cols["split"], dtype=object) == "test"
        title = f"{sf.path.name} ({sf.fmt})"
        files.update(write_plots(sf.cols, sf.ok & test, out, title=title))
    report = {**report, "files": {k: v.name for k, v in sorted(files.items())}}
    files["report_json"] = out / "report.json"
    files["report_md"] = out / "report.md"
    write_json_atomic(files["report_json"], report)
    write_bytes_atomic(files["report_md"], (render_score_markdown(report) + "\n").encode())
    return files
