"""``mfrbench demo``: the whole job on a small real set, end to end, in about a minute.

synth (three mask colours) -> ``pairs lfw`` folds (masked probe vs unmasked reference, and the
unmasked control over the same photos) -> a frozen protocol -> ``eval`` with dlib-resnet (report,
plots) -> masked against unmasked, side by side. The data is a folder of LFW-layout identities
(``lfw-mini``: 40 identities, 292 photos); without one it says in one line where to get it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mfrbench.errors import UserError

FOLDS = 5
PER_FOLD = 20
NAME = "lfw-mini-demo"


@dataclass
class DemoResult:
    manifest: Path
    protocol: Path
    protocol_id: str
    run_dir: Path
    comparison: str


def find_root(root: str | Path | None) -> Path:
    """``root``, else ``$MFRBENCH_DATA/lfw-mini``; UserError saying how to get data if none."""
    if root is not None:
        path = Path(root).expanduser()
    elif os.environ.get("MFRBENCH_DATA"):
        path = Path(os.environ["MFRBENCH_DATA"]) / "lfw-mini"
    else:
        raise UserError(
            "no demo data: pass --root DIR (any LFW-layout folder, e.g. lfw-mini), or set "
            "MFRBENCH_DATA to a folder holding lfw-mini/, or get LFW with "
            "`mfrbench synth lfw --download` (180 MB) and pass its folder as --root"
        )
    if not path.is_dir():
        raise UserError(
            f"demo data not found at {path}: pass --root DIR (an LFW-layout folder such as "
            "lfw-mini), set MFRBENCH_DATA, or get LFW with `mfrbench synth lfw --download`"
        )
    return path


def run_demo(
    root: str | Path | None,
    out: str | Path,
    *,
    workers: int = 1,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Run every stage into ``out``; ``say`` reports each stage and where its output is."""
    from mfrbench.evaluate.compare import compare_table
    from mfrbench.evaluate.html_report import write_html_report
    from mfrbench.evaluate.runner import evaluate
    from mfrbench.pairs import images_from_manifest, lfw_folds
    from mfrbench.protocol import freeze, protocol_id, write_protocol
    from mfrbench.synth import SynthConfig, run_synth

    data = find_root(root)
    out = Path(out)
    say(f"1/4 synth: masks in black, white and sky blue on {data}")
    synth = run_synth(
        SynthConfig(dataset="lfw", root=str(data), colors="black,white,blue"),
        out / "synth",
        workers=workers,
    )
    say(f"    {synth.sources} photos -> {synth.rows} images; manifest {synth.manifest}")
    say(f"2/4 pairs: {FOLDS} identity-disjoint folds, masked-unmasked + unmasked control")
    pairset = lfw_folds(
        images_from_manifest(synth.manifest),
        n_folds=FOLDS,
        per_fold=PER_FOLD,
        pair_types=["masked-unmasked", "unmasked-unmasked"],
        seed=0,
    )
    protocol = freeze(
        pairset,
        name=NAME,
        dataset="lfw",
        description="mfrbench demo: lfw-mini folds, synthetic masks, with the unmasked control",
    )
    path = out / f"{NAME}.json"
    write_protocol(protocol, path)
    pid = protocol_id(protocol)
    say(f"    protocol {pid}: {len(protocol['pairs'])} pairs; {path}")
    say("3/4 eval: dlib-resnet (all-vs-all impostors, report, plots, HTML with failures)")
    run = evaluate(
        path,
        "plugin:dlib-resnet",
        root=data,
        out_dir=out / "results",
        workers=workers,
        impostors="all",
    )
    html = write_html_report(run.out_dir, data)
    say(f"    report {run.out_dir / 'report.md'}; plots in {run.out_dir}; open {html}")
    say("4/4 compare: masked probes against the unmasked control")
    report = run.report
    table = "\n".join(
        [
            "masked-unmasked:",
            compare_table([report], "masked-unmasked"),
            "",
            "unmasked-unmasked (control):",
            compare_table([report], "unmasked-unmasked"),
        ]
    )
    (out / "comparison.md").write_text(table + "\n", encoding="utf-8")
    say(table)
    say(f"    also in {out / 'comparison.md'}")
    return DemoResult(synth.manifest, path, pid, run.out_dir, table)
