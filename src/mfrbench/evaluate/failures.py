"""The worst errors of a run at one threshold, as thumbnails of the crops the model saw.

From a run folder's ``scores.parquet`` (scored test pairs only, the pairs its metrics use):

- *false non-matches*: genuine pairs with ``score < threshold``, lowest score first;
- *false matches*: listed impostor pairs with ``score >= threshold``, highest score first.

Ties are broken by ``pair_id``, so the choice is deterministic. The threshold is one the run
itself calibrated (``report.json``'s ``verification.calibration``: the EER threshold, or the one
at FMR 1e-3 when the run had enough impostors), or a number in the measure's units. With
``--impostors all`` the all-vs-all impostors exist only as summaries, so false matches are
always listed pairs.

Thumbnails re-prepare both images with :func:`mfrbench.evaluate.prepare.prepare` and the run's
recorded ``Preprocess``, from the protocol file and the image root: the pixels are those the
model embedded (before its own colour order and normalisation), not another crop. An image that
cannot be prepared any more (file moved or changed) becomes a grey tile naming the reason.
Selection and drawing are pure functions; only the ``load_*`` helpers and
:func:`failure_thumbnails` read files.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfrbench.errors import ImageError, UserError
from mfrbench.records import Protocol

#: Height in pixels of each prepared crop in a thumbnail.
THUMB_HEIGHT = 112
_TEXT_PX = 12
_GAP = 4
_TEXT_ROWS = 2


@dataclass(frozen=True)
class Threshold:
    """A score threshold (accept when ``score >= value``) and where it came from."""

    value: float
    criterion: str  # "eer", "fmr=0.001" or "fixed"
    source: str  # one line for people


@dataclass(frozen=True)
class Failure:
    """One wrongly decided pair of a run's ``scores.parquet``."""

    kind: str  # "false non-match" or "false match"
    pair_id: int
    a: str
    b: str
    a_identity: str
    b_identity: str
    score: float
    pair_type: str
    colour: str | None


@dataclass
class FailureSet:
    """The worst false non-matches and false matches at ``threshold``, with totals."""

    threshold: Threshold
    false_non_matches: list[Failure]
    false_matches: list[Failure]
    n_false_non_matches: int  # at this threshold, of ``n_genuine``
    n_false_matches: int  # of ``n_impostor``
    n_genuine: int
    n_impostor: int
    thumbnails: dict[int, bytes] = field(default_factory=dict)  # pair_id -> PNG


# ----------------------------------------------------------------------------- threshold


def _fmr_key(criterion: str) -> str | None:
    """``fmr=1e-3`` / ``fmr=0.001`` -> the calibration key ``fmr=0.001``; None if not one."""
    if not criterion.startswith("fmr="):
        return None
    try:
        rate = float(criterion.split("=", 1)[1])
    except ValueError:
        return None
    return f"fmr={rate:g}" if 0 < rate < 1 else None


def run_threshold(report: Mapping[str, Any], at: str = "eer", pair_set: str = "all") -> Threshold:
    """The threshold named by ``at`` for ``pair_set``: ``eer``, ``fmr=R`` (a rate the run
    calibrated: 1e-3, 1e-4, 1e-5) or a number in the measure's units (a cosine similarity, or a
    distance). UserError when the run has no such threshold."""
    from mfrbench.evaluate.thresholds import user_threshold

    ver = report.get("verification") or {}
    cal = ver.get("calibration") or {}
    sets = cal.get("sets") or {}
    thresholds = (sets.get(pair_set) or {}).get("thresholds") or {}
    impostors = cal.get("impostors", "listed impostors")
    if at == "eer":
        value = thresholds.get("eer")
        if value is None:  # a report without calibration: the listed pairs' EER threshold
            by_type = ver.get("by_pair_type") or {}
            block = ver.get("overall") if pair_set == "all" else by_type.get(pair_set)
            value = ((block or {}).get("eer") or {}).get("threshold")
        if value is None:
            raise UserError(f"the run has no EER threshold for pair set {pair_set!r}")
        where = "all test pairs" if pair_set == "all" else f"the {pair_set} test pairs"
        return Threshold(float(value), "eer", f"the EER threshold of {where}")
    key = _fmr_key(at)
    if key is not None:
        if key not in thresholds:
            raise UserError(
                f"the run did not calibrate {key} for pair set {pair_set!r}; "
                f"it has: {', '.join(sorted(thresholds)) or 'none'}"
            )
        if thresholds[key] is None:
            raise UserError(
                f"the run has too few impostors to set a threshold at {key} "
                f"({(sets.get(pair_set) or {}).get('n_impostors', 0)} {impostors}); use eer"
            )
        rate = key.split("=", 1)[1]
        return Threshold(
            float(thresholds[key]), key, f"the threshold at FMR {rate} ({impostors}, {pair_set})"
        )
    try:
        number = float(at)
    except ValueError:
        raise UserError(f"threshold must be eer, fmr=RATE or a number, got {at!r}") from None
    if not math.isfinite(number):
        raise UserError(f"threshold must be finite, got {at!r}")
    distance = str(report.get("distance", "cosine"))
    units = "cosine similarity" if distance == "cosine" else f"{distance} distance"
    return Threshold(user_threshold(number, distance), "fixed", f"a fixed {units} {number:g}")


