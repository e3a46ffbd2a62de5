"""``mfrbench train siamese``: Siamese heads over a frozen backbone, on a protocol's own splits.

What is trained on what (the leakage rules; see ``docs/training.md``):

- **Split protocols** (pairs in ``train``/``val``/``test``): one head (``all``) trained on the
  train pairs, its epoch selected on the val pairs; test pairs are never read. With
  ``folds=K > 1``, K extra runs (``cv0``..) first cross-validate over the *train identities*
  (K seeded identity groups; a run trains on pairs of the other groups and validates on pairs
  inside its group; pairs straddling groups are left out of that run), as the Siamese paper
  did; their mean validation accuracy is reported, and without val pairs the final head
  trains for the median of their best epochs.
- **Fold protocols** (LFW view 2 style: every pair in ``test`` with folds): one head per
  held-out fold ``f`` (``fold<f>``), trained on the other folds, its epoch selected on the
  next fold; any pair sharing an identity with fold ``f`` (or the val fold) is left out of its
  training. ``mfrbench eval`` then scores fold ``f`` with head ``fold<f>`` only: every score is
  a held-out score, as LFW's protocol asks for models trained on view 2.

The backbone stays frozen: its embeddings come from the evaluator's on-disk cache (computed
once, shared with ``mfrbench eval``), so training is a small fully connected problem on CPU.
Outputs in ``out``: ``siamese.json``, ``heads.safetensors``, ``identities.json`` (what
``siamese:DIR`` loads), ``train_log.parquet``, ``loss.png``, ``accuracy.png``, and
``train_report.json`` (timings, peak memory). Same protocol, options and seed give the same
``heads.safetensors`` bytes on CPU.
"""

from __future__ import annotations

import hashlib
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa

from mfrbench import __version__
from mfrbench.digest import sha256_file
from mfrbench.errors import UserError
from mfrbench.manifest import write_json_atomic, write_table_atomic
from mfrbench.models.base import EmbeddingModel, FineTunable, HeadModel
from mfrbench.models.siamese import (
    BACKBONE,
    CONFIG,
    FORMAT,
    FORMAT_VERSION,
    IDENTITIES,
    WEIGHTS,
)

Progress = Callable[[str, int, int], None]
LOG_SCHEMA = pa.schema(
    [
        pa.field("run", pa.string(), nullable=False),
        pa.field("epoch", pa.int32(), nullable=False),
        pa.field("train_loss", pa.float64(), nullable=False),
        pa.field("val_loss", pa.float64()),
        pa.field("val_accuracy", pa.float64()),
        pa.field("val_auc", pa.float64()),
        pa.field("seconds", pa.float64(), nullable=False),
    ]
)


@dataclass(frozen=True)
class TrainRun:
    """One head to train: protocol pair indices to train and select on, and what it scores."""

    name: str  # "all", "fold<k>" or "cv<k>"
    kind: str  # "final" (the split protocol's head), "fold" (per held-out fold), "cv"
    train_idx: tuple[int, ...]
    val_idx: tuple[int, ...]
    eval_fold: int | None = None
    left_out: int = 0  # pairs left out because they share an identity with held-out pairs


@dataclass
class Plan:
    """The runs of one training command and a sentence saying how they split the protocol."""

    runs: list[TrainRun]
    how: str
    strategy: str  # "split" or "folds"


@dataclass
class SiameseResult:
    """What :func:`train_siamese` wrote and measured."""

    out_dir: Path
    checkpoint_sha256: str
    config: dict[str, Any]
    log: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: float = 0.0


# ----------------------------------------------------------------------------- planning


def _identities(pairs: Sequence[Mapping], images: Mapping[str, Mapping], idx: Sequence[int]):
    return {images[pairs[i][s]]["identity"] for i in idx for s in ("a", "b")}


def _touches(pair: Mapping, images: Mapping[str, Mapping], ids: set[str]) -> bool:
    return images[pair["a"]]["identity"] in ids or images[pair["b"]]["identity"] in ids


def _cv_runs(
    pairs: Sequence[Mapping], images: Mapping[str, Mapping], train: list[int], k: int, seed: int
) -> list[TrainRun]:
    """K runs over seeded identity groups of the train pairs (pairs across groups left out)."""
    names = sorted(_identities(pairs, images, train))
    if len(names) < k:
        raise UserError(f"--folds {k} needs at least {k} train identities, found {len(names)}")
    order = np.random.default_rng(seed).permutation(len(names))
    group = {names[j]: pos % k for pos, j in enumerate(order)}
    runs = []
    for g in range(k):
        held = {n for n, v in group.items() if v == g}
        val = [i for i in train if not _touches(pairs[i], images, set(names) - held)]
        rest = [i for i in train if not _touches(pairs[i], images, held)]
        left = len(train) - len(val) - len(rest)
        runs.append(TrainRun(f"cv{g}", "cv", tuple(rest), tuple(val), None, left))
    return runs


