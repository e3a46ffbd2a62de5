"""End-to-end synth runs on real LFW images: rows, images, colours, determinism, resume."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from mfrbench.errors import UserError
from mfrbench.manifest import read_metadata
from mfrbench.synth import SynthConfig, output_names, plan_variants, run_synth

COLORS = {"black": (0, 0, 0), "white": (255, 255, 255), "blue": (135, 206, 250)}


def _rows(manifest: Path) -> list[dict]:
    return pq.read_table(manifest).to_pylist()


@pytest.fixture(scope="module")
def mini_run(lfw_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run over 40 lfw-mini images, full-face ROI in PNG so colours can be checked."""
    out = tmp_path_factory.mktemp("synth") / "out"
    config = SynthConfig(
        dataset="lfw", root=str(lfw_mini), roi="none", size=128, image_format="png", limit=40
    )
    run_synth(config, out, workers=1)
    return out


def test_every_source_and_variant_has_one_row(mini_run: Path) -> None:
    rows = _rows(mini_run / "manifest.parquet")
    assert len(rows) == 40 * 4
    assert len({r["key"] for r in rows}) == len(rows)
    assert {r["variant"] for r in rows} == {"unmasked", "mask-black", "mask-white", "mask-blue"}
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) >= 0.95 * len(rows), {r["reason"] for r in rows if r["status"] != "ok"}
    for r in ok:
        data = (mini_run / r["out_path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["out_sha256"]
        assert (r["out_width"], r["out_height"]) == (128, 128)
        assert r["detector"] == "mtcnn" and 0.5 < r["det_score"] <= 1.0
        assert len(r["landmarks"]) == 136 and len(r["face_box"]) == 4
        assert (r["mask_polygon"] is not None) == r["masked"]
    meta = read_metadata(mini_run / "manifest.parquet")
    assert meta["params"]["colors"] == "black,white,blue" and "workers" not in meta["params"]


def _to_output(poly: np.ndarray, roi: list[int], out_wh: tuple[int, int]) -> np.ndarray:
    x1, y1, x2, y2 = roi
    scale = np.array([out_wh[0] / (x2 - x1), out_wh[1] / (y2 - y1)])
    return np.rint((poly - [x1, y1]) * scale).astype(np.int32)


def test_mask_pixels_have_the_colour_and_outside_is_unchanged(mini_run: Path) -> None:
    rows = _rows(mini_run / "manifest.parquet")
    unmasked = {
        r["src_path"]: r for r in rows if r["variant"] == "unmasked" and r["status"] == "ok"
    }
    checked = 0
    for r in rows:
        if not r["masked"] or r["status"] != "ok":
            continue
        img = cv2.cvtColor(cv2.imread(str(mini_run / r["out_path"])), cv2.COLOR_BGR2RGB)
        ref = cv2.cvtColor(
            cv2.imread(str(mini_run / unmasked[r["src_path"]]["out_path"])), cv2.COLOR_BGR2RGB
        )
        poly = _to_output(np.array(r["mask_polygon"]).reshape(-1, 2), r["roi_box"], (128, 128))
        region = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(region, [poly], 1)
        inside = cv2.erode(region, np.ones((5, 5), np.uint8)).astype(bool)
        outside = ~cv2.dilate(region, np.ones((5, 5), np.uint8)).astype(bool)
        assert inside.sum() > 50
        assert (img[inside] == COLORS[r["color"]]).all(), r["key"]
        assert (img[outside] == ref[outside]).all(), r["key"]
        checked += 1
    assert checked >= 100


def test_rerun_resumes_with_nothing_to_do(mini_run: Path, lfw_mini: Path) -> None:
    before = (mini_run / "manifest.parquet").read_bytes()
    config = SynthConfig(
        dataset="lfw", root=str(lfw_mini), roi="none", size=128, image_format="png", limit=40
    )
    result = run_synth(config, mini_run, workers=1)
    assert result.resumed_sources == 40
    assert (mini_run / "manifest.parquet").read_bytes() == before


def test_changed_parameters_on_same_output_are_refused(mini_run: Path, lfw_mini: Path) -> None:
    config = SynthConfig(dataset="lfw", root=str(lfw_mini), roi="none", size=64, limit=40)
    with pytest.raises(UserError, match="different parameters"):
        run_synth(config, mini_run)


def _tree_digest(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".parts" not in p.parts and p.name != "run.json"
    }


def test_byte_identical_with_one_or_two_workers(lfw_mini: Path, tmp_path: Path) -> None:
    config = SynthConfig(dataset="lfw", root=str(lfw_mini), limit=70, colors="black,#3366cc")
    run_synth(config, tmp_path / "w1", workers=1)
    run_synth(config, tmp_path / "w2", workers=2)
    a, b = _tree_digest(tmp_path / "w1"), _tree_digest(tmp_path / "w2")
    assert a == b and "manifest.parquet" in a


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (read from /proc, so no psutil is needed)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_killed_run_restarts_to_exactly_one_row_per_input(lfw_mini: Path, tmp_path: Path) -> None:
    """SIGKILL mid-run, restart: exactly one row per input, identical to an uninterrupted run."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "mfrbench", "synth", "lfw", "--root", str(lfw_mini)]
    cmd += ["--out", str(out), "--limit", "128", "--colors", "black"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((out / ".parts").glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    orphans = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    assert workers and not orphans, f"pool workers outlived the killed driver: {orphans}"
    parts = list((out / ".parts").glob("part-*.parquet"))
    assert 1 <= len(parts) < 4, "the kill should land mid-run"
    assert not (out / "manifest.parquet").exists()

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    rows = _rows(out / "manifest.parquet")
    assert len(rows) == 128 * 2 and len({r["key"] for r in rows}) == 128 * 2

    fresh = tmp_path / "fresh"
    run_synth(SynthConfig(dataset="lfw", root=str(lfw_mini), limit=128, colors="black"), fresh)
    assert (out / "manifest.parquet").read_bytes() == (fresh / "manifest.parquet").read_bytes()


def test_bad_inputs_become_rows_and_the_run_goes_on(lfw_mini: Path, tmp_path: Path) -> None:
    badimages = pytest.importorskip("badimages")
    src = tmp_path / "bad" / "person"
    src.mkdir(parents=True)
    cases = badimages.write_bad_images(src, lfw_mini)
    shutil.copy(lfw_mini / "Al_Gore" / "Al_Gore_0001.jpg", src / "good.jpg")
    out = tmp_path / "out"
    run_synth(SynthConfig(dataset="folder", root=str(tmp_path / "bad"), colors="white"), out)
    rows = [r for r in _rows(out / "manifest.parquet") if r["variant"] == "unmasked"]
    by_name = {Path(r["src_path"]).name: r for r in rows}
    assert by_name["good.jpg"]["status"] == "ok"
    assert len(rows) == len(list(src.iterdir()))
    for name, (path, expected) in cases.items():
        row = by_name[path.name]
        want = (
            expected.status if expected.status != "ok" else ("ok" if expected.face else "no_face")
        )
        assert row["status"] == want, (name, row["status"], row["reason"])
        if want != "ok":
            assert row["reason"], name
        if want == "ok" and expected.size:
            assert (row["src_width"], row["src_height"]) == expected.size, name


def test_variants_and_output_names_are_stable() -> None:
    config = SynthConfig(dataset="lfw", colors="white,black", augment=("rotate",), augment_copies=2)
    names = [v.name for v in plan_variants(config)]
    assert names[:3] == ["unmasked", "mask-white", "mask-black"]
    assert "mask-black+rotate1" in names and len(names) == 3 + 3 * 2

    class R:
        def __init__(self, p: str) -> None:
            self.rel_path = p

    got = output_names([R("a/x.png"), R("a/x.jpg"), R("a/y.bmp")], "jpg")  # type: ignore[list-item]
    assert got == {"a/x.png": "a/x.png.jpg", "a/x.jpg": "a/x.jpg.jpg", "a/y.bmp": "a/y.jpg"}


def test_augmented_rows_record_parameters(lfw_mini: Path, tmp_path: Path) -> None:
    import json

    config = SynthConfig(
        dataset="lfw",
        root=str(lfw_mini),
        limit=3,
        colors="blue",
        augment=("rotate", "noise"),
        augment_copies=1,
    )
    run_synth(config, tmp_path / "aug")
    rows = [r for r in _rows(tmp_path / "aug" / "manifest.parquet") if r["augment"]]
    assert len(rows) == 3 * 2 * 2
    for r in rows:
        spec = json.loads(r["augment"])
        assert spec["kind"] in {"rotate", "noise"} and spec["params"]


def test_model_errors_surface_before_and_inside_workers(tmp_path: Path) -> None:
    """A missing model is a user error up front, and a worker that cannot load its models
    raises on its first chunk instead of hanging the pool."""
    import torch

    from mfrbench import synth

    threads = torch.get_num_threads()
    config = SynthConfig(dataset="lfw", landmarks="mediapipe", mediapipe_model="/nope.task")
    with pytest.raises(UserError, match=r"/nope\.task"):
        synth.preflight(config)
    synth._init_worker(config, tmp_path, tmp_path / "out")
    try:
        with pytest.raises(UserError, match=r"/nope\.task"):
            synth._run_chunk(synth._Chunk(0, ()))
    finally:
        synth._WORKER_ERROR = None
        torch.set_num_threads(threads)


def test_auto_face_policy_is_center_for_face_centred_datasets() -> None:
    from mfrbench.synth import resolve_defaults

    assert resolve_defaults(SynthConfig(dataset="lfw")).face_policy == "center"
    assert resolve_defaults(SynthConfig(dataset="folder")).face_policy == "largest"
    assert resolve_defaults(SynthConfig(dataset="lfw", face_policy="skip")).face_policy == "skip"


def test_outputs_do_not_depend_on_where_the_data_sits(lfw_mini: Path, tmp_path: Path) -> None:
    """The same images give the same manifest bytes reached through a symlink, after the data
    folder moved, and when a run started in one place is resumed from the other."""
    people = sorted(p for p in lfw_mini.iterdir() if p.is_dir())[:6]
    data = tmp_path / "disk" / "data"
    for person in people:
        shutil.copytree(person, data / person.name)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "disk", target_is_directory=True)
    config = {"dataset": "lfw", "colors": "black"}
    plain, linked = tmp_path / "plain", tmp_path / "linked"
    run_synth(SynthConfig(root=str(data), **config), plain)
    run_synth(SynthConfig(root=str(link / "data"), **config), linked)
    manifest = (plain / "manifest.parquet").read_bytes()
    assert (linked / "manifest.parquet").read_bytes() == manifest
    assert _tree_digest(plain) == _tree_digest(linked)
    assert str(tmp_path) not in manifest.decode("latin-1")  # no path in the hashed output
    assert json.loads((linked / "run.json").read_text())["root"] == str(data.resolve())

    # a run cut short here (its last chunk and the manifest lost), the data moved, resumed
    # there: the other chunks are kept and the bytes are the same
    parts = sorted((plain / ".parts").glob("part-*.parquet"))
    assert len(parts) >= 2
    parts[-1].unlink()
    (plain / "manifest.parquet").unlink()
    moved = tmp_path / "elsewhere"
    (tmp_path / "disk").rename(moved)
    result = run_synth(SynthConfig(root=str(moved / "data"), **config), plain)
    assert 0 < result.resumed_sources < result.sources
    assert (plain / "manifest.parquet").read_bytes() == manifest


def test_a_dlib_only_run_never_imports_torch(lfw_mini: Path, tmp_path: Path) -> None:
    """torch's import (~1.5 s per process) is paid only by runs whose cascade has MTCNN."""
    code = textwrap.dedent(
        f"""
        import sys
        from mfrbench.synth import SynthConfig, run_synth
        config = SynthConfig(dataset="lfw", root={str(lfw_mini)!r}, limit=2, colors="black",
                             detector="dlib", fallback=False)
        run_synth(config, {str(tmp_path / "out")!r}, workers=1)
        print("torch" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert _rows(tmp_path / "out" / "manifest.parquet")[0]["status"] == "ok"


def test_mtcnn_preflight_finds_weights_without_importing_torch() -> None:
    """The driver checks MTCNN's weights before starting workers; only the workers need torch."""
    code = textwrap.dedent(
        """
        import sys
        from mfrbench.errors import UserError
        from mfrbench.synth import SynthConfig, preflight
        try:
            preflight(SynthConfig(dataset="lfw"))
        except UserError:
            pass  # no weights here: the message is tested in test_mtcnn
        print("torch" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
