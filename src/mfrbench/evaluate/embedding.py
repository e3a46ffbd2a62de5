"""The embedding engine: ImageRefs in, checked embeddings out, through the on-disk cache.

The public API that the run (``runner.py``) and training (``train/siamese.py``) use:

- :func:`embed_with_cache`: embed ImageRefs through a model's cache (:func:`model_cache`) and
  compact it afterwards; :func:`embed_images` is the same over a given cache;
- :class:`EmbedStats`: counts of an embedding pass (inputs, cached, computed, failed, ...);
- :func:`embed_batch` / :func:`check_output`: one batch, and the checks on a model's output;
- :func:`embed_heads`: the backbone passes and head projections of a trained-head model.

Each distinct prepared input (``prepare.content_key``) is embedded once, in sorted order and in
batches, by spawned worker processes when ``workers > 1`` or by Ray actors with the ``ray``
executor (the model rebuilt from its spec, or unpickled), else in-process; all run the model
single-threaded, so embeddings do not depend on the worker count or executor (models fitted
per fold embed in-process). Every finished batch is stored in the cache at once, so a killed
run loses only the batch in flight. Output shape and finiteness are checked per image; a
failure becomes a (status, reason), never a dropped image.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from mfrbench import __version__
from mfrbench.errors import ImageError
from mfrbench.evaluate.cache import EmbeddingCache
from mfrbench.evaluate.model_setup import identity_dict
from mfrbench.evaluate.prepare import content_key, prepare
from mfrbench.executors import LOCAL, Executor
from mfrbench.models.base import EmbeddingModel, HeadModel
from mfrbench.workers import release_freed_memory, restore_threads, single_threaded, spawn_map

Progress = Callable[[str, int, int], None]


@dataclass
class EmbedStats:
    """Counts of one embedding pass (over all fit groups)."""

    inputs: int = 0  # distinct prepared inputs needed (per fit group)
    cached: int = 0  # served by the cache
    computed: int = 0  # sent to the model this run (forward passes)
    failed: int = 0  # inputs without an embedding
    statuses: Counter = field(default_factory=Counter)
    cache_dirs: list[str] = field(default_factory=list)
    damaged_shards: int = 0
    processes: int = 1  # worker processes that embedded (1: in-process)


@dataclass
class _BatchResult:
    """One embedded batch: embedded keys and their rows, failures, images sent to the model."""

    keys: list[str]
    embeddings: np.ndarray
    failures: list[tuple[str, str, str]]  # (content key, status, reason)
    computed: int


def check_output(out: Any, n: int, dim: int) -> tuple[np.ndarray | None, list[tuple[str, str]]]:
    """Validate a model's output for ``n`` images: (float32 matrix or None, per-row problems).

    A wrong shape fails every row (``bad_shape``); a row with NaN or infinity fails as
    ``nan_embedding``; ``problems[i]`` is ``("ok", "")`` for a good row.
    """
    try:
        arr = np.asarray(out, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        return None, [("bad_output", f"model output is not numeric: {exc}")] * n
    if arr.shape != (n, dim):
        reason = f"model returned shape {arr.shape} for {n} images, expected ({n}, {dim})"
        return None, [("bad_shape", reason)] * n
    finite = cast(np.ndarray, np.isfinite(arr).all(axis=1))  # 2-D input: always an array
    problems = [
        ("ok", "") if ok else ("nan_embedding", "model returned NaN or infinite values")
        for ok in finite
    ]
    return arr, problems


def _embed_checked(
    model: EmbeddingModel, images: list[np.ndarray], boxes: list[Any]
) -> tuple[np.ndarray | None, list[tuple[str, str]]]:
    """Call the model on a batch; an ImageError is isolated by retrying image by image."""
    dim = int(model.embedding_size)
    try:
        return check_output(model.embed(images, boxes), len(images), dim)
    except ImageError:
        if len(images) == 1:
            raise
    rows: list[np.ndarray] = []
    problems: list[tuple[str, str]] = []
    for img, box in zip(images, boxes, strict=True):
        try:
            arr, prob = check_output(model.embed([img], [box]), 1, dim)
        except ImageError as err:
            arr, prob = None, [(err.status, err.reason)]
        rows.append(arr[0] if arr is not None else np.full(dim, np.nan, np.float32))
        problems.extend(prob)
    return np.stack(rows), problems


def embed_batch(
    model: EmbeddingModel,
    items: Sequence[tuple[str, Mapping[str, Any]]],
    root: Path,
    prepared: Mapping[str, Any] | None = None,
) -> _BatchResult:
    """Prepare and embed one batch of (content key, ImageRef); failures become statuses.

    ``prepared`` (content key -> (rgb, box) or the ImageError preparing it raised) replaces
    preparing here, for models whose inputs were prepared once for fitting.
    """
    keys, images, boxes, failures = [], [], [], []
    for key, image in items:
        try:
            if prepared is None:
                rgb, box = prepare(image, root, model.preprocess)
            else:
                value = prepared[key]
                if isinstance(value, ImageError):
                    raise value
                rgb, box = value
        except ImageError as err:
            failures.append((key, err.status, err.reason))
            continue
        keys.append(key)
        images.append(rgb)
        boxes.append(box)
    dim = int(model.embedding_size)
    if not images:
        return _BatchResult([], np.zeros((0, dim), np.float32), failures, 0)
    try:
        arr, problems = _embed_checked(model, images, boxes)
    except ImageError as err:  # a batch of one image
        arr, problems = None, [(err.status, err.reason)]
    ok_keys, ok_rows = [], []
    for i, (key, (status, reason)) in enumerate(zip(keys, problems, strict=True)):
        if status == "ok" and arr is not None:
            ok_keys.append(key)
            ok_rows.append(arr[i])
        else:
            failures.append((key, status, reason))
    matrix = np.stack(ok_rows) if ok_rows else np.zeros((0, dim), np.float32)
    return _BatchResult(ok_keys, matrix, failures, len(images))


_WORKER: dict[str, Any] = {}


def _init_worker(source: tuple, root: str) -> None:
    """Build the model once per worker process; an error is raised by its first batch."""
    _WORKER.clear()
    single_threaded()
    _WORKER["root"] = Path(root)
    try:
        if source[0] == "spec":
            from mfrbench.models.registry import create_model

            _WORKER["model"] = create_model(source[1], dict(source[2]))
        else:
            _WORKER["model"] = pickle.loads(source[1])
    except Exception as exc:
        _WORKER["error"] = exc


def _worker_batch(items: list[tuple[str, dict]]) -> _BatchResult:
    if "model" not in _WORKER:
        raise _WORKER.get("error") or RuntimeError("embedding worker was not initialised")
    result = embed_batch(_WORKER["model"], items, _WORKER["root"])
    release_freed_memory()
    return result


def _parallel(
    workers: int, batches: list, source: tuple | None, prepared: Any, executor: Executor = LOCAL
) -> bool:
    """Worker processes pay off for several batches of a model they can rebuild; Ray (asked
    for explicitly) runs every batch of such a model."""
    if source is None or prepared is not None or not batches:
        return False
    return executor.is_ray or (workers > 1 and len(batches) > 1)


def _run_batches(
    model: EmbeddingModel,
    source: tuple | None,
    batches: list[list[tuple[str, dict]]],
    root: Path,
    workers: int,
    prepared: Mapping[str, Any] | None,
    executor: Executor = LOCAL,
) -> Iterator[_BatchResult]:
    """Batch results in order: in-process, from ``workers`` spawned processes, or from Ray
    actors (given the absolute root: their working folder is not the driver's)."""
    if _parallel(workers, batches, source, prepared, executor):
        if executor.is_ray:
            initargs = (source, str(root.resolve()))
            yield from executor.map(
                _worker_batch, batches, workers=workers, initializer=_init_worker, initargs=initargs
            )
            return
        yield from spawn_map(_worker_batch, batches, workers, _init_worker, (source, str(root)))
        return
    saved = single_threaded()
    try:
        for batch in batches:
            yield embed_batch(model, batch, root, prepared)
    finally:
        restore_threads(saved)


def _worker_source(model: EmbeddingModel, spec: str | None, options: Mapping) -> tuple | None:
    """How a worker rebuilds the model: from its spec, else a pickled copy (None: cannot)."""
    if spec is not None and not model.needs_fit:
        return ("spec", spec, tuple(sorted(dict(options or {}).items())))
    try:
        return ("pickle", pickle.dumps(model))
    except Exception:
        return None


def embed_images(
    model: EmbeddingModel,
    images: Sequence[Mapping[str, Any]],
    root: Path,
    cache: EmbeddingCache,
    *,
    workers: int = 1,
    batch_size: int = 32,
    source: tuple | None = None,
    prepared: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    stats: EmbedStats | None = None,
    executor: Executor = LOCAL,
) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, str]]]:
    """Embed ImageRefs through the cache: (image id -> embedding, image id -> (status, reason)).

    Distinct content keys are embedded once, in sorted order, ``batch_size`` at a time; each
    finished batch is written to the cache (by this process, whatever the executor) before the
    next result is awaited.
    """
    stats = stats if stats is not None else EmbedStats()
    key_of = {img["id"]: content_key(img, model.preprocess) for img in images}
    first: dict[str, Mapping[str, Any]] = {}
    for img in sorted(images, key=lambda im: im["id"]):
        first.setdefault(key_of[img["id"]], img)
    cached = cache.load(first)
    stats.damaged_shards += len(cache.damaged)
    todo = [(k, dict(first[k])) for k in sorted(first) if k not in cached]
    stats.inputs += len(first)
    stats.cached += len(first) - len(todo)
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    found: dict[str, np.ndarray] = dict(cached)
    failed: dict[str, tuple[str, str]] = {}
    done = len(first) - len(todo)
    if progress:
        progress("embed", done, len(first))
    if _parallel(workers, batches, source, prepared, executor):
        procs = executor.size(workers)
        stats.processes = max(stats.processes, min(procs, len(batches)))
    for result in _run_batches(model, source, batches, root, workers, prepared, executor):
        cache.put(result.keys, result.embeddings)
        found.update(zip(result.keys, result.embeddings, strict=True))
        for key, status, reason in result.failures:
            failed[key] = (status, reason)
            stats.statuses[status] += 1
        stats.computed += result.computed
        done += len(result.keys) + len(result.failures)
        if progress:
            progress("embed", done, len(first))
    stats.failed += len(failed)
    emb = {i: found[k] for i, k in key_of.items() if k in found}
    bad = {i: failed[k] for i, k in key_of.items() if k in failed}
    return emb, bad


