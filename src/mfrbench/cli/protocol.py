"""`mfrbench protocol ...`: freeze, verify, show and render protocol files.

Thin wrappers over :mod:`mfrbench.protocol`; verify and render exit 1 when an image is
missing, changed or fails to render, user mistakes end with one line and exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from mfrbench.cli.common import console, dataset_root, out_console, print_counts, warn
from mfrbench.cli.freezing import protocol_path, read_citation
from mfrbench.cli.options import (
    Citation,
    DataRoot,
    ExecutorKind,
    ProtocolFile,
    RayAddress,
    executor_from,
)
from mfrbench.cli.progress import make_progress
from mfrbench.errors import UserError

protocol_app = typer.Typer(help="Freeze, verify, show and render protocol files.")


@protocol_app.command("freeze")
def protocol_freeze(
    source: Annotated[Path, typer.Argument(help="A protocol file to re-freeze.")],
    out: Annotated[
        Path,
        typer.Option(help="Folder for <name>.json, or a path ending in .json (the file)."),
    ],
    name: Annotated[
        str | None, typer.Option(help="New protocol name (default: the source's name).")
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="New content version (default: the source's, raised by one when anything "
            "changes under the same name).",
        ),
    ] = None,
    description: Annotated[
        str | None, typer.Option(help="New description (default: the source's).")
    ] = None,
    citation: Citation = None,
) -> None:
    """Write a protocol with a new name/version/description/citation; same images and pairs.

    `mfrbench pairs ...` freezes what it generates; this re-freezes an existing file, e.g. to
    add a citation before publishing. Any change gives a new digest and id, so the version is
    raised (1 -> 2) and the new file records the id it supersedes: results computed on the old
    file still match it (docs/protocols.md §8). Nothing changed: the same file.
    """
    from mfrbench.protocol import load_protocol, protocol_id, refreeze, write_protocol

    old = load_protocol(source)
    protocol = refreeze(
        old,
        name=name,
        version=version,
        description=description,
        citation=None if citation is None else read_citation(citation),
    )
    path = protocol_path(out, protocol["name"])
    write_protocol(protocol, path)
    if protocol["digest"] == old["digest"]:
        how = "unchanged"
    else:
        how = f"version {protocol['version']}, supersedes {protocol_id(old)}"
    out_console.print(f"protocol {protocol_id(protocol)} ({how}) written to {path}")


@protocol_app.command("verify")
def protocol_verify(
    protocol_file: ProtocolFile,
    root: DataRoot = None,
    workers: Annotated[int, typer.Option(help="Hashing threads.")] = 2,
) -> None:
    """Check every source image under ROOT against the protocol; exit 1 on any mismatch."""
    from mfrbench.protocol import load_protocol, verify

    protocol = load_protocol(protocol_file)
    data_root = root if root is not None else dataset_root(protocol["dataset"]["name"])
    report = verify(protocol, data_root, workers=workers)
    for path in report.missing:
        out_console.print(f"missing  {path}", highlight=False)
    for path, expected, actual in report.changed:
        out_console.print(
            f"changed  {path}  expected {expected[:12]}… got {actual[:12]}…", highlight=False
        )
    out_console.print(report.message(), highlight=False)
    if not report.ok:
        sys.exit(1)


@protocol_app.command("show")
def protocol_show(
    protocol_file: ProtocolFile,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise a protocol: id, dataset, citation, and pair counts by split, fold, type and
    label."""
    from mfrbench.protocol import load_protocol, show

    info = show(load_protocol(protocol_file))
    if as_json:
        out_console.print_json(json.dumps(info))
        return
    head = Table(show_header=False, show_edge=False)
    for key, value in info.items():
        if key == "supersedes" and value:
            head.add_row(key, Text(", ".join(value)))
        elif key != "citation" and not isinstance(value, (dict, list)):
            head.add_row(key, Text(str(value)))
    out_console.print(head)
    _print_citation(info["citation"])
    for key, value in info.items():
        if not isinstance(value, dict) or not value:
            continue
        if isinstance(next(iter(value.values())), dict):
            _print_nested(key, value)
        else:
            print_counts(key, value, title=key)
    for warning in info.get("warnings", []):
        warn(warning)


def _print_citation(citation: str) -> None:
    """The BibTeX block under a ``citation`` heading, as recorded (no markup read from it)."""
    out_console.print(Text("citation", style="bold"))
    if citation.strip():
        out_console.print(Text(citation.rstrip("\n")), soft_wrap=True)  # no breaks added
    else:
        out_console.print("no citation recorded", highlight=False)


def _print_nested(key: str, value: dict[str, dict[str, Any]]) -> None:
    """A ``key | col1 | col2 ...`` table of a dict of dicts (columns: the first row's keys)."""
    table = Table(title=key, show_edge=False)
    table.add_column(key)
    cols = list(next(iter(value.values())))
    for c in cols:
        table.add_column(str(c), justify="right")
    for k, row in value.items():
        table.add_row(str(k), *(str(row.get(c, "")) for c in cols))
    out_console.print(table)


@protocol_app.command("render")
def protocol_render(
    protocol_file: ProtocolFile,
    out: Annotated[Path, typer.Option(help="Folder for the rendered images and index.parquet.")],
    root: DataRoot = None,
    image_format: Annotated[str, typer.Option("--format", help="png|jpg.")] = "png",
    workers: Annotated[int, typer.Option(help="Rendering threads (ray: actors).")] = 2,
    executor: ExecutorKind = "local",
    ray_address: RayAddress = None,
) -> None:
    """Render the protocol's evaluation images from the source images and frozen geometry."""
    from mfrbench.protocol import load_protocol, render_protocol

    where = executor_from(executor, ray_address, workers)

    if image_format not in ("png", "jpg"):
        raise UserError(f"--format: unknown value {image_format!r}; choose from png, jpg")
    protocol = load_protocol(protocol_file)
    data_root = root if root is not None else dataset_root(protocol["dataset"]["name"])
    progress = make_progress(
        console,
        TextColumn("[bold]render[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TimeRemainingColumn(),
    )
    with progress:
        task = progress.add_task("render", total=len(protocol["images"]), failed=0)

        def on_progress(done: int, failed: int) -> None:
            progress.update(task, completed=done, failed=failed)

        report = render_protocol(
            protocol,
            data_root,
            out,
            fmt=image_format,
            workers=workers,
            progress=on_progress,
            executor=where,
        )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.status_counts.items()))
    out_console.print(
        f"{report.protocol_id}: {report.total} images ({counts}); written {report.written}, "
        f"skipped {report.skipped}, failed {report.failed} in {report.elapsed:.1f} s; "
        f"index: {report.index}"
    )
    if report.failed:
        sys.exit(1)
