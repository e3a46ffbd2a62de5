"""``report.json``: its typed sections and their assembly from one finished run.

The record is plain JSON (``write_reports`` writes it with sorted keys); these ``TypedDict``\\ s
name each section a reader may rely on. ``verification`` and ``identification`` are the metric
blocks documented in ``docs/metrics.md`` (built by ``breakdown.verification_sets`` and
``run_metrics.identification``) and stay open mappings here. ``REPORT_SCHEMA_VERSION`` (in
``report.py``) changes whenever a section does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from mfrbench import __version__
from mfrbench.evaluate.breakdown import ALL_IMPOSTORS_HOW
from mfrbench.evaluate.embedding import EmbedStats
from mfrbench.evaluate.model_setup import identity_dict
from mfrbench.evaluate.prepare import aspect_record
from mfrbench.evaluate.report import REPORT_SCHEMA_VERSION
from mfrbench.evaluate.run_metrics import faces_summary
from mfrbench.models.base import EmbeddingModel, HeadModel
from mfrbench.records import ImageRef, Protocol

EVAL_SPLITS = ("val", "test")


class ProtocolSection(TypedDict):
    """Which protocol was run: its id (``name@digest12``), file and generation strategy."""

    id: str
    name: str
    version: str
    digest: str
    file: str
    description: str
    dataset: str
    strategy: str


class ModelSection(TypedDict):
    """Which model: its id (the cache key's name), spec, options, identity and preprocessing.

    ``preprocess``: the plugin's ``Preprocess`` (size, color, mean, std, crop, landmarks) and,
    once :func:`build_report` has seen the run's images, ``aspect`` and ``crop_aspect``
    (``evaluate.prepare.aspect_record``: whether crops were scaled only or padded).
    """

    id: str
    spec: str
    options: dict[str, str]
    identity: dict[str, Any]
    preprocess: dict[str, Any]
    embedding_size: int
    needs_fit: bool
    fit: dict[str, Any]
    backbone: dict[str, Any] | None


class EmbeddingSection(TypedDict):
    """The embedding engine's counts: inputs, computed, served from cache, failed."""

    inputs: int
    computed: int
    cached: int
    failed: int
    failed_by_status: dict[str, int]
    forward_passes: int
    naive_forward_passes: int
    cache_dirs: list[str]
    damaged_shards: int
    worker_processes: int


class PairsSection(TypedDict):
    """Pair counts: all, evaluated (val + test), scored, and by status."""

    total: int
    evaluated: int
    scored: int
    by_status: dict[str, int]


class RunReport(TypedDict, total=False):
    """A whole ``report.json`` (``files`` is added once the files are written)."""

    schema_version: int
    mfrbench_version: str
    protocol: ProtocolSection
    model: ModelSection
    distance: str
    score_convention: str
    seed: int
    n_boot: int
    impostors: dict[str, str]
    fixed_threshold: dict[str, Any] | None
    workers: int
    batch_size: int
    evaluation: dict[str, Any]
    embedding: EmbeddingSection
    faces: dict[str, Any]
    pairs: PairsSection
    verification: dict[str, Any]
    identification: dict[str, Any]
    timings: dict[str, float]
    files: dict[str, str]


def protocol_section(protocol: Protocol, pid: str, path: str) -> ProtocolSection:
    """The report's ``protocol`` block."""
    return {
        "id": pid,
        "name": protocol["name"],
        "version": protocol["version"],
        "digest": protocol["digest"],
        "file": path,
        "description": protocol["description"],
        "dataset": protocol["dataset"]["name"],
        "strategy": protocol["generation"]["strategy"],
    }


def model_section(
    model: EmbeddingModel,
    mid: str,
    spec: str | None,
    options: Mapping[str, Any] | None,
    fit: dict[str, Any],
) -> ModelSection:
    """The report's ``model`` block; a fitted model's weights digest says it is per protocol."""
    identity = identity_dict(model)
    if model.needs_fit:
        identity = {**identity, "weights_digest": "fitted per protocol (see fit)"}
    backbone = None
    if isinstance(model, HeadModel):
        backbone = {
            "spec": (model.backbone_source or ("instance", {}))[0],
            "identity": identity_dict(model.backbone),
        }
    return {
        "id": mid,
        "spec": spec if spec is not None else f"instance:{type(model).__name__}",
        "options": {k: str(v) for k, v in sorted(dict(options or {}).items())},
        "identity": identity,
        "preprocess": model.preprocess.to_dict(),
        "embedding_size": int(model.embedding_size),
        "needs_fit": bool(model.needs_fit),
        "fit": fit,
        "backbone": backbone,
    }


def embedding_section(stats: EmbedStats, n_eval_pairs: int) -> EmbeddingSection:
    """The report's ``embedding`` block (``naive_forward_passes``: two per evaluated pair)."""
    return {
        "inputs": stats.inputs,
        "computed": stats.computed,
        "cached": stats.cached,
        "failed": stats.failed,
        "failed_by_status": dict(sorted(stats.statuses.items())),
        "forward_passes": stats.computed,
        "naive_forward_passes": 2 * n_eval_pairs,
        "cache_dirs": stats.cache_dirs,
        "damaged_shards": stats.damaged_shards,
        "worker_processes": stats.processes,
    }


def threshold_section(threshold: float | None, fixed: float | None, metric: str) -> Any:
    """The report's ``fixed_threshold`` block: the user's value, its units, its score value."""
    if threshold is None:
        return None
    units = (
        "cosine similarity, accept when >="
        if metric == "cosine"
        else f"{metric} distance, accept when <="
    )
    return {"value": float(threshold), "units": units, "score_threshold": fixed}


def build_report(
    *,
    protocol: ProtocolSection,
    model: ModelSection,
    metric: str,
    seed: int,
    n_boot: int,
    impostors: str,
    fixed_threshold: dict[str, Any] | None,
    workers: int,
    batch_size: int,
    pair_splits: Sequence[str],
    use_folds: bool,
    embedding: EmbeddingSection,
    eval_images: Sequence[ImageRef],
    preprocess: Any,
    pairs: PairsSection,
    verification: dict[str, Any],
    identification: dict[str, Any],
    timings: dict[str, float],
) -> RunReport:
    """The whole report, sections in their documented order (``files`` comes later)."""
    aspect = aspect_record(preprocess, eval_images)
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "mfrbench_version": __version__,
        "protocol": protocol,
        "model": {**model, "preprocess": {**model["preprocess"], **aspect}},
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
        "fixed_threshold": fixed_threshold,
        "workers": workers,
        "batch_size": batch_size,
        "evaluation": {
            "splits_scored": [s for s in EVAL_SPLITS if s in set(pair_splits)],
            "metrics_on": "test",
            "cross_validation": "folds"
            if use_folds
            else "none (the headline accuracy is the val-chosen threshold's where the protocol has "
            "val pairs: verification.headline)",
        },
        "embedding": embedding,
        "faces": faces_summary(eval_images, preprocess),
        "pairs": pairs,
        "verification": verification,
        "identification": identification,
        "timings": timings,
    }
