"""``evaluate``: one embedding model against one frozen protocol, end to end.

Steps, each timed into the report:

1. **Load and verify.** ``protocol.load_protocol`` refuses an edited file; every source image is
   hashed under ``root`` and any missing or changed file stops the run with one line.
2. **Model.** ``plugin:NAME`` / ``onnx:PATH`` / ``python:mod:factory`` through
   ``models.registry.create_model``, or an :class:`~mfrbench.models.base.EmbeddingModel`
   instance (notebooks, tests).
3. **Which pairs, which fits.** Pairs of the ``val`` and ``test`` splits are scored; ``train``
   pairs are listed in ``scores.parquet`` with status ``not_scored``. Metrics use the test pairs
   (the val pairs, when present, also give a threshold chosen away from the test pairs). A model
   that ``needs_fit`` (eigenface) never sees an image it is tested on:

   - the protocol has ``train`` pairs: fitted once on the images of the train pairs;
   - otherwise, a fold protocol (LFW view 2 style): fitted once per test fold on the images of
     the other folds, excluding any image of an identity that occurs in the held-out fold, and
     that fold's images are embedded with that fit. Every score is then a held-out score; the
     10-fold accuracy chooses fold i's threshold on the other folds' held-out scores, which come
     from fits that saw fold i's *images* (never its labels; PCA is unsupervised).
   - neither: UserError (nothing to fit on without testing on it).

   A trained head (:class:`~mfrbench.models.base.HeadModel`, ``siamese:DIR``) scores all
   pairs with its one head, or fold ``f`` with the head trained without fold ``f`` (only on
   the protocol it was trained on); a head that trained or selected on an identity of the test
   pairs it would score is refused (leakage). Its backbone embeds through the backbone's cache.

4. **Embed.** Each distinct prepared input (``prepare.content_key``) is embedded once, in
   batches, by worker processes when ``workers > 1``; the on-disk cache (``cache.py``) serves
   what earlier runs computed, and every finished batch is stored at once, so a killed run
   loses only the batch in flight. Output shape and finiteness are checked per image.
5. **Score** every pair (``scores.py``); a pair whose image failed gets that status.
6. **Metrics** (``metrics.verification_report``) overall, by pair type, mask colour, detector
   and landmark backend;
   masked pair types take their FNMR@FMR threshold from the unmasked-unmasked control pairs
   when the protocol has them (NIST's method). Identification: unmasked gallery (one image per
   test identity), masked probes (another photo), rank-1 / CMC and the open-set confidence
   score margin.
7. **Report** to ``<out_dir>/<protocol id>/<model id>/`` (``report.py``).

Worker processes and the in-process path both run models single-threaded (torch, OpenCV), so
embeddings do not depend on the worker count. A batched model may still differ in the last
float bits between a fresh run and a resumed one (another batch composition).
"""

from __future__ import annotations

import copy
import hashlib
import json
import pickle
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfrbench import __version__
from mfrbench.errors import ImageError, UserError
from mfrbench.evaluate import metrics
from mfrbench.evaluate.breakdown import ALL_IMPOSTORS_HOW, verification_sets
from mfrbench.evaluate.cache import EmbeddingCache
from mfrbench.evaluate.impostors import (
    ScoreSummary,
    Stratum,
    all_vs_all,
    impostors_table,
    score_range,
)
from mfrbench.evaluate.prepare import content_key, fallback_count, prepare
from mfrbench.evaluate.report import REPORT_SCHEMA_VERSION
from mfrbench.evaluate.scores import (
    check_distance,
    pair_colour,
    pair_mask_types,
    pair_scores,
    pair_value,
    scores_table,
    similarity_matrix,
    write_scores,
)
from mfrbench.evaluate.thresholds import user_threshold
from mfrbench.models.base import EmbeddingModel, HeadModel, ModelIdentity, cache_key_of
from mfrbench.workers import restore_threads, single_threaded, spawn_map

Progress = Callable[[str, int, int], None]
EVAL_SPLITS = ("val", "test")
CMC_MAX_RANK = 10
_PROBE_BLOCK = 512


# ----------------------------------------------------------------------------- results


@dataclass
class Run:
    """What :func:`evaluate` produced: the output folder, the report dict and its files."""

    protocol_id: str
    model_id: str
    out_dir: Path
    report: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


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
class _Group:
    """Pairs scored in one embedding space (one fit), with the images to fit on and embed."""

    name: str
    pair_idx: list[int]
    embed_ids: list[str]
    fit_ids: list[str] = field(default_factory=list)
    head: str | None = None  # the HeadModel head that scores this group


# ----------------------------------------------------------------------------- model