def model_cache(model: EmbeddingModel, cache_dir: str | Path | None = None) -> EmbeddingCache:
    """The on-disk embedding cache of a model (its cache key), with a meta.json for people."""
    return EmbeddingCache(
        model.cache_key(),
        model.embedding_size,
        root=cache_dir,
        meta={
            "identity": identity_dict(model),
            "preprocess": model.preprocess.to_dict(),
            "mfrbench_version": __version__,
        },
    )


def embed_with_cache(
    model: EmbeddingModel,
    image_refs: Sequence[Mapping[str, Any]],
    root: Path,
    *,
    spec: tuple[str, Mapping[str, Any]] | None = None,
    cache_dir: str | Path | None = None,
    workers: int = 1,
    batch_size: int = 32,
    prepared: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    stats: EmbedStats | None = None,
    executor: Executor = LOCAL,
) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, str]]]:
    """Embed ImageRefs through the model's cache (see :func:`embed_images`), then compact it.

    ``spec`` = (spec, options) lets worker processes (or Ray actors) rebuild the model (else it
    is pickled); ``prepared`` inputs are embedded in-process.
    """
    stats = stats if stats is not None else EmbedStats()
    cache = model_cache(model, cache_dir)
    stats.cache_dirs.append(str(cache.dir))
    source = None
    if (workers > 1 or executor.is_ray) and prepared is None:
        source = _worker_source(model, spec[0] if spec else None, spec[1] if spec else {})
    out = embed_images(
        model,
        image_refs,
        root,
        cache,
        workers=workers,
        batch_size=batch_size,
        source=source,
        prepared=prepared,
        progress=progress,
        stats=stats,
        executor=executor,
    )
    cache.compact()
    return out


