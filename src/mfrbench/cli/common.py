"""Helpers every command shares: the two consoles, option parsing, table and warning printing.

``console`` is stderr (progress, warnings, errors) and ``out_console`` is stdout (results), so
a command's output can be piped while its progress stays on the terminal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mfrbench.errors import UserError

console = Console(stderr=True)
out_console = Console()


def warn(message: str) -> None:
    """One yellow ``warning:`` line on stderr."""
    console.print(f"[yellow]warning:[/] {message}", highlight=False)


def split_list(value: str | None) -> list[str] | None:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; None (not an empty list) for no value."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def parse_model_opts(values: list[str] | None, flag: str = "--model-opt") -> dict[str, str]:
    """``["k=v", ...]`` -> dict; UserError for an item without ``=`` or a repeated key."""
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"{flag} expects key=value, got {item!r}")
        if key in out:
            raise UserError(f"{flag} {key} given twice")
        out[key] = value
    return out


def default_root(protocol_file: Path) -> Path:
    """``$MFRBENCH_DATA/<dataset name>`` for a protocol file (:func:`dataset_root`)."""
    name = None
    try:
        with open(protocol_file, encoding="utf-8") as f:
            name = json.load(f).get("dataset", {}).get("name")
    except (OSError, ValueError, AttributeError):
        pass  # load_protocol reports what is wrong with the file
    return dataset_root(name)


def dataset_root(name: Any) -> Path:
    """``$MFRBENCH_DATA/<name>``, what eval, train, ``protocol verify`` and ``protocol render``
    fall back to without --root; one UserError line asking for --root when it is not there."""
    name = name if isinstance(name, str) and name else None
    data = os.environ.get("MFRBENCH_DATA")
    if data and name:
        root = Path(data).expanduser() / name
        if root.is_dir():
            return root
        raise UserError(
            f"--root is required: MFRBENCH_DATA has no {name}/ folder ({root} is not a directory)"
        )
    held = f"{name}/" if name else "the dataset"
    raise UserError(f"--root is required (or set MFRBENCH_DATA to a folder holding {held})")


def print_rows(rows: Sequence[Mapping[str, Any]], title: str) -> None:
    """Dict rows as a table on stdout (text columns ``split``/``fold`` left, the rest right)."""
    if not rows:
        return
    table = Table(title=title, show_edge=False)
    for key in rows[0]:
        table.add_column(str(key), justify="left" if key in ("split", "fold") else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    out_console.print(table)


def print_counts(
    column: str, counts: Mapping[str, Any], value: str = "count", title: str | None = None
) -> None:
    """A two-column ``column | value`` table of ``counts`` on stdout."""
    table = Table(title=title, show_edge=False)
    table.add_column(column)
    table.add_column(value, justify="right")
    for name, n in counts.items():
        table.add_row(str(name), str(n))
    out_console.print(table)