def resolve_model(
    model: str | EmbeddingModel, options: Mapping[str, Any] | None
) -> tuple[EmbeddingModel, str | None]:
    """The model instance and the spec workers can rebuild it from (None for an instance)."""
    from mfrbench.models.base import validate_model

    if isinstance(model, EmbeddingModel):
        if options:
            raise UserError("model options apply to a model spec, not to a model instance")
        return validate_model(model, type(model).__name__), None
    if not isinstance(model, str) or not model:
        raise UserError(f"--model must be a spec such as plugin:dlib-resnet, got {model!r}")
    from mfrbench.models.registry import create_model

    return create_model(model, dict(options or {})), model


def _identity_dict(model: EmbeddingModel) -> dict[str, Any]:
    try:
        return model.identity().to_dict()
    except Exception as exc:  # an unfitted model may not know its basis yet
        version = str(getattr(model, "version", "?"))
        if model.needs_fit:  # expected before fitting: the fits are reported one by one
            return {"name": model.name, "version": version, "weights_digest": "unfitted"}
        return {"name": model.name, "version": version, "weights_digest": "?", "error": str(exc)}


def model_id_of(model: EmbeddingModel, distance: str) -> str:
    """``name@<12 hex>``: the results folder of a model (identity, preprocessing, distance).

    For a model fitted by the evaluator the fitted basis is left out (it depends on the
    protocol, which names the parent folder); a distance other than the model's default is
    part of the hash.
    """
    ident = _identity_dict(model)
    if model.needs_fit:
        ident = {**ident, "weights_digest": "fitted-per-protocol"}
        ident.pop("error", None)
    identity = ModelIdentity(
        ident["name"], ident["version"], ident["weights_digest"], ident.get("options", {})
    )
    key = cache_key_of(identity, model.preprocess)
    if distance != model.default_distance:
        key = hashlib.sha256(f"{key}:{distance}".encode()).hexdigest()
    return f"{model.name}@{key[:12]}"


# ----------------------------------------------------------------------------- embedding


@dataclass
class _BatchResult:
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
    finite = np.isfinite(arr).all(axis=1)
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
    return embed_batch(_WORKER["model"], items, _WORKER["root"])


def _parallel(workers: int, batches: list, source: tuple | None, prepared: Any) -> bool:
    """Worker processes pay off for several batches of a model they can rebuild."""
    return workers > 1 and len(batches) > 1 and source is not None and prepared is None


