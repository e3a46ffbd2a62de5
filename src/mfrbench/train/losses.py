"""Pair and triplet losses for training a Siamese head, in PyTorch.

Every distance here is :func:`sql2`, the thesis's measure: the squared L2 distance between
L2-normalised embeddings, ``d = ||a/|a| - b/|b|||^2 = 2 - 2 cos(a, b)``, in [0, 4]. Losses are
means over the batch, so the learning rate does not depend on the batch size. Labels ``y`` are
1 for a genuine pair (same identity) and 0 for an impostor pair.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mfrbench.errors import UserError

#: Loss names accepted by :class:`mfrbench.train.loop.TrainConfig`.
LOSSES: tuple[str, ...] = ("contrastive", "triplet", "cosine-bce")

#: Thesis Table 4.3, "Parameter A in the loss function".
CONTRASTIVE_MARGIN = 5.0
#: FaceNet (Schroff et al., 2015), alpha = 0.2 on squared L2 of unit-norm embeddings.
TRIPLET_MARGIN = 0.2


def default_margin(loss: str) -> float | None:
    """The margin a loss uses when none is given; ``None`` for a loss without one."""
    if loss == "contrastive":
        return CONTRASTIVE_MARGIN
    if loss == "triplet":
        return TRIPLET_MARGIN
    if loss == "cosine-bce":
        return None
    raise UserError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")


def sql2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance of L2-normalised rows: ``sum((a/|a| - b/|b|)^2)`` per row, in [0, 4].

    The thesis's distance operator (eq. 3.3, and ``reduce_sum(squared_difference(l2_normalize
    (e1), l2_normalize(e2)))`` in its appendix); equals ``2 - 2 cos(a, b)``. Normalisation uses
    ``F.normalize`` (norms below 1e-12 count as 1e-12). Returns shape (B,).
    """
    return torch.sum((F.normalize(a, dim=1) - F.normalize(b, dim=1)) ** 2, dim=1)


def contrastive_loss(
    ea: torch.Tensor, eb: torch.Tensor, y: torch.Tensor, margin: float = CONTRASTIVE_MARGIN
) -> torch.Tensor:
    """The thesis's contrastive loss: ``mean(y * d^2 + (1 - y) * max(0, A - d)^2)``, d = sql2.

    Source: the thesis, eq. 3.4 and its appendix code (``y_true*y_pred**2 + (1-y_true)*
    maximum(0., 5.0-y_pred)**2``), where ``y_pred`` is the output of the distance operator of
    eq. 3.3, i.e. already the SQUARED L2 distance of normalised embeddings; so the genuine
    term really is ``d^2`` (the fourth power of the Euclidean distance), as the issue states,
    and not the ``d`` of Hadsell et al.'s classic form. Margin ``A = 5.0`` (Table 4.3). The
    paper's eq. 3.4 sums over the batch; its Keras code averages (Keras' default reduction), as
    we do.

    Because ``d <= 4 < 5``, with the default margin every impostor pair always contributes
    ``(A - d)^2 >= 1`` and a gradient that pushes it apart (towards d = 4, opposite points);
    the hinge never switches off, and the loss cannot fall below the impostor fraction times
    ``(A - 4)^2``. Margins of 4 or less restore the usual hinge behaviour.
    """
    d = sql2(ea, eb)
    y = y.to(d.dtype)
    return torch.mean(y * d**2 + (1.0 - y) * torch.clamp(margin - d, min=0.0) ** 2)


def triplet_loss(
    ea: torch.Tensor, ep: torch.Tensor, en: torch.Tensor, margin: float = TRIPLET_MARGIN
) -> torch.Tensor:
    """Triplet loss ``mean(max(0, d(a, p) - d(a, n) + margin))`` with d = sql2.

    Source: FaceNet (Schroff et al., 2015, eq. 1), which also uses the squared L2 distance of
    unit-norm embeddings and margin alpha = 0.2; the thesis names the triplet network as its
    future work. Triplets whose negative is already farther than the positive by the margin
    contribute nothing.
    """
    return torch.mean(torch.clamp(sql2(ea, ep) - sql2(ea, en) + margin, min=0.0))


class CosineBCE(torch.nn.Module):
    """Binary cross-entropy on ``logit = scale * cos(ea, eb) + bias``, scale and bias learnt.

    The Siamese paper trains its head with (binary) cross-entropy on pair labels; turning a
    cosine into a logit with a learnable affine map follows GE2E (Wan et al., 2018: "w and b
    are learnable, initialised to w = 10, b = -5"), so at the start a pair is called genuine
    above cos = 0.5. As in GE2E the scale is kept positive (clamped at 1e-3 in the forward
    pass) so that a larger cosine always means "more genuine". Mean over the batch.
    """

    def __init__(self, scale: float = 10.0, bias: float = -5.0) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(float(scale)))
        self.bias = torch.nn.Parameter(torch.tensor(float(bias)))

    def logits(self, ea: torch.Tensor, eb: torch.Tensor) -> torch.Tensor:
        """``scale * cos + bias`` per pair, shape (B,)."""
        cos = F.cosine_similarity(ea, eb, dim=1, eps=1e-12)
        return torch.clamp(self.scale, min=1e-3) * cos + self.bias

    def forward(self, ea: torch.Tensor, eb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self.logits(ea, eb)
        return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))