def plan_runs(protocol: Mapping[str, Any], folds: int | None, seed: int) -> Plan:
    """The training runs for a protocol (see the module docstring); UserError if none fit."""
    pairs = protocol["pairs"]
    images = {img["id"]: img for img in protocol["images"]}
    train = [i for i, p in enumerate(pairs) if p["split"] == "train"]
    if train:
        val = [i for i, p in enumerate(pairs) if p["split"] == "val"]
        k = 1 if folds is None else int(folds)
        if k < 1:
            raise UserError(f"--folds must be >= 1, got {folds}")
        runs = _cv_runs(pairs, images, train, k, seed) if k > 1 else []
        runs.append(TrainRun("all", "final", tuple(train), tuple(val)))
        how = f"train split ({len(train)} pairs), epoch selected on the val split ({len(val)})"
        if k > 1:
            how += f", after {k}-fold cross-validation over train identities"
        return Plan(runs, how, "split")
    test = [i for i, p in enumerate(pairs) if p["split"] == "test"]
    fold_values = sorted({pairs[i]["fold"] for i in test if pairs[i]["fold"] is not None})
    if not test or len(fold_values) < 3 or any(pairs[i]["fold"] is None for i in test):
        raise UserError(
            "this protocol has no train split and no test folds to hold out (at least 3 are "
            "needed: train, val, test); build one with a train split (mfrbench pairs rmfrd)"
        )
    if folds is not None:
        raise UserError(
            f"this protocol has its own {len(fold_values)} folds (one head is trained per "
            "held-out fold); --folds applies to protocols with a train split"
        )
    by_fold = {f: [i for i in test if pairs[i]["fold"] == f] for f in fold_values}
    runs = []
    for n, f in enumerate(fold_values):
        v = fold_values[(n + 1) % len(fold_values)]
        held = _identities(pairs, images, by_fold[f])
        val = [i for i in by_fold[v] if not _touches(pairs[i], images, held)]
        blocked = held | _identities(pairs, images, val)
        others = [i for g in fold_values if g not in (f, v) for i in by_fold[g]]
        rest = [i for i in others if not _touches(pairs[i], images, blocked)]
        left = len(others) + len(by_fold[v]) - len(rest) - len(val)
        runs.append(TrainRun(f"fold{f}", "fold", tuple(rest), tuple(val), f, left))
    how = (
        f"one head per held-out fold ({len(runs)}): trained on the other folds, epoch selected "
        "on the next fold, pairs sharing an identity with the held-out or val fold left out"
    )
    return Plan(runs, how, "folds")


def run_seed(seed: int, name: str) -> int:
    """A run's seed, derived from the command's seed and the run name (stable across runs)."""
    return int(hashlib.sha256(f"{seed}/{name}".encode()).hexdigest()[:8], 16)


# ----------------------------------------------------------------------------- training


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _pair_set(pairs: Sequence[Mapping], idx: Sequence[int], row: Mapping[str, int]):
    from mfrbench.train.loop import IndexPairs

    ok = [i for i in idx if pairs[i]["a"] in row and pairs[i]["b"] in row]
    return IndexPairs(
        np.asarray([row[pairs[i]["a"]] for i in ok], dtype=np.int64),
        np.asarray([row[pairs[i]["b"]] for i in ok], dtype=np.int64),
        np.asarray([pairs[i]["label"] for i in ok], dtype=np.int64),
    ), len(idx) - len(ok)


def _median_epoch(results: Sequence[Any]) -> int | None:
    best = sorted(r.best_epoch for r in results)
    return best[(len(best) - 1) // 2] if best else None


def _prepare_images(
    model: EmbeddingModel, refs: Sequence[Mapping[str, Any]], root: Path
) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, str]]]:
    """Image id -> RGB input as the model's preprocessing renders it (for fine-tuning)."""
    from mfrbench.errors import ImageError
    from mfrbench.evaluate.prepare import prepare

    out, bad = {}, {}
    for ref in refs:
        try:
            out[ref["id"]] = prepare(ref, root, model.preprocess)[0]
        except ImageError as err:
            bad[ref["id"]] = (err.status, err.reason)
    return out, bad


def _backbone(spec: str, options: Mapping[str, Any]) -> EmbeddingModel:
    from mfrbench.models.registry import create_model

    if ":" not in spec:
        spec = f"plugin:{spec}"
    model = create_model(spec, dict(options))
    if model.needs_fit or isinstance(model, HeadModel):
        raise UserError(f"--backbone {spec}: a backbone must be a pretrained embedding model")
    return model