# ----------------------------------------------------------------------------- selection


def select_failures(
    cols: Mapping[str, Sequence[Any]], threshold: Threshold, n: int = 8
) -> FailureSet:
    """The ``n`` worst false non-matches and false matches among the scored test pairs.

    ``cols`` holds ``scores.parquet``'s columns as sequences (:func:`load_scores`).
    """
    if n < 0:
        raise UserError(f"the number of failures must be >= 0, got {n}")
    status = np.asarray(cols["status"], dtype=object)
    split = np.asarray(cols["split"], dtype=object)
    labels = np.asarray(cols["label"], dtype=np.int64)
    score = np.asarray([np.nan if s is None else s for s in cols["score"]], dtype=np.float64)
    pair_id = np.asarray(cols["pair_id"], dtype=np.int64)
    used = (status == "ok") & (split == "test") & np.isfinite(score)
    genuine, impostor = used & (labels == 1), used & (labels == 0)
    fnm = np.flatnonzero(genuine & (score < threshold.value))
    fm = np.flatnonzero(impostor & (score >= threshold.value))
    fnm = fnm[np.lexsort((pair_id[fnm], score[fnm]))]  # lowest score first
    fm = fm[np.lexsort((pair_id[fm], -score[fm]))]  # highest score first

    def rows(idx: np.ndarray, kind: str) -> list[Failure]:
        return [
            Failure(
                kind=kind,
                pair_id=int(pair_id[i]),
                a=str(cols["a"][i]),
                b=str(cols["b"][i]),
                a_identity=str(cols["a_identity"][i]),
                b_identity=str(cols["b_identity"][i]),
                score=float(score[i]),
                pair_type=str(cols["pair_type"][i]),
                colour=cols["colour"][i],
            )
            for i in idx[:n]
        ]

    return FailureSet(
        threshold=threshold,
        false_non_matches=rows(fnm, "false non-match"),
        false_matches=rows(fm, "false match"),
        n_false_non_matches=int(fnm.size),
        n_false_matches=int(fm.size),
        n_genuine=int(genuine.sum()),
        n_impostor=int(impostor.sum()),
    )


# ----------------------------------------------------------------------------- drawing


def _font(px: int) -> Any:
    """DejaVu Sans from matplotlib's data (a dependency): the same glyphs on every machine."""
    from matplotlib import get_data_path
    from PIL import ImageFont

    return ImageFont.truetype(str(Path(get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), px)


def _to_height(rgb: np.ndarray, height: int) -> np.ndarray:
    """``rgb`` scaled to ``height`` rows, keeping its aspect ratio."""
    import cv2

    h, w = rgb.shape[:2]
    width = max(1, round(w * height / h))
    interp = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(rgb), (width, height), interpolation=interp)


