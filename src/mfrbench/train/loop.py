"""Training loop for a Siamese head over a fixed embedding matrix.

The caller gives the backbone embeddings ``X`` (N, D), one identity per row, and pairs of row
indices (:class:`IndexPairs`); :func:`train_head` trains a head (:mod:`.head`) with Adam and
returns the weights of the epoch with the best validation accuracy. Rows of ``X`` that are in
no training pair are never read during training (they may be validation or test images):
triplet negatives are drawn only among training rows.

Determinism: the same inputs and :class:`TrainConfig` give bit-identical weights on CPU. The
head's initial weights, the dropout masks, the per-epoch pair order and the triplet negatives
all derive from ``cfg.seed`` (numpy ``SeedSequence``); torch's global RNG is forked for the
run (left as it was afterwards) and training runs on one thread (the previous thread count is
restored).

The loop itself is :func:`fit_pairs`, over any function that maps row indices to the head's
inputs: :func:`train_head` gives it rows of ``X``; :func:`mfrbench.train.finetune.finetune`
gives it a backbone's trainable last blocks, so both share batching, negatives, losses,
validation and the best-epoch rule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mfrbench.errors import UserError
from mfrbench.evaluate import metrics
from mfrbench.train.head import HeadConfig, build_head, l2_normalize_rows, state_to_numpy
from mfrbench.train.losses import (
    LOSSES,
    CosineBCE,
    contrastive_loss,
    default_margin,
    sql2,
    triplet_loss,
)
from mfrbench.workers import torch_threads

# stream tags for SeedSequence([seed, TAG, ...]): independent random streams per purpose
_INIT, _DROPOUT, _EPOCH, _VAL = 0, 1, 2, 3


def _finite_number(x: Any) -> bool:
    return (
        isinstance(x, (int, float, np.integer, np.floating))
        and not isinstance(x, bool)
        and (math.isfinite(float(x)))
    )


def _positive_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and bool(x >= 1)


@dataclass(frozen=True)
class TrainConfig:
    """Loss, optimiser and schedule of one training run.

    ``margin=None`` means the loss's default (:func:`mfrbench.train.losses.default_margin`:
    5.0 for contrastive, 0.2 for triplet); cosine-bce takes no margin. Defaults follow the
    Siamese paper (Adam, lr 1e-4, batch 32) and its 20 epochs per fold.
    """

    loss: str = "contrastive"
    margin: float | None = None
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        margin = self.margin
        if margin is None:
            margin = default_margin(self.loss)
        elif self.loss == "cosine-bce":
            raise UserError("the cosine-bce loss takes no margin")
        elif not _finite_number(margin) or margin <= 0:
            raise UserError(f"margin must be a positive number, got {margin!r}")
        object.__setattr__(self, "margin", None if margin is None else float(margin))
        if not _positive_int(self.epochs):
            raise UserError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not _positive_int(self.batch_size):
            raise UserError(f"batch size must be a positive integer, got {self.batch_size!r}")
        if not _finite_number(self.lr) or self.lr <= 0:
            raise UserError(f"learning rate must be a positive number, got {self.lr!r}")
        if not _finite_number(self.weight_decay) or self.weight_decay < 0:
            raise UserError(f"weight decay must be a number >= 0, got {self.weight_decay!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise UserError(f"seed must be an integer, got {self.seed!r}")
        if self.seed < 0:
            raise UserError(f"seed must be >= 0, got {self.seed}")
        for name in ("epochs", "batch_size", "seed"):
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "lr", float(self.lr))
        object.__setattr__(self, "weight_decay", float(self.weight_decay))

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (margin already resolved)."""
        return {
            "loss": self.loss,
            "margin": self.margin,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "seed": self.seed,
        }


@dataclass
class IndexPairs:
    """Pairs as indices into the rows of an embedding matrix, with labels 1 genuine / 0 impostor."""

    ia: np.ndarray
    ib: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        self.ia = np.asarray(self.ia)
        self.ib = np.asarray(self.ib)
        y = np.asarray(self.y)
        for name, a in (("ia", self.ia), ("ib", self.ib), ("y", y)):
            if a.ndim != 1:
                raise ValueError(f"IndexPairs.{name} must be one-dimensional, got shape {a.shape}")
        if not (self.ia.size == self.ib.size == y.size):
            raise ValueError(
                f"IndexPairs arrays differ in length: {self.ia.size}, {self.ib.size}, {y.size}"
            )
        for name, a in (("ia", self.ia), ("ib", self.ib)):
            if a.size and not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"IndexPairs.{name} must hold integer row indices, got {a.dtype}")
        if y.size and not np.isin(y, (0, 1)).all():
            raise ValueError("IndexPairs.y must hold 1 (genuine) or 0 (impostor)")
        self.ia = self.ia.astype(np.int64)
        self.ib = self.ib.astype(np.int64)
        self.y = y.astype(np.int64)

    def __len__(self) -> int:
        return int(self.y.size)

    def rows(self) -> np.ndarray:
        """The distinct rows of X these pairs use, ascending."""
        return np.unique(np.concatenate([self.ia, self.ib]))


