"""Progress for people at a terminal and for people reading a log.

On a terminal the CLI draws rich's live bars. When stderr is not a terminal (a log file, CI, a
cluster job) rich draws nothing until the end, so :class:`LogProgress` takes its place: the same
``add_task`` / ``update`` calls, printed as plain lines every ``MFRBENCH_PROGRESS_SECONDS``
(default 10) and when a task finishes, e.g.::

    synth: 3200/13233 (24.2%), 48.1/s, failed 0, elapsed 1m06s, ETA 3m28s
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mfrbench.cli.common import console

DEFAULT_SECONDS = 10.0


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("MFRBENCH_PROGRESS_SECONDS", DEFAULT_SECONDS)))
    except ValueError:
        return DEFAULT_SECONDS


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class LogProgress:
    """A line-per-interval stand-in for ``rich.progress.Progress`` (the calls the CLI makes)."""

    def __init__(self, stream: TextIO | None = None, interval: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.interval = _interval() if interval is None else interval
        self._tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        for task in self._tasks.values():
            if not task["printed_final"]:
                self._print(task)

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        key = len(self._tasks)
        completed = float(fields.pop("completed", 0) or 0)
        now = time.monotonic()
        self._tasks[key] = {
            "description": description,
            "total": total,
            "completed": completed,
            "start": now,
            "base": completed,
            "last": now,
            "fields": fields,
            "printed_final": False,
        }
        return key

    def update(self, key: int, **changes: Any) -> None:
        task = self._tasks[key]
        for name in ("total", "completed"):
            if name in changes:
                task[name] = changes.pop(name)
        task["fields"].update(changes)
        now = time.monotonic()
        finished = task["total"] is not None and task["completed"] >= task["total"]
        if (finished and not task["printed_final"]) or now - task["last"] >= self.interval:
            task["last"] = now
            task["printed_final"] = finished
            self._print(task)

    def line(self, task: dict[str, Any]) -> str:
        done, total = task["completed"], task["total"]
        elapsed = time.monotonic() - task["start"]
        rate = (done - task["base"]) / elapsed if elapsed > 0 else 0.0
        text = f"{task['description']}: {int(done)}"
        if total:
            text += f"/{int(total)} ({100 * done / total:.1f}%)"
        text += f", {rate:.1f}/s"
        if "failed" in task["fields"]:
            text += f", failed {task['fields']['failed']}"
        text += f", elapsed {_clock(elapsed)}"
        if total and rate > 0 and done < total:
            text += f", ETA {_clock((total - done) / rate)}"
        return text

    def _print(self, task: dict[str, Any]) -> None:
        print(self.line(task), file=self.stream, flush=True)


def make_progress(console: Any, *columns: Any) -> Any:
    """rich's ``Progress(*columns)`` on a terminal, else a :class:`LogProgress` on stderr."""
    if console.is_terminal:
        return Progress(*columns, console=console, transient=False)
    return LogProgress(console.file)


def stage_progress() -> tuple[Any, Callable[[str, int, int], None]]:
    """A progress display on stderr (rich on a terminal, plain lines in a log) and the
    ``(stage, done, total)`` callback feeding it."""
    progress = make_progress(
        console,
        TextColumn("[bold]{task.description:>8}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    tasks: dict[str, Any] = {}
    starts: dict[str, tuple[float, int]] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total, completed=0, rate="")
            starts[stage] = (time.perf_counter(), done)
        t0, base = starts[stage]
        elapsed = time.perf_counter() - t0
        rate = f"{(done - base) / elapsed:.1f}/s" if done > base and elapsed > 0.5 else ""
        progress.update(tasks[stage], total=total, completed=done, rate=rate)

    return progress, on_progress
