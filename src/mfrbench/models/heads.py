"""The Siamese head: fully connected layers applied to frozen backbone embeddings.

As in the Siamese paper (FC 512 then 256 units, ReLU, dropout, layer normalisation), every
hidden width gets ``Linear -> LayerNorm -> ReLU -> Dropout`` and the last width is a plain
``Linear``: its output is the new embedding. Input rows are L2-normalised before the head, in
training (:func:`mfrbench.train.loop.train_head`) and in :func:`head_forward` alike, so the head
sees the same scale whatever the backbone's norm.

It lives in ``models`` because ``siamese:DIR`` builds and runs heads at evaluation time;
training (``mfrbench.train``) uses it from here, never the other way round.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mfrbench.errors import UserError


@dataclass(frozen=True)
class HeadConfig:
    """Shape of a head: input size, layer widths (the last one is the output size), dropout."""

    in_dim: int
    hidden: tuple[int, ...] = (512, 256)
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if isinstance(self.in_dim, bool) or not isinstance(self.in_dim, (int, np.integer)):
            raise UserError(f"head in_dim must be an integer, got {self.in_dim!r}")
        if self.in_dim < 1:
            raise UserError(f"head in_dim must be at least 1, got {self.in_dim}")
        try:
            hidden = tuple(self.hidden)
        except TypeError:
            raise UserError(
                f"head widths must be a sequence of integers, got {self.hidden!r}"
            ) from None
        if not hidden:
            raise UserError("head needs at least one layer width")
        for w in hidden:
            if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1:
                raise UserError(f"head widths must be positive integers, got {self.hidden!r}")
        if not isinstance(self.dropout, (int, float)) or not (0.0 <= self.dropout < 1.0):
            raise UserError(f"head dropout must be in [0, 1), got {self.dropout!r}")
        object.__setattr__(self, "in_dim", int(self.in_dim))
        object.__setattr__(self, "hidden", tuple(int(w) for w in hidden))
        object.__setattr__(self, "dropout", float(self.dropout))

    @property
    def out_dim(self) -> int:
        """Size of the output embedding (the last width)."""
        return self.hidden[-1]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, e.g. for checkpoint metadata."""
        return {"in_dim": self.in_dim, "hidden": list(self.hidden), "dropout": self.dropout}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HeadConfig:
        """Inverse of :meth:`as_dict`; missing or unknown keys raise ``UserError``."""
        keys = {"in_dim", "hidden", "dropout"}
        if not isinstance(d, Mapping) or set(d) != keys:
            raise UserError(f"head config needs exactly the keys {sorted(keys)}, got {d!r}")
        return cls(in_dim=d["in_dim"], hidden=tuple(d["hidden"]), dropout=d["dropout"])


def build_head(cfg: HeadConfig, *, seed: int = 0) -> torch.nn.Module:
    """A fresh head for ``cfg``; its initial weights depend only on ``seed``.

    Modules are named ``fc{i}``, ``norm{i}``, ``relu{i}``, ``drop{i}`` for hidden layer i (from
    1) and ``out`` for the final Linear, so state-dict keys read ``fc1.weight``, ``norm1.bias``,
    ``out.weight``. Dropout layers are present even at ``dropout=0`` (they hold no parameters).
    PyTorch's default initialisation runs under a forked, seeded RNG: the global RNG is left
    untouched.
    """
    layers: list[tuple[str, torch.nn.Module]] = []
    width = cfg.in_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, w in enumerate(cfg.hidden[:-1], start=1):
            layers += [
                (f"fc{i}", torch.nn.Linear(width, w)),
                (f"norm{i}", torch.nn.LayerNorm(w)),
                (f"relu{i}", torch.nn.ReLU()),
                (f"drop{i}", torch.nn.Dropout(cfg.dropout)),
            ]
            width = w
        layers.append(("out", torch.nn.Linear(width, cfg.out_dim)))
        return torch.nn.Sequential(OrderedDict(layers))


def load_head(cfg: HeadConfig, state: Mapping[str, np.ndarray]) -> torch.nn.Module:
    """A head for ``cfg`` with the weights in ``state`` (e.g. from safetensors), in eval mode.

    Missing, extra or wrongly shaped tensors raise ``UserError`` (the file does not match the
    config).
    """
    module = build_head(cfg)
    expected = module.state_dict()
    if set(state) != set(expected):
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        raise UserError(f"head weights do not match the config: missing {missing}, extra {extra}")
    tensors = {}
    for name, ref in expected.items():
        arr = np.asarray(state[name])
        if tuple(arr.shape) != tuple(ref.shape):
            raise UserError(
                f"head weight {name} has shape {tuple(arr.shape)}, config expects "
                f"{tuple(ref.shape)}"
            )
        tensors[name] = torch.from_numpy(np.array(arr, dtype=np.float32))
    module.load_state_dict(tensors)
    return module.eval()


def state_to_numpy(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """The module's state dict as float32 numpy copies (keys as ``state_dict()``)."""
    return {
        k: v.detach().cpu().numpy().astype(np.float32, copy=True)
        for k, v in module.state_dict().items()
    }


def l2_normalize_rows(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows divided by their L2 norm (norms below ``eps`` count as ``eps``), as float32.

    Same rule as ``torch.nn.functional.normalize``; all-zero rows stay zero.
    """
    x = np.asarray(x, dtype=np.float32)
    norms = np.sqrt(np.sum(x.astype(np.float64) ** 2, axis=1, keepdims=True))
    return (x / np.maximum(norms, eps)).astype(np.float32)


def head_forward(module: torch.nn.Module, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Apply a head to embeddings ``x`` (N, in_dim): returns float32 (N, out_dim).

    Rows are L2-normalised first, exactly as in training. Runs in eval mode (dropout off) and
    without gradients, ``batch`` rows at a time; the module's train/eval mode is restored
    afterwards. The outputs are not normalised (distances and cosines normalise them).
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"head_forward needs a 2-D (N, D) array, got shape {arr.shape}")
    first = next((m for m in module.modules() if isinstance(m, torch.nn.Linear)), None)
    if first is not None and arr.shape[1] != first.in_features:
        raise UserError(
            f"embeddings have {arr.shape[1]} dimensions but the head expects "
            f"{first.in_features} (was it trained on another backbone?)"
        )
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    if not np.isfinite(arr).all():
        raise ValueError("head_forward: embeddings contain NaN or infinite values")
    xn = torch.from_numpy(l2_normalize_rows(arr))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            parts = [module(xn[i : i + batch]) for i in range(0, xn.shape[0], batch)]
    finally:
        module.train(was_training)
    if not parts:
        out_dim = _out_features(module)
        return np.zeros((0, out_dim), dtype=np.float32)
    return torch.cat(parts).numpy().astype(np.float32, copy=False)


def _out_features(module: torch.nn.Module) -> int:
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise ValueError("head_forward: the module has no Linear layer to size an empty output")
    return linears[-1].out_features


def param_count(module: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(math.prod(p.shape) for p in module.parameters() if p.requires_grad)
