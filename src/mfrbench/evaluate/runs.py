"""Finished runs read back: ``report.json`` with its schema checked, and its thresholds.

``load_run`` is how every reader (``report compare``/``html``/``latex``, ``--thresholds-from``)
opens a run folder, so a report written by another layout version is refused in one place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from mfrbench import __version__
from mfrbench.errors import UserError
from mfrbench.evaluate.report import REPORT_SCHEMA_VERSION
from mfrbench.evaluate.run_record import RunReport


def carried_thresholds(run: str | Path, model_id: str) -> dict[str, Any]:
    """The calibrated thresholds of another run of the same model, to apply to this one.

    They come from that run's unmasked-unmasked pair set when it has one (NIST: thresholds set
    on unmasked images), else from its only pair type, else from all its pairs.
    """
    other = load_run(run)
    other_model = other.get("model", {}).get("id")
    if other_model != model_id:
        raise UserError(
            f"--thresholds-from {run}: thresholds of {other_model} cannot be applied to "
            f"{model_id} (another model, preprocessing or distance)"
        )
    sets = (other.get("verification", {}).get("calibration") or {}).get("sets") or {}
    types = [k for k in sets if k != "all"]
    name = (
        "unmasked-unmasked"
        if "unmasked-unmasked" in sets
        else types[0]
        if len(types) == 1
        else "all"
    )
    if name not in sets:
        raise UserError(f"--thresholds-from {run}: that report has no calibrated thresholds")
    cal = other["verification"]["calibration"]
    return {
        "source": {
            "run": str(run),
            "protocol_id": other["protocol"]["id"],
            "pair_set": name,
            "impostors": cal.get("impostors"),
            "n_impostors": sets[name]["n_impostors"],
        },
        "thresholds": sets[name]["thresholds"],
    }


def load_run(path: str | Path) -> RunReport:
    """The report.json of a run folder (or the file itself); UserError when absent."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    if not p.is_file():
        raise UserError(f"no report.json at {path}")
    try:
        report = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {p}: {exc}") from exc
    version = report.get("schema_version", 1) if isinstance(report, dict) else None
    if version not in range(1, REPORT_SCHEMA_VERSION + 1):
        raise UserError(
            f"{p}: report schema_version {version!r} is not one this mfrbench {__version__} "
            f"reads (1..{REPORT_SCHEMA_VERSION})"
        )
    return cast(RunReport, report)
