"""The Siamese head, as training imports it: defined in :mod:`mfrbench.models.heads`.

The head is built and run at evaluation time by ``siamese:DIR`` too, so it lives in ``models``
(below ``train`` in the layers); these names stay importable from here for training code.
"""

from __future__ import annotations

from mfrbench.models.heads import (
    HeadConfig,
    build_head,
    head_forward,
    l2_normalize_rows,
    load_head,
    param_count,
    state_to_numpy,
)

__all__ = [
    "HeadConfig",
    "build_head",
    "head_forward",
    "l2_normalize_rows",
    "load_head",
    "param_count",
    "state_to_numpy",
]
