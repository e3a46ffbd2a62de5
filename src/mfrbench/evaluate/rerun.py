"""Whether a run may be written into its folder, and what an earlier run left there.

A run folder (``paths.run_folder``: ``<results>/<protocol id>/<model id>``) holds one run.
Writing the *same* run again (same protocol, model id, model options, distance, bootstrap seed
and count, impostor mode, fixed threshold and carried thresholds) is a rerun and goes ahead. A
*different* one is refused with one line unless ``overwrite``; then the old run's files are
removed before anything is computed. Either way, once the new run is written the folder holds
only its files: what an earlier run left that this one did not write (plots after
``--no-plots``, a ``report.html`` of the old report) is removed. Files that are not a run's are
never touched. How the work runs (workers, batch size, executor) and the plots do not make
another run.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfrbench.errors import UserError

#: Every file an ``eval`` run (or ``report html`` on it) writes into its folder.
RUN_FILES = frozenset(
    {
        "report.json",
        "report.md",
        "report.html",
        "scores.parquet",
        "impostors.parquet",
        "roc.png",
        "det.png",
        "scores_hist.png",
    }
)


@dataclass(frozen=True)
class Claim:
    """A run folder this run may write: ``left`` are the run files already in it."""

    path: Path
    left: frozenset[str]


def run_settings(
    *,
    protocol_id: str,
    model_id: str,
    options: Mapping[str, Any] | None,
    distance: str,
    seed: int,
    n_boot: int,
    impostors: str,
    threshold: float | None,
    carried_source: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """What makes a run this run, in the form :func:`settings_of` reads from its report."""
    return {
        "protocol": protocol_id,
        "model": model_id,
        "model options": {k: str(v) for k, v in sorted(dict(options or {}).items())},
        "distance": distance,
        "seed": int(seed),
        "n_boot": int(n_boot),
        "impostors": impostors,
        "threshold": None if threshold is None else float(threshold),
        # where the source run lay does not matter, which run it was does
        "thresholds from": (
            None
            if carried_source is None
            else {k: v for k, v in sorted(carried_source.items()) if k != "run"}
        ),
    }


def settings_of(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """:func:`run_settings` of a finished run's report.json (None when it does not say)."""
    try:
        carried = (report.get("verification") or {}).get("carried_thresholds") or {}
        return run_settings(
            protocol_id=report["protocol"]["id"],
            model_id=report["model"]["id"],
            options=report["model"].get("options"),
            distance=report["distance"],
            seed=report["seed"],
            n_boot=report["n_boot"],
            impostors=(report.get("impostors") or {}).get("mode", "listed"),
            threshold=(report.get("fixed_threshold") or {}).get("value"),
            carried_source=carried.get("source"),
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def claim_folder(path: Path, settings: Mapping[str, Any], *, overwrite: bool) -> Claim:
    """May this run (``settings``) be written into ``path``? UserError when ``path`` holds
    another run and not ``overwrite``; with ``overwrite`` that run's files are removed now."""
    report = path / "report.json"
    if not report.is_file():  # no run here (at most a killed one's files): nothing to keep
        return Claim(path, _run_files(path, None))
    old = _read_json(report)
    left = _run_files(path, old)
    previous = settings_of(old) if isinstance(old, Mapping) else None
    if previous == dict(settings):
        return Claim(path, left)
    if not overwrite:
        what = (
            "a run whose report.json this mfrbench cannot read"
            if previous is None
            else f"another run ({_differences(previous, settings)})"
        )
        raise UserError(
            f"{path} holds {what}: pass --overwrite to replace it, or --out another results folder"
        )
    _remove(path, left)
    return Claim(path, frozenset())


def clear_left(claim: Claim, written: Iterable[Path]) -> list[str]:
    """Remove the run files an earlier run left in the folder that this run did not write;
    returns their names."""
    kept = {p.name for p in written if p.parent == claim.path}
    stale = sorted(claim.left - kept)
    _remove(claim.path, stale)
    return stale


def _read_json(path: Path) -> Any:
    """The parsed file; None when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _run_files(path: Path, report: Any) -> frozenset[str]:
    """The run files present in ``path``: the known names and those its report lists."""
    names = set(RUN_FILES)
    if isinstance(report, Mapping) and isinstance(report.get("files"), Mapping):
        names |= {n for n in report["files"].values() if isinstance(n, str) and Path(n).name == n}
    return frozenset(n for n in names if n not in ("", ".", "..") and (path / n).is_file())


def _remove(path: Path, names: Iterable[str]) -> None:
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path / name)


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """``key old -> new`` for each setting that differs."""
    return ", ".join(
        f"{key} {_text(old.get(key))} -> {_text(new.get(key))}"
        for key in new
        if old.get(key) != new.get(key)
    )


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={_text(v)}" for k, v in value.items()) + "}" if value else "{}"
    return str(value)
