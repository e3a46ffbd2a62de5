"""Fine-tune a backbone's last blocks together with a Siamese head (``--unfreeze-last N``).

:func:`finetune` trains the last ``N`` blocks of a :class:`~mfrbench.models.base.FineTunable`
backbone (resnet50, facenet) and a fresh head (:mod:`.head`) on pairs of images, with the
loop of :func:`mfrbench.train.loop.train_head` (:func:`~mfrbench.train.loop.fit_pairs`): same
losses, seeded batch order and triplet negatives, validation metrics and best-epoch rule.

Why it runs on a CPU: the frozen prefix (every block before the last ``N``) is run once per
image, before the first epoch, and its output is kept in memory; each epoch then runs only
the last ``N`` blocks forward and backward. ``FineTuneResult.prefix_bytes`` says what that
cache holds (for ResNet-50 at 224x224 and ``N=1``, 784 KiB per image: ``layer3``'s
1024x14x14 float32 output).

What stays fixed: every block before the last ``N``, and the whole backbone's mode. The
backbone runs in eval mode throughout, so BatchNorm layers of the unfrozen blocks keep their
running statistics (only their affine weight and bias train; batches of a few dozen images
would give noisy batch statistics and corrupt the ones learnt on millions of faces), and the
backbone's own dropout is off (the head's dropout regularises). ``model`` itself is left as it
was: the trained blocks are returned as ``backbone_state`` (apply them to a fresh model with
:meth:`~mfrbench.models.base.FineTunable.load_finetuned`).

Determinism: the same inputs, config and thread count give bit-identical head and backbone
states on CPU (``threads=None`` keeps torch's current setting; pass ``threads=1`` to pin it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mfrbench.errors import UserError
from mfrbench.models.base import EmbeddingModel, FineTunable, to_tensor
from mfrbench.train.head import HeadConfig
from mfrbench.train.loop import (
    IndexPairs,
    Trainable,
    TrainConfig,
    TrainResult,
    check_pairs,
    fit_pairs,
)
from mfrbench.workers import torch_threads

#: Images per forward pass through the frozen prefix (its early, large activations bound the
#: peak memory: ResNet-50 at 224x224 peaks about 300 MiB lower with 8 than with 32).
PREFIX_CHUNK = 8
#: Images per forward pass through the trainable blocks at validation (no autograd).
CHUNK = 32


@dataclass
class FineTuneResult(TrainResult):
    """A :class:`~mfrbench.train.loop.TrainResult` (``state`` is the head's) plus the backbone.

    ``backbone_state``: the last ``len(unfrozen)`` blocks at ``best_epoch``, as
    :meth:`FineTunable.finetuned_state` gives them (parameters and buffers, numpy, keys as the
    net's ``state_dict``). ``prefix_bytes``: memory held by the cached frozen-prefix outputs.
    """

    backbone_state: dict[str, np.ndarray] = field(default_factory=dict)
    unfrozen: tuple[str, ...] = ()
    prefix_bytes: int = 0
    device: str = "cpu"


def _resolve_device(device: str) -> torch.device:
    """``cpu`` or ``cuda[:k]``; UserError for CUDA without a GPU or an unknown name."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device {device!r}; use cpu or cuda") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                f"device {device!r} asked for, but torch {torch.__version__} sees no CUDA GPU "
                "here; use device cpu (slower) or install a CUDA build of torch"
            )
    elif dev.type != "cpu":
        raise UserError(f"unsupported device {device!r}; use cpu or cuda")
    return dev


