"""One output root: where synth, pairs, eval and the cache write when no --out says, file-name
safe run folders, and a fully resumed synth that says so."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mfrbench import paths
from mfrbench.cli.freezing import protocol_path
from mfrbench.evaluate.cache import cache_root

REPO = Path(__file__).resolve().parents[1]
#: Characters no file-name part may hold: Windows' reserved ones, scp's and make's ":", space.
UNSAFE = set('<>:"/\\|?*$# \t')


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(paths.HOME_ENV, raising=False)
    monkeypatch.delenv(paths.CACHE_ENV, raising=False)
    return monkeypatch


def test_one_root_with_four_folders_and_its_precedence(clean_env, tmp_path: Path) -> None:
    root = paths.DEFAULT_HOME
    assert paths.home() == root == Path("mfrbench-work")
    assert paths.synth_dir("lfw") == root / "out" / "lfw"
    assert paths.protocols_dir() == root / "protocols"
    assert paths.results_dir() == root / "results"
    clean_env.setenv(paths.HOME_ENV, str(tmp_path / "env"))
    assert paths.results_dir() == tmp_path / "env" / "results"
    # --workdir beats $MFRBENCH_HOME
    assert paths.synth_dir("mfr2", tmp_path / "w") == tmp_path / "w" / "out" / "mfr2"
    assert paths.protocols_dir(tmp_path / "w") == tmp_path / "w" / "protocols"


def test_cache_follows_a_chosen_root_and_mfrbench_cache_wins(clean_env, tmp_path: Path) -> None:
    user = Path("~/.cache/mfrbench").expanduser()
    assert paths.cache_dir() == user  # no root chosen: the shared user cache, as before
    assert cache_root(None) == user / "embeddings"
    assert paths.embeddings_dir(tmp_path / "w") == tmp_path / "w" / "cache" / "embeddings"
    clean_env.setenv(paths.HOME_ENV, str(tmp_path / "env"))
    assert cache_root(None) == tmp_path / "env" / "cache" / "embeddings"
    assert paths.cache_dir(tmp_path / "w") == tmp_path / "w" / "cache"
    clean_env.setenv(paths.CACHE_ENV, str(tmp_path / "mc"))
    assert paths.embeddings_dir(tmp_path / "w") == tmp_path / "mc" / "embeddings"
    assert cache_root(None) == tmp_path / "mc" / "embeddings"
    assert cache_root(tmp_path / "explicit") == tmp_path / "explicit"  # --cache-dir wins


def test_protocols_never_land_in_the_shipped_folder_by_default(clean_env, tmp_path: Path) -> None:
    clean_env.chdir(REPO)  # a user running in the checkout
    default = protocol_path(None, "p").resolve()
    assert default.parent != (REPO / "protocols").resolve()
    assert default == (REPO / "mfrbench-work" / "protocols" / "p.json").resolve()
    clean_env.setenv(paths.HOME_ENV, str(tmp_path / "env"))
    assert protocol_path(None, "p") == tmp_path / "env" / "protocols" / "p.json"
    # an explicit --out still wins, as a folder or as the file itself
    assert protocol_path(tmp_path / "d", "p") == tmp_path / "d" / "p.json"
    assert protocol_path(tmp_path / "x.json", "p") == tmp_path / "x.json"


@pytest.mark.parametrize(
    ("ident", "folder"),
    [
        ("onnx:arcface.onnx@1a2b3c4d5e6f", "onnx-arcface.onnx@1a2b3c4d5e6f"),
        ("lfw-mini-demo@0123456789ab", "lfw-mini-demo@0123456789ab"),  # safe ids stay as-is
        ("dlib-resnet@556b3a202413", "dlib-resnet@556b3a202413"),
        ("lab: my model/v2@abc", "lab-my-model-v2@abc"),
        ("a@b@c", "a-b@c"),  # one "@", before the tag
        ("../..@..", "unnamed@unnamed"),
        ("", "unnamed"),
    ],
)
def test_safe_id_examples(ident: str, folder: str) -> None:
    assert paths.safe_id(ident) == folder


def test_safe_id_is_safe_and_keeps_ids_apart() -> None:
    nasty = ['C:\\x<y>|z?*"q@1', "名前 ü@2", ".hidden@3", "-opt@4", "x" * 300 + "@5", "a.@6"]
    folders = [paths.safe_id(n) for n in nasty]
    for f in folders:
        assert not UNSAFE & set(f), f
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*@[A-Za-z0-9._+-]+", f), f
        assert not f.split("@")[0].endswith((".", "-")) and len(f) <= 2 * 80 + 1
    # the tag (a digest of everything the id stands for) keeps sanitised names apart
    assert paths.safe_id("m:x@aaa") != paths.safe_id("m/x@bbb")
    run = paths.run_folder("res", "p@0123456789ab", "onnx:m.onnx@ffffffffffff")
    assert run == Path("res") / "p@0123456789ab" / "onnx-m.onnx@ffffffffffff"


def _synth(cwd: Path, lfw_mini: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (paths.HOME_ENV,)}
    args = ["synth", "lfw", "--root", str(lfw_mini), "--limit", "3", "--colors", "black"]
    return subprocess.run(
        [sys.executable, "-m", "mfrbench", *args, "--workers", "1", *extra],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


def test_synth_default_out_and_a_fully_resumed_run(lfw_mini: Path, tmp_path: Path) -> None:
    (tmp_path / "out" / "synth").mkdir(parents=True)  # an earlier default output
    first = _synth(tmp_path, lfw_mini)
    assert first.returncode == 0, first.stderr
    manifest = tmp_path / "mfrbench-work" / "out" / "lfw" / "manifest.parquet"
    assert manifest.is_file()
    assert "note:" in first.stderr and "out/synth" in first.stderr  # where the old one is
    assert "3 source images -> " in first.stdout and "img/s" in first.stdout
    again = _synth(tmp_path, lfw_mini)
    assert again.returncode == 0, again.stderr
    assert "all 3 images already done; nothing to do" in again.stderr
    assert "all 3 source images already done, nothing to do" in again.stdout
    assert "img/s" not in again.stdout  # no rate of nothing (it printed "0.0 img/s")
    assert "resuming" not in again.stderr
    # --workdir moves the root; nothing new appears beside it
    moved = _synth(tmp_path, lfw_mini, "--workdir", "w")
    assert moved.returncode == 0, moved.stderr
    assert (tmp_path / "w" / "out" / "lfw" / "manifest.parquet").is_file()
    assert "note:" not in moved.stderr  # a chosen root: no pointer to the earlier default
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mfrbench-work", "out", "w"]
