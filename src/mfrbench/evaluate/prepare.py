"""The image a plugin sees: one protocol ImageRef rendered as its ``preprocess.crop`` asks.

Every crop starts from the same checked source: the file's bytes must hash to the ImageRef's
``src_sha256`` (else ImageError ``missing``/``changed``), they are decoded as
``protocol.render_image`` decodes them, and a masked variant gets its frozen polygon drawn in
its frozen colour. Then, per crop (see ``models.base.CROPS``):

- ``frame``: the whole masked frame, plus ``face_box`` as a hint for models that align
  themselves (dlib). With ``preprocess.size`` set the frame is fitted into that size without
  distortion (grown to its aspect around the centre, zero padding) and the box moved with it.
- ``face``: ``roi_box("none", face_box)`` (the face box made square), resized to ``size``.
- ``upper-half``: ``roi_box("upper-half", face_box)``: the top half of that square.
- ``eye-band``: only when the protocol's own ROI is an eye band (it needs the landmarks, which a
  protocol does not keep); then it is the protocol crop.
- ``protocol``: exactly ``protocol.render_image`` (``roi_box`` / ``out_wh``), then fitted into
  ``size`` without distortion when the model sets one that differs.

Real images (variant ``real``) are the decoded source whatever the crop, fitted into ``size``
when set, with no box. With ``size`` None a crop keeps its native size.

Colour order and normalisation are the plugin's business: this module always returns RGB
uint8 (the project-wide convention), and ``models.base.to_tensor`` converts to ``bgr``/``gray``
and normalises. Resizing to ``size`` happens here so every plugin gets the same pixels.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mfrbench.errors import ImageError, UserError
from mfrbench.vision.roi import crop_resize, fit_aspect, roi_box

#: Bumped whenever the pixels this module produces for a given input change (part of the
#: embedding cache's image key).
PREPARE_VERSION = 1

Box = tuple[int, int, int, int]
_KINDS_BY_DIVISOR = {1: "none", 2: "upper-half", 3: "eye-band"}


def protocol_roi_kind(image: Mapping[str, Any]) -> str | None:
    """The ROI kind a synthetic image's ``out_wh`` implies: none, upper-half, eye-band or None.

    ``vision.roi.output_size`` makes the height ``width // 1, 2 or 3``; anything else (or a
    real image) is None.
    """
    wh = image.get("out_wh")
    if not wh:
        return None
    w, h = int(wh[0]), int(wh[1])
    for divisor, kind in _KINDS_BY_DIVISOR.items():
        if w // divisor == h:
            return kind
    return None


def check_crop(images: list[Mapping[str, Any]], crop: str) -> None:
    """UserError when a protocol cannot give a model the crop it asks for (eye-band only)."""
    if crop != "eye-band":
        return
    kinds = {protocol_roi_kind(img) for img in images if img["synthetic"]}
    if kinds - {"eye-band"}:
        found = ", ".join(sorted(str(k) for k in kinds))
        raise UserError(
            f"the model wants eye-band crops, but this protocol's ROI is {found}; an eye band "
            "needs landmarks a protocol does not keep: use a protocol synthesised with --roi "
            "eye-band"
        )


def load_source(image: Mapping[str, Any], root: Path) -> np.ndarray:
    """Read, hash-check and decode an ImageRef's source file as (H, W, 3) uint8 RGB.

    ImageError ``missing`` (unreadable), ``changed`` (sha256 differs) or a decode status.
    """
    from mfrbench.vision.decode import decode_image

    rel = image["src_path"]
    path = Path(root).joinpath(*rel.split("/"))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError("missing", f"cannot read {rel}: {exc.strerror or exc}") from None
    sha = hashlib.sha256(data).hexdigest()
    if sha != image["src_sha256"]:
        raise ImageError("changed", f"{rel}: sha256 {sha} != recorded {image['src_sha256']}")
    return decode_image(data, min_side=1).rgb


def masked_frame(image: Mapping[str, Any], rgb: np.ndarray) -> np.ndarray:
    """The source frame with the ImageRef's mask polygon filled (unchanged when unmasked)."""
    from mfrbench.vision.mask import draw_mask

    polygon = image.get("mask_polygon")
    if polygon is None:
        return rgb
    points = np.asarray(polygon, dtype=np.int32).reshape(-1, 2)
    return draw_mask(rgb, points, tuple(image["color_rgb"]))


