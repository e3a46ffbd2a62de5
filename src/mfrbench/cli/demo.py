"""`mfrbench demo`: the whole job on lfw-mini; a thin wrapper over ``demo.run_demo``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from mfrbench.cli.common import out_console
from mfrbench.cli.options import Workers
from mfrbench.workers import DEFAULT_WORKERS


def demo_command(
    root: Annotated[
        Path | None,
        typer.Option(help="An LFW-layout folder (else $MFRBENCH_DATA/lfw-mini)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("demo-out"),
    workers: Workers = DEFAULT_WORKERS,
) -> None:
    """The whole job on lfw-mini: synth, pairs, protocol, eval with dlib-resnet, comparison."""
    from mfrbench.demo import run_demo
    from mfrbench.evaluate.formatting import num

    t0 = time.perf_counter()
    result = run_demo(
        root, out, workers=workers, say=lambda s: out_console.print(s, highlight=False)
    )
    out_console.print(
        f"demo done in {num(time.perf_counter() - t0, 0)} s: protocol {result.protocol_id}, "
        f"results {result.run_dir}",
        highlight=False,
    )
