"""Report views of a finished run: failure selection and thumbnails, HTML page, LaTeX table, CLI."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_evaluate import FakeModel, _run, tiny  # reuse the evaluator's lfw-mini fixture

from mfrbench.errors import UserError
from mfrbench.evaluate.failures import (
    THUMB_HEIGHT,
    Threshold,
    _to_height,
    run_preprocess,
    run_threshold,
    select_failures,
)
from mfrbench.evaluate.html_report import write_html_report
from mfrbench.evaluate.latex_table import escape_latex, latex_document, latex_table
from mfrbench.evaluate.prepare import prepare

__all__ = ["tiny"]  # the imported fixture is used by name


@pytest.fixture(scope="module")
def run_dir(tiny: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-embedding run on the tiny protocol (plenty of errors), with plots."""
    tmp = tmp_path_factory.mktemp("views")
    return _run(tiny, FakeModel(tag="views-random"), tmp, n_boot=0, plots=True).out_dir


def _cols(**over: Any) -> dict[str, list[Any]]:
    base = {
        "pair_id": [0, 1, 2, 3, 4, 5, 6, 7, 8],
        "a": [f"a{i}" for i in range(9)],
        "b": [f"b{i}" for i in range(9)],
        "a_identity": ["p"] * 9,
        "b_identity": ["p", "p", "p", "p", "q", "q", "q", "q", "q"],
        "label": [1, 1, 1, 1, 0, 0, 0, 0, 0],
        "score": [0.1, 0.9, 0.2, 0.1, 0.8, 0.3, 0.95, 0.8, 0.99],
        "status": ["ok"] * 8 + ["nan_embedding"],
        "split": ["test"] * 3 + ["val"] + ["test"] * 5,
        "pair_type": ["masked-unmasked"] * 9,
        "colour": ["blue"] * 9,
    }
    return {**base, **over}


# ----------------------------------------------------------------------------- failures


def test_select_failures_orders_and_filters() -> None:
    fs = select_failures(_cols(), Threshold(0.5, "fixed", "t"), n=8)
    # genuine test pairs below 0.5: 0 (0.1) and 2 (0.2); pair 3 is val, pair 1 is accepted
    assert [f.pair_id for f in fs.false_non_matches] == [0, 2]
    # impostors >= 0.5: 6 (0.95), then the 0.8 tie broken by pair id; 8 has no valid score
    assert [f.pair_id for f in fs.false_matches] == [6, 4, 7]
    assert (fs.n_false_non_matches, fs.n_genuine) == (2, 3)
    assert (fs.n_false_matches, fs.n_impostor) == (3, 4)
    top = select_failures(_cols(), Threshold(0.5, "fixed", "t"), n=1)
    assert [f.pair_id for f in top.false_matches] == [6] and top.n_false_matches == 3
    none = select_failures(_cols(), Threshold(0.05, "fixed", "t"), n=8)
    assert none.false_non_matches == [] and none.n_false_non_matches == 0
    with pytest.raises(UserError):
        select_failures(_cols(), Threshold(0.5, "fixed", "t"), n=-1)


def test_run_threshold_criteria(run_dir: Path) -> None:
    report = json.loads((run_dir / "report.json").read_text())
    cal = report["verification"]["calibration"]["sets"]["all"]["thresholds"]
    assert run_threshold(report).value == cal["eer"]
    unmasked = report["verification"]["calibration"]["sets"]["unmasked-unmasked"]["thresholds"]
    assert run_threshold(report, "eer", "unmasked-unmasked").value == unmasked["eer"]
    with pytest.raises(UserError, match="too few impostors"):
        run_threshold(report, "fmr=1e-3")  # a tiny run cannot resolve FMR 1e-3
    with pytest.raises(UserError, match="did not calibrate"):
        run_threshold(report, "fmr=0.5")
    with pytest.raises(UserError, match="eer, fmr=RATE or a number"):
        run_threshold(report, "best")
    assert run_threshold(report, "0.25").value == 0.25  # cosine: the similarity itself
    as_distance = {**report, "distance": "euclidean"}
    assert run_threshold(as_distance, "0.6").value == -0.6  # accept when distance <= 0.6


# ----------------------------------------------------------------------------- html


