"""The image a plugin sees: one protocol ImageRef prepared as its ``Preprocess`` asks.

Every input starts from the same checked source, read by ``protocol.load_source`` (the reader
``protocol.render_image`` uses): the file's bytes must hash to the ImageRef's ``src_sha256``
(else ImageError ``missing``/``changed``), then they are decoded, and a masked variant gets its
frozen polygon drawn in its frozen colour. The face comes from the protocol: box, detector box,
five points and 68 anchors found on the photo *before* masking (synthetic images) or on the real
photo when the protocol was made (``faces.detect_faces``). Then, per crop (``models.base.CROPS``):

- ``frame``: the whole (masked) frame, plus ``face_box`` as a hint. With ``size`` set the frame
  is fitted into that size without distortion and the box moved with it.
- ``face``: ``roi_box("none", face_box)`` (the face box made square), 1:1, at ``size``.
- ``upper-half``: the top half of that square, 2:1. ``eye-band``: ``roi_box("eye-band", ...)``
  from the frozen 68 anchors (brows to nose bridge), 3:1.
- ``protocol``: exactly ``protocol.render_image`` (``roi_box`` / ``out_wh``) for synthetic
  images, the ``face`` crop for real ones; fitted into ``size`` when the model sets one.
- ``arcface-112``: the five points similarity-aligned onto insightface's template
  (``vision.align.arcface_crop``), at ``size`` (default 112x112).
- ``facenet-160``: facenet-pytorch's MTCNN crop of the detector box (``vision.align``), at
  ``size`` (default 160x160; a non-square size uses its width).
- ``dlib-chip``: dlib's 150x150 chip (``get_face_chip``, padding 0.25) by dlib's own pipeline:
  HOG around the frozen face box (else that box), then dlib's 5-point predictor. The ResNet was
  trained on exactly these chips; chips from the frozen 68 anchors (fitted in MTCNN's box) or
  from their 5-point subset cost 0.8-1.1 points on the unmasked LFW control
  (docs/benchmarks.md), so the frozen box is the anchor and dlib's predictor the aligner.

Where an aligned crop's points come from on a synthetic image is ``preprocess.landmarks``:

- ``source`` (default): found on the photo before masking (the points frozen in the protocol;
  for ``dlib-chip``, dlib's pipeline run on the unmasked source photo, the chip then cut from
  the masked one): the convention of synthetic masked benchmarks; deterministic.
- ``detect``: re-found on the rendered (masked) image, as a deployed system sees it.
  ``arcface-112``/``facenet-160``: the synth cascade (MTCNN first) on the frame, the detection
  whose centre lies in the frozen face box and overlaps it most (its MTCNN points, or the five
  points of dlib's 68 landmarks refitted on the masked frame for a detector without points).
  ``dlib-chip``: its pipeline runs on the masked frame instead of the photo before masking.
  Where the detector finds no face there, the frozen box is used (the points refitted inside
  it), so a pair is never lost to re-detection.

A real image's points were found on that very photo, so both sources are the same there.
A real image whose face the protocol records as ``no_face`` (or that was never detected) gets
the fallback box :func:`vision.align.inset_box` (the frame inset 10% on every side) as its face
box; crops that need points (``arcface-112``, ``eye-band``) then fall back to the square
``face`` crop of that box at the model's size, and ``dlib-chip`` to dlib's 5-point predictor
inside it. :func:`fallback_count` counts those images, and the report states it.

No crop is ever stretched. Each crop has its own aspect (:func:`crop_aspect`); when the
model's ``size`` has another (an upper half into a square input, a 2:1 protocol ROI into
112x112), :func:`fit_into` pads it with zero borders around its centre to the size's aspect
and scales it once, a letterbox. A size with the crop's aspect to within one pixel
(:func:`same_aspect`) only scales it. ``arcface-112`` is warped straight to ``size`` (a
similarity transform, so faces keep their shape; a non-square size scales the template per
axis). :func:`aspect_record` says which happened for a run's images (report.json
``model.preprocess.aspect``: ``kept``, ``padded``, ``padded where needed`` for frames, or
``native`` when the model takes each crop at its own size).

Colour order and normalisation are the plugin's business: this module always returns RGB
uint8 (the project-wide convention), and ``models.base.to_tensor`` converts and normalises.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mfrbench.digest import ascii_json, sha256_text
from mfrbench.errors import ImageError, UserError
from mfrbench.protocol import load_source as load_source  # the one checked source reader
from mfrbench.vision import align
from mfrbench.vision.roi import crop_resize, fit_aspect, roi_box

#: Bumped whenever the pixels this module produces for a given input change (part of the
#: embedding cache's image key). A change confined to some preprocessings adds a field to
#: those keys instead, so every other cached embedding stays valid: padding instead of
#: stretching (``face``/``upper-half``/``eye-band``/``dlib-chip`` into a size of another
#: aspect) adds ``aspect``.
PREPARE_VERSION = 3

Box = tuple[int, int, int, int]
#: The frozen-face fields an aligned crop may read (all go into its content key).
_FACE_FIELDS = ("face_status", "face_box", "det_box", "points5", "landmarks68")
#: dlib-chip's "detect" mode: the HOG search region is the hint box grown by this share.
SEARCH_MARGIN = 0.25
#: facenet-pytorch MTCNN's default margin (output pixels).
FACENET_MARGIN = 0
#: The w:h of the crops whose aspect does not depend on the image.
NOMINAL_ASPECT = {
    "face": (1, 1),
    "upper-half": (2, 1),
    "eye-band": (3, 1),
    "facenet-160": (1, 1),
    "dlib-chip": (1, 1),
}
#: Crops that PREPARE_VERSION 3 stretched into a size of another aspect and now pads: their
#: content key names the padding when it applies, so only those inputs leave the cache.
_PADDED_SINCE_V3 = ("face", "upper-half", "eye-band", "dlib-chip")


def masked_frame(image: Mapping[str, Any], rgb: np.ndarray) -> np.ndarray:
    """The source frame with the ImageRef's mask on it (unchanged when unmasked).

    A ``mask-mix`` image's mask is redrawn from its ``mask_style`` on the frozen landmarks, as
    ``protocol.render_image`` and synth --masks draw it; others get their polygon filled.
    """
    from mfrbench.vision.mask import draw_mask

    if "mask_style" in image:
        from mfrbench.protocol.render import redraw_recorded

        return redraw_recorded(image, rgb)
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


def same_aspect(aspect: tuple[int, int], size: tuple[int, int]) -> bool:
    """Whether ``size`` (w, h) has the w:h ``aspect`` to within one pixel (then it is scaled
    only); otherwise a crop of that aspect is padded into ``size`` (:func:`fit_into`)."""
    a, b = int(aspect[0]), int(aspect[1])
    w, h = int(size[0]), int(size[1])
    return abs(w * b - h * a) < max(a, b)


def _ratio(wh: Sequence[int]) -> tuple[int, int]:
    w, h = int(wh[0]), int(wh[1])
    g = math.gcd(w, h) or 1
    return w // g, h // g


def crop_aspect(image: Mapping[str, Any] | None, preprocess: Any) -> tuple[int, int] | None:
    """The w:h (reduced) of the crop :func:`prepare` makes of ``image`` before it meets
    ``preprocess.size``; None for ``frame`` (the source frame's own) or when it depends on an
    image not given (``image`` None: ``protocol``, and the no-face fallbacks)."""
    crop = preprocess.crop
    if crop == "frame":
        return None
    if crop in ("arcface-112", "eye-band", "protocol"):
        if image is None:
            return _ratio(preprocess.size or (112, 112)) if crop == "arcface-112" else None
        if crop == "protocol" and image["synthetic"]:
            return _ratio(image["out_wh"])
        if not has_face(image) and not image["synthetic"]:
            return (1, 1)  # the square fallback crop (module doc)
        if crop == "arcface-112":
            return _ratio(preprocess.size or (112, 112))
        if crop == "protocol":
            return (1, 1)  # a real image's protocol crop is its face crop
    return NOMINAL_ASPECT[crop]


def aspect_record(preprocess: Any, images: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    """How the crops of ``images`` met the model's input: report.json ``model.preprocess``'s
    ``aspect`` and ``crop_aspect`` (the distinct w:h of the crops, ``frame`` for frames).

    aspect: ``native`` (no size: each crop at its own size, the model scales it), ``kept``
    (every crop has the size's aspect; scaled only), ``padded`` (crops of another aspect got
    zero borders to the size's aspect: letterboxed, never stretched), ``padded where needed``
    (frames, or crops whose aspect depends on images not given).
    """
    size = preprocess.size
    if images is None:
        found = {crop_aspect(None, preprocess)}
    else:
        found = {crop_aspect(im, preprocess) for im in images}
    known = sorted(a for a in found if a is not None)
    shown = [f"{a}:{b}" for a, b in known] + (["frame"] if preprocess.crop == "frame" else [])
    if size is None:
        how = "native"
    elif None in found:
        how = "padded where needed"
    elif all(same_aspect(a, size) for a in known):
        how = "kept"
    else:
        how = "padded"
    return {"aspect": how, "crop_aspect": shown}


def _pads_changed(preprocess: Any) -> bool:
    """This preprocess pads crops that PREPARE_VERSION 3 stretched (see _PADDED_SINCE_V3)."""
    crop, size = preprocess.crop, preprocess.size
    return (
        crop in _PADDED_SINCE_V3
        and size is not None
        and not same_aspect(NOMINAL_ASPECT[crop], size)
    )


def _sized(
    frame: np.ndarray, box: Box, size: tuple[int, int] | None, aspect: tuple[int, int]
) -> np.ndarray:
    """The ``box`` crop (of w:h ``aspect``) at ``size``: scaled, or padded when the aspects
    differ (one resampling either way); at its own size when ``size`` is None."""
    if size is None:
        return crop_resize(frame, box, _native(box))
    if same_aspect(aspect, size):
        return crop_resize(frame, box, size)
    return fit_into(crop_resize(frame, box, _native(box)), size)[0]


def has_face(image: Mapping[str, Any]) -> bool:
    """The protocol froze a face for this image (every synthetic image has one)."""
    return image.get("face_status") == "ok"


def uses_fallback(image: Mapping[str, Any]) -> bool:
    """A real image prepared from the no-face fallback box (see the module doc)."""
    return not image["synthetic"] and not has_face(image)


def fallback_count(images: Iterable[Mapping[str, Any]]) -> int:
    """How many distinct source files are prepared from the no-face fallback box."""
    return len({im["src_path"] for im in images if uses_fallback(im)})


def _face_box(image: Mapping[str, Any], wh: tuple[int, int]) -> Box:
    if has_face(image):
        return tuple(int(v) for v in image["face_box"])  # type: ignore[return-value]
    return align.inset_box(wh)


def _native(box: Box) -> tuple[int, int]:
    return box[2] - box[0], box[3] - box[1]


def _square_face(frame: np.ndarray, fbox: Box, size: tuple[int, int] | None) -> np.ndarray:
    wh = (frame.shape[1], frame.shape[0])
    box = roi_box("none", fbox, None, wh)
    if size is None:
        return crop_resize(frame, box, _native(box))
    return fit_into(crop_resize(frame, box, _native(box)), size)[0]


# ----------------------------------------------------------------------------- detect mode


@functools.lru_cache(maxsize=1)
def _cascade() -> Any:
    """synth's default cascade (mtcnn -> dlib -> haar), built once per process."""
    from mfrbench.vision.detect import Cascade, cascade_names

    return Cascade(cascade_names("mtcnn", True))


@functools.lru_cache(maxsize=1)
def _dlib68() -> Any:
    from mfrbench.vision.landmarks import Dlib68

    return Dlib68()


@functools.lru_cache(maxsize=1)
def _dlib_models() -> tuple[Any, Any]:
    """dlib's HOG detector and 5-point predictor (dlib-resnet's own alignment pipeline)."""
    import dlib

    from mfrbench.models.dlib_resnet import model_files
    from mfrbench.vision.detect import DlibHog

    return DlibHog(), dlib.shape_predictor(str(model_files()[1]))


def search_region(hint: Box, image_wh: tuple[int, int]) -> Box:
    """The hint box grown by SEARCH_MARGIN on every side, clipped to the image."""
    x1, y1, x2, y2 = hint
    mx, my = (x2 - x1) * SEARCH_MARGIN, (y2 - y1) * SEARCH_MARGIN
    w, h = image_wh
    return (
        max(int(np.floor(x1 - mx)), 0),
        max(int(np.floor(y1 - my)), 0),
        min(int(np.ceil(x2 + mx)), w),
        min(int(np.ceil(y2 + my)), h),
    )


def detected_face(frame: np.ndarray, hint: Box) -> tuple[tuple[float, ...], np.ndarray]:
    """(detector box, five points) re-found on ``frame`` near ``hint`` (``detect`` mode).

    The cascade's detection whose centre lies inside ``hint`` and overlaps it most; its MTCNN
    points, or the five points of dlib's 68 landmarks fitted in its box. No such detection:
    the hint itself, with the 68 landmarks fitted inside it.
    """
    from mfrbench.vision.anchors import to_canonical68

    faces = _cascade().detect(frame)
    best = align.pick_detection(hint, [f.box for f in faces])
    if best is not None and faces[best].landmarks5 is not None:
        face = faces[best]
        return tuple(face.box), np.asarray(face.landmarks5, dtype=np.float64)
    box = tuple(faces[best].box) if best is not None else tuple(float(v) for v in hint)
    canon = to_canonical68(_dlib68()(frame, box), "dlib")
    return box, align.points5_from_landmarks68(canon)


def dlib_pipeline_chip(
    frame: np.ndarray, hint: Box, cut_from: np.ndarray | None = None
) -> np.ndarray:
    """dlib's own alignment found on ``frame``: HOG around ``hint`` (else ``hint``), then the
    5-point predictor; the chip is cut from ``cut_from`` (default ``frame``) with that shape."""
    import dlib

    hog, shape5 = _dlib_models()
    h, w = frame.shape[:2]
    rx1, ry1, rx2, ry2 = search_region(hint, (w, h))
    rect = hint
    if rx2 - rx1 >= 2 and ry2 - ry1 >= 2:
        region = np.ascontiguousarray(frame[ry1:ry2, rx1:rx2])
        found = [
            (f.box[0] + rx1, f.box[1] + ry1, f.box[2] + rx1, f.box[3] + ry1)
            for f in hog.detect(region)
        ]
        best = align.pick_detection(hint, found)
        if best is not None:
            rect = tuple(round(v) for v in found[best])
    x1, y1, x2, y2 = (int(v) for v in rect)
    shape = shape5(np.ascontiguousarray(frame), dlib.rectangle(x1, y1, x2 - 1, y2 - 1))
    return align.dlib_chip(frame if cut_from is None else cut_from, shape)


# ----------------------------------------------------------------------------- prepare


def _aligned(
    image: Mapping[str, Any], rgb: np.ndarray, frame: np.ndarray, preprocess: Any
) -> np.ndarray:
    """One of the ALIGNED_CROPS from the source photo ``rgb`` and its masked ``frame``."""
    crop, size = preprocess.crop, preprocess.size
    wh = (frame.shape[1], frame.shape[0])
    fbox = _face_box(image, wh)
    detect = preprocess.landmarks == "detect" and image["synthetic"]
    if crop == "dlib-chip":
        # dlib's own pipeline, on the photo before masking (source) or the masked one (detect)
        chip = dlib_pipeline_chip(frame if detect else rgb, fbox, cut_from=frame)
        # a square size: the model scales the 150x150 chip itself; another: padded, not stretched
        return chip if size is None or same_aspect((1, 1), size) else fit_into(chip, size)[0]
    if detect:
        det_box, points5 = detected_face(frame, fbox)
    elif has_face(image):
        det_box, points5 = image["det_box"], np.asarray(image["points5"], dtype=np.float64)
    else:
        det_box, points5 = fbox, None
    if crop == "arcface-112":
        if points5 is None:
            return _square_face(frame, fbox, size or (112, 112))
        return align.arcface_crop(frame, points5, size or (112, 112))
    side = size[0] if size else 160
    out = align.facenet_crop(frame, det_box, side, FACENET_MARGIN)
    return out if size is None or size == (side, side) else fit_into(out, size)[0]


def prepare(image: Mapping[str, Any], root: Path, preprocess: Any) -> tuple[np.ndarray, Box | None]:
    """The (RGB uint8 image, face box or None) a plugin gets for one ImageRef (module doc).

    ``preprocess`` is a ``models.base.Preprocess`` (``crop``, ``size``, ``landmarks``).
    Per-image failures raise ImageError; an unknown crop raises UserError.
    """
    from mfrbench.models.base import ALIGNED_CROPS

    rgb = load_source(image, root)
    frame = masked_frame(image, rgb) if image["synthetic"] else rgb
    crop, size = preprocess.crop, preprocess.size
    wh = (frame.shape[1], frame.shape[0])
    if crop in ALIGNED_CROPS:
        try:
            return _aligned(image, rgb, frame, preprocess), None
        except ValueError as exc:  # degenerate points or boxes
            raise ImageError("bad_alignment", str(exc)) from None
    fbox = _face_box(image, wh)
    if crop == "frame":
        box = fbox if has_face(image) else None
        return fit_into(frame, size, box) if size else (frame, box)
    if crop in ("face", "upper-half"):
        kind = "none" if crop == "face" else "upper-half"
        box = roi_box(kind, fbox, None, wh)
        return _sized(frame, box, size, NOMINAL_ASPECT[crop]), None
    if crop == "eye-band":
        if not has_face(image):
            return _square_face(frame, fbox, size), None
        canon = np.asarray(image["landmarks68"], dtype=np.float64)
        box = roi_box("eye-band", fbox, canon, wh)
        return _sized(frame, box, size, NOMINAL_ASPECT[crop]), None
    if crop != "protocol":
        raise UserError(f"unknown crop {crop!r}")
    if not image["synthetic"]:
        return _square_face(frame, fbox, size), None
    out = crop_resize(frame, tuple(image["roi_box"]), tuple(image["out_wh"]))
    return (fit_into(out, size)[0] if size else out), None


def _relevant(image: Mapping[str, Any], preprocess: Any) -> dict[str, Any]:
    """The ImageRef fields the prepared pixels (and box) depend on, for this preprocess."""
    from mfrbench.models.base import ALIGNED_CROPS

    crop = preprocess.crop
    keys = ["src_sha256", "synthetic"]
    if image["synthetic"]:
        keys += ["mask_polygon", "color_rgb"]
        if "mask_style" in image:  # a drawn mask: its whole record decides the pixels
            keys.append("mask_style")
    if crop in ALIGNED_CROPS or crop == "eye-band":
        keys += list(_FACE_FIELDS)
    elif crop == "protocol" and image["synthetic"]:
        keys += ["roi_box", "out_wh"]
    else:
        keys += ["face_status", "face_box"]
    return {k: image.get(k) for k in keys}


def content_key(image: Mapping[str, Any], preprocess: Any) -> str:
    """sha256 naming the prepared input: source hash + the geometry the crop uses + crop/size.

    Two ImageRefs (in two protocols) with the same key give the same pixels, so they share one
    cached embedding; e.g. an unmasked image cropped as ``face`` ignores the protocol's ROI.
    """
    from mfrbench.models.base import ALIGNED_CROPS

    body = {
        "v": PREPARE_VERSION,
        "image": _relevant(image, preprocess),
        "crop": preprocess.crop,
        "size": list(preprocess.size) if preprocess.size else None,
    }
    if preprocess.crop in ALIGNED_CROPS and image["synthetic"]:
        body["landmarks"] = preprocess.landmarks
    if _pads_changed(preprocess):  # pixels that version 3 stretched: their own keys
        body["aspect"] = "padded"
    # ascii_json (escaped, NaN written) is the variant every cached embedding is keyed by.
    return sha256_text(ascii_json(body))
