"""Fit (when a model needs it) and embed: one embedding space per planned group.

A run scores its pairs in the spaces ``planning.py`` chose: a pretrained model has one; a model
that ``needs_fit`` gets a fresh copy fitted on each group's ``fit_ids`` (never an image of the
pairs it then scores); a trained head projects its backbone's embeddings per head. Every image
goes through the embedding engine (``embedding.py``) and its cache.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfrbench.errors import ImageError, UserError
from mfrbench.evaluate.embedding import EmbedStats, Progress, embed_heads, embed_with_cache
from mfrbench.evaluate.model_setup import identity_dict
from mfrbench.evaluate.planning import Group, prepare_all
from mfrbench.evaluate.prepare import content_key
from mfrbench.executors import LOCAL, Executor
from mfrbench.models.base import EmbeddingModel, HeadModel
from mfrbench.records import ImageRef, Pair


@dataclass
class Spaces:
    """Per group: image id -> embedding, image id -> (status, reason) of failed images.

    ``fits`` describes each fit (group, images used, the fitted identity); ``prepare_s`` and
    ``fit_s`` are the seconds spent preparing fit inputs and fitting (0 for pretrained models).
    """

    embeddings: list[dict[str, np.ndarray]]
    failures: list[dict[str, tuple[str, str]]]
    fits: list[dict[str, Any]] = field(default_factory=list)
    prepare_s: float = 0.0
    fit_s: float = 0.0

    def test_lookups(
        self, groups: Sequence[Group], pairs: Sequence[Pair]
    ) -> list[tuple[list[str], Callable[[list[str]], np.ndarray]]]:
        """Per group: its embedded test-pair image ids and a lookup stacking their embeddings."""
        out: list[tuple[list[str], Callable[[list[str]], np.ndarray]]] = []
        for gi, group in enumerate(groups):
            emb = self.embeddings[gi]
            test_ids = sorted(
                {
                    pairs[i][side]
                    for i in group.pair_idx
                    if pairs[i]["split"] == "test"
                    for side in ("a", "b")
                }
                & set(emb)
            )

            def lookup(ids: list[str], emb: dict[str, np.ndarray] = emb) -> np.ndarray:
                return np.stack([emb[i] for i in ids])

            out.append((test_ids, lookup))
        return out


def embed_spaces(
    model: EmbeddingModel,
    groups: Sequence[Group],
    images: Mapping[str, ImageRef],
    root: Path,
    *,
    spec: tuple[str, Mapping[str, Any]] | None,
    cache_dir: str | Path | None,
    workers: int,
    batch_size: int,
    progress: Progress | None,
    stats: EmbedStats,
    executor: Executor = LOCAL,
) -> Spaces:
    """Embed every group's images in its own space (fitting a copy of ``model`` when needed).

    ``spec`` (model spec, options) lets worker processes rebuild the model; ``stats`` collects
    the engine's counts over all spaces.
    """
    if isinstance(model, HeadModel):
        head_emb, head_bad = embed_heads(
            model,
            [(g.head, g.embed_ids) for g in groups],
            images,
            root,
            cache_dir,
            workers,
            batch_size,
            progress,
            stats,
            executor,
        )
        return Spaces(head_emb, head_bad)
    spaces = Spaces([], [])
    prepared: dict[str, Any] | None = None
    if model.needs_fit:
        t0 = time.perf_counter()
        needed = {i for g in groups for i in (*g.fit_ids, *g.embed_ids)}
        prepared = prepare_all([images[i] for i in sorted(needed)], root, model, workers, progress)
        spaces.prepare_s = time.perf_counter() - t0
    for group in groups:
        current = model
        if prepared is not None:
            t0 = time.perf_counter()
            current, n_fit = _fitted(model, group, images, prepared)
            spaces.fits.append(
                {"group": group.name, "n_images": n_fit, "identity": identity_dict(current)}
            )
            spaces.fit_s += time.perf_counter() - t0
        emb, bad = embed_with_cache(
            current,
            [images[i] for i in group.embed_ids],
            root,
            spec=spec,
            cache_dir=cache_dir,
            workers=workers,
            batch_size=batch_size,
            prepared=prepared,
            progress=progress,
            stats=stats,
            executor=executor,
        )
        spaces.embeddings.append(emb)
        spaces.failures.append(bad)
    return spaces


def _fitted(
    model: EmbeddingModel,
    group: Group,
    images: Mapping[str, ImageRef],
    prepared: Mapping[str, Any],
) -> tuple[EmbeddingModel, int]:
    """A copy of ``model`` fitted on the group's usable fit images, and how many there were."""
    keys = [content_key(images[i], model.preprocess) for i in group.fit_ids]
    usable = sorted({k for k in keys if not isinstance(prepared[k], ImageError)})
    if not usable:
        raise UserError(f"no usable training image to fit {model.name} ({group.name})")
    current = copy.deepcopy(model)
    current.fit([prepared[k][0] for k in usable], [prepared[k][1] for k in usable])
    return current, len(usable)