def _png(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def _expected(run_dir: Path) -> tuple[list[int], list[int], float]:
    """The worst pairs computed here from scores.parquet, independently of failures.py."""
    report = json.loads((run_dir / "report.json").read_text())
    thr = report["verification"]["calibration"]["sets"]["all"]["thresholds"]["eer"]
    rows = pq.read_table(run_dir / "scores.parquet").to_pylist()
    used = [r for r in rows if r["status"] == "ok" and r["split"] == "test"]
    gen = sorted(
        (r for r in used if r["label"] == 1 and r["score"] < thr),
        key=lambda r: (r["score"], r["pair_id"]),
    )
    imp = sorted(
        (r for r in used if r["label"] == 0 and r["score"] >= thr),
        key=lambda r: (-r["score"], r["pair_id"]),
    )
    return [r["pair_id"] for r in gen[:4]], [r["pair_id"] for r in imp[:4]], thr


def test_html_is_self_contained_and_shows_the_worst_pairs(
    tiny: dict[str, Any], run_dir: Path, tmp_path: Path
) -> None:
    out = write_html_report(run_dir, tiny["root"], tmp_path / "r.html", n_failures=4)
    page = out.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]+)"', page)
    assert len(srcs) == 3 + 8  # ROC, DET, histogram; 4 + 4 failures
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    fnm, fm, _ = _expected(run_dir)
    assert fnm and fm, "a random model makes both kinds of errors"
    head, tail = page.split("Worst false non-matches", 1)
    fnm_part, fm_part = tail.split("Worst false matches", 1)
    assert [int(i) for i in re.findall(r'data-pair-id="(\d+)"', fnm_part)] == fnm
    assert [int(i) for i in re.findall(r'data-pair-id="(\d+)"', fm_part)] == fm
    report = json.loads((run_dir / "report.json").read_text())
    for ptype in report["verification"]["by_pair_type"]:
        assert f"<td>{ptype}</td>" in head
    assert "<td>colour blue</td>" in head and "<td>colour black</td>" in head
    again = write_html_report(run_dir, tiny["root"], tmp_path / "r2.html", n_failures=4)
    assert again.read_bytes() == out.read_bytes()  # deterministic


def test_thumbnails_are_the_prepared_crops(
    tiny: dict[str, Any], run_dir: Path, tmp_path: Path
) -> None:
    out = write_html_report(run_dir, tiny["root"], tmp_path / "r.html", n_failures=1)
    page = out.read_text(encoding="utf-8")
    fig = re.search(r'<figure data-pair-id="(\d+)".*?src="([^"]+)"', page.split("Worst false")[1])
    assert fig is not None
    pair_id, thumb = int(fig.group(1)), _png(fig.group(2))
    row = next(
        r for r in pq.read_table(run_dir / "scores.parquet").to_pylist() if r["pair_id"] == pair_id
    )
    images = {img["id"]: img for img in tiny["protocol"]["images"]}
    pre = run_preprocess(json.loads((run_dir / "report.json").read_text()))
    left = _to_height(prepare(images[row["a"]], tiny["root"], pre)[0], THUMB_HEIGHT)
    right = _to_height(prepare(images[row["b"]], tiny["root"], pre)[0], THUMB_HEIGHT)
    width = left.shape[1] + 4 + right.shape[1]
    x0 = (thumb.shape[1] - width) // 2
    assert np.array_equal(thumb[:THUMB_HEIGHT, x0 : x0 + left.shape[1]], left)
    x1 = x0 + left.shape[1] + 4
    assert np.array_equal(thumb[:THUMB_HEIGHT, x1 : x1 + right.shape[1]], right)
    assert thumb.shape[0] > THUMB_HEIGHT + 20  # room for the score and threshold lines


