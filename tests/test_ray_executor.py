"""The Ray executor on a real two-node Ray cluster started on this machine (head + one more
node, 1 CPU each): ordered results, one initializer per actor, errors raised as themselves,
a killed worker process costing only its chunk, and synth / eval embedding / protocol render
giving the same bytes as the local runner."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'mfrbench[ray]'")
from ray.cluster_utils import Cluster  # noqa: E402

from mfrbench import synth  # noqa: E402
from mfrbench.errors import UserError  # noqa: E402
from mfrbench.executors import Executor, make_executor  # noqa: E402
from mfrbench.ray_executor import ACTOR_TITLE  # noqa: E402
from mfrbench.synth import SynthConfig, run_synth  # noqa: E402

TESTS = Path(__file__).resolve().parent
RAY = Executor("ray")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Head plus one worker node, 1 CPU each. Workers inherit PYTHONPATH, so they can import
    this folder's modules (functions and test models pickled by reference)."""
    if ray.is_initialized():
        ray.shutdown()
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), saved) if p)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    try:
        ray.init(address=c.address, log_to_driver=False)
        c.wait_for_nodes()
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


# ----------------------------------------------------------------------------- executor


def _note_init(path: str) -> None:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")


def _square_slow_first(x: int) -> tuple[int, int]:
    time.sleep(0.02 * (x % 4 == 0))  # completion order differs from input order
    return x * x, os.getpid()


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def _die_once(item: tuple[int, str]) -> tuple[int, int]:
    """SIGKILLs its own worker process the first time it sees item 5 (a marker file says)."""
    x, marker = item
    if x == 5 and not os.path.exists(marker):
        Path(marker).write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)
    return x, os.getpid()


def _inits(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


def test_results_ordered_and_initializer_once_per_actor(cluster: Cluster, tmp_path: Path) -> None:
    inits = tmp_path / "inits"
    out = list(
        RAY.map(
            _square_slow_first,
            range(40),
            workers=1,
            initializer=_note_init,
            initargs=(str(inits),),
        )
    )
    assert [v for v, _ in out] == [x * x for x in range(40)]
    pids = _inits(inits)
    assert len(pids) == 2 == len(set(pids)), "one actor per cluster CPU, initialised once each"
    assert {pid for _, pid in out} == set(pids)


def test_exception_in_fn_is_raised_as_itself(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="bad item 3"):
        list(RAY.map(_fail_on_three, range(8), workers=1))


def test_killed_worker_costs_only_its_chunk(cluster: Cluster, tmp_path: Path) -> None:
    marker, inits = tmp_path / "marker", tmp_path / "inits"
    items = [(x, str(marker)) for x in range(12)]
    out = list(RAY.map(_die_once, items, workers=1, initializer=_note_init, initargs=(str(inits),)))
    assert marker.read_text() == "killed", "the worker really died"
    assert [x for x, _ in out] == list(range(12))
    assert len(_inits(inits)) == 3, "two actors plus the one restarted after the kill"


def test_option_mistakes_are_user_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="--executor"):
        Executor("dask")
    with pytest.raises(UserError, match="--ray-address needs --executor ray"):
        make_executor("local", "auto")
    assert make_executor("local", None, 4) == Executor()  # --workers stays the local pool's
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(UserError, match=r"pip install 'mfrbench\[ray\]'"):
        list(RAY.map(abs, [1], workers=1))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["synth", "lfw", "--ray-address", "auto"], "--ray-address needs --executor ray"),
        (["eval", "--model", "plugin:x", "--protocol", "p.json", "--executor", "dask"], "dask"),
    ],
)
def test_cli_option_mistakes_are_one_line(args: list[str], needle: str, tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mfrbench", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr


# ----------------------------------------------------------------------------- synth


def _files(out: Path) -> dict[str, str]:
    """sha256 of every output file (not run.json, not parts; hidden temporary files of a
    write cut by a kill are not outputs)."""
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
        and ".parts" not in p.parts
        and p.name != "run.json"
        and not p.name.startswith(".")
    }


def test_synth_cli_on_ray_is_byte_identical_to_local(
    cluster: Cluster, lfw_mini: Path, tmp_path: Path
) -> None:
    """A separate driver (the CLI) attaches to the cluster by address: same bytes as local."""
    config = SynthConfig(dataset="lfw", root=str(lfw_mini), limit=40, colors="black")
    run_synth(config, tmp_path / "local", workers=1)
    cmd = [sys.executable, "-m", "mfrbench", "synth", "lfw", "--root", str(lfw_mini)]
    cmd += ["--out", str(tmp_path / "ray"), "--limit", "40", "--colors", "black"]
    cmd += ["--executor", "ray", "--ray-address", cluster.address]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    local, on_ray = _files(tmp_path / "local"), _files(tmp_path / "ray")
    assert "manifest.parquet" in local and len(local) == 1 + 40 * 2
    assert on_ray == local


