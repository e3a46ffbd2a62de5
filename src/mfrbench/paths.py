"""Where mfrbench writes when no ``--out``/``--cache-dir`` says: one root, four folders.

The root (the *workdir*) is ``--workdir``, else ``$MFRBENCH_HOME``, else ``./mfrbench-work``
(relative to the current folder, so a user running in one folder finds every output in one
place, and nothing lands in a checkout's shipped ``protocols/``). Under it:

- ``out/<dataset>/``: ``synth`` outputs (images and manifest);
- ``protocols/``: protocol files written by ``pairs``;
- ``results/``: ``eval`` runs, each in ``results/<protocol id>/<model id>/`` made file-name safe
  by :func:`run_folder`;
- ``cache/``: the embedding cache (``cache/embeddings``), but only when a root was chosen
  (``--workdir`` or ``$MFRBENCH_HOME``). Without one the cache stays the user's
  ``~/.cache/mfrbench``, shared by every folder (an embedding is the same wherever it was
  computed). ``$MFRBENCH_CACHE`` wins over both.

Pure functions of their arguments and the environment; nothing here creates a folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

HOME_ENV = "MFRBENCH_HOME"
CACHE_ENV = "MFRBENCH_CACHE"
#: The root when neither ``--workdir`` nor ``$MFRBENCH_HOME`` names one (current folder).
DEFAULT_HOME = Path("mfrbench-work")
#: The cache when no root is chosen and ``$MFRBENCH_CACHE`` is unset.
USER_CACHE = Path("~/.cache/mfrbench")
#: Where earlier versions wrote by default (relative to the current folder), to point at them.
EARLIER_DEFAULTS = {"synth": Path("out/synth"), "results": Path("results")}

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_MAX_PART = 80


def _chosen(workdir: str | Path | None) -> Path | None:
    """``workdir``, else ``$MFRBENCH_HOME``, else None (no root chosen)."""
    if workdir is not None and str(workdir) != "":
        return Path(workdir).expanduser()
    env = os.environ.get(HOME_ENV, "")
    return Path(env).expanduser() if env else None


def home(workdir: str | Path | None = None) -> Path:
    """The output root: ``workdir`` (``--workdir``), else ``$MFRBENCH_HOME``, else
    ``./mfrbench-work``."""
    return _chosen(workdir) or DEFAULT_HOME


def synth_dir(dataset: str, workdir: str | Path | None = None) -> Path:
    """Default ``synth --out``: ``<root>/out/<dataset>``."""
    return home(workdir) / "out" / safe_part(dataset)


def protocols_dir(workdir: str | Path | None = None) -> Path:
    """Default folder of the protocol files ``pairs`` writes: ``<root>/protocols``."""
    return home(workdir) / "protocols"


def results_dir(workdir: str | Path | None = None) -> Path:
    """Default ``eval --out``: ``<root>/results``."""
    return home(workdir) / "results"


def cache_dir(workdir: str | Path | None = None) -> Path:
    """``$MFRBENCH_CACHE``, else ``<root>/cache`` when a root is chosen (``workdir`` or
    ``$MFRBENCH_HOME``), else ``~/.cache/mfrbench``."""
    env = os.environ.get(CACHE_ENV, "")
    if env:
        return Path(env).expanduser()
    chosen = _chosen(workdir)
    return chosen / "cache" if chosen is not None else USER_CACHE.expanduser()


def embeddings_dir(workdir: str | Path | None = None) -> Path:
    """Default embedding cache: ``cache_dir(workdir) / "embeddings"``."""
    return cache_dir(workdir) / "embeddings"


def earlier_default(kind: str, workdir: str | Path | None = None) -> Path | None:
    """The folder an earlier mfrbench wrote ``kind`` ("synth", "results") to by default, when
    it exists here and the default now points elsewhere (no root chosen); else None."""
    earlier = EARLIER_DEFAULTS[kind]
    if _chosen(workdir) is not None or not earlier.is_dir():
        return None
    return earlier


def safe_part(text: str) -> str:
    """``text`` as one file-name part safe on every system and tool (Windows, scp, make):
    runs of characters other than letters, digits and ``._+-`` become ``-``; no leading or
    trailing ``.``/``-`` (hidden files, options, Windows); at most 80 characters; never empty."""
    cleaned = _UNSAFE.sub("-", text).strip(".-")[:_MAX_PART].rstrip(".-")
    return cleaned or "unnamed"


def safe_id(ident: str) -> str:
    """An id ``name@tag`` (a protocol or model id) as a folder name: both sides made safe by
    :func:`safe_part` around one ``@``. The tag (a digest) keeps the name unique, so
    ``onnx:arcface.onnx@1a2b3c4d5e6f`` becomes ``onnx-arcface.onnx@1a2b3c4d5e6f``."""
    name, sep, tag = ident.rpartition("@")
    return f"{safe_part(name)}@{safe_part(tag)}" if sep else safe_part(ident)


def run_folder(results: str | Path, protocol_id: str, model_id: str) -> Path:
    """Where ``eval`` writes a run: ``<results>/<protocol id>/<model id>`` as safe names."""
    return Path(results) / safe_id(protocol_id) / safe_id(model_id)