def test_unpreparable_image_becomes_a_grey_tile(run_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-images"
    empty.mkdir()
    page = write_html_report(run_dir, empty, tmp_path / "r.html", n_failures=1).read_text()
    src = re.search(r'<figure data-pair-id="\d+".*?src="([^"]+)"', page).group(1)
    tile = _png(src)[:THUMB_HEIGHT, :THUMB_HEIGHT]
    assert (tile == 200).all(axis=-1).mean() > 0.8  # grey with the reason written on it


# ----------------------------------------------------------------------------- latex

_ODD_ID = "my_proto%&#1@4cffe5b9"


def _unescaped(text: str, ch: str) -> int:
    return len(re.findall(r"(?<!\\)" + re.escape(ch), text))


def _odd_report(run_dir: Path) -> dict[str, Any]:
    report = json.loads((run_dir / "report.json").read_text())
    report["protocol"]["id"] = _ODD_ID
    return report


def test_escape_latex() -> None:
    assert escape_latex("a_b%c&d#e$f{g}h~i^j\\k") == (
        r"a\_b\%c\&d\#e\$f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k"
    )


def test_latex_table_structure(run_dir: Path) -> None:
    report = _odd_report(run_dir)
    text = latex_table([report])
    assert _unescaped(text, "{") == _unescaped(text, "}")
    lines = text.splitlines()
    rules = [
        i for i, line in enumerate(lines) if line in (r"\toprule", r"\midrule", r"\bottomrule")
    ]
    assert [lines[i] for i in rules] == [r"\toprule", r"\midrule", r"\bottomrule"]
    caption = next(line for line in lines if line.startswith(r"\caption{"))
    assert r"my\_proto\%\&\#1@4cffe5b9" in caption and report["model"]["id"] in caption
    body = lines[rules[0] + 1 : rules[2]]
    widths = {len(re.split(r"(?<!\\)&", line)) for line in body if line != r"\midrule"}
    assert len(widths) == 1  # every row has the header's columns
    assert len(body) == 1 + 1 + 1 + len(report["verification"]["by_pair_type"])
    assert "TAR@" not in text  # no run this small estimates TAR at 1e-3 or 1e-4
    two = latex_table([report, json.loads((run_dir / "report.json").read_text())])
    assert two.count(r"\midrule") == 2 and "Protocol" in two  # two protocol ids: a column
    assert _unescaped(two, "{") == _unescaped(two, "}")


def test_latex_table_compiles(run_dir: Path, tmp_path: Path) -> None:
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-recommended)")
    (tmp_path / "t.tex").write_text(latex_document(latex_table([_odd_report(run_dir)])))
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "t.pdf").stat().st_size > 1000


# ----------------------------------------------------------------------------- cli


def _cli(args: list[str]) -> int:
    from mfrbench.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
        raise SystemExit(0)
    return int(exc.value.code or 0)


def test_cli_views(tiny: dict[str, Any], run_dir: Path, tmp_path: Path, capsys) -> None:
    html = tmp_path / "page.html"
    args = ["report", "html", str(run_dir), "--root", str(tiny["root"]), "--out", str(html)]
    assert _cli([*args, "--n-failures", "2"]) == 0 and html.is_file()
    tex = tmp_path / "t.tex"
    assert _cli(["report", "latex", str(run_dir), "--out", str(tex), "--standalone"]) == 0
    assert tex.read_text().startswith(r"\documentclass")
    capsys.readouterr()
    bad = [
        ["report", "html", str(tmp_path / "none"), "--root", str(tiny["root"])],
        ["report", "html", str(run_dir), "--root", str(tmp_path / "none")],
        [*args, "--n-failures", "-1"],
        [*args, "--at", "fmr=1e-3"],
        [*args, "--at", "best"],
        [*args, "--protocol", str(tmp_path / "none.json")],
        ["report", "latex", str(run_dir), str(tmp_path / "none")],
        ["report", "latex", str(run_dir), "--label", "a b"],
        ["report", "latex"],
    ]
    for argv in bad:
        assert _cli(argv) == 2, argv
        err = capsys.readouterr().err
        assert "error:" in err and "Traceback" not in err, argv


def test_html_refuses_another_protocol(tiny: dict[str, Any], run_dir: Path, tmp_path: Path) -> None:
    copied = tmp_path / "run"
    shutil.copytree(run_dir, copied)
    report = json.loads((copied / "report.json").read_text())
    report["protocol"]["digest"] = "0" * 64  # as if the run was made on another protocol
    (copied / "report.json").write_text(json.dumps(report))
    with pytest.raises(UserError, match="is not the protocol of this run"):
        write_html_report(copied, tiny["root"], tmp_path / "x.html", protocol=tiny["path"])
