"""User errors: one line and exit 2 by default; the full traceback, with its cause, on request."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mfrbench.errors import UserError
from mfrbench.models.registry import create_model

BAD_SPEC = ["eval", "--model", "python:no_such_module_xyz:make", "--protocol", "p.json"]


def test_user_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="cannot import no_such_module_xyz"):
        create_model("python:no_such_module_xyz:make", {})


def test_plugin_failure_keeps_its_cause() -> None:
    with pytest.raises(UserError) as info:
        create_model("python:no_such_module_xyz:make", {})
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_one_line_by_default(tmp_path) -> None:
    (tmp_path / "p.json").write_text("{}")
    r = subprocess.run(
        [sys.executable, "-m", "mfrbench", *BAD_SPEC],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "MFRBENCH_DEBUG": ""},
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(tmp_path, how: str) -> None:
    (tmp_path / "p.json").write_text("{}")
    args = ["--debug", *BAD_SPEC] if how == "flag" else BAD_SPEC
    r = subprocess.run(
        [sys.executable, "-m", "mfrbench", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "MFRBENCH_DEBUG": "1" if how == "env" else ""},
    )
    assert r.returncode == 2
    assert "Traceback" in r.stderr and "mfrbench.errors.UserError: --root is required" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error:")
