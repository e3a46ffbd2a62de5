"""Re-running eval into one results folder: the same run again goes ahead and leaves only its
files; a different run is refused (one line, exit 2) unless --overwrite, which clears the old
run first; run folders carry no ":" and runs in folders of the older naming still read back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_evaluate import FakeModel, _oracle_table, _run, tiny  # the evaluator's lfw-mini fixture

from mfrbench.errors import UserError
from mfrbench.evaluate.rerun import RUN_FILES
from mfrbench.evaluate.runs import load_run

__all__ = ["tiny"]  # the imported fixture is used by name

PLOTS = {"roc.png", "det.png", "scores_hist.png"}


class LabModel(FakeModel):
    """A fake whose name holds characters no folder should: ``lab:fake v2``."""

    name = "lab:fake v2"


def lab_model(tag: str = "lab") -> LabModel:
    """The ``python:test_reruns:lab_model`` factory the CLI test builds."""
    return LabModel(tag=tag)


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_same_run_again_keeps_only_its_own_files(tiny, tmp_path: Path) -> None:
    table = _oracle_table(tiny)
    first = _run(tiny, FakeModel(table), tmp_path, plots=True)
    folder = first.out_dir
    assert _names(folder) >= PLOTS
    (folder / "report.html").write_text("<html>view of the first run</html>")
    (folder / "notes.txt").write_text("mine")  # not a run's file: never touched
    again = _run(tiny, FakeModel(table), tmp_path, plots=False)  # a rerun: no flag needed
    assert again.out_dir == folder
    assert _names(folder) == {"report.json", "report.md", "scores.parquet", "notes.txt"}
    report = load_run(folder)
    assert set(report["files"].values()) == {"scores.parquet"}
    assert report["embedding"]["cached"] == report["embedding"]["inputs"]


def test_a_different_run_is_refused_before_embedding_then_overwritten(tiny, tmp_path: Path) -> None:
    table = _oracle_table(tiny)
    first = _run(tiny, FakeModel(table), tmp_path, plots=True, impostors="all", threshold=0.9)
    folder = first.out_dir
    before = {n: (folder / n).read_bytes() for n in _names(folder)}
    assert {"impostors.parquet", *PLOTS} <= set(before)

    other = FakeModel(table)  # same model id, other run settings, empty cache: would embed
    with pytest.raises(UserError) as refused:
        _run(tiny, other, tmp_path, cache_dir=tmp_path / "fresh", n_boot=5)
    message = str(refused.value)
    assert "\n" not in message and "--overwrite" in message and str(folder) in message
    for change in ("n_boot 20 -> 5", "impostors all -> listed", "threshold 0.9 -> none"):
        assert change in message
    assert other.seen == 0  # refused before any image was embedded
    assert {n: (folder / n).read_bytes() for n in _names(folder)} == before  # untouched

    (folder / "report.html").write_text("<html>view of the first run</html>")
    second = _run(tiny, other, tmp_path, cache_dir=tmp_path / "fresh", n_boot=5, overwrite=True)
    assert second.out_dir == folder
    assert _names(folder) == {"report.json", "report.md", "scores.parquet"}
    report = load_run(folder)
    assert report["n_boot"] == 5 and report["impostors"]["mode"] == "listed"
    assert report["fixed_threshold"] is None


def test_eval_cli_folder_names_refusal_and_old_named_runs(
    tiny, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mfrbench.cli.main import main

    monkeypatch.delenv("MFRBENCH_CACHE", raising=False)
    monkeypatch.delenv("MFRBENCH_HOME", raising=False)
    base = ["eval", "--model", "python:test_reruns:lab_model", "--protocol", str(tiny["path"])]
    base += ["--root", str(tiny["root"]), "--workers", "1", "--no-plots", "--n-boot", "0"]
    work = tmp_path / "w"
    main([*base, "--workdir", str(work)])
    capsys.readouterr()
    (folder,) = (work / "results").glob("*/*")
    report = load_run(folder)
    assert report["model"]["id"].startswith("lab:fake v2@")  # the id keeps its name
    assert folder.name == "lab-fake-v2@" + report["model"]["id"].rpartition("@")[2]
    assert folder.parent.name == report["protocol"]["id"]
    assert not any(":" in part or " " in part for part in folder.relative_to(tmp_path).parts)
    assert any((work / "cache" / "embeddings").iterdir())  # the workdir's cache

    with pytest.raises(SystemExit) as exc:
        main([*base[:-1], "3", "--workdir", str(work)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]  # after progress lines
    assert len(errors) == 1 and "Traceback" not in err, err
    assert "holds another run (n_boot 0 -> 3): pass --overwrite" in errors[0]
    main([*base[:-1], "3", "--workdir", str(work), "--overwrite"])
    assert load_run(folder)["n_boot"] == 3

    # a run in a folder of the older naming ("lab:fake v2@...") reads back by its path
    old = tmp_path / "old" / folder.parent.name / report["model"]["id"]
    shutil.copytree(folder, old)
    assert load_run(old)["model"]["id"] == report["model"]["id"]
    out = tmp_path / "carried"
    main([*base, "--workdir", str(work), "--out", str(out), "--thresholds-from", str(old)])
    (carried,) = out.glob("*/*")  # an explicit --out wins over --workdir
    source = json.loads((carried / "report.json").read_text())["verification"]
    assert source["carried_thresholds"]["source"]["run"] == str(old)


def test_every_file_a_run_writes_is_a_known_run_file(tiny, tmp_path: Path) -> None:
    """The cleaning knows every name a run writes (else a stale one could survive)."""
    run = _run(tiny, FakeModel(tag="all-files"), tmp_path, plots=True, impostors="all")
    from mfrbench.evaluate.html_report import write_html_report

    write_html_report(run.out_dir, tiny["root"])
    assert _names(run.out_dir) <= RUN_FILES
    assert _names(run.out_dir) == RUN_FILES  # and nothing on the list is dead