def check_finetunable(model: Any, unfreeze_last: Any) -> int:
    """The number of blocks (UserError unless ``model`` can fine-tune ``unfreeze_last``)."""
    if not isinstance(model, FineTunable) or not isinstance(model, EmbeddingModel):
        name = getattr(model, "name", type(model).__name__)
        raise UserError(
            f"model {name!r} cannot be fine-tuned (--unfreeze-last needs a torch backbone such "
            "as resnet50 or facenet); drop --unfreeze-last to train a head on frozen embeddings"
        )
    names = [name for name, _ in model.blocks()]
    if (
        isinstance(unfreeze_last, bool)
        or not isinstance(unfreeze_last, (int, np.integer))
        or not 1 <= unfreeze_last <= len(names)
    ):
        raise UserError(
            f"--unfreeze-last must be between 1 and {len(names)} for {model.name} "
            f"(blocks: {', '.join(names)}), got {unfreeze_last!r}"
        )
    return len(names)


class _PrefixCache:
    """Outputs of the frozen prefix for the rows in use, grouped by feature shape.

    Images of one shape share a tensor (rows with the same preprocessed size); with a fixed
    input size there is a single group.
    """

    def __init__(
        self,
        model: FineTunable,
        images: Sequence[np.ndarray],
        rows: np.ndarray,
        stop: int,
        device: torch.device,
    ) -> None:
        preprocess = model.preprocess  # type: ignore[attr-defined]
        fitted = model.fit_inputs([images[int(r)] for r in rows])
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for j, img in enumerate(fitted):
            key = tuple(np.shape(img)) if preprocess.size is None else ()
            by_shape.setdefault(key, []).append(j)
        n_rows = len(images)
        self.group = np.full(n_rows, -1, dtype=np.int64)
        self.pos = np.full(n_rows, -1, dtype=np.int64)
        self.feats: list[torch.Tensor] = []
        with torch.no_grad():
            for g, members in enumerate(by_shape.values()):
                parts = []
                for s in range(0, len(members), PREFIX_CHUNK):
                    chunk = [fitted[j] for j in members[s : s + PREFIX_CHUNK]]
                    x = torch.from_numpy(to_tensor(chunk, preprocess)).to(device)
                    parts.append(model.forward_until(x, stop).detach())
                self.feats.append(torch.cat(parts))
                member_rows = rows[np.asarray(members, dtype=np.int64)]
                self.group[member_rows] = g
                self.pos[member_rows] = np.arange(len(members))

    @property
    def nbytes(self) -> int:
        return int(sum(t.numel() * t.element_size() for t in self.feats))


