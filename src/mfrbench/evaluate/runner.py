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

4. **Embed** (``spaces.py`` over ``embedding.py``). Each distinct prepared input
   (``prepare.content_key``) is embedded once, in batches, by worker processes when
   ``workers > 1``; the on-disk cache (``cache.py``) serves what earlier runs computed, and
   every finished batch is stored at once, so a killed run loses only the batch in flight.
   Output shape and finiteness are checked per image.
5. **Score** every pair (``pair_rows.py``, ``scores.py``); a pair whose image failed gets that
   status. With ``impostors="all"``, also every probe against every reference of another
   identity (``run_metrics.all_vs_all_impostors``, ``impostors.py``).
6. **Metrics** (``breakdown.verification_sets`` over ``metrics.verification_report``) overall,
   by pair type, mask colour, detector and landmark backend;
   masked pair types take their FNMR@FMR threshold from the unmasked-unmasked control pairs
   when the protocol has them (NIST's method). Identification (``run_metrics.py``): unmasked
   gallery (one image per test identity), masked probes (another photo), rank-1 / CMC and the
   open-set confidence score margin.
7. **Report** to ``<out_dir>/<protocol id>/<model id>/`` (``paths.run_folder``: the ids made
   file-name safe, ``onnx:a.onnx@<hex>`` -> ``onnx-a.onnx@<hex>``; ``out_dir`` defaults to
   ``paths.results_dir()``): ``report.json`` is assembled by ``run_record.py`` (its typed
   sections), written with ``report.md`` and the plots by ``report.py``; ``runs.py`` reads
   finished runs back (by path, so runs in folders of the older naming too). Before the model
   embeds anything, ``rerun.claim_folder`` refuses a folder holding a different run unless
   ``overwrite`` (which clears it); a rerun of the same run goes ahead, and what an earlier run
   left that this one did not write is removed at the end.

Worker processes and the in-process path both run models single-threaded (torch, OpenCV), so
embeddings do not depend on the worker count. A batched model may still differ in the last
float bits between a fresh run and a resumed one (another batch composition).

The engine's names (``EmbedStats``, ``embed_with_cache``, ...), ``resolve_model`` /
``model_id_of`` and ``load_run`` / ``carried_thresholds`` are re-exported here for existing
callers; new code imports them from ``embedding``, ``model_setup`` and ``runs``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfrbench import __version__
from mfrbench.errors import UserError
from mfrbench.evaluate import run_metrics
from mfrbench.evaluate.breakdown import ALL_IMPOSTORS_HOW, verification_sets
from mfrbench.evaluate.embedding import (
    EmbedStats,
    Progress,
    check_output,
    embed_batch,
    embed_images,
    embed_with_cache,
    model_cache,
)
from mfrbench.evaluate.impostors import impostors_table
from mfrbench.evaluate.model_setup import model_id_of, resolve_model
from mfrbench.evaluate.pair_rows import score_rows
from mfrbench.evaluate.planning import head_groups, pair_groups
from mfrbench.evaluate.plots import write_plots
from mfrbench.evaluate.report import write_reports
from mfrbench.evaluate.rerun import claim_folder, clear_left, run_settings
from mfrbench.evaluate.run_record import (
    EVAL_SPLITS,
    RunReport,
    build_report,
    embedding_section,
    model_section,
    protocol_section,
    threshold_section,
)
from mfrbench.evaluate.runs import carried_thresholds, load_run
from mfrbench.evaluate.scores import check_distance, scores_table, write_scores
from mfrbench.evaluate.spaces import embed_spaces
from mfrbench.evaluate.thresholds import user_threshold
from mfrbench.executors import LOCAL, Executor
from mfrbench.models.base import EmbeddingModel, HeadModel
from mfrbench.paths import results_dir, run_folder
from mfrbench.protocol import open_protocol

IMPOSTOR_MODES = ("listed", "all")


# ----------------------------------------------------------------------------- results


@dataclass
class Run:
    """What :func:`evaluate` produced: the output folder, the report dict and its files."""

    protocol_id: str
    model_id: str
    out_dir: Path
    report: RunReport
    files: dict[str, Path] = field(default_factory=dict)


# ----------------------------------------------------------------------------- the run


def _check_args(workers: int, batch_size: int, n_boot: int, impostors: str) -> None:
    for name, value, low in (
        ("--workers", workers, 1),
        ("--batch-size", batch_size, 1),
        ("--n-boot", n_boot, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UserError(f"{name} must be an integer >= {low}, got {value!r}")
    if impostors not in IMPOSTOR_MODES:
        raise UserError(
            f"--impostors must be one of {', '.join(IMPOSTOR_MODES)}, got {impostors!r}"
        )


class _Clock:
    """Seconds per step of a run, in the order they ran (the report's ``timings``)."""

    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.timings: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self.last, 4)
        self.last = now

    def split(self, name: str, *, prepare: float, fit: float, fitted: bool) -> None:
        """A lap of which a fitted model's input preparation and fitting are reported apart."""
        if not fitted:
            self.lap(name)
            return
        now = time.perf_counter()
        self.timings["prepare"] = round(prepare, 4)
        self.timings[name] = round(now - self.last - prepare - fit, 4)
        self.timings["fit"] = round(fit, 4)
        self.last = now

    def total(self) -> None:
        self.timings["total"] = round(time.perf_counter() - self.start, 4)


def evaluate(
    protocol_path: str | Path,
    model: str | EmbeddingModel,
    options: Mapping[str, Any] | None = None,
    *,
    root: str | Path,
    out_dir: str | Path | None = None,
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
    executor: Executor = LOCAL,
    overwrite: bool = False,
) -> Run:
    """Score ``model`` on the protocol at ``protocol_path`` with the images under ``root``.

    Returns a :class:`Run`; writes ``report.json``, ``report.md``, ``scores.parquet`` and (with
    ``plots``) ``roc.png``, ``det.png``, ``scores_hist.png`` under
    ``<out_dir>/<protocol id>/<model id>/`` (``out_dir`` None: ``paths.results_dir()``); a
    folder holding another run is refused unless ``overwrite``. See the module docstring for
    every step.
    ``impostors="all"`` adds the all-vs-all impostors (``impostors.parquet``, the report's
    ``all_impostors`` block); ``threshold`` (in the measure's units: a cosine similarity, or a
    distance) and ``thresholds_from`` (another run of the same model, whose calibrated
    thresholds are applied here) add ``fixed_threshold`` / ``carried_thresholds``.
    With ``workers > 1`` the workers are spawned processes, which re-import the main module:
    call this from a script under ``if __name__ == "__main__":``. ``executor`` (a run argument,
    not recorded) embeds on Ray actors instead; the scores are the same.
    """
    clock = _Clock()
    _check_args(workers, batch_size, n_boot, impostors)
    if progress:
        progress("verify", 0, 1)
    opened = open_protocol(protocol_path, root, workers=workers)
    protocol, pid, images = opened.protocol, opened.id, opened.images
    pairs = protocol["pairs"]
    if progress:
        progress("verify", 1, 1)
    clock.lap("load_verify")

    emb_model, spec = resolve_model(model, options)
    metric = check_distance(distance or emb_model.default_distance)
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
    settings = run_settings(
        protocol_id=pid,
        model_id=mid,
        options=options,
        distance=metric,
        seed=seed,
        n_boot=n_boot,
        impostors=impostors,
        threshold=threshold,
        carried_source=carried["source"] if carried is not None else None,
    )
    out_root = results_dir() if out_dir is None else Path(out_dir)
    claim = claim_folder(run_folder(out_root, pid, mid), settings, overwrite=overwrite)
    clock.lap("model")

    stats = EmbedStats()
    spaces = embed_spaces(
        emb_model,
        groups,
        images,
        opened.root,
        spec=(spec, options or {}) if spec is not None else None,
        cache_dir=cache_dir,
        workers=workers,
        batch_size=batch_size,
        progress=progress,
        stats=stats,
        executor=executor,
    )
    clock.split("embed", prepare=spaces.prepare_s, fit=spaces.fit_s, fitted=emb_model.needs_fit)

    rows = score_rows(pairs, images, groups, spaces, metric)
    out = claim.path
    out.mkdir(parents=True, exist_ok=True)
    meta = {"protocol_id": pid, "model_id": mid, "distance": metric}
    files = {
        "scores": write_scores(
            scores_table(rows), out / "scores.parquet", {**meta, "mfrbench_version": __version__}
        )
    }
    clock.lap("score")
    impostor_items = None
    if impostors == "all":
        impostor_items = run_metrics.all_vs_all_impostors(
            groups, pairs, images, spaces.embeddings, metric, progress
        )
        files["impostors"] = write_scores(
            impostors_table(impostor_items),
            out / "impostors.parquet",
            {**meta, "how": ALL_IMPOSTORS_HOW},
        )
        clock.lap("impostors")

    ok = np.asarray(rows["status"], dtype=object) == "ok"
    split = np.asarray(rows["split"], dtype=object)
    test, val = split == "test", split == "val"
    use_folds = all(rows["fold"][i] is not None for i in np.flatnonzero(test))
    if not (ok & test).any():
        raise UserError(f"no test pair of {pid} could be scored: see {files['scores']}")
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
    clock.lap("metrics")
    lookups = spaces.test_lookups(groups, pairs)
    identification = run_metrics.identification(lookups, images, metric, cs_scale)
    clock.lap("identification")

    report = build_report(
        protocol=protocol_section(protocol, pid, str(opened.path)),
        model=model_section(emb_model, mid, spec, options, {"how": fit_how, "fits": spaces.fits}),
        metric=metric,
        seed=seed,
        n_boot=n_boot,
        impostors=impostors,
        fixed_threshold=threshold_section(threshold, fixed, metric),
        workers=workers,
        batch_size=batch_size,
        pair_splits=[p["split"] for p in pairs],
        use_folds=use_folds,
        embedding=embedding_section(stats, len(eval_idx)),
        eval_images=[images[pairs[i][side]] for i in eval_idx for side in ("a", "b")],
        preprocess=emb_model.preprocess,
        pairs={
            "total": len(pairs),
            "evaluated": len(eval_idx),
            "scored": int(sum(1 for i in eval_idx if rows["status"][i] == "ok")),
            "by_status": dict(sorted(Counter(rows["status"]).items())),
        },
        verification=verification,
        identification=identification,
        timings=clock.timings,
    )
    if plots:
        files.update(write_plots(rows, ok & test, out, title=f"{mid} on {pid}"))
        clock.lap("plots")
    clock.total()
    report["files"] = {k: v.name for k, v in sorted(files.items())}
    files.update(write_reports(report, out))
    clear_left(claim, files.values())
    return Run(protocol_id=pid, model_id=mid, out_dir=out, report=report, files=files)


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
