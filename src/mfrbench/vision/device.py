"""Torch device names from users: ``cpu`` (default), ``cuda``, ``cuda:N``.

One parser for every torch component (MTCNN, the torch embedding plugins), so a bad name or a
GPU asked for on a machine without one is the same one-line UserError everywhere. The device
never enters a cache key, model id or manifest: results on a GPU may differ from the CPU's only
by float rounding (within the golden tolerance), and the records name the detector and model,
not the hardware that ran them.
"""

from __future__ import annotations

import re

import torch

from mfrbench.errors import UserError

__all__ = ["DEVICE_HELP", "resolve_device"]

DEVICE_HELP = "torch device: cpu, cuda or cuda:N (a GPU needs a CUDA build of torch)"
_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?)$")


def resolve_device(name: str | torch.device | None) -> torch.device:
    """The torch device for ``name`` (None: cpu); UserError when it is unknown or unavailable."""
    if name is None:
        return torch.device("cpu")
    text = str(name).strip().lower()
    if not _PATTERN.match(text):
        raise UserError(f"unknown device {str(name)!r}; use cpu, cuda or cuda:N")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                f"device {text} asked for but torch.cuda.is_available() is False "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
                "use --device cpu or install a CUDA build of torch"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise UserError(f"device {text} asked for but only {count} CUDA device(s) exist")
    return device
