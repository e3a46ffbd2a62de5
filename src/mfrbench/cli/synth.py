"""`mfrbench synth`: detect, landmark, mask and crop a dataset into images and a manifest.

A thin wrapper over :func:`mfrbench.synth.run_synth` with a progress bar (or log lines) and
a summary of rows by status and faces by detector.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mfrbench.cli.common import console, out_console, print_counts, split_list
from mfrbench.cli.options import ExecutorKind, RayAddress, Seed, Workdir, Workers, executor_from
from mfrbench.cli.progress import make_progress
from mfrbench.workers import DEFAULT_WORKERS


def synth_command(
    dataset: Annotated[str, typer.Argument(help="Dataset adapter: lfw, folder, rmfrd, mfr2.")],
    root: Annotated[
        Path | None, typer.Option(help="Dataset root folder (lfw: else $MFRBENCH_DATA/lfw).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output folder for images/ and manifest.parquet (default: WORKDIR/out/DATASET)."
        ),
    ] = None,
    workdir: Workdir = None,
    colors: Annotated[
        str, typer.Option(help="Mask colours: names (black, white, blue) or #RRGGBB, comma list.")
    ] = "black,white,blue",
    mask_shape: Annotated[str, typer.Option(help="Mask shape (paper, nist-*).")] = "paper",
    detector: Annotated[
        str, typer.Option(help="mtcnn|dlib|haar|none, or a comma list giving the cascade order.")
    ] = "mtcnn",
    fallback: Annotated[
        bool, typer.Option(help="Fall back to the next detector when one finds no face.")
    ] = True,
    landmarks: Annotated[str, typer.Option(help="Landmark backend: dlib|mediapipe.")] = "dlib",
    mediapipe_model: Annotated[
        Path | None,
        typer.Option(
            help="face_landmarker.task (else $MFRBENCH_MEDIAPIPE_MODEL, cache, download)."
        ),
    ] = None,
    masks: Annotated[
        str,
        typer.Option(
            help="A mask mix instead of --colors: kinds with weights, e.g. "
            "surgical:0.4,cloth:0.3,n95:0.2,paper:0.1 (surgical, n95, kn95, cloth, paper, "
            "nist-*); one mask per image, drawn from the seed and the image, in images/mask-mix/."
        ),
    ] = "",
    occlusion_masks: Annotated[
        bool,
        typer.Option(
            "--occlusion-masks",
            help="Also write each masked output's occlusion mask (0/255 PNG, output-crop "
            "coordinates) under occlusion/, named in the manifest's occlusion_path.",
        ),
    ] = False,
    margin: Annotated[int, typer.Option(help="Pixels added around the face box.")] = 15,
    face_policy: Annotated[
        str,
        typer.Option(
            help="Several faces: largest|center|skip; auto = center for face-centred datasets "
            "(lfw, mfr2, rmfrd), largest otherwise."
        ),
    ] = "auto",
    roi: Annotated[str, typer.Option(help="Crop: none|upper-half|eye-band.")] = "upper-half",
    size: Annotated[int, typer.Option(help="Output width in pixels.")] = 112,
    image_format: Annotated[str, typer.Option("--format", help="Output format: jpg|png.")] = "jpg",
    augment: Annotated[
        str | None,
        typer.Option(help="Training augmentations, comma list: rotate,jitter,blur,noise,gray."),
    ] = None,
    augment_copies: Annotated[int, typer.Option(help="Copies per augmentation.")] = 3,
    workers: Workers = DEFAULT_WORKERS,
    executor: ExecutorKind = "local",
    ray_address: RayAddress = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N images.")] = None,
    min_face: Annotated[
        str,
        typer.Option(
            help="Smallest face to look for: PX (MTCNN min face size, Haar min size, dlib: "
            "no upsampling from 80), 'auto' (MTCNN: 16% of the shorter image side first, "
            "down to 20 px where that finds none) or 'native' (each detector's own: MTCNN "
            "20, Haar 30). See docs/benchmarks.md."
        ),
    ] = "auto",
    device: Annotated[
        str, typer.Option(help="Where MTCNN runs: cpu, cuda or cuda:N (not recorded).")
    ] = "cpu",
    seed: Seed = 0,
    overwrite: Annotated[
        bool, typer.Option(help="Discard an existing output made with other parameters.")
    ] = False,
    download: Annotated[
        bool, typer.Option(help="Download the dataset (checksummed, cached) if it is not found.")
    ] = False,
) -> None:
    """Detect, landmark, mask and crop every image of DATASET into OUT, with a Parquet manifest."""
    from mfrbench.evaluate.formatting import num
    from mfrbench.paths import earlier_default, synth_dir
    from mfrbench.synth import SynthConfig, parse_min_face, run_synth

    where = executor_from(executor, ray_address, workers)
    if out is None:
        out = synth_dir(dataset, workdir)
        earlier = earlier_default("synth", workdir)
        if earlier is not None:
            console.print(
                f"note: the default output is now {out}; an earlier one is in {earlier} "
                f"(--out {earlier} resumes it)",
                highlight=False,
            )

    config = SynthConfig(
        dataset=dataset,
        root=str(root.resolve()) if root else None,
        colors=colors,
        mask_shape=mask_shape,
        detector=detector,
        fallback=fallback,
        landmarks=landmarks,
        mediapipe_model=str(mediapipe_model) if mediapipe_model else None,
        margin=margin,
        face_policy=face_policy,
        roi=roi,
        size=size,
        image_format=image_format,
        device=device,
        augment=tuple(split_list(augment) or ()),
        augment_copies=augment_copies,
        seed=seed,
        limit=limit,
        min_face=parse_min_face(min_face),
        masks=masks,
        occlusion_masks=occlusion_masks,
    )
    progress = make_progress(
        console,
        TextColumn("[bold]synth[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>7} img/s"),
        TextColumn("failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    state: dict[str, float] = {}

    def on_start(total: int, already: int) -> None:
        state["t0"], state["base"] = time.perf_counter(), already
        state["task"] = progress.add_task(
            "synth", total=total, completed=already, rate="-", failed=0
        )
        if total and already == total:
            console.print(f"all {total} images already done; nothing to do", highlight=False)
        elif already:
            console.print(f"resuming: {already} of {total} images already done", highlight=False)

    def on_progress(done: int, failed: int) -> None:
        rate = (done - state["base"]) / max(time.perf_counter() - state["t0"], 1e-9)
        progress.update(state["task"], completed=done, rate=num(rate, 1), failed=failed)

    with progress:
        result = run_synth(
            config,
            out,
            workers=workers,
            overwrite=overwrite,
            download=download,
            on_start=on_start,
            on_progress=on_progress,
            executor=where,
        )
    _print_summary(result)


def _print_summary(result: Any) -> None:
    from mfrbench.evaluate.formatting import num

    print_counts("rows by status", result.status_counts, title="synth summary")
    print_counts("faces by detector", result.detector_counts, value="images")
    new, resumed = result.sources - result.resumed_sources, result.resumed_sources
    took = f"{result.sources} source images -> {result.rows} rows in {num(result.elapsed, 1)} s"
    rate = f"{num(new / max(result.elapsed, 1e-9), 1)} img/s"
    if result.sources and not new:  # a fully resumed run: no rate to speak of
        done = f"all {result.sources} source images already done, nothing to do"
    elif resumed:
        done = f"{took} ({new} new at {rate}, {resumed} already done)"
    else:
        done = f"{took} ({rate})"
    out_console.print(f"{done}; manifest: {result.manifest}", highlight=False)