def fit_into(
    rgb: np.ndarray, size: tuple[int, int], box: Box | None = None
) -> tuple[np.ndarray, Box | None]:
    """Resize ``rgb`` into ``size`` (w, h) without distortion; move ``box`` along.

    The whole image is grown to the target aspect around its centre (zero padding, as ROI
    crops are) and resized with INTER_AREA; an image already at ``size`` is returned as is.
    """
    h, w = rgb.shape[:2]
    tw, th = int(size[0]), int(size[1])
    if (w, h) == (tw, th):
        return rgb, box
    frame = fit_aspect((0, 0, w, h), tw / th)
    out = crop_resize(rgb, frame, (tw, th))
    if box is None:
        return out, None
    sx = tw / (frame[2] - frame[0])
    sy = th / (frame[3] - frame[1])
    moved = (
        round((box[0] - frame[0]) * sx),
        round((box[1] - frame[1]) * sy),
        round((box[2] - frame[0]) * sx),
        round((box[3] - frame[1]) * sy),
    )
    return out, moved


def _native(box: Box) -> tuple[int, int]:
    return box[2] - box[0], box[3] - box[1]


def prepare(image: Mapping[str, Any], root: Path, preprocess: Any) -> tuple[np.ndarray, Box | None]:
    """The (RGB uint8 image, face box or None) a plugin gets for one ImageRef (module doc).

    ``preprocess`` is a ``models.base.Preprocess`` (only ``crop`` and ``size`` are used here).
    Per-image failures raise ImageError; an impossible crop raises UserError.
    """
    rgb = load_source(image, root)
    size = preprocess.size
    if not image["synthetic"]:
        return (fit_into(rgb, size)[0] if size else rgb), None
    frame = masked_frame(image, rgb)
    crop = preprocess.crop
    wh = (frame.shape[1], frame.shape[0])
    if crop == "frame":
        box = tuple(int(v) for v in image["face_box"])
        return fit_into(frame, size, box) if size else (frame, box)
    if crop in ("face", "upper-half"):
        kind = "none" if crop == "face" else "upper-half"
        box = roi_box(kind, tuple(image["face_box"]), None, wh)
        return crop_resize(frame, box, size or _native(box)), None
    if crop == "eye-band" and protocol_roi_kind(image) != "eye-band":
        check_crop([image], crop)
    if crop not in ("eye-band", "protocol"):
        raise UserError(f"unknown crop {crop!r}")
    out = crop_resize(frame, tuple(image["roi_box"]), tuple(image["out_wh"]))
    return (fit_into(out, size)[0] if size else out), None


def _relevant(image: Mapping[str, Any], crop: str) -> dict[str, Any]:
    """The ImageRef fields the prepared pixels (and box) depend on, for this crop."""
    keys = ["src_sha256"]
    if image["synthetic"]:
        keys += ["mask_polygon", "color_rgb"]
        keys += ["face_box"] if crop in ("frame", "face", "upper-half") else ["roi_box", "out_wh"]
    return {k: image[k] for k in keys}


def content_key(image: Mapping[str, Any], preprocess: Any) -> str:
    """sha256 naming the prepared input: source hash + the geometry the crop uses + crop/size.

    Two ImageRefs (in two protocols) with the same key give the same pixels, so they share one
    cached embedding; e.g. an unmasked image cropped as ``face`` ignores the protocol's ROI.
    """
    body = {
        "v": PREPARE_VERSION,
        "image": _relevant(image, preprocess.crop),
        "crop": preprocess.crop,
        "size": list(preprocess.size) if preprocess.size else None,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
