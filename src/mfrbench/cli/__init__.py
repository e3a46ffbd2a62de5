"""The `mfrbench` command: parse options, call the Python API, print with rich.

One module per command group (``synth``, ``pairs``, ``protocol``, ``evaluate``, ``report``,
``train``, ``demo``); shared option declarations in ``options``, shared helpers in ``common``,
progress display in ``progress``, the root app and :func:`main` in ``main``.
"""

from mfrbench.cli.main import app, main

__all__ = ["app", "main"]
