"""Score files: runs out to bob's formats, other tools' files in, and a cross-check with pyeer."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import test_evaluate as te

from mfrbench.errors import UserError
from mfrbench.evaluate.prepare import prepare
from mfrbench.evaluate.score_files import (
    BOB_CSV_COLUMNS,
    META_COLUMNS,
    detect_format,
    export_scores,
    read_score_file,
    render_score_markdown,
    report_from_scores,
)
from mfrbench.models.base import Preprocess

tiny = te.tiny  # the 4-fold lfw-mini protocol of test_evaluate (a module-scoped fixture)
HEADLINE = ("auc", "eer", "tar_at_far", "fnmr_at_fmr", "d_prime")


def _strip(block: Any, key: str = "distance_stats") -> Any:
    if isinstance(block, dict):
        return {k: _strip(v, key) for k, v in block.items() if k != key}
    return block


@pytest.fixture(scope="module")
def run(tiny: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A run of a noisy perfect model (AUC < 1, ties-free) with one image's pairs unscored."""
    tmp = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    table = te._oracle_table(tiny)
    noisy = {
        k: v + rng.normal(0, 0.6, v.shape).astype(np.float32) for k, v in sorted(table.items())
    }
    victim = tiny["protocol"]["pairs"][0]["b"]
    img = next(i for i in tiny["protocol"]["images"] if i["id"] == victim)
    pre = Preprocess(None, "rgb", (0.0,), (1.0,), "protocol")
    bad = te._pixels_key(prepare(img, tiny["root"], pre)[0])
    return te._run(tiny, te.FakeModel(noisy, nan_for=[bad], tag="noisy"), tmp)


# ----------------------------------------------------------------------------- export


def test_bob_csv_round_trip_gives_the_runs_verification_block(run: Any, tmp_path: Path) -> None:
    rep = run.report
    n_ok = rep["pairs"]["by_status"]["ok"]
    assert 0 < n_ok < rep["pairs"]["total"]  # some pairs have no score: they are left out
    done = export_scores(run.out_dir, "bob-csv", tmp_path / "s.csv")
    assert (done.rows, done.skipped) == (n_ok, rep["pairs"]["total"] - n_ok)
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert list(rows[0]) == [*BOB_CSV_COLUMNS, *META_COLUMNS]
    assert len(rows) == n_ok
    ids = [int(r["pair_id"]) for r in rows]
    assert ids == sorted(ids)
    sc = {r["pair_id"]: r for r in pq.read_table(run.out_dir / "scores.parquet").to_pylist()}
    for r in rows:
        pair = sc[int(r["pair_id"])]
        assert pair["status"] == "ok" and float(r["score"]) == pair["score"]
        assert (r["probe_key"], r["bio_ref_reference_id"]) == (pair["b"], pair["a"])
        genuine = r["probe_subject_id"] == r["bio_ref_subject_id"]
        assert int(r["label"]) == pair["label"] == int(genuine)
    again = export_scores(run.out_dir / "scores.parquet", "bob-csv", tmp_path / "t.csv")
    assert again.path.read_bytes() == done.path.read_bytes()

    back = report_from_scores(done.path, seed=rep["seed"], n_boot=rep["n_boot"])
    # every number of the block, bootstrap intervals and calibration included; only
    # distance_stats (the run's distances are not in a bob file) is absent
    assert back["verification"] == _strip(rep["verification"])
    overall = back["verification"]["overall"]
    assert 0.5 < overall["auc"]["value"] < 1.0 and not overall["accuracy"]["optimistic"]
    md = render_score_markdown(back)
    assert md.startswith("# Scores of s.csv") and "## Verification" in md
    assert f"{100 * overall['eer']['value']:.2f}%" in md