def _actor_pids() -> list[int]:
    """Processes Ray titles ``ray::ChunkActor...`` (Linux: read from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(ACTOR_TITLE.encode()):
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_synth_survives_a_killed_actor(
    cluster: Cluster, lfw_mini: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL an actor process after the first chunk: its chunks are retried on the restarted
    actor, and the run ends with one row per input, the same bytes as a local run."""
    monkeypatch.setattr(synth, "CHUNK_SIZE", 8)  # 6 chunks of 48 images: the kill lands mid-run
    config = SynthConfig(dataset="lfw", root=str(lfw_mini), limit=48, colors="black")
    killed: list[int] = []

    def kill_one(done: int, failed: int) -> None:
        if not killed:
            pids = _actor_pids()
            assert pids, "no Ray actor process found to kill"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    result = run_synth(config, tmp_path / "ray", executor=RAY, on_progress=kill_one)
    assert killed
    rows = pq.read_table(result.manifest, columns=["key"]).column("key").to_pylist()
    assert len(rows) == 48 * 2 == len(set(rows))
    run_synth(config, tmp_path / "local", workers=1)
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")


# ----------------------------------------------------------------------------- eval, render


def test_eval_embedding_on_ray_gives_the_same_scores(
    cluster: Cluster, lfw_mini: Path, tmp_path: Path
) -> None:
    """The engine's batches embedded by actors (a pickled model, real crops of lfw-mini)."""
    from test_evaluate import FakeModel, _oracle_table, _run

    proto = _tiny(lfw_mini, tmp_path)
    table = _oracle_table(proto)
    one = _run(proto, FakeModel(table, tag="r"), tmp_path / "local", batch_size=8)
    two = _run(proto, FakeModel(table, tag="r"), tmp_path / "ray", batch_size=8, executor=RAY)
    assert two.report["embedding"]["computed"] == one.report["embedding"]["computed"] > 0
    assert two.report["embedding"]["worker_processes"] == 2
    a = pq.read_table(one.out_dir / "scores.parquet")
    b = pq.read_table(two.out_dir / "scores.parquet")
    assert a.equals(b)


def _tiny(lfw_mini: Path, tmp_path: Path) -> dict[str, Any]:
    """test_evaluate's tiny protocol (its fixture's body, for a function-scoped folder)."""
    import test_evaluate

    from mfrbench.pairs import lfw_folds
    from mfrbench.protocol import freeze, write_protocol

    pairset = lfw_folds(
        test_evaluate._images(lfw_mini),
        n_folds=4,
        per_fold=6,
        pair_types=["masked-unmasked", "unmasked-unmasked"],
        seed=0,
    )
    protocol = freeze(pairset, name="tiny-lfw-mini", dataset="lfw-mini")
    path = tmp_path / "tiny.json"
    write_protocol(protocol, path)
    return {"protocol": protocol, "path": path, "root": lfw_mini}


def test_protocol_render_on_ray_writes_the_same_files(
    cluster: Cluster, lfw_mini: Path, tmp_path: Path
) -> None:
    from mfrbench.protocol import render_protocol

    proto = _tiny(lfw_mini, tmp_path)["protocol"]
    local = render_protocol(proto, lfw_mini, tmp_path / "local", workers=2)
    on_ray = render_protocol(proto, lfw_mini, tmp_path / "ray", executor=RAY)
    assert on_ray.written == local.written == len(proto["images"]) and on_ray.failed == 0
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")


@pytest.mark.slow
def test_dlib_resnet_on_ray_gives_the_same_scores(
    cluster: Cluster, lfw_mini: Path, tmp_path: Path
) -> None:
    """The reference model rebuilt from its spec inside each actor: identical scores."""
    from test_evaluate import _run

    proto = _tiny(lfw_mini, tmp_path)
    one = _run(proto, "plugin:dlib-resnet", tmp_path / "local", n_boot=0)
    two = _run(proto, "plugin:dlib-resnet", tmp_path / "ray", n_boot=0, executor=RAY)
    a = pq.read_table(one.out_dir / "scores.parquet")
    b = pq.read_table(two.out_dir / "scores.parquet")
    assert a.equals(b)
