"""``evaluate``: one embedding model against one frozen protocol, end to end.

This module is the run; each step's job lives in its own module. Steps, each timed into the
report:

1. **Load and verify.** ``protocol.open_protocol`` refuses an edited file; every source image is
   hashed under ``root`` and any missing or changed file stops the run with one line.
2. **Model** (``model_setup.py``). ``plugin:NAME`` / ``onnx:PATH`` / ``python:mod:factory``
   through ``models.registry.create_model``, or an
   :class:`~mfrbench.models.base.EmbeddingModel` instance (notebooks, tests).
3. **Which pairs, which fits** (``planning.py``). Pairs of the ``val`` and ``test`` splits are
   scored; ``train`` pairs are listed in ``scores.parquet`` with status ``not_scored``. Metrics
   use the test pairs (the val pairs, when present, also give a threshold chosen away from the
   test pairs). A model that ``needs_fit`` (eigenface) never sees an image it is tested on:

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

4. **Embed** (``embedding.py``). Each distinct prepared input (``prepare.content_key``) is
   embedded once, in batches, by worker processes when ``workers > 1``; the on-disk cache
   (``cache.py``) serves what earlier runs computed, and every finished batch is stored at
   once, so a killed run loses only the batch in flight. Output shape and finiteness are
   checked per image.
5. **Score** every pair (``scores.py``); a pair whose image failed gets that status. With
   ``impostors="all"``, also every probe against every reference of another identity
   (``run_metrics.all_vs_all_impostors``, ``impostors.py``).
6. **Metrics** (``breakdown.verification_sets`` over ``metrics.verification_report``) overall,
   by pair type, mask colour, detector and landmark backend;
   masked pair types take their FNMR@FMR threshold from the unmasked-unmasked control pairs
   when the protocol has them (NIST's method). Identification (``run_metrics.py``): unmasked
   gallery (one image per test identity), masked probes (another photo), rank-1 / CMC and the
   open-set confidence score margin.
7. **Report** to ``<out_dir>/<protocol id>/<model id>/`` (``report.py``).

Worker processes and the in-process path both run models single-threaded (torch, OpenCV), so
embeddings do not depend on the worker count. A batched model may still differ in the last
float bits between a fresh run and a resumed one (another batch composition).

The engine's names (``EmbedStats``, ``embed_with_cache``, ...) and ``resolve_model`` /
``model_id_of`` are re-exported here for existing callers; new code imports them from
``embedding`` and ``model_setup``.
"""

from __future__ import annotations

import copy
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfrbench import __version__
from mfrbench.errors import ImageError, UserError
from mfrbench.evaluate import run_metrics
from mfrbench.evaluate.breakdown import ALL_IMPOSTORS_HOW, verification_sets
from mfrbench.evaluate.embedding import (
    EmbedStats,
    Progress,
    check_output,
    embed_batch,
    embed_heads,
    embed_images,
    embed_with_cache,
    model_cache,
)
from mfrbench.evaluate.impostors import impostors_table
from mfrbench.evaluate.model_setup import identity_dict, model_id_of, resolve_model
from mfrbench.evaluate.planning import head_groups, image_ids, pair_groups, prepare_all
from mfrbench.evaluate.prepare import content_key
from mfrbench.evaluate.report import REPORT_SCHEMA_VERSION
from mfrbench.evaluate.scores import (
    check_distance,
    pair_colour,
    pair_mask_types,
    pair_scores,
    pair_value,
    scores_table,
    write_scores,
)
from mfrbench.evaluate.thresholds import user_threshold
from mfrbench.models.base import EmbeddingModel, HeadModel

EVAL_SPLITS = ("val", "test")
IMPOSTOR_MODES = ("listed", "all")


# ----------------------------------------------------------------------------- results


@dataclass
class Run:
    """What :func:`evaluate` produced: the output folder, the report dict and its files."""

    protocol_id: str
    model_id: str
    out_dir: Path
    report: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


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
        groups, fit_how = head_groups(protocol, eval_idx, emb_model)
    else:
        groups, fit_how = pair_groups(protocol, eval_idx, emb_model.needs_fit)
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
        prepared = prepare_all(
            [images[i] for i in sorted(needed)], root, emb_model, workers, progress
        )
        t = lap("prepare", t)
    t_fit = 0.0
    if isinstance(emb_model, HeadModel):
        space_emb, space_bad = embed_heads(
            emb_model,
            [(g.head, g.embed_ids) for g in groups],
            images,
            root,
            cache_dir,
            workers,
            batch_size,
            progress,
            stats,
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
                        "identity": identity_dict(current),
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
    rows: dict[str, Any] = defaultdict(list)  # column lists; score/distance become arrays
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
        space = group_of.get(i)
        if space is None:
            status, reason = "not_scored", "train split: used for fitting, not evaluated"
        else:
            for side in ("a", "b"):
                failure = space_bad[space].get(p[side])
                if failure is not None:
                    status, reason = failure[0], f"{side} ({p[side]}): {failure[1]}"
                    break
            if status == "ok":
                scored[space].append(i)
        rows["status"].append(status)
        rows["reason"].append(reason)
    n = len(pairs)
    score = np.full(n, np.nan)
    dist = np.full(n, np.nan)
    for gi, idx in enumerate(scored):  # spaces may differ in dimension (per-fold fits)
        if not idx:
            continue
        ids = image_ids(pairs, idx)
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
        impostor_items = run_metrics.all_vs_all_impostors(
            groups, pairs, images, space_emb, metric, progress
        )
        imp_path = write_scores(
            impostors_table([(s, v) for s, v in impostor_items]),
            out / "impostors.parquet",
            {"protocol_id": pid, "model_id": mid, "distance": metric, "how": ALL_IMPOSTORS_HOW},
        )
        t = lap("impostors", t)

    # --- metrics
    status_col = np.asarray(rows["status"], dtype=object)
    split = np.asarray(rows["split"], dtype=object)
    ok = status_col == "ok"
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
    spaces: list[tuple[list[str], Callable[[list[str]], np.ndarray]]] = []
    for gi, group in enumerate(groups):
        test_ids = sorted(
            {pairs[i][s] for i in group.pair_idx if pairs[i]["split"] == "test" for s in ("a", "b")}
            & set(space_emb[gi])
        )

        def lookup(ids: list[str], gi: int = gi) -> np.ndarray:
            return np.stack([space_emb[gi][i] for i in ids])

        spaces.append((test_ids, lookup))
    identification = run_metrics.identification(spaces, images, metric, cs_scale)
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
            "identity": identity_dict(emb_model)
            if not emb_model.needs_fit
            else {**identity_dict(emb_model), "weights_digest": "fitted per protocol (see fit)"},
            "preprocess": emb_model.preprocess.to_dict(),
            "embedding_size": int(emb_model.embedding_size),
            "needs_fit": bool(emb_model.needs_fit),
            "fit": {"how": fit_how, "fits": fits},
            "backbone": {
                "spec": (emb_model.backbone_source or ("instance", {}))[0],
                "identity": identity_dict(emb_model.backbone),
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
        "faces": run_metrics.faces_summary(
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
    "Progress",
    "Run",
    "carried_thresholds",
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