def placeholder(reason: str, height: int = THUMB_HEIGHT) -> np.ndarray:
    """A grey square tile with ``reason`` written on it (an image that cannot be prepared)."""
    from PIL import Image, ImageDraw

    tile = Image.new("RGB", (height, height), (200, 200, 200))
    draw = ImageDraw.Draw(tile)
    font = _font(_TEXT_PX - 2)
    words, lines, line = reason.split(), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) > height - 8 and line:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    for k, text in enumerate(lines[: height // (_TEXT_PX + 1)]):
        draw.text((4, 4 + k * (_TEXT_PX + 1)), text, fill=(60, 60, 60), font=font)
    return np.asarray(tile)


def side_by_side(
    a: np.ndarray, b: np.ndarray, lines: Sequence[str], height: int = THUMB_HEIGHT
) -> np.ndarray:
    """Two RGB images at ``height`` rows next to each other, ``lines`` of text under them."""
    from PIL import Image, ImageDraw

    left, right = _to_height(a, height), _to_height(b, height)
    font = _font(_TEXT_PX)
    width = left.shape[1] + _GAP + right.shape[1]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = max(width, *(int(probe.textlength(t, font=font)) + 8 for t in lines))
    rows = max(_TEXT_ROWS, len(lines))
    canvas = Image.new("RGB", (width, height + 6 + rows * (_TEXT_PX + 4)), (255, 255, 255))
    x0 = (width - (left.shape[1] + _GAP + right.shape[1])) // 2
    canvas.paste(Image.fromarray(left), (x0, 0))
    canvas.paste(Image.fromarray(right), (x0 + left.shape[1] + _GAP, 0))
    draw = ImageDraw.Draw(canvas)
    for k, text in enumerate(lines):
        tw = draw.textlength(text, font=font)
        draw.text(((width - tw) / 2, height + 4 + k * (_TEXT_PX + 4)), text, (0, 0, 0), font=font)
    return np.asarray(canvas)


def png_bytes(rgb: np.ndarray) -> bytes:
    """``rgb`` as PNG bytes (no metadata, so the same pixels give the same bytes)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(
        buf, format="PNG", optimize=True
    )
    return buf.getvalue()


def caption_lines(failure: Failure, threshold: Threshold, distance: str) -> list[str]:
    """The text under a thumbnail: score against threshold in the measure's units (a cosine
    similarity, or a distance: score = -distance), and the pair's kind."""
    missed = failure.kind == "false non-match"
    if distance == "cosine":
        rel = "<" if missed else "≥"
        first = f"cosine {failure.score:.4f} {rel} threshold {threshold.value:.4f}"
    else:
        rel = ">" if missed else "≤"
        first = f"{distance} {-failure.score:.4f} {rel} threshold {-threshold.value:.4f}"
    kind = failure.pair_type + (f", {failure.colour}" if failure.colour else "")
    return [first, f"pair {failure.pair_id}: {kind}"]


# ----------------------------------------------------------------------------- files


def load_scores(run_dir: str | Path) -> dict[str, list[Any]]:
    """A run folder's ``scores.parquet`` as a dict of column lists."""
    from mfrbench.evaluate.scores import read_scores

    return read_scores(Path(run_dir) / "scores.parquet").to_pydict()


def load_run_protocol(report: Mapping[str, Any], protocol: str | Path | None = None) -> Protocol:
    """The protocol a run was made with: ``protocol``, else the file named in its report;
    UserError unless its digest is the run's."""
    from mfrbench.protocol import load_protocol

    recorded = report.get("protocol") or {}
    path = Path(protocol) if protocol is not None else Path(str(recorded.get("file", "")))
    if protocol is None and not path.is_file():
        raise UserError(
            f"the run's protocol file {path} is not there any more; pass it with --protocol"
        )
    proto = load_protocol(path)
    if proto["digest"] != recorded.get("digest"):
        raise UserError(
            f"{path} is not the protocol of this run (digest {proto['digest'][:12]}, "
            f"run: {str(recorded.get('digest'))[:12]})"
        )
    return proto


def run_preprocess(report: Mapping[str, Any]) -> Any:
    """The run's recorded ``models.base.Preprocess`` (how its images were prepared)."""
    from mfrbench.models.base import Preprocess

    pre = dict((report.get("model") or {}).get("preprocess") or {})
    if "crop" not in pre:
        raise UserError("the run's report.json does not record the model's preprocessing")
    size = pre.get("size")
    return Preprocess(
        size=tuple(size) if size else None,
        color=pre.get("color", "rgb"),
        mean=tuple(pre.get("mean", (0.0,))),
        std=tuple(pre.get("std", (1.0,))),
        crop=pre["crop"],
        landmarks=pre.get("landmarks", "source"),
    )


def failure_thumbnails(
    failures: Sequence[Failure],
    protocol: Mapping[str, Any],
    root: str | Path,
    preprocess: Any,
    threshold: Threshold,
    distance: str,
    height: int = THUMB_HEIGHT,
) -> dict[int, bytes]:
    """pair_id -> PNG of its two prepared images side by side, score and threshold below."""
    from mfrbench.evaluate.prepare import prepare

    images = {img["id"]: img for img in protocol["images"]}
    root = Path(root)
    seen: dict[str, np.ndarray] = {}

    def crop(image_id: str) -> np.ndarray:
        if image_id not in seen:
            ref = images.get(image_id)
            try:
                if ref is None:
                    raise ImageError("missing", f"{image_id} is not in the protocol")
                seen[image_id] = prepare(ref, root, preprocess)[0]
            except ImageError as err:
                seen[image_id] = placeholder(f"{err.status}: {err.reason}", height)
        return seen[image_id]

    return {
        f.pair_id: png_bytes(
            side_by_side(crop(f.a), crop(f.b), caption_lines(f, threshold, distance), height)
        )
        for f in failures
    }


def run_failures(
    run_dir: str | Path,
    root: str | Path,
    *,
    n: int = 8,
    at: str = "eer",
    protocol: str | Path | None = None,
    report: Mapping[str, Any] | None = None,
) -> FailureSet:
    """Select a run's worst failures at ``at`` (:func:`run_threshold`) and draw them."""
    from mfrbench.evaluate.runner import load_run

    report = report if report is not None else load_run(run_dir)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"image root not found: {root}")
    chosen = select_failures(load_scores(run_dir), run_threshold(report, at), n)
    pairs = chosen.false_non_matches + chosen.false_matches
    if pairs:
        chosen.thumbnails = failure_thumbnails(
            pairs,
            load_run_protocol(report, protocol),
            root,
            run_preprocess(report),
            chosen.threshold,
            str(report.get("distance", "cosine")),
        )
    return chosen


__all__ = [
    "Failure",
    "FailureSet",
    "Threshold",
    "caption_lines",
    "failure_thumbnails",
    "load_run_protocol",
    "load_scores",
    "placeholder",
    "png_bytes",
    "run_failures",
    "run_preprocess",
    "run_threshold",
    "select_failures",
    "side_by_side",
]