@dataclass
class TrainResult:
    """Outcome of :func:`train_head`.

    ``state``: the head's weights at ``best_epoch`` (float32 numpy, keys as torch's
    ``state_dict``). ``best_epoch`` counts from 1 (as the log's ``epoch``).
    ``best_val_accuracy``: the best-threshold val accuracy at that epoch, None without val.
    ``log``: one row per epoch, ``{run, epoch, train_loss, val_loss, val_accuracy, val_auc,
    seconds}`` (val entries None without val). ``loss_state``: the loss's own learnt values at
    ``best_epoch`` (``{"scale", "bias"}`` for cosine-bce; empty otherwise).
    """

    state: dict[str, np.ndarray]
    best_epoch: int
    best_val_accuracy: float | None
    log: list[dict[str, Any]]
    loss_state: dict[str, float] = field(default_factory=dict)
    head: HeadConfig | None = None
    config: TrainConfig | None = None


class NegativeSampler:
    """Draws, for each anchor row, a random pool row whose identity differs from the anchor's.

    The pool is fixed at construction (the training rows); each draw is exact and uniform over
    the valid candidates, one random integer per anchor.
    """

    def __init__(self, pool_rows: np.ndarray, codes: np.ndarray) -> None:
        self._codes = np.asarray(codes)
        pool = np.unique(np.asarray(pool_rows, dtype=np.int64))
        pool_codes = self._codes[pool]
        order = np.argsort(pool_codes, kind="stable")
        self.rows = pool[order]
        self._ids, self._start, self._count = np.unique(
            pool_codes[order], return_index=True, return_counts=True
        )

    def _slots(self, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per anchor: where its own identity's block starts in ``rows`` and its length."""
        ac = self._codes[anchors]
        if self._ids.size == 0:
            raise UserError("triplet loss needs training images to draw negatives from")
        k = np.clip(np.searchsorted(self._ids, ac), 0, self._ids.size - 1)
        present = self._ids[k] == ac
        start = np.where(present, self._start[k], self.rows.size)
        count = np.where(present, self._count[k], 0)
        if (count >= self.rows.size).any():
            raise UserError(
                "triplet loss needs, for every anchor, a training image of another identity; "
                "the training pairs hold only one identity"
            )
        return start, count

    def check(self, anchors: np.ndarray) -> None:
        """Raise ``UserError`` unless every anchor has at least one valid negative."""
        self._slots(np.asarray(anchors, dtype=np.int64))

    def draw(self, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One negative row per anchor row (same order)."""
        anchors = np.asarray(anchors, dtype=np.int64)
        if anchors.size == 0:
            return np.zeros(0, np.int64)
        start, count = self._slots(anchors)
        r = rng.integers(0, self.rows.size - count)  # index among the other identities' rows
        return self.rows[r + count * (r >= start)]


def _seed_int(seed: int, *tags: int) -> int:
    return int(np.random.SeedSequence([seed, *tags]).generate_state(1, dtype=np.uint64)[0] >> 1)


def check_pairs(
    n_rows: int, identities: Sequence[str], train: IndexPairs, val: IndexPairs | None
) -> np.ndarray:
    """Validate pairs over ``n_rows`` rows with one identity each; the rows' identity codes.

    Shared by :func:`train_head` and :func:`mfrbench.train.finetune.finetune`: empty pair sets
    and val pairs of one label are ``UserError``; indices out of range, or a wrong number of
    identities, are ``ValueError`` (caller bugs).
    """
    ids = np.asarray(list(identities))
    if ids.shape != (n_rows,):
        raise ValueError(f"identities must give one identity per row: {ids.shape[0]} != {n_rows}")
    _, codes = np.unique(ids, return_inverse=True)
    for name, ps in (("training", train), ("validation", val)):
        if ps is None:
            continue
        if len(ps) == 0:
            raise UserError(f"no {name} pairs")
        lo = min(int(ps.ia.min()), int(ps.ib.min()))
        hi = max(int(ps.ia.max()), int(ps.ib.max()))
        if lo < 0 or hi >= n_rows:
            raise ValueError(f"{name} pair indices outside 0..{n_rows - 1}: {lo}..{hi}")
    if val is not None and np.unique(val.y).size < 2:
        raise UserError("validation pairs need both genuine and impostor pairs")
    return codes.astype(np.int64)


def _check_inputs(
    X: np.ndarray,
    identities: Sequence[str],
    train: IndexPairs,
    val: IndexPairs | None,
    head: HeadConfig,
) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"X must be a 2-D (N, D) embedding matrix, got shape {arr.shape}")
    if arr.shape[1] != head.in_dim:
        raise UserError(
            f"embeddings have {arr.shape[1]} dimensions but the head config expects {head.in_dim}"
        )
    codes = check_pairs(arr.shape[0], identities, train, val)
    for name, ps in (("training", train), ("validation", val)):
        if ps is not None and not np.isfinite(arr[ps.rows()]).all():
            raise UserError(f"{name} embeddings contain NaN or infinite values")
    return arr, codes


def _genuine(ps: IndexPairs) -> tuple[np.ndarray, np.ndarray]:
    g = ps.y == 1
    return ps.ia[g], ps.ib[g]


def train_head(
    X: np.ndarray,
    identities: Sequence[str],
    train: IndexPairs,
    val: IndexPairs | None,
    head: HeadConfig,
    cfg: TrainConfig,
    *,
    run: str = "",
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train a head on ``train`` pairs of rows of ``X``; select the epoch by ``val`` accuracy.

    - Inputs: the rows of ``X`` are L2-normalised before the head (as :func:`head_forward`
      does at inference). ``identities[i]`` is the identity of row i (only triplet negatives
      use it).
    - Each epoch shuffles the training pairs with a Generator from (seed, epoch) and takes
      minibatches of ``cfg.batch_size``, one Adam step each. The contrastive and cosine-bce
      losses use every pair; the triplet loss uses each genuine pair (anchor ``ia``, positive
      ``ib``) with a negative drawn afresh each epoch among the rows of the training pairs whose
      identity differs from the anchor's.
    - Validation, after every epoch, in eval mode: ``val_loss`` (the same loss on the val pairs;
      for triplet, on val triplets drawn once among the val rows), ``val_accuracy`` (accuracy
      at :func:`metrics.best_threshold` with score = -sql2 of the head outputs) and
      ``val_auc`` (:func:`metrics.auc` of the same scores).
    - Selection: the epoch with the highest val accuracy (ties: the earlier one); without
      ``val``, the last epoch.

    ``progress`` is called with each epoch's log row as soon as it is complete.
    """
    arr, codes = _check_inputs(X, identities, train, val, head)
    xn = torch.from_numpy(l2_normalize_rows(arr))

    def encode(rows: np.ndarray) -> torch.Tensor:
        return xn[torch.from_numpy(rows)]

    with torch_threads(1):
        result, _ = fit_pairs(encode, codes, train, val, head, cfg, run=run, progress=progress)
    return result


@dataclass
class Trainable:
    """Parameters trained beside the head, e.g. a backbone's unfrozen blocks.

    ``params`` get their own Adam group (learning rate ``lr``, the config's weight decay);
    ``snapshot()`` returns their current values (numpy copies), taken at the selected epoch.
    """

    params: list[torch.nn.Parameter]
    lr: float
    snapshot: Callable[[], dict[str, np.ndarray]]


def fit_pairs(
    encode: Callable[[np.ndarray], torch.Tensor],
    codes: np.ndarray,
    train: IndexPairs,
    val: IndexPairs | None,
    head: HeadConfig,
    cfg: TrainConfig,
    *,
    run: str = "",
    progress: Callable[[dict[str, Any]], None] | None = None,
    extra: Trainable | None = None,
) -> tuple[TrainResult, dict[str, np.ndarray]]:
    """The training loop behind :func:`train_head` (see there), over any row encoder.

    ``encode(rows)`` maps int64 row indices (repeats allowed) to the head's inputs,
    L2-normalised, shape (len(rows), head.in_dim); it must be differentiable in ``extra``'s
    parameters when autograd is on (training) and is called under ``torch.no_grad`` for
    validation. ``codes[i]`` is the identity code of row i (triplet negatives). Seeding, batch
    order, negatives, validation and the best-epoch rule are exactly :func:`train_head`'s.
    Returns the result and ``extra.snapshot()`` at the selected epoch (empty without
    ``extra``). Thread count is the caller's business.
    """
    triplet = cfg.loss == "triplet"
    if triplet:
        anchors, positives = _genuine(train)
        if anchors.size == 0:
            raise UserError("triplet loss needs genuine training pairs")
        sampler = NegativeSampler(train.rows(), codes)
        sampler.check(anchors)
        n_items = int(anchors.size)
    else:
        n_items = len(train)
    val_neg = None
    if val is not None and triplet:
        va, _ = _genuine(val)
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, _VAL]))
        val_neg = NegativeSampler(val.rows(), codes).draw(va, rng)

    with torch.random.fork_rng(devices=[]):
        model = build_head(head, seed=_seed_int(cfg.seed, _INIT))
        torch.manual_seed(_seed_int(cfg.seed, _DROPOUT))
        bce = CosineBCE() if cfg.loss == "cosine-bce" else None
        groups: list[dict[str, Any]] = [
            {"params": list(model.parameters()), "weight_decay": cfg.weight_decay}
        ]
        if bce is not None:
            groups.append({"params": list(bce.parameters()), "weight_decay": 0.0})
        if extra is not None:
            groups.append(
                {"params": list(extra.params), "lr": extra.lr, "weight_decay": cfg.weight_decay}
            )
        opt = torch.optim.Adam(groups, lr=cfg.lr)

        def snapshot() -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, np.ndarray]]:
            return (
                state_to_numpy(model),
                _loss_state(bce),
                extra.snapshot() if extra is not None else {},
            )

        log: list[dict[str, Any]] = []
        best_epoch, best_acc = 0, None
        best: tuple[dict[str, np.ndarray], dict[str, float], dict[str, np.ndarray]] = ({}, {}, {})
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, _EPOCH, epoch]))
            perm = rng.permutation(n_items)
            if triplet:
                a_rows = anchors[perm]
                cols = [a_rows, positives[perm], sampler.draw(a_rows, rng)]
                y_all = None
            else:
                cols = [train.ia[perm], train.ib[perm]]
                y_all = torch.from_numpy(train.y[perm].astype(np.float32))
            model.train()
            total = 0.0
            for s in range(0, n_items, cfg.batch_size):
                k = min(cfg.batch_size, n_items - s)
                out = model(encode(np.concatenate([c[s : s + k] for c in cols])))
                parts = [out[j * k : (j + 1) * k] for j in range(len(cols))]
                yb = None if y_all is None else y_all[s : s + k]
                loss = _loss(cfg, bce, parts, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * k
            row: dict[str, Any] = {
                "run": run,
                "epoch": epoch,
                "train_loss": total / n_items,
                "val_loss": None,
                "val_accuracy": None,
                "val_auc": None,
            }
            if val is not None:
                row.update(_validate(model, bce, cfg, encode, val, val_neg))
            row["seconds"] = round(time.perf_counter() - t0, 4)
            log.append(row)
            acc = row["val_accuracy"]
            if val is not None and (best_acc is None or acc > best_acc):
                best_epoch, best_acc = epoch, acc
                best = snapshot()
            if progress is not None:
                progress(dict(row))
        if val is None:
            best_epoch = cfg.epochs
            best = snapshot()
    result = TrainResult(
        state=best[0],
        best_epoch=best_epoch,
        best_val_accuracy=best_acc,
        log=log,
        loss_state=best[1],
        head=head,
        config=cfg,
    )
    return result, best[2]


def _margin(cfg: TrainConfig) -> float:
    """A triplet or contrastive loss's margin (``__post_init__`` always sets one for those)."""
    assert cfg.margin is not None
    return cfg.margin


def _loss(
    cfg: TrainConfig, bce: CosineBCE | None, parts: list[torch.Tensor], y: torch.Tensor | None
) -> torch.Tensor:
    if cfg.loss == "triplet":
        return triplet_loss(parts[0], parts[1], parts[2], _margin(cfg))
    assert y is not None
    if bce is not None:
        return bce(parts[0], parts[1], y)
    return contrastive_loss(parts[0], parts[1], y, _margin(cfg))


def _loss_state(bce: CosineBCE | None) -> dict[str, float]:
    if bce is None:
        return {}
    return {"scale": float(bce.scale.detach()), "bias": float(bce.bias.detach())}


def _validate(
    model: torch.nn.Module,
    bce: CosineBCE | None,
    cfg: TrainConfig,
    encode: Callable[[np.ndarray], torch.Tensor],
    val: IndexPairs,
    val_neg: np.ndarray | None,
) -> dict[str, float]:
    """Val loss, best-threshold accuracy and AUC of the current head (eval mode, no grad)."""
    extra = val_neg if val_neg is not None else np.zeros(0, np.int64)
    rows = np.unique(np.concatenate([val.rows(), extra]))
    model.eval()
    with torch.no_grad():
        out = model(encode(rows))
        ea = out[torch.from_numpy(np.searchsorted(rows, val.ia))]
        eb = out[torch.from_numpy(np.searchsorted(rows, val.ib))]
        y = torch.from_numpy(val.y.astype(np.float32))
        d = sql2(ea, eb)
        if cfg.loss == "triplet":
            assert val_neg is not None
            g = torch.from_numpy(val.y == 1)
            en = out[torch.from_numpy(np.searchsorted(rows, val_neg))]
            loss = triplet_loss(ea[g], eb[g], en, _margin(cfg))
        else:
            loss = _loss(cfg, bce, [ea, eb], y)
    score = -d.numpy().astype(np.float64)
    _, acc = metrics.best_threshold(val.y, score)
    return {
        "val_loss": float(loss),
        "val_accuracy": float(acc),
        "val_auc": float(metrics.auc(val.y, score)),
    }