def test_bob_4col_round_trip(run: Any, tmp_path: Path) -> None:
    rep = run.report
    done = export_scores(run.out_dir, "bob-4col", tmp_path / "s.txt")
    lines = done.path.read_text().splitlines()
    assert len(lines) == done.rows and all(len(ln.split(" ")) == 4 for ln in lines)
    sf = read_score_file(done.path)
    assert sf.fmt == "bob-4col" and sf.present == frozenset()
    ok = [
        r for r in pq.read_table(run.out_dir / "scores.parquet").to_pylist() if r["status"] == "ok"
    ]
    ok.sort(key=lambda r: r["pair_id"])
    assert sf.cols["label"] == [r["label"] for r in ok]
    assert sf.cols["score"] == [r["score"] for r in ok]
    back = report_from_scores(done.path, seed=rep["seed"], n_boot=rep["n_boot"])
    got, want = back["verification"]["overall"], rep["verification"]["overall"]
    for key in HEADLINE:
        assert got[key] == want[key], key
    # no folds in the 4-column format: accuracy is the (optimistic) best-threshold one
    assert got["accuracy"]["optimistic"] and not want["accuracy"]["optimistic"]
    assert list(back["verification"]["by_pair_type"]) == ["unspecified"]
    assert "no detector column" in back["verification"]["by_detector"]


def test_bob_5col_reads_like_4col(run: Any, tmp_path: Path) -> None:
    four = export_scores(run.out_dir, "bob-4col", tmp_path / "s.txt").path
    five = tmp_path / "s5.txt"
    rows = [ln.split(" ") for ln in four.read_text().splitlines()]
    five.write_text("".join(f"{c} model-{c} {r} {p} {s}\n" for c, r, p, s in rows))
    assert detect_format(five, five.read_text().splitlines()) == "bob-5col"
    a, b = report_from_scores(four, n_boot=0), report_from_scores(five, n_boot=0)
    assert a["verification"] == b["verification"]