def _encoder(
    model: FineTunable, cache: _PrefixCache, start: int
) -> Callable[[np.ndarray], torch.Tensor]:
    """Rows -> L2-normalised embeddings (CPU) through the trainable blocks; autograd when on."""

    def forward(feats: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return model.forward_from(feats, start)
        parts = [
            model.forward_from(feats[s : s + CHUNK], start) for s in range(0, len(feats), CHUNK)
        ]
        return torch.cat(parts)

    def encode(rows: np.ndarray) -> torch.Tensor:
        uniq, inverse = np.unique(rows, return_inverse=True)
        if (cache.group[uniq] < 0).any():
            raise ValueError("a pair uses a row whose prefix was not computed")
        outs, order = [], []
        for g, feats in enumerate(cache.feats):
            sel = uniq[cache.group[uniq] == g]
            if sel.size:
                index = torch.from_numpy(cache.pos[sel]).to(feats.device)
                outs.append(forward(feats.index_select(0, index)).cpu())
                order.append(sel)
        emb = torch.cat(outs)
        if len(order) > 1:  # back to the order of ``uniq`` (ascending rows)
            emb = emb[torch.from_numpy(np.argsort(np.concatenate(order), kind="stable"))]
        return F.normalize(emb[torch.from_numpy(inverse.reshape(-1))], dim=1)

    return encode


def finetune(
    model: EmbeddingModel,
    images: Sequence[np.ndarray],
    train: IndexPairs,
    val: IndexPairs | None,
    identities: Sequence[str],
    head: HeadConfig,
    cfg: TrainConfig,
    unfreeze_last: int,
    *,
    run: str = "",
    device: str = "cpu",
    backbone_lr: float | None = None,
    threads: int | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> FineTuneResult:
    """Train the last ``unfreeze_last`` blocks of ``model`` and a head on image pairs.

    - ``images[i]``: row i's RGB uint8 image, rendered as ``model.preprocess`` asks (as the
      evaluator gives them to ``embed``); ``identities[i]``: its identity. ``train``/``val``
      index rows; rows in no pair are never read (no forward pass either).
    - The head sees the L2-normalised embeddings (as :func:`~mfrbench.train.head.head_forward`
      feeds it at inference); ``head.in_dim`` must be ``model.embedding_size``.
    - Optimiser: Adam over the head (``cfg.lr``) and the unfrozen blocks (``backbone_lr``,
      default ``cfg.lr``), both with ``cfg.weight_decay``. Everything else is
      :func:`~mfrbench.train.loop.train_head`'s: see there for batching, negatives,
      validation (``val_loss``, ``val_accuracy``, ``val_auc``) and epoch selection.
    - ``device``: ``cpu``, or ``cuda`` when torch sees a GPU (UserError otherwise); the
      backbone runs there, the head on the CPU. ``threads``: torch intra-op threads for the
      run (restored afterwards); None keeps the current setting.

    ``model`` is unchanged afterwards (weights, device, ``requires_grad``, mode). UserError for
    a model that is not :class:`~mfrbench.models.base.FineTunable`, or ``unfreeze_last``
    outside 1..len(blocks).
    """
    n_blocks = check_finetunable(model, unfreeze_last)
    assert isinstance(model, FineTunable)
    n = int(unfreeze_last)
    if head.in_dim != model.embedding_size:
        raise UserError(
            f"{model.name} embeddings have {model.embedding_size} dimensions but the head "
            f"config expects {head.in_dim}"
        )
    if len(images) != len(list(identities)):
        raise ValueError(f"one identity per image: {len(list(identities))} != {len(images)}")
    codes = check_pairs(len(images), identities, train, val)
    lr = cfg.lr if backbone_lr is None else backbone_lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not np.isfinite(lr) or lr <= 0:
        raise UserError(f"backbone learning rate must be a positive number, got {backbone_lr!r}")
    if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
        raise UserError(f"threads must be a positive integer, got {threads!r}")
    dev = _resolve_device(device)

    net = model.net
    stop = n_blocks - n
    keys = model.unfrozen_keys(n)
    names = [name for name, _ in model.blocks()]
    params = dict(net.named_parameters())
    trainable = [params[k] for k in keys if k in params]
    original = {k: v.detach().clone() for k, v in net.state_dict().items() if k in set(keys)}
    grad_flags = {k: p.requires_grad for k, p in params.items()}
    home = next(iter(net.parameters())).device
    was_training = net.training
    rows = np.unique(np.concatenate([train.rows()] + ([val.rows()] if val is not None else [])))
    with torch_threads(threads):
        try:
            net.to(dev).eval()
            for p in params.values():
                p.requires_grad_(False)
            for p in trainable:
                p.requires_grad_(True)
            cache = _PrefixCache(model, images, rows, stop, dev)
            extra = Trainable(trainable, float(lr), lambda: model.finetuned_state(n))
            result, backbone_state = fit_pairs(
                _encoder(model, cache, stop),
                codes,
                train,
                val,
                head,
                cfg,
                run=run,
                progress=progress,
                extra=extra,
            )
            prefix_bytes = cache.nbytes
        finally:
            net.to(home)
            net.load_state_dict(original, strict=False)
            for k, p in params.items():
                p.requires_grad_(grad_flags[k])
            net.train(was_training)
    return FineTuneResult(
        state=result.state,
        best_epoch=result.best_epoch,
        best_val_accuracy=result.best_val_accuracy,
        log=result.log,
        loss_state=result.loss_state,
        head=head,
        config=cfg,
        backbone_state=backbone_state,
        unfrozen=tuple(names[stop:]),
        prefix_bytes=prefix_bytes,
        device=str(dev),
    )
