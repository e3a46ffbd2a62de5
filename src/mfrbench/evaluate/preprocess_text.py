"""report.json's ``model.preprocess`` in one line a reader can check a model against.

    >>> preprocess_text({"size": [112, 112], "color": "rgb", "mean": [0.5], "std": [0.5],
    ...                  "crop": "protocol", "landmarks": "source", "aspect": "padded",
    ...                  "crop_aspect": ["2:1"]})
    "RGB; (x - 127.5) / 127.5; crop protocol (the protocol's own ROI render), not aligned; \
input 112x112; 2:1 crop padded into 112x112 with zero borders (letterbox, no stretch)"

Colour order, normalisation, crop and what it means, alignment and where its points come
from, input size, and what happened to the aspect (``evaluate.prepare.aspect_record``). A
record without some field (an older report, a score file's) says so instead of guessing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mfrbench.models.base import ALIGNED_CROPS

#: What each crop is (``models.base.CROPS``; evaluate.prepare makes them).
CROP_TEXT = {
    "frame": "the whole masked frame, face box as a hint",
    "face": "the face box made square",
    "upper-half": "the top half of the square face box",
    "eye-band": "brows to nose bridge from the 68 landmarks, 3:1",
    "protocol": "the protocol's own ROI render",
    "arcface-112": "five points similarity-aligned onto insightface's template",
    "facenet-160": "facenet-pytorch's MTCNN box, resized",
    "dlib-chip": "dlib's 150x150 chip: HOG box, then its 5-point predictor",
}
_COLOR = {"rgb": "RGB", "bgr": "BGR", "gray": "grey (ITU-R 601 luma)"}
_LANDMARKS = {
    "source": "alignment from the photo before masking",
    "detect": "alignment re-detected on the masked image",
}


def _num(value: float) -> str:
    return f"{round(float(value), 5):.10g}"


def _values(values: Sequence[float]) -> str:
    shown = [_num(v) for v in values]
    return shown[0] if len(set(shown)) == 1 else "[" + ", ".join(shown) + "]"


def _on_255(values: Sequence[float]) -> bool:
    """Whether 255 * each value is a whole or half number (then 0-255 reads better)."""
    return all(abs(v * 510 - round(v * 510)) < 1e-6 for v in values)


def normalisation_text(mean: Sequence[float], std: Sequence[float]) -> str:
    """The normalisation ``(x / 255 - mean) / std`` as a reader knows it (x: 0-255 pixels)."""
    m, s = [float(v) for v in mean], [float(v) for v in std]
    if all(v == 0 for v in m) and all(v == 1 for v in s):
        return "no mean/std"
    if all(abs(v * 255 - 1) < 1e-9 for v in s):  # unscaled pixel values minus a mean
        return f"x - {_values([v * 255 for v in m])} (0-255, not scaled)"
    if _on_255(m) and _on_255(s) and not all(v == 0 for v in m):
        return f"(x - {_values([v * 255 for v in m])}) / {_values([v * 255 for v in s])}"
    return f"(x/255 - {_values(m)}) / {_values(s)}"


def _crops(pre: Mapping[str, Any]) -> str:
    return ", ".join(str(a) for a in pre.get("crop_aspect") or []) or "crop"


def _size_text(pre: Mapping[str, Any]) -> str:
    size = pre.get("size")
    if not size:
        shape = f"each {_crops(pre)} crop" if pre.get("crop_aspect") else "each crop"
        return f"native size ({shape} as made; the model scales it)"
    return f"input {int(size[0])}x{int(size[1])}"


def _aspect_text(pre: Mapping[str, Any]) -> str | None:
    how = pre.get("aspect")
    crops = _crops(pre)
    size = pre.get("size")
    into = f"{int(size[0])}x{int(size[1])}" if size else "the input"
    if how is None:
        return None if not size else "aspect handling not recorded"
    if how == "native":
        return None  # said by the size part
    if how == "kept":
        return f"aspect kept ({crops} crop, scaled only)"
    if how == "padded":
        return f"{crops} crop padded into {into} with zero borders (letterbox, no stretch)"
    if how == "padded where needed":
        return (
            f"{crops} padded into {into} with zero borders where its aspect differs "
            "(letterbox, no stretch)"
        )
    return f"aspect: {how}"


def preprocess_text(preprocess: Mapping[str, Any]) -> str:
    """One line for a report.json ``model.preprocess`` block (module doc)."""
    pre = dict(preprocess or {})
    crop = pre.get("crop")
    if crop not in CROP_TEXT:
        return f"preprocessing not recorded (crop {crop})" if crop else "preprocessing not recorded"
    parts = []
    color = pre.get("color")
    parts.append(_COLOR.get(str(color), str(color)) if color else "colour order not recorded")
    if "mean" in pre and "std" in pre:
        parts.append(normalisation_text(pre["mean"], pre["std"]))
    else:
        parts.append("normalisation not recorded")
    if crop in ALIGNED_CROPS:
        where = _LANDMARKS.get(str(pre.get("landmarks", "source")), str(pre.get("landmarks")))
        parts.append(f"crop {crop} ({CROP_TEXT[crop]}), {where}")
    else:
        parts.append(f"crop {crop} ({CROP_TEXT[crop]}), not aligned")
    parts.append(_size_text(pre))
    aspect = _aspect_text(pre)
    if aspect is not None:
        parts.append(aspect)
    return "; ".join(parts)