def test_export_refuses_unknown_format_and_missing_run(run: Any, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown export format 'bob-5col'"):
        export_scores(run.out_dir, "bob-5col", tmp_path / "x")
    with pytest.raises(UserError, match="not found"):
        export_scores(tmp_path / "nothing", "bob-csv", tmp_path / "x")


# ----------------------------------------------------------------------------- reading


def test_plain_label_score_csv_with_metadata_and_distances(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = []
    for k in range(200):
        genuine = k % 2 == 0
        value = rng.normal(0.7 if genuine else 0.3, 0.2)
        split = "val" if k < 60 else "test"
        rows.append((("genuine" if genuine else "impostor"), f"{value!r}", split, k % 4, k % 3))
    sim = tmp_path / "sim.csv"
    sim.write_text(
        "label, score, split, fold, pair_type, colour\n"
        + "".join(
            f"{lab}, {s}, {sp}, {f}, t{p}, {'blue' if p else ''}\n" for lab, s, sp, f, p in rows
        )
    )
    rep = report_from_scores(sim, n_boot=0)
    assert read_score_file(sim).fmt == "csv"
    ver = rep["verification"]
    assert ver["overall"]["n_pairs"] == 140  # the test rows; val rows set the val threshold
    assert ver["val_threshold"]["val_accuracy"] > 0.5
    assert set(ver["by_pair_type"]) == {"t0", "t1", "t2"}
    assert set(ver["by_colour"]) == {"blue", "none"}
    assert not ver["overall"]["accuracy"]["optimistic"]  # folds given: cross-validated
    assert "distance_stats" not in ver["overall"]

    # the same pairs as 1/0 labels and distances (1 - similarity), read with distance=True
    dist = tmp_path / "dist.csv"
    dist.write_text(
        "label,score,split,fold,pair_type,colour\n"
        + "".join(
            f"{int(lab == 'genuine')},{1 - float(s)!r},{sp},{f},t{p},{'blue' if p else ''}\n"
            for lab, s, sp, f, p in rows
        )
    )
    flipped = report_from_scores(dist, n_boot=0, distance=True)["verification"]["overall"]
    for key in ("auc", "accuracy"):
        assert flipped[key]["value"] == pytest.approx(ver["overall"][key]["value"], abs=1e-12)
    assert flipped["eer"]["value"] == pytest.approx(ver["overall"]["eer"]["value"], abs=1e-12)
    assert flipped["distance_stats"]["gmean"] < flipped["distance_stats"]["imean"]
    wrong_way = report_from_scores(dist, n_boot=0)["verification"]["overall"]
    assert wrong_way["auc"]["value"] == pytest.approx(1 - ver["overall"]["auc"]["value"])


def test_nan_scores_are_failures_to_acquire(tmp_path: Path) -> None:
    f = tmp_path / "s.txt"
    f.write_text("a a p1 0.9\na b p2 0.1\na a p3 nan\nb b p4 0.8\nb a p5 0.3\n")
    rep = report_from_scores(f, n_boot=0)
    assert rep["pairs"]["by_status"] == {"ok": 4, "nan_score": 1}
    assert rep["verification"]["overall"]["n_pairs"] == 4
    assert "a row of the score file" in render_score_markdown(rep)


@pytest.mark.parametrize(
    ("text", "fmt", "needle"),
    [
        ("a a p1 0.9\na b p2 high\n", None, ":2: score 'high' is not a number"),
        ("a a p1 0.9\na b p2\n", None, ":2: 3 fields; bob-4col has 4"),
        ("a a p1 0.9\na b p2 inf\n", None, ":2: score 'inf' is infinite"),
        ("a a p1 0.9\na a p2 0.8\n", None, "needs genuine and impostor rows; the scored test "),
        ("a b p1 0.9\n", None, "1 impostor"),
        ("a a p1 0.9\na b p2 0.1\n", "bob-5col", ":1: 4 fields; bob-5col has 5"),
        ("label,score\n1,0.9\n0,0.1,extra\n", None, ":3: 3 columns; the header has 2"),
        ("label,score\n1,0.9\nmaybe,0.1\n", None, ":3: label 'maybe'; expected 1, 0, genuine"),
        ("label,score,fold\n1,0.9,1\n0,0.1,x\n", None, ":3: fold 'x' is not an integer"),
        ("who,what\n1,2\n", None, ":1: CSV header has neither"),
        ("a b c\n", None, ":1: 3 fields; expected 4 (bob-4col) or 5 (bob-5col)"),
        ("\n\n", None, "empty score file"),
        ("label,score\n", None, "no score rows"),
        ("label,score,split\n1,0.9,val\n0,0.1,val\n", None, "no scored row in split 'test'"),
        (
            "probe_subject_id,bio_ref_subject_id,score,label\nx,x,0.9,1\nx,y,0.2,1\n",
            None,
            ":3: label '1' disagrees with the subject ids 'x' and 'y'",
        ),
        (
            "probe_subject_id,score,label\nx,0.9,1\n",
            "bob-csv",
            "needs column(s) bio_ref_subject_id",
        ),
    ],
)
def test_malformed_files_name_file_and_line(
    tmp_path: Path, text: str, fmt: str | None, needle: str
) -> None:
    f = tmp_path / "bad.txt"
    f.write_text(text)
    with pytest.raises(UserError) as err:
        report_from_scores(f, fmt, n_boot=0)
    assert str(f) in str(err.value) and needle in str(err.value)
    with pytest.raises(UserError, match="unknown score file format 'bob-7col'; choose one of"):
        read_score_file(f, "bob-7col")


# ----------------------------------------------------------------------------- CLI


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from mfrbench.cli import main

    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_export_and_scores(run: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "s.csv"
    code, out, _ = _main(
        capsys, "report", "export", str(run.out_dir), "--format", "bob-csv", "--out", str(f)
    )
    assert code == 0 and f.is_file() and "pairs without a score left out" in out
    code, out, _ = _main(capsys, "report", "scores", str(f), "--n-boot", "0")
    assert code == 0 and out.startswith("# Scores of s.csv") and "| all |" in out
    folder = tmp_path / "rep"
    code, out, _ = _main(capsys, "report", "scores", str(f), "--out", str(folder), "--n-boot", "0")
    assert code == 0 and "report.md" in out
    for name in ("report.json", "report.md", "roc.png", "det.png", "scores_hist.png"):
        assert (folder / name).is_file(), name


@pytest.mark.parametrize(
    "args",
    [
        ["report", "scores", "{bad}"],
        ["report", "scores", "{missing}"],
        ["report", "scores", "{bad}", "--format", "xml"],
        ["report", "export", "{missing}", "--format", "bob-csv", "--out", "{out}"],
        ["report", "export", "{missing}", "--format", "bob-9col", "--out", "{out}"],
    ],
)
def test_cli_bad_input_exits_2_with_one_line(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("a a p1 0.9\na b p2 oops\n")
    paths = {"bad": bad, "missing": tmp_path / "none", "out": tmp_path / "o.csv"}
    code, _, err = _main(capsys, *(a.format(**paths) for a in args))
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- pyeer


def _pyeer(genuine: np.ndarray, impostor: np.ndarray) -> Any:
    with warnings.catch_warnings():  # pyeer imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        from pyeer.eer_info import get_eer_stats

        return get_eer_stats(genuine, impostor)


def _eer_tolerance(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Half the largest ROC step of one tie group: pyeer's EER is (FMR + FNMR) / 2 at the ROC
    point next to the crossing with the smaller sum, mfrbench interpolates along the segment
    between the two, so they differ by at most half of that segment's (FMR + FNMR) change."""
    values, inverse = np.unique(np.concatenate([genuine, impostor]), return_inverse=True)
    gen = np.bincount(inverse[: genuine.size], minlength=values.size) / genuine.size
    imp = np.bincount(inverse[genuine.size :], minlength=values.size) / impostor.size
    return float(np.max(np.maximum(gen, imp))) / 2


def test_agrees_with_pyeer_on_scores_with_ties(tmp_path: Path) -> None:
    """EER, FNMR at FMR 1% (pyeer fmr100) and 0.1% (fmr1000) and d' against pyeer 0.5.6.

    2,000 genuine scores on a 1e-3 grid and 20,000 impostors on a 1e-4 grid: ~200 values are
    shared by both classes and tie groups reach 10+ pairs, so the ROC has diagonal segments.
    - FNMR@FMR: pyeer takes the lowest threshold whose FMR is nearest the target; mfrbench the
      lowest whose FMR is at most it. With 20,000 impostors both targets are whole counts (200,
      20); when the 200th and 201st (20th and 21st) highest impostors differ, both land on the
      same ROC point, so they must agree exactly. (Asserted below for this seed.)
    - EER: within :func:`_eer_tolerance` (interpolated vs. nearest-point), never below pyeer.
    - d': the same formula (population variances); pyeer reports |d'|. Rounding only.
    """
    rng = np.random.default_rng(2)
    gen = np.round(rng.normal(0.6, 0.15, 2000), 3)
    imp = np.round(rng.normal(0.2, 0.15, 20000), 4)
    top = np.sort(imp)[::-1]
    assert top[199] != top[200] and top[19] != top[20]
    assert len(set(gen.tolist()) & set(imp.tolist())) > 100
    f = tmp_path / "syn.csv"
    f.write_text(
        "label,score\n"
        + "".join(f"1,{float(v)!r}\n" for v in gen)
        + "".join(f"0,{float(v)!r}\n" for v in imp)
    )
    ours = report_from_scores(f, n_boot=0)["verification"]["overall"]
    ref = _pyeer(gen, imp)

    assert ours["fnmr_at_fmr"]["0.01"]["value"] == ref.fmr100
    assert ours["fnmr_at_fmr"]["0.001"]["value"] == ref.fmr1000
    assert ours["d_prime"] == pytest.approx(ref.decidability, rel=1e-12)
    tol = _eer_tolerance(gen, imp)
    assert 0 < tol < 0.005
    assert ref.eer - 1e-12 <= ours["eer"]["value"] <= ref.eer + tol
    assert ref.eer_low <= ours["eer"]["value"] <= ref.eer_high + tol


@pytest.mark.slow
def test_real_dlib_run_round_trip_and_pyeer(tiny: dict[str, Any], tmp_path: Path) -> None:
    """dlib-resnet on lfw-mini: its bob CSV gives its own numbers, and pyeer agrees on the EER
    and d' of those real scores (too few impostors for FMR 1%)."""
    pytest.importorskip("dlib")
    try:
        from mfrbench.models.registry import create_model

        create_model("plugin:dlib-resnet", {})
    except (ImportError, UserError) as exc:
        pytest.skip(f"dlib-resnet plugin not available: {exc}")
    real = te._run(tiny, "plugin:dlib-resnet", tmp_path, n_boot=50)
    f = export_scores(real.out_dir, "bob-csv", tmp_path / "dlib.csv").path
    back = report_from_scores(f, seed=real.report["seed"], n_boot=50)
    assert back["verification"] == _strip(real.report["verification"])
    sf = read_score_file(f)
    s, y = np.asarray(sf.cols["score"]), np.asarray(sf.cols["label"]) == 1
    ref = _pyeer(s[y], s[~y])
    ours = back["verification"]["overall"]
    assert ref.eer - 1e-12 <= ours["eer"]["value"] <= ref.eer + _eer_tolerance(s[y], s[~y])
    assert ours["d_prime"] == pytest.approx(ref.decidability, rel=1e-12)
    assert math.isfinite(ours["auc"]["value"]) and ours["auc"]["value"] > 0.75
