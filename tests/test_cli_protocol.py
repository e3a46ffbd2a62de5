"""`mfrbench pairs ...` and `mfrbench protocol ...` end to end on real lfw-mini images."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mfrbench.cli.freezing import default_name
from mfrbench.protocol import cited_ids, load_protocol, matches, protocol_id
from mfrbench.synth import SynthConfig, run_synth


def mfrbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mfrbench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def _one_line_error(r: subprocess.CompletedProcess[str], needle: str) -> None:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("error:") and needle in lines[0]


@pytest.fixture(scope="module")
def mini_manifest(lfw_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mini") / "synth"
    run_synth(SynthConfig(dataset="lfw", root=str(lfw_mini)), out, workers=2)
    return out / "manifest.parquet"


@pytest.fixture(scope="module")
def mini_protocol(mini_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("proto") / "mini.json"
    r = mfrbench(
        "pairs", "lfw", str(mini_manifest), "--folds", "4", "--per-fold", "20",
        "--pair-types", "masked-unmasked,unmasked-unmasked", "--name", "mini",
        "--citation", "@misc{x, title={y}}", "--out", str(path),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "mini@" in r.stdout and "genuine" in r.stdout
    return path


def test_pairs_lfw_writes_a_frozen_protocol(mini_protocol: Path) -> None:
    protocol = load_protocol(mini_protocol)
    assert len(protocol["pairs"]) == 4 * 20 * 2 * 2
    assert protocol["citation"] == "@misc{x, title={y}}"


def test_pairs_are_reproducible_from_the_cli(mini_manifest: Path, tmp_path: Path) -> None:
    args = ["pairs", "manifest", str(mini_manifest), "--max-per-id", "3", "--name", "m"]
    a = mfrbench(*args, "--out", str(tmp_path / "a.json"))
    b = mfrbench(*args, "--out", str(tmp_path / "b.json"))
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    splits = {p["split"] for p in load_protocol(tmp_path / "a.json")["pairs"]}
    assert splits == {"train", "val", "test"}


def test_show_verify_render(mini_protocol: Path, lfw_mini: Path, tmp_path: Path) -> None:
    r = mfrbench("protocol", "show", str(mini_protocol))
    assert r.returncode == 0 and "masked-unmasked" in r.stdout, r.stderr
    r = mfrbench("protocol", "show", str(mini_protocol), "--json")
    assert json.loads(r.stdout)["pairs"] == 320
    r = mfrbench("protocol", "verify", str(mini_protocol), "--root", str(lfw_mini))
    assert r.returncode == 0 and "match" in r.stdout, r.stdout + r.stderr
    r = mfrbench(
        "protocol", "render", str(mini_protocol), "--root", str(lfw_mini), "--out",
        str(tmp_path / "r"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "r" / "index.parquet").is_file()


def test_verify_reports_changed_and_missing_files(
    mini_protocol: Path, lfw_mini: Path, tmp_path: Path
) -> None:
    root = tmp_path / "lfw"
    shutil.copytree(lfw_mini, root)
    used = sorted({im["src_path"] for im in load_protocol(mini_protocol)["images"]})
    (root / used[0]).unlink()
    data = bytearray((root / used[1]).read_bytes())
    data[-10] ^= 0xFF
    (root / used[1]).write_bytes(bytes(data))
    r = mfrbench("protocol", "verify", str(mini_protocol), "--root", str(root))
    assert r.returncode == 1
    assert f"missing  {used[0]}" in r.stdout and f"changed  {used[1]}" in r.stdout


def test_edited_protocol_is_refused_with_one_line(mini_protocol: Path, tmp_path: Path) -> None:
    edited = tmp_path / "edited.json"
    edited.write_text(mini_protocol.read_text().replace('"label":1', '"label":0', 1))
    for command in (["show", str(edited)], ["verify", str(edited), "--root", str(tmp_path)]):
        _one_line_error(mfrbench("protocol", *command), "edited")


def test_refreeze_gives_a_new_id(mini_protocol: Path, tmp_path: Path) -> None:
    out = tmp_path / "v2.json"
    r = mfrbench("protocol", "freeze", str(mini_protocol), "--version", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    old, new = load_protocol(mini_protocol), load_protocol(out)
    assert new["version"] == "2" and new["digest"] != old["digest"]
    assert new["pairs"] == old["pairs"] and new["images"] == old["images"]
    assert matches(new, protocol_id(old))


def test_show_prints_the_citation(mini_protocol: Path, tmp_path: Path) -> None:
    r = mfrbench("protocol", "show", str(mini_protocol))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    at = lines.index("citation")
    assert lines[at + 1] == "@misc{x, title={y}}"  # as recorded, braces and all
    r = mfrbench("protocol", "show", str(mini_protocol), "--json")
    assert json.loads(r.stdout)["citation"] == "@misc{x, title={y}}"
    bare = tmp_path / "bare.json"
    r = mfrbench("protocol", "freeze", str(mini_protocol), "--citation", "", "--out", str(bare))
    assert r.returncode == 0, r.stderr
    r = mfrbench("protocol", "show", str(bare))
    lines = r.stdout.splitlines()
    assert lines[lines.index("citation") + 1] == "no citation recorded"


def test_refreeze_with_a_citation_supersedes_the_old_id(
    mini_protocol: Path, lfw_mini: Path, tmp_path: Path
) -> None:
    bib = tmp_path / "ref.bib"
    bib.write_text("@article{mini2027,\n  title = {Mini},\n  year = {2027}\n}\n")
    out = tmp_path / "cited.json"
    r = mfrbench(
        "protocol", "freeze", str(mini_protocol), "--citation", f"@{bib}", "--out", str(out)
    )
    assert r.returncode == 0, r.stderr
    old, new = load_protocol(mini_protocol), load_protocol(out)
    assert f"version 2, supersedes {protocol_id(old)}" in r.stdout
    assert new["version"] == "2" and new["citation"] == bib.read_text()
    assert cited_ids(new) == [protocol_id(new), protocol_id(old)]
    assert matches(new, old["digest"]) and new["pairs"] == old["pairs"]
    r = mfrbench("protocol", "show", str(out), "--json")
    assert json.loads(r.stdout)["supersedes"] == [protocol_id(old)]
    r = mfrbench("protocol", "verify", str(out), "--root", str(lfw_mini))
    assert r.returncode == 0 and f"{protocol_id(new)}: all" in r.stdout, r.stdout + r.stderr
    # The old version number cannot name the new content.
    r = mfrbench(
        "protocol", "freeze", str(mini_protocol), "--citation", f"@{bib}", "--version", "1",
        "--out", str(tmp_path / "bad.json"),
    )  # fmt: skip
    _one_line_error(r, "version 1 of mini is already")
    assert not (tmp_path / "bad.json").exists()


def _env_data(data: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MFRBENCH_DATA"}
    return env if data is None else {**env, "MFRBENCH_DATA": str(data)}


def test_verify_and_render_fall_back_to_mfrbench_data(
    mini_protocol: Path, lfw_mini: Path, tmp_path: Path
) -> None:
    def run(*args: str, data: Path | None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mfrbench", "protocol", *args],
            capture_output=True, text=True, timeout=300, env=_env_data(data),
        )  # fmt: skip

    render = ("render", str(mini_protocol), "--out", str(tmp_path / "r"))
    for command in (("verify", str(mini_protocol)), render):
        _one_line_error(run(*command, data=None), "--root is required")
        _one_line_error(run(*command, data=tmp_path), "MFRBENCH_DATA has no lfw/ folder")
    data = tmp_path / "data"
    data.mkdir()
    (data / "lfw").symlink_to(lfw_mini, target_is_directory=True)  # the protocol's dataset
    r = run("verify", str(mini_protocol), data=data)
    assert r.returncode == 0 and "match" in r.stdout, r.stdout + r.stderr
    r = run(*render, data=data)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "r" / "index.parquet").is_file()


@pytest.mark.parametrize(
    ("dataset", "strategy", "params", "name"),
    [
        ("lfw", "lfw-folds", {}, "lfw-folds"),
        ("lfw", "official-lfw", {"pairs_file": "pairs.txt"}, "lfw-view2"),
        ("lfw", "official-lfw", {"pairs_file": "pairsDevTest.txt"}, "lfw-pairsDevTest"),
        ("rmfrd", "rmfrd", {}, "rmfrd"),
        ("mfr2", "mfr2", {}, "mfr2"),
        ("folder", "rmfrd", {}, "folder-rmfrd"),
        ("folder", "listed", {}, "folder-listed"),
        ("lfw", "rmfrd", {}, "lfw-rmfrd"),
    ],
)
def test_default_names(dataset: str, strategy: str, params: dict, name: str) -> None:
    assert default_name(dataset, strategy, params) == name


def test_pairs_without_name_use_the_default_name(mini_manifest: Path, tmp_path: Path) -> None:
    r = mfrbench(
        "pairs", "lfw", str(mini_manifest), "--folds", "2", "--per-fold", "5",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert load_protocol(tmp_path / "lfw-folds.json")["name"] == "lfw-folds"
    assert "lfw-folds@" in r.stdout


def _rmfrd_tree(lfw_mini: Path, root: Path) -> None:
    """An RMFRD-shaped tree from real photos: 'masked' folder holds other photos of each id."""
    for person in sorted(p for p in lfw_mini.iterdir() if p.is_dir())[:12]:
        files = sorted(person.glob("*.jpg"))
        for sub, chosen in (
            ("AFDB_masked_face_dataset", files[:2]),
            ("AFDB_face_dataset", files[2:]),
        ):
            (root / sub / person.name).mkdir(parents=True)
            for f in chosen:
                shutil.copy(f, root / sub / person.name / f.name)


def test_pairs_rmfrd_and_mfr2(lfw_mini: Path, tmp_path: Path) -> None:
    rmfrd = tmp_path / "rmfrd"
    _rmfrd_tree(lfw_mini, rmfrd)
    out = tmp_path / "rmfrd.json"
    r = mfrbench("pairs", "rmfrd", "--root", str(rmfrd), "--max-per-id", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    protocol = load_protocol(out)
    images = {im["id"]: im for im in protocol["images"]}
    assert all(images[p["b"]]["masked"] and not images[p["a"]]["masked"] for p in protocol["pairs"])
    assert "first-N" in r.stdout

    mfr2 = tmp_path / "mfr2"
    for person in ("Al_Gore", "Andy_Roddick"):
        shutil.copytree(lfw_mini / person, mfr2 / person)
    (mfr2 / "pairs.txt").write_text("Al_Gore 1 2\nAl_Gore 1 Andy_Roddick 1\n")
    out = tmp_path / "mfr2.json"
    r = mfrbench("pairs", "mfr2", "--root", str(mfr2), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert [p["label"] for p in load_protocol(out)["pairs"]] == [1, 0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["pairs", "lfw", "/nonexistent/manifest.parquet"], "/nonexistent"),
        (["pairs", "rmfrd", "--root", "/nonexistent/rmfrd"], "/nonexistent/rmfrd"),
        (["protocol", "show", "/nonexistent.json"], "/nonexistent.json"),
    ],
)
def test_user_mistakes(args: list[str], needle: str) -> None:
    _one_line_error(mfrbench(*args), needle)