def _run_batches(
    model: EmbeddingModel,
    source: tuple | None,
    batches: list[list[tuple[str, dict]]],
    root: Path,
    workers: int,
    prepared: Mapping[str, Any] | None,
) -> Iterator[_BatchResult]:
    """Batch results in order, in-process or from ``workers`` spawned processes."""
    if _parallel(workers, batches, source, prepared):
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
) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, str]]]:
    """Embed ImageRefs through the cache: (image id -> embedding, image id -> (status, reason)).

    Distinct content keys are embedded once, in sorted order, ``batch_size`` at a time; each
    finished batch is written to the cache before the next result is awaited.
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
    if _parallel(workers, batches, source, prepared):
        stats.processes = max(stats.processes, min(workers, len(batches)))
    for result in _run_batches(model, source, batches, root, workers, prepared):
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
            "identity": _identity_dict(model),
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
) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, str]]]:
    """Embed ImageRefs through the model's cache (see :func:`embed_images`), then compact it.

    ``spec`` = (spec, options) lets worker processes rebuild the model (else it is pickled);
    ``prepared`` inputs are embedded in-process.
    """
    stats = stats if stats is not None else EmbedStats()
    cache = model_cache(model, cache_dir)
    stats.cache_dirs.append(str(cache.dir))
    source = None
    if workers > 1 and prepared is None:
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
    )
    cache.compact()
    return out


def _embed_heads(
    model: HeadModel,
    groups: Sequence[_Group],
    images: Mapping[str, Mapping[str, Any]],
    root: Path,
    cache_dir: str | Path | None,
    workers: int,
    batch_size: int,
    progress: Progress | None,
    stats: EmbedStats,
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, tuple[str, str]]]]:
    """One backbone pass per distinct backbone over its groups' images, then each group's head.

    A frozen-backbone model has one backbone for all heads; a fine-tuned one may have one per
    head (each with its own identity, so its own cache).
    """
    by_backbone: dict[str, list[int]] = {}
    backbones: dict[str, EmbeddingModel] = {}
    for gi, group in enumerate(groups):
        bb = model.backbone_for(group.head or "")
        key = bb.cache_key()
        backbones[key] = bb
        by_backbone.setdefault(key, []).append(gi)
    spaces: list[dict[str, np.ndarray]] = [{} for _ in groups]
    failures: list[dict[str, tuple[str, str]]] = [{} for _ in groups]
    for key, members in by_backbone.items():
        bb = backbones[key]
        needed = sorted({i for gi in members for i in groups[gi].embed_ids})
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
        )
        for gi in members:
            group = groups[gi]
            ids = [i for i in group.embed_ids if i in emb]
            projected = model.project(np.stack([emb[i] for i in ids]), group.head) if ids else []
            spaces[gi] = dict(zip(ids, projected, strict=True))
            failures[gi] = {i: bad[i] for i in group.embed_ids if i in bad}
    return spaces, failures


# ----------------------------------------------------------------------------- planning


def _image_ids(pairs: Sequence[Mapping[str, Any]], idx: Sequence[int]) -> list[str]:
    """The sorted image ids of the pairs at ``idx``."""
    return sorted({pairs[i][s] for i in idx for s in ("a", "b")})


def _pair_groups(protocol: dict, eval_idx: list[int], needs_fit: bool) -> tuple[list[_Group], str]:
    """The embedding spaces of a run and a sentence saying how the model was fitted."""
    pairs, images = protocol["pairs"], {img["id"]: img for img in protocol["images"]}

    if not needs_fit:
        return [_Group("all", eval_idx, _image_ids(pairs, eval_idx))], "not fitted (pretrained)"
    train = [i for i, p in enumerate(pairs) if p["split"] == "train"]
    if train:
        fit_ids = _image_ids(pairs, train)
        how = f"fitted once on the {len(fit_ids)} images of the train split's pairs"
        return [_Group("train", eval_idx, _image_ids(pairs, eval_idx), fit_ids)], how
    folds = sorted({pairs[i]["fold"] for i in eval_idx})
    if None in folds or len(folds) < 2:
        raise UserError(
            "this model must be fitted, but the protocol has neither a train split nor "
            "folds to hold out; use a protocol with a train split"
        )
    groups = []
    for fold in folds:
        idx = [i for i in eval_idx if pairs[i]["fold"] == fold]
        held_ids = _image_ids(pairs, idx)
        held_identities = {images[i]["identity"] for i in held_ids}
        others = _image_ids(pairs, [i for i in eval_idx if pairs[i]["fold"] != fold])
        fit_ids = [i for i in others if images[i]["identity"] not in held_identities]
        groups.append(_Group(f"fold {fold}", idx, held_ids, fit_ids))
    how = (
        f"fitted {len(groups)} times, once per test fold, on the images of the other folds "
        "(identities of the held-out fold excluded)"
    )
    return groups, how


def _head_groups(protocol: dict, eval_idx: list[int], model: HeadModel) -> tuple[list[_Group], str]:
    """Groups for a trained head: one, or one per fold for per-fold heads; refuses leakage.

    A per-fold model only evaluates the protocol it was trained on (its folds mean nothing
    elsewhere). Every head must not have seen (trained or selected on) an identity of the test
    pairs it scores.
    """
    from mfrbench.protocol import protocol_id

    pairs, images = protocol["pairs"], {img["id"]: img for img in protocol["images"]}

    if model.trained_on is not None:
        if protocol["digest"] != model.trained_on:
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
                _Group(f"fold {fold}", idx, _image_ids(pairs, idx), head=model.head_for_fold(fold))
            )
        how = f"trained per held-out fold ({len(groups)} heads), each scoring only its fold"
    else:
        head = model.head_for_fold(None)
        groups = [_Group("all", eval_idx, _image_ids(pairs, eval_idx), head=head)]
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


def _prepare_all(
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
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for n, (key, out) in enumerate(zip(keys, pool.map(one, keys), strict=True), 1):
            prepared[key] = out
            if progress and (n % 256 == 0 or n == len(keys)):
                progress("prepare", n, len(keys))
    return prepared


# ----------------------------------------------------------------------------- metrics


def _faces_summary(refs: Sequence[Mapping[str, Any]], preprocess: Any) -> dict[str, Any]:
    """How the evaluated images' faces were prepared: alignment, where its points come from,
    and how many real source photos had no face found (the fallback box; see prepare)."""
    from mfrbench.models.base import ALIGNED_CROPS

    sources: dict[str, Mapping[str, Any]] = {}
    for ref in refs:
        sources.setdefault(ref["src_path"], ref)
    status = Counter(str(r.get("face_status")) for r in sources.values())
    aligned = preprocess.crop in ALIGNED_CROPS
    return {
        "crop": preprocess.crop,
        "landmarks": preprocess.landmarks if aligned else None,
        "source_photos": len(sources),
        "face_found": status.get("ok", 0),
        "no_face_fallback": fallback_count(sources.values()),
        "never_detected": status.get("None", 0),
        "fallback": "a real photo with no face found (or never detected: never_detected) is "
        "prepared from the frame inset 10% on every side (unaligned square crop; dlib-chip: "
        "dlib's 5-point predictor inside it)",
    }


def _identification_sets(
    image_ids: Sequence[str], images: Mapping[str, Mapping[str, Any]]
) -> tuple[list[str], list[str], list[str], str]:
    """(gallery ids, target probe ids, non-target probe ids, description) for one space.

    Gallery: per identity, its unmasked image with the smallest id. Probes: masked images
    (unmasked ones when the space has no masked image: the control); a probe is a target when
    its identity is in the gallery and it is another photo than the gallery image (a probe of
    the gallery's own photo is left out), else a non-target.
    """
    unmasked = sorted(i for i in image_ids if not images[i]["masked"])
    masked = sorted(i for i in image_ids if images[i]["masked"])
    gallery: dict[str, str] = {}
    for i in unmasked:
        gallery.setdefault(images[i]["identity"], i)
    if masked:
        pool, kind = masked, "masked probes"
    else:
        chosen = set(gallery.values())
        pool, kind = [i for i in unmasked if i not in chosen], "unmasked probes (control)"
    targets, nontargets = [], []
    for i in pool:
        g = gallery.get(images[i]["identity"])
        if g is None:
            nontargets.append(i)
        elif images[g]["src_path"] != images[i]["src_path"]:
            targets.append(i)
    desc = f"unmasked gallery (one image per identity), {kind}"
    return sorted(gallery.values()), targets, nontargets, desc


def _identification(
    spaces: list[tuple[list[str], Callable[[list[str]], np.ndarray]]],
    images: Mapping[str, Mapping[str, Any]],
    metric: str,
    cs_scale: float,
) -> dict[str, Any]:
    """Rank-1 / CMC (closed set) and confidence-score margin (open set), pooled over spaces."""
    ranks_weighted = np.zeros(CMC_MAX_RANK)
    n_targets = n_gallery = 0
    cs_t: list[np.ndarray] = []
    cs_u: list[np.ndarray] = []
    desc = ""
    for ids, lookup in spaces:
        gallery, targets, nontargets, desc = _identification_sets(ids, images)
        if len(gallery) < 2 or not targets:
            continue
        g_emb = lookup(gallery)
        g_ids = np.asarray([images[i]["identity"] for i in gallery])
        target_set = set(targets)
        n_gallery += len(gallery)
        probes = targets + nontargets
        for start in range(0, len(probes), _PROBE_BLOCK):
            block = probes[start : start + _PROBE_BLOCK]
            sim = similarity_matrix(lookup(block), g_emb, metric)
            t_sel = np.asarray([p in target_set for p in block], dtype=bool)
            if t_sel.any():
                p_ids = np.asarray([images[p]["identity"] for p in np.asarray(block)[t_sel]])
                cmc = metrics.cmc_from_similarities(sim[t_sel], g_ids, p_ids, CMC_MAX_RANK)
                ranks_weighted += cmc * int(t_sel.sum())
                n_targets += int(t_sel.sum())
            cs = metrics.confidence_scores(sim, g_ids, scale=cs_scale)
            cs_t.append(cs[t_sel])
            cs_u.append(cs[~t_sel])
    if n_targets == 0:
        return {"error": "no identity has both an unmasked gallery image and another probe"}
    cmc = ranks_weighted / n_targets
    out: dict[str, Any] = {
        "setup": desc,
        "spaces": len(spaces),
        "gallery_size": n_gallery,
        "n_target_probes": n_targets,
        "n_nontarget_probes": int(sum(u.size for u in cs_u)),
        "rank1": float(cmc[0]),
        "cmc": [float(v) for v in cmc],
        "confidence_score": {"scale": cs_scale},
    }
    t_all = np.concatenate(cs_t) if cs_t else np.zeros(0)
    u_all = np.concatenate(cs_u) if cs_u else np.zeros(0)
    if t_all.size and u_all.size:
        out["confidence_score"].update(metrics.open_set_margin(t_all, u_all))
    else:
        out["confidence_score"]["error"] = "needs target and non-target probes"
    if len(spaces) > 1:
        out["note"] = "a gallery per fitted fold; CMC pooled over folds, weighted by probes"
    return out


# ----------------------------------------------------------------------------- all-vs-all

IMPOSTOR_MODES = ("listed", "all")


def _all_vs_all_impostors(
    groups: Sequence[_Group],
    pairs: Sequence[Mapping[str, Any]],
    images: Mapping[str, Mapping[str, Any]],
    space_emb: Sequence[Mapping[str, np.ndarray]],
    metric: str,
    progress: Progress | None,
) -> list[tuple[Stratum, ScoreSummary]]:
    """Every probe against every reference of another identity, per embedding space, pair type,
    split and fold, one stratum per mask colour of the pair (``impostors.py``).

    References are the ``a`` sides, probes the ``b`` sides of that stratum's listed pairs (both
    labels); images without an embedding are left out, as their pairs are.
    """
    max_norm = max(
        (float(np.linalg.norm(np.stack(list(e.values())), axis=1).max()) for e in space_emb if e),
        default=1.0,
    )
    lo, hi = score_range(metric, max_norm)
    plan: list[tuple[int, str, str, Any, list[str], list[str]]] = []
    for gi, group in enumerate(groups):
        cells: dict[tuple[str, str, Any], tuple[set[str], set[str]]] = {}
        for i in group.pair_idx:
            p = pairs[i]
            if p["a"] not in space_emb[gi] or p["b"] not in space_emb[gi]:
                continue
            refs, probes = cells.setdefault((p["pair_type"], p["split"], p["fold"]), (set(), set()))
            refs.add(p["a"])
            probes.add(p["b"])
        for (ptype, split, fold), (refs, probes) in sorted(
            cells.items(), key=lambda kv: (kv[0][0], kv[0][1], -1 if kv[0][2] is None else kv[0][2])
        ):
            plan.append((gi, ptype, split, fold, sorted(refs), sorted(probes)))
    out: dict[Stratum, ScoreSummary] = {}
    for step, (gi, ptype, split, fold, refs, probes) in enumerate(plan):
        if progress:
            progress("impostors", step, len(plan))
        by_colour_r: dict[Any, list[str]] = defaultdict(list)
        by_colour_p: dict[Any, list[str]] = defaultdict(list)
        for i in refs:
            by_colour_r[images[i].get("color")].append(i)
        for i in probes:
            by_colour_p[images[i].get("color")].append(i)
        emb = space_emb[gi]
        for rc, r_ids in sorted(by_colour_r.items(), key=lambda kv: str(kv[0])):
            r = np.stack([emb[i] for i in r_ids])
            r_who = [images[i]["identity"] for i in r_ids]
            for pc, p_ids in sorted(by_colour_p.items(), key=lambda kv: str(kv[0])):
                summary = all_vs_all(
                    r,
                    r_who,
                    np.stack([emb[i] for i in p_ids]),
                    [images[i]["identity"] for i in p_ids],
                    metric,
                    lo,
                    hi,
                )
                colour = pair_colour({"color": rc}, {"color": pc})
                key = Stratum(ptype, split, fold, colour)
                out[key] = summary if key not in out else out[key].merge(summary)
    if progress:
        progress("impostors", len(plan), len(plan))
    return list(out.items())


# ----------------------------------------------------------------------------- the run


def _check_args(workers: int, batch_size: int, n_boot: int) -> None:
    for name, value, low in (
        ("--workers", workers, 1),
        ("--batch-size", batch_size, 1),
        ("--n-boot", n_boot, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UserError(f"{name} must be an integer >= {low}, got {value!r}")


def evaluate(
    protocol_path: str | Path,
    model: str | EmbeddingModel,
    options: Mapping[str, Any] | None = None,
    *,
    root: str | Path,
    out_dir: str | Path = "results",
    distance: str | None = None,
    workers: int = 1,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    cs_scale: float = 1.0,
    plots: bool = True,
    progress: Progress | None = None,
    impostors: str = "listed",
    threshold: float | None = None,
    thresholds_from: str | Path | None = None,
) -> Run:
    """Score ``model`` on the protocol at ``protocol_path`` with the images under ``root``.

    Returns a :class:`Run`; writes ``report.json``, ``report.md``, ``scores.parquet`` and (with
    ``plots``) ``roc.png``, ``det.png``, ``scores_hist.png`` under
    ``<out_dir>/<protocol id>/<model id>/``. See the module docstring for every step.
    ``impostors="all"`` adds the all-vs-all impostors (``impostors.parquet``, the report's
    ``all_impostors`` block); ``threshold`` (in the measure's units: a cosine similarity, or a
    distance) and ``thresholds_from`` (another run of the same model, whose calibrated
    thresholds are applied here) add ``fixed_threshold`` / ``carried_thresholds``.
    With ``workers > 1`` the workers are spawned processes, which re-import the main module:
    call this from a script under ``if __name__ == "__main__":``.
    """
    from mfrbench.evaluate import report as report_mod
    from mfrbench.protocol import open_protocol

    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - t0, 4)
        return now

    _check_args(workers, batch_size, n_boot)
    if impostors not in IMPOSTOR_MODES:
        raise UserError(
            f"--impostors must be one of {', '.join(IMPOSTOR_MODES)}, got {impostors!r}"
        )
    t = time.perf_counter()
    if progress:
        progress("verify", 0, 1)
    opened = open_protocol(protocol_path, root, workers=workers)
    protocol, pid, root, protocol_path = opened.protocol, opened.id, opened.root, opened.path
    if progress:
        progress("verify", 1, 1)
    t = lap("load_verify", t)

    emb_model, spec = resolve_model(model, options)
    metric = check_distance(distance or emb_model.default_distance)
    images = opened.images
    pairs = protocol["pairs"]
    eval_idx = [i for i, p in enumerate(pairs) if p["split"] in EVAL_SPLITS]
    if not eval_idx:
        raise UserError(f"{pid} has no val or test pairs to evaluate")
    if isinstance(emb_model, HeadModel):
        groups, fit_how = _head_groups(protocol, eval_idx, emb_model)
    else:
        groups, fit_how = _pair_groups(protocol, eval_idx, emb_model.needs_fit)
    mid = model_id_of(emb_model, metric)
    carried = carried_thresholds(thresholds_from, mid) if thresholds_from is not None else None
    fixed = user_threshold(float(threshold), metric) if threshold is not None else None
    t = lap("model", t)

    # --- fit (when needed) and embed, one embedding space per group
    stats = EmbedStats()
    space_emb: list[dict[str, np.ndarray]] = []
    space_bad: list[dict[str, tuple[str, str]]] = []
    fits: list[dict[str, Any]] = []
    prepared: dict[str, Any] | None = None
    if emb_model.needs_fit:
        needed = {i for g in groups for i in (*g.fit_ids, *g.embed_ids)}
        prepared = _prepare_all(
            [images[i] for i in sorted(needed)], root, emb_model, workers, progress
        )
        t = lap("prepare", t)
    t_fit = 0.0
    if isinstance(emb_model, HeadModel):
        space_emb, space_bad = _embed_heads(
            emb_model, groups, images, root, cache_dir, workers, batch_size, progress, stats
        )
    else:
        for group in groups:
            current = emb_model
            if emb_model.needs_fit:
                assert prepared is not None
                tf = time.perf_counter()
                current = copy.deepcopy(emb_model)
                keys = [content_key(images[i], emb_model.preprocess) for i in group.fit_ids]
                usable = sorted({k for k in keys if not isinstance(prepared[k], ImageError)})
                if not usable:
                    raise UserError(
                        f"no usable training image to fit {emb_model.name} ({group.name})"
                    )
                current.fit([prepared[k][0] for k in usable], [prepared[k][1] for k in usable])
                fits.append(
                    {
                        "group": group.name,
                        "n_images": len(usable),
                        "identity": _identity_dict(current),
                    }
                )
                t_fit += time.perf_counter() - tf
            emb, bad = embed_with_cache(
                current,
                [images[i] for i in group.embed_ids],
                root,
                spec=(spec, options or {}) if spec is not None else None,
                cache_dir=cache_dir,
                workers=workers,
                batch_size=batch_size,
                prepared=prepared,
                progress=progress,
                stats=stats,
            )
            space_emb.append(emb)
            space_bad.append(bad)
    t = lap("embed", t)
    if emb_model.needs_fit:
        timings["fit"] = round(t_fit, 4)
        timings["embed"] = round(timings["embed"] - t_fit, 4)

    # --- score every pair
    group_of = {}
    for gi, group in enumerate(groups):
        for i in group.pair_idx:
            group_of[i] = gi
    rows: dict[str, list[Any]] = defaultdict(list)
    scored: list[list[int]] = [[] for _ in groups]  # pair indices to score, per space

    for i, p in enumerate(pairs):
        a, b = images[p["a"]], images[p["b"]]
        for k in ("a", "b", "label", "split", "fold", "pair_type"):
            rows[k].append(p[k])
        rows["pair_id"].append(p["id"])
        rows["a_identity"].append(a["identity"])
        rows["b_identity"].append(b["identity"])
        rows["colour"].append(pair_colour(a, b))
        rows["detector"].append(pair_value(a, b, "detector"))
        rows["landmarks"].append(pair_value(a, b, "landmarks"))
        rows["mask_type"].append(pair_mask_types(a, b))
        status, reason = "ok", ""
        gi = group_of.get(i)
        if gi is None:
            status, reason = "not_scored", "train split: used for fitting, not evaluated"
        else:
            for side in ("a", "b"):
                failure = space_bad[gi].get(p[side])
                if failure is not None:
                    status, reason = failure[0], f"{side} ({p[side]}): {failure[1]}"
                    break
        if status == "ok":
            scored[gi].append(i)
        rows["status"].append(status)
        rows["reason"].append(reason)
    n = len(pairs)
    score = np.full(n, np.nan)
    dist = np.full(n, np.nan)
    for gi, idx in enumerate(scored):  # spaces may differ in dimension (per-fold fits)
        if not idx:
            continue
        ids = _image_ids(pairs, idx)
        at = {image_id: k for k, image_id in enumerate(ids)}
        matrix = np.stack([space_emb[gi][image_id] for image_id in ids])
        ia = np.asarray([at[pairs[i]["a"]] for i in idx])
        ib = np.asarray([at[pairs[i]["b"]] for i in idx])
        s, d, zero = pair_scores(matrix, ia, ib, metric)
        score[idx], dist[idx] = s, d
        for j in np.flatnonzero(zero):
            rows["status"][idx[j]] = "zero_norm"
            rows["reason"][idx[j]] = f"a zero embedding has no direction ({metric})"
    rows["score"], rows["distance"] = score, dist
    out = Path(out_dir) / pid / mid
    out.mkdir(parents=True, exist_ok=True)
    scores_path = write_scores(
        scores_table(rows),
        out / "scores.parquet",
        {"protocol_id": pid, "model_id": mid, "distance": metric, "mfrbench_version": __version__},
    )
    t = lap("score", t)
    impostor_items = None
    if impostors == "all":
        impostor_items = _all_vs_all_impostors(groups, pairs, images, space_emb, metric, progress)
        imp_path = write_scores(
            impostors_table([(s, v) for s, v in impostor_items]),
            out / "impostors.parquet",
            {"protocol_id": pid, "model_id": mid, "distance": metric, "how": ALL_IMPOSTORS_HOW},
        )
        t = lap("impostors", t)

    # --- metrics
    status = np.asarray(rows["status"], dtype=object)
    split = np.asarray(rows["split"], dtype=object)
    ok = status == "ok"
    test = split == "test"
    val = split == "val"
    use_folds = all(rows["fold"][i] is not None for i in range(n) if test[i])
    if not (ok & test).any():
        raise UserError(f"no test pair of {pid} could be scored: see {scores_path}")
    verification = verification_sets(
        rows,
        ok,
        test,
        val,
        use_folds=use_folds,
        seed=seed,
        n_boot=n_boot,
        impostors=impostor_items,
        threshold=fixed,
        carried=carried,
    )
    t = lap("metrics", t)
    spaces = []
    for gi, group in enumerate(groups):
        test_ids = sorted(
            {pairs[i][s] for i in group.pair_idx if pairs[i]["split"] == "test" for s in ("a", "b")}
            & set(space_emb[gi])
        )

        def lookup(ids: list[str], gi: int = gi) -> np.ndarray:
            return np.stack([space_emb[gi][i] for i in ids])

        spaces.append((test_ids, lookup))
    identification = _identification(spaces, images, metric, cs_scale)
    t = lap("identification", t)

    pair_status = Counter(rows["status"])
    scored_eval = int(sum(1 for i in eval_idx if rows["status"][i] == "ok"))
    report: dict[str, Any] = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "mfrbench_version": __version__,
        "protocol": {
            "id": pid,
            "name": protocol["name"],
            "version": protocol["version"],
            "digest": protocol["digest"],
            "file": str(protocol_path),
            "description": protocol["description"],
            "dataset": protocol["dataset"]["name"],
            "strategy": protocol["generation"]["strategy"],
        },
        "model": {
            "id": mid,
            "spec": spec if spec is not None else f"instance:{type(emb_model).__name__}",
            "options": {k: str(v) for k, v in sorted(dict(options or {}).items())},
            "identity": _identity_dict(emb_model)
            if not emb_model.needs_fit
            else {**_identity_dict(emb_model), "weights_digest": "fitted per protocol (see fit)"},
            "preprocess": emb_model.preprocess.to_dict(),
            "embedding_size": int(emb_model.embedding_size),
            "needs_fit": bool(emb_model.needs_fit),
            "fit": {"how": fit_how, "fits": fits},
            "backbone": {
                "spec": (emb_model.backbone_source or ("instance", {}))[0],
                "identity": _identity_dict(emb_model.backbone),
            }
            if isinstance(emb_model, HeadModel)
            else None,
        },
        "distance": metric,
        "score_convention": (
            "score = cosine similarity" if metric == "cosine" else f"score = -{metric} distance"
        ),
        "seed": seed,
        "n_boot": n_boot,
        "impostors": {
            "mode": impostors,
            "how": ALL_IMPOSTORS_HOW if impostors == "all" else "the protocol's listed pairs",
        },
        "fixed_threshold": None
        if threshold is None
        else {
            "value": float(threshold),
            "units": "cosine similarity, accept when >="
            if metric == "cosine"
            else f"{metric} distance, accept when <=",
            "score_threshold": fixed,
        },
        "workers": workers,
        "batch_size": batch_size,
        "evaluation": {
            "splits_scored": [s for s in EVAL_SPLITS if any(p["split"] == s for p in pairs)],
            "metrics_on": "test",
            "cross_validation": "folds"
            if use_folds
            else "none (accuracy at the best threshold "
            "on the same pairs is optimistic; see val_threshold when the protocol has val)",
        },
        "embedding": {
            "inputs": stats.inputs,
            "computed": stats.computed,
            "cached": stats.cached,
            "failed": stats.failed,
            "failed_by_status": dict(sorted(stats.statuses.items())),
            "forward_passes": stats.computed,
            "naive_forward_passes": 2 * len(eval_idx),
            "cache_dirs": stats.cache_dirs,
            "damaged_shards": stats.damaged_shards,
            "worker_processes": stats.processes,
        },
        "faces": _faces_summary(
            [images[pairs[i][side]] for i in eval_idx for side in ("a", "b")],
            emb_model.preprocess,
        ),
        "pairs": {
            "total": n,
            "evaluated": len(eval_idx),
            "scored": scored_eval,
            "by_status": dict(sorted(pair_status.items())),
        },
        "verification": verification,
        "identification": identification,
        "timings": timings,
    }
    files = {"scores": scores_path}
    if impostor_items is not None:
        files["impostors"] = imp_path
    if plots:
        files.update(report_mod.write_plots(rows, ok & test, out, title=f"{mid} on {pid}"))
        t = lap("plots", t)
    timings["total"] = round(time.perf_counter() - t_start, 4)
    report["files"] = {k: v.name for k, v in sorted({**files}.items())}
    files.update(report_mod.write_reports(report, out))
    return Run(protocol_id=pid, model_id=mid, out_dir=out, report=report, files=files)


def carried_thresholds(run: str | Path, model_id: str) -> dict[str, Any]:
    """The calibrated thresholds of another run of the same model, to apply to this one.

    They come from that run's unmasked-unmasked pair set when it has one (NIST: thresholds set
    on unmasked images), else from its only pair type, else from all its pairs.
    """
    other = load_run(run)
    other_model = other.get("model", {}).get("id")
    if other_model != model_id:
        raise UserError(
            f"--thresholds-from {run}: thresholds of {other_model} cannot be applied to "
            f"{model_id} (another model, preprocessing or distance)"
        )
    sets = (other.get("verification", {}).get("calibration") or {}).get("sets") or {}
    types = [k for k in sets if k != "all"]
    name = (
        "unmasked-unmasked"
        if "unmasked-unmasked" in sets
        else types[0]
        if len(types) == 1
        else "all"
    )
    if name not in sets:
        raise UserError(f"--thresholds-from {run}: that report has no calibrated thresholds")
    cal = other["verification"]["calibration"]
    return {
        "source": {
            "run": str(run),
            "protocol_id": other["protocol"]["id"],
            "pair_set": name,
            "impostors": cal.get("impostors"),
            "n_impostors": sets[name]["n_impostors"],
        },
        "thresholds": sets[name]["thresholds"],
    }


def load_run(path: str | Path) -> dict[str, Any]:
    """The report.json of a run folder (or the file itself); UserError when absent."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    if not p.is_file():
        raise UserError(f"no report.json at {path}")
    try:
        report = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {p}: {exc}") from exc
    version = report.get("schema_version", 1) if isinstance(report, dict) else None
    if version not in (1, REPORT_SCHEMA_VERSION):
        raise UserError(
            f"{p}: report schema_version {version!r} is not one this mfrbench {__version__} "
            f"reads (1..{REPORT_SCHEMA_VERSION})"
        )
    return report


__all__ = [
    "EmbedStats",
    "Run",
    "check_output",
    "embed_batch",
    "embed_images",
    "embed_with_cache",
    "evaluate",
    "load_run",
    "model_cache",
    "model_id_of",
    "resolve_model",
]