def train_siamese(
    protocol_path: str | Path,
    *,
    root: str | Path,
    backbone: str,
    out: str | Path,
    backbone_options: Mapping[str, Any] | None = None,
    hidden: Sequence[int] = (512, 256),
    dropout: float = 0.3,
    loss: str = "contrastive",
    margin: float | None = None,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 1e-4,
    weight_decay: float = 0.0,
    folds: int | None = None,
    seed: int = 0,
    unfreeze_last: int = 0,
    device: str = "cpu",
    backbone_lr: float | None = None,
    workers: int = 1,
    embed_batch_size: int = 32,
    cache_dir: str | Path | None = None,
    plots: bool = True,
    progress: Progress | None = None,
) -> SiameseResult:
    """Train Siamese heads on ``protocol_path`` and write a ``siamese:DIR`` folder to ``out``.

    ``unfreeze_last=N > 0`` also fine-tunes the backbone's last N blocks (a
    :class:`~mfrbench.models.base.FineTunable` backbone such as resnet50 or facenet with
    weights) on the images themselves, with ``device`` (``cpu`` or ``cuda``) and ``backbone_lr``
    (default ``lr``); each head then carries its own fine-tuned blocks.
    """
    from mfrbench.evaluate.embedding import EmbedStats, embed_with_cache
    from mfrbench.protocol import open_protocol
    from mfrbench.train.checkpoint import write_safetensors
    from mfrbench.train.head import HeadConfig
    from mfrbench.train.loop import TrainConfig, TrainResult, train_head

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    out = Path(out)
    opened = open_protocol(protocol_path, root, workers=workers)
    protocol, pid, root, protocol_path = opened.protocol, opened.id, opened.root, opened.path
    plan = plan_runs(protocol, folds, seed)
    bb_options = {k: v for k, v in sorted(dict(backbone_options or {}).items())}
    bb_spec = backbone if ":" in backbone else f"plugin:{backbone}"
    model = _backbone(bb_spec, bb_options)
    if unfreeze_last:
        from mfrbench.train.finetune import check_finetunable

        check_finetunable(model, unfreeze_last)
    head_cfg = HeadConfig(int(model.embedding_size), tuple(int(h) for h in hidden), float(dropout))
    base_cfg = TrainConfig(
        loss=loss,
        margin=margin,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
    )
    timings["plan"] = round(time.perf_counter() - t0, 3)

    # --- backbone embeddings of every image a run trains or selects on (never test-only ones)
    t = time.perf_counter()
    pairs = protocol["pairs"]
    images = opened.images
    needed = sorted(
        {pairs[i][s] for r in plan.runs for i in (*r.train_idx, *r.val_idx) for s in ("a", "b")}
    )
    refs = [images[i] for i in needed]
    stats = EmbedStats()
    if unfreeze_last:  # the tuned blocks need the pixels, not cached embeddings
        found, bad = _prepare_images(model, refs, root)
    else:
        found, bad = embed_with_cache(
            model,
            refs,
            root,
            spec=(bb_spec, bb_options),
            cache_dir=cache_dir,
            workers=workers,
            batch_size=embed_batch_size,
            progress=progress,
            stats=stats,
        )
    ids = [i for i in needed if i in found]
    if not ids:
        raise UserError(f"no image of {pid}'s training pairs could be embedded by {bb_spec}")
    row = {image_id: n for n, image_id in enumerate(ids)}
    pixels = [found[i] for i in ids] if unfreeze_last else []
    X = (
        np.zeros((len(ids), 1), np.float32)
        if unfreeze_last
        else np.stack([found[i] for i in ids]).astype(np.float32)
    )
    identities = [images[i]["identity"] for i in ids]
    timings["embed" if not unfreeze_last else "prepare"] = round(time.perf_counter() - t, 3)

    # --- train every run
    t = time.perf_counter()
    results: dict[str, Any] = {}
    log: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    seen: dict[str, list[str]] = {}
    cv_done: list[Any] = []
    for n, run in enumerate(plan.runs):
        train_set, lost_train = _pair_set(pairs, run.train_idx, row)
        val_set, lost_val = _pair_set(pairs, run.val_idx, row)
        if train_set.y.size == 0 or len(set(train_set.y.tolist())) < 2:
            raise UserError(f"run {run.name}: needs genuine and impostor training pairs")
        cfg = TrainConfig(**{**asdict(base_cfg), "seed": run_seed(seed, run.name)})
        if run.kind == "final" and val_set.y.size == 0 and cv_done:
            cfg = TrainConfig(**{**asdict(cfg), "epochs": max(1, _median_epoch(cv_done) or 1)})
        if progress:
            progress("train", n, len(plan.runs))
        result: TrainResult  # or its subclass FineTuneResult
        if unfreeze_last:
            from mfrbench.train.finetune import finetune

            result = finetune(
                model,
                pixels,
                train_set,
                val_set if val_set.y.size else None,
                identities,
                head_cfg,
                cfg,
                unfreeze_last,
                run=run.name,
                device=device,
                backbone_lr=backbone_lr,
                threads=1,
            )
        else:
            result = train_head(
                X,
                identities,
                train_set,
                val_set if val_set.y.size else None,
                head_cfg,
                cfg,
                run=run.name,
            )
        results[run.name] = result
        log.extend(result.log)
        if run.kind == "cv":
            cv_done.append(result)
            continue
        used = (*run.train_idx, *run.val_idx)
        seen[run.name] = sorted(_identities(pairs, images, used))
        entries.append(
            {
                "name": run.name,
                "kind": run.kind,
                "eval_fold": run.eval_fold,
                "train_pairs": int(train_set.y.size),
                "val_pairs": int(val_set.y.size),
                "left_out_pairs": run.left_out,
                "unembedded_pairs": lost_train + lost_val,
                "epochs": cfg.epochs,
                "best_epoch": result.best_epoch,
                "best_val_accuracy": result.best_val_accuracy,
                "seed": cfg.seed,
            }
        )
    if progress:
        progress("train", len(plan.runs), len(plan.runs))
    timings["train"] = round(time.perf_counter() - t, 3)

    # --- write the model folder
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name in (e["name"] for e in entries):
        tensors.update({f"{name}/{k}": v for k, v in results[name].state.items()})
        backbone_state = getattr(results[name], "backbone_state", None) or {}
        tensors.update({f"{name}/{BACKBONE}/{k}": v for k, v in backbone_state.items()})
    weights = out / WEIGHTS
    write_safetensors(weights, tensors, {"format": FORMAT, "protocol": pid})
    digest = sha256_file(weights)
    cv = None
    if cv_done:
        accs = [r.best_val_accuracy for r in cv_done if r.best_val_accuracy is not None]
        cv = {
            "folds": len(cv_done),
            "val_accuracy_mean": float(np.mean(accs)) if accs else None,
            "val_accuracy_std": float(np.std(accs)) if accs else None,
            "best_epochs": [int(r.best_epoch) for r in cv_done],
        }
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mfrbench_version": __version__,
        "backbone": {
            "spec": bb_spec,
            "options": {k: str(v) for k, v in bb_options.items()},
            "identity": model.identity().to_dict(),
            "preprocess": model.preprocess.to_dict(),
            "cache_key": model.cache_key(),
        },
        "head": {"in_dim": head_cfg.in_dim, "hidden": list(head_cfg.hidden), "dropout": dropout},
        "loss": {"name": loss, "margin": base_cfg.margin},
        "training": {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "weight_decay": weight_decay,
            "folds": folds,
            "seed": seed,
            "optimizer": "adam",
            "input": "L2-normalised backbone embeddings",
        },
        "finetune": {
            "unfreeze_last": unfreeze_last,
            "blocks": [name for name, _ in cast(FineTunable, model).blocks()[-unfreeze_last:]],
            "backbone_lr": backbone_lr if backbone_lr is not None else lr,
            "device": device,
        }
        if unfreeze_last
        else None,
        "distance": "cosine" if loss == "cosine-bce" else "sql2",
        "protocol": {
            "id": pid,
            "name": protocol["name"],
            "digest": protocol["digest"],
            "file": protocol_path.name,
        },
        "strategy": plan.strategy,
        "how": plan.how,
        "heads": entries,
        "cross_validation": cv,
        "weights": {"file": WEIGHTS, "sha256": digest},
    }
    write_json_atomic(out / CONFIG, config)
    write_json_atomic(out / IDENTITIES, seen)
    write_table_atomic(_log_table(log), out / "train_log.parquet")
    files = {"weights": weights, "config": out / CONFIG, "log": out / "train_log.parquet"}
    if plots:
        from mfrbench.train.curves import plot_curves

        files.update(plot_curves(log, out))
    timings["total"] = round(time.perf_counter() - t0, 3)
    peak = _peak_rss_mib()
    report = {
        "checkpoint_sha256": digest,
        "timings_s": timings,
        "peak_rss_mib": round(peak, 1),
        "embedding": {"inputs": stats.inputs, "computed": stats.computed, "cached": stats.cached,
                      "failed": stats.failed, "failed_by_status": dict(stats.statuses)},
        "unembedded_images": sorted(bad),
        "files": {k: Path(v).name for k, v in sorted(files.items())},
    }  # fmt: skip
    write_json_atomic(out / "train_report.json", report)
    return SiameseResult(out, digest, config, log, timings, peak)


def _log_table(log: Sequence[Mapping[str, Any]]) -> pa.Table:
    cols = {f.name: [r.get(f.name) for r in log] for f in LOG_SCHEMA}
    return pa.table(cols, schema=LOG_SCHEMA)