def embed_heads(
    model: HeadModel,
    spaces: Sequence[tuple[str | None, Sequence[str]]],
    images: Mapping[str, Mapping[str, Any]],
    root: Path,
    cache_dir: str | Path | None,
    workers: int,
    batch_size: int,
    progress: Progress | None,
    stats: EmbedStats,
    executor: Executor = LOCAL,
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, tuple[str, str]]]]:
    """Per space (head name, image ids): its images' projected embeddings and failures.

    One backbone pass per distinct backbone over its spaces' images, then each space's head.
    A frozen-backbone model has one backbone for all heads; a fine-tuned one may have one per
    head (each with its own identity, so its own cache).
    """
    by_backbone: dict[str, list[int]] = {}
    backbones: dict[str, EmbeddingModel] = {}
    for si, (head, _) in enumerate(spaces):
        bb = model.backbone_for(head or "")
        key = bb.cache_key()
        backbones[key] = bb
        by_backbone.setdefault(key, []).append(si)
    embedded: list[dict[str, np.ndarray]] = [{} for _ in spaces]
    failures: list[dict[str, tuple[str, str]]] = [{} for _ in spaces]
    for key, members in by_backbone.items():
        bb = backbones[key]
        needed = sorted({i for si in members for i in spaces[si][1]})
        emb, bad = embed_with_cache(
            bb,
            [images[i] for i in needed],
            root,
            spec=model.backbone_source if bb is model.backbone else None,
            cache_dir=cache_dir,
            workers=workers,
            batch_size=batch_size,
            progress=progress,
            stats=stats,
            executor=executor,
        )
        for si in members:
            head, embed_ids = spaces[si]
            ids = [i for i in embed_ids if i in emb]
            assert head is not None  # head_groups gives every group of a HeadModel a head
            projected: np.ndarray | list[np.ndarray] = (
                model.project(np.stack([emb[i] for i in ids]), head) if ids else []
            )
            embedded[si] = dict(zip(ids, projected, strict=True))
            failures[si] = {i: bad[i] for i in embed_ids if i in bad}
    return embedded, failures


__all__ = [
    "EmbedStats",
    "Progress",
    "check_output",
    "embed_batch",
    "embed_heads",
    "embed_images",
    "embed_with_cache",
    "model_cache",
]
