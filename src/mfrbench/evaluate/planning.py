"""Fit planning and leakage refusal: which pairs are scored in which embedding space.

A run scores its ``val`` and ``test`` pairs in one or more embedding spaces (:class:`Group`):

- a pretrained model: one space, ``all``;
- a model that ``needs_fit`` (eigenface) never sees an image it is tested on: fitted once on
  the images of the ``train`` pairs, or, without them, once per test fold on the images of the
  other folds, excluding any image of an identity of the held-out fold (:func:`pair_groups`);
  neither is a UserError;
- a trained head (:class:`~mfrbench.models.base.HeadModel`): one head, or fold ``f`` scored by
  the head trained without fold ``f`` (only on the protocol it was trained on); a head that
  trained or selected on an identity of the test pairs it would score is refused
  (:func:`head_groups`).

:func:`prepare_all` prepares a fitted model's inputs once, for fitting and embedding alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mfrbench.errors import ImageError, UserError
from mfrbench.evaluate.embedding import Progress
from mfrbench.evaluate.prepare import content_key, prepare
from mfrbench.models.base import EmbeddingModel, HeadModel
from mfrbench.records import Protocol
from mfrbench.workers import thread_map


@dataclass
class Group:
    """Pairs scored in one embedding space (one fit), with the images to fit on and embed."""

    name: str
    pair_idx: list[int]
    embed_ids: list[str]
    fit_ids: list[str] = field(default_factory=list)
    head: str | None = None  # the HeadModel head that scores this group


def image_ids(pairs: Sequence[Mapping[str, Any]], idx: Sequence[int]) -> list[str]:
    """The sorted image ids of the pairs at ``idx``."""
    return sorted({pairs[i][s] for i in idx for s in ("a", "b")})


def pair_groups(
    protocol: Protocol, eval_idx: list[int], needs_fit: bool
) -> tuple[list[Group], str]:
    """The embedding spaces of a run and a sentence saying how the model was fitted."""
    pairs, images = protocol["pairs"], {img["id"]: img for img in protocol["images"]}

    if not needs_fit:
        return [Group("all", eval_idx, image_ids(pairs, eval_idx))], "not fitted (pretrained)"
    train = [i for i, p in enumerate(pairs) if p["split"] == "train"]
    if train:
        fit_ids = image_ids(pairs, train)
        how = f"fitted once on the {len(fit_ids)} images of the train split's pairs"
        return [Group("train", eval_idx, image_ids(pairs, eval_idx), fit_ids)], how
    fold_of = [pairs[i]["fold"] for i in eval_idx]
    folds = sorted({f for f in fold_of if f is not None})
    if None in fold_of or len(folds) < 2:
        raise UserError(
            "this model must be fitted, but the protocol has neither a train split nor "
            "folds to hold out; use a protocol with a train split"
        )
    groups = []
    for fold in folds:
        idx = [i for i in eval_idx if pairs[i]["fold"] == fold]
        held_ids = image_ids(pairs, idx)
        held_identities = {images[i]["identity"] for i in held_ids}
        others = image_ids(pairs, [i for i in eval_idx if pairs[i]["fold"] != fold])
        fit_ids = [i for i in others if images[i]["identity"] not in held_identities]
        groups.append(Group(f"fold {fold}", idx, held_ids, fit_ids))
    how = (
        f"fitted {len(groups)} times, once per test fold, on the images of the other folds "
        "(identities of the held-out fold excluded)"
    )
    return groups, how


def head_groups(
    protocol: Protocol, eval_idx: list[int], model: HeadModel
) -> tuple[list[Group], str]:
    """Groups for a trained head: one, or one per fold for per-fold heads; refuses leakage.

    A per-fold model only evaluates the protocol it was trained on (its folds mean nothing
    elsewhere). Every head must not have seen (trained or selected on) an identity of the test
    pairs it scores.
    """
    from mfrbench.protocol import protocol_id
    from mfrbench.protocol.lineage import matches

    pairs, images = protocol["pairs"], {img["id"]: img for img in protocol["images"]}

    if model.trained_on is not None:
        if not matches(protocol, model.trained_on):  # or a re-freeze of it (same pairs)
            raise UserError(
                f"{model.name} has one head per fold of the protocol with digest "
                f"{model.trained_on[:12]}, not {protocol_id(protocol)}; evaluate it there, or "
                "use one head with --model-opt head=NAME"
            )
        folds = sorted({pairs[i]["fold"] for i in eval_idx}, key=lambda f: (f is None, f))
        groups = []
        for fold in folds:
            idx = [i for i in eval_idx if pairs[i]["fold"] == fold]
            groups.append(
                Group(f"fold {fold}", idx, image_ids(pairs, idx), head=model.head_for_fold(fold))
            )
        how = f"trained per held-out fold ({len(groups)} heads), each scoring only its fold"
    else:
        head = model.head_for_fold(None)
        groups = [Group("all", eval_idx, image_ids(pairs, eval_idx), head=head)]
        how = f"trained head {head!r}"
    for group in groups:
        tested = {
            images[pairs[i][s]]["identity"]
            for i in group.pair_idx
            if pairs[i]["split"] == "test"
            for s in ("a", "b")
        }
        leaked = sorted(tested & model.seen_identities(group.head or ""))
        if leaked:
            raise UserError(
                f"{model.name} head {group.head!r} was trained or selected on {len(leaked)} "
                f"identities this protocol tests ({group.name}; e.g. {leaked[0]}): the result "
                "would leak; evaluate on identity-disjoint pairs"
            )
    return groups, how


def prepare_all(
    images: Sequence[Mapping[str, Any]],
    root: Path,
    model: EmbeddingModel,
    workers: int,
    progress: Progress | None,
) -> dict[str, Any]:
    """Content key -> prepared (rgb, box), or the ImageError that preparing it raised."""
    todo: dict[str, Mapping[str, Any]] = {}
    for img in images:
        todo.setdefault(content_key(img, model.preprocess), img)
    keys = sorted(todo)

    def one(key: str) -> Any:
        try:
            return prepare(todo[key], root, model.preprocess)
        except ImageError as err:
            return err

    prepared: dict[str, Any] = {}
    for n, (key, out) in enumerate(zip(keys, thread_map(one, keys, workers), strict=True), 1):
        prepared[key] = out
        if progress and (n % 256 == 0 or n == len(keys)):
            progress("prepare", n, len(keys))
    return prepared
