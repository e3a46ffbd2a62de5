"""The `mfrbench` command: parse options, call the Python API, print with rich.

One module per command group (``synth``, ``pairs``, ``protocol``, ``evaluate``, ``report``,
``train``, ``demo``); shared option declarations in ``options``, shared helpers in ``common``,
progress display in ``progress``, the root app and :func:`main` in ``main`` (which imports a
command's module only when that command runs, so start-up stays short).
"""

from typing import Any

from mfrbench.cli.main import main

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    """``app``: the root Typer app with every command, built on first use."""
    if name == "app":
        from mfrbench.cli.main import build_app

        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
