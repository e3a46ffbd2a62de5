"""The embedding-model plugin interface: preprocessing contract, identity, cache key.

A plugin is a subclass of :class:`EmbeddingModel`. It declares what it expects (input size,
colour order, normalisation, crop) in a :class:`Preprocess`, and who it is (name, version,
weights digest, output-changing options) in a :class:`ModelIdentity`. The evaluator renders
each image as ``preprocess.crop`` asks, resizes it to ``preprocess.size`` and calls
:meth:`EmbeddingModel.embed` in batches; embeddings are cached under :func:`cache_key_of`.

Plugins are constructed as ``cls(**options)`` where the options come from
``--model-opt key=value`` (strings) or from Python (native values); :class:`Options` parses
and validates them, so an unknown or malformed option is a one-line :class:`UserError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfrbench.errors import UserError

# frame: the full source frame with the mask drawn (no crop), plus the face_box as a hint (for
#        models that detect and align themselves, like dlib's);
# face: the face_box made square around its centre (roi_box("none", ...));
# upper-half: the top half of that square;
# eye-band: only when the protocol's ROI is eye-band (it needs landmarks, so is not derivable);
# protocol: exactly the protocol's roi_box / out_wh render.
# Real (variant "real") images are the decoded source as is, whatever the crop (face_box None).
CROPS = ("frame", "face", "upper-half", "eye-band", "protocol")
COLORS = ("rgb", "bgr", "gray")
# cosine: cosine similarity; euclidean: L2 distance of raw embeddings;
# sql2: squared L2 distance of L2-normalised embeddings (the thesis's measure, = 2 - 2 cos).
DISTANCES = ("cosine", "euclidean", "sql2")

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Preprocess:
    """What a model expects as input; part of the embedding cache key.

    size: (w, h) of the model input, or None when the model resizes (or detects) itself.
    color: channel order of the tensor the model sees ("rgb", "bgr" or "gray").
    mean, std: per-channel normalisation applied to pixel / 255 (one value or one per channel).
    crop: which rendering of each image the model wants, one of :data:`CROPS`.
    """

    size: tuple[int, int] | None
    color: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop: str

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise UserError(f"unknown crop {self.crop!r}; choose one of: {', '.join(CROPS)}")
        if self.color not in COLORS:
            raise UserError(f"unknown colour order {self.color!r}; choose one of: rgb, bgr, gray")
        if self.size is not None:
            w, h = self.size
            if int(w) < 1 or int(h) < 1:
                raise UserError(f"input size must be positive, got {w}x{h}")
            object.__setattr__(self, "size", (int(w), int(h)))
        channels = 1 if self.color == "gray" else 3
        for what in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, what))
            if len(values) not in (1, channels):
                raise UserError(f"{what} needs 1 or {channels} values for {self.color}")
            object.__setattr__(self, what, values)
        if any(s <= 0 for s in self.std):
            raise UserError(f"std values must be positive, got {self.std}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples as lists) for reports and the cache key."""
        return _plain(asdict(self))


@dataclass(frozen=True)
class ModelIdentity:
    """Who produced an embedding: goes into the cache key and the report.

    weights_digest: sha256 of the weights file(s), or of a fitted basis, or "none".
    options: JSON-able option values that change the outputs (parsed, not raw strings).
    """

    name: str
    version: str
    weights_digest: str
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for reports and the cache key."""
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    """Tuples to lists, numpy scalars to Python, recursively; dict keys must be strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, NaN rejected: the same object always gives the same text."""
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def cache_key_of(identity: ModelIdentity, preprocess: Preprocess) -> str:
    """sha256 (hex) of the canonical JSON of a model's identity and preprocessing contract."""
    text = canonical_json({"identity": identity.to_dict(), "preprocess": preprocess.to_dict()})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingModel:
    """Base class of embedding plugins.

    Subclasses set ``name``, ``preprocess``, ``embedding_size``, ``default_distance`` (class or
    instance attributes), load their weights once in ``__init__(**options)``, and implement
    :meth:`identity` and :meth:`embed`. Models with ``needs_fit = True`` also implement
    :meth:`fit`, which the evaluator calls with training images only.
    """

    name: str
    preprocess: Preprocess
    embedding_size: int
    default_distance: str = "cosine"
    needs_fit: bool = False

    def identity(self) -> ModelIdentity:
        raise NotImplementedError(f"{type(self).__name__} must implement identity()")

    def embed(self, images: list[np.ndarray], boxes: list[Box | None]) -> np.ndarray:
        """Embed RGB uint8 images (rendered per ``preprocess.crop``, resized to ``size``).

        ``boxes`` gives the face box in each image's coordinates (frame crop) or None.
        Returns float32 (N, embedding_size).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement embed()")

    def fit(self, images: list[np.ndarray], boxes: list[Box | None]) -> None:
        """Fit on training images (only models with ``needs_fit``)."""
        raise TypeError(f"model {self.name!r} does not need fitting")

    @classmethod
    def check(cls, **options: Any) -> tuple[bool, str]:
        """Can this model run here? (ok, one line saying why not and how to fix it)."""
        return True, ""

    def cache_key(self) -> str:
        """Shorthand for ``cache_key_of(self.identity(), self.preprocess)``."""
        return cache_key_of(self.identity(), self.preprocess)


def validate_model(model: Any, where: str) -> EmbeddingModel:
    """Check that an object honours the plugin contract; UserError naming ``where`` if not."""
    if not isinstance(model, EmbeddingModel):
        raise UserError(f"{where} returned {type(model).__name__}, not an EmbeddingModel")
    for attr in ("name", "preprocess", "embedding_size", "default_distance"):
        if not hasattr(model, attr):
            raise UserError(f"{where}: model has no {attr!r} attribute")
    if not isinstance(model.preprocess, Preprocess):
        raise UserError(f"{where}: preprocess must be a Preprocess, got {type(model.preprocess)}")
    size = model.embedding_size
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise UserError(f"{where}: embedding_size must be a positive int, got {size!r}")
    if model.default_distance not in DISTANCES:
        raise UserError(
            f"{where}: default_distance {model.default_distance!r} is not one of "
            f"{', '.join(DISTANCES)}"
        )
    return model


def to_tensor(images: Sequence[np.ndarray], preprocess: Preprocess) -> np.ndarray:
    """Stack RGB uint8 images into a normalised float32 NCHW batch per ``preprocess``.

    Colour conversion (rgb/bgr/gray, ITU-R 601 luma for gray), then (x / 255 - mean) / std.
    Images whose size differs from ``preprocess.size`` are resized (``cv2.INTER_AREA`` when
    shrinking, linear when growing), so the function is also safe to call from a notebook.
    """
    import cv2

    if len(images) == 0:
        c = 1 if preprocess.color == "gray" else 3
        w, h = preprocess.size or (0, 0)
        return np.zeros((0, c, h, w), dtype=np.float32)
    batch = []
    for img in images:
        arr = np.asarray(img)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {arr.dtype} {arr.shape}")
        if preprocess.size is not None and (arr.shape[1], arr.shape[0]) != preprocess.size:
            shrink = arr.shape[1] > preprocess.size[0]
            interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            arr = cv2.resize(np.ascontiguousarray(arr), preprocess.size, interpolation=interp)
        if preprocess.color == "bgr":
            arr = arr[:, :, ::-1]
        elif preprocess.color == "gray":
            arr = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2GRAY)[:, :, None]
        batch.append(arr)
    shapes = {a.shape for a in batch}
    if len(shapes) != 1:
        raise ValueError(f"images differ in size ({sorted(shapes)}); set preprocess.size")
    x = np.stack(batch).astype(np.float32) / np.float32(255.0)
    mean = np.asarray(preprocess.mean, dtype=np.float32)
    std = np.asarray(preprocess.std, dtype=np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


_DIGESTS: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path) -> str:
    """sha256 (hex) of a file, memoised per (path, size, mtime) so re-creating a model is cheap."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


class Options:
    """Typed access to plugin options that arrive as strings (``--model-opt k=v``) or values.

    Each getter consumes its key; :meth:`finish` raises UserError for any key no getter used,
    so a typo such as ``jiters=2`` is reported instead of silently ignored::

        opts = Options("dlib-resnet", options)
        jitters = opts.int("jitters", 1, minimum=1)
        opts.finish()
    """

    def __init__(self, model: str, options: Mapping[str, Any] | None) -> None:
        self.model = model
        self._raw = dict(options or {})
        self._used: set[str] = set()

    def _take(self, key: str) -> Any:
        self._used.add(key)
        return self._raw.get(key)

    def _bad(self, key: str, value: Any, want: str) -> UserError:
        return UserError(f"{self.model}: option {key}={value!r} is invalid: {want}")

    def has(self, key: str) -> bool:
        return key in self._raw

    def str(self, key: str, default: str | None = None) -> str | None:
        value = self._take(key)
        return default if value is None else str(value)

    def choice(self, key: str, choices: Sequence[str], default: str) -> str:
        value = self.str(key, default)
        if value not in choices:
            raise self._bad(key, value, f"choose one of {', '.join(choices)}")
        return value

    def int(self, key: str, default: int, *, minimum: int | None = None) -> int:
        value = self._take(key)
        if value is None:
            return default
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            out = int(value)
        except (TypeError, ValueError):
            raise self._bad(key, value, "expected an integer") from None
        if minimum is not None and out < minimum:
            raise self._bad(key, value, f"must be >= {minimum}")
        return out

    def float(self, key: str, default: float) -> float:
        value = self._take(key)
        if value is None:
            return default
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise self._bad(key, value, "expected a number") from None
        if not np.isfinite(out):
            raise self._bad(key, value, "expected a finite number")
        return out

    def bool(self, key: str, default: bool) -> bool:
        value = self._take(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise self._bad(key, value, "expected true/false")

    def floats(self, key: str, default: tuple[float, ...]) -> tuple[float, ...]:
        """One number or a comma-separated list (``0.5`` or ``0.485,0.456,0.406``)."""
        value = self._take(key)
        if value is None:
            return tuple(default)
        parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
        try:
            out = tuple(float(p) for p in parts)
        except (TypeError, ValueError):
            raise self._bad(key, value, "expected numbers separated by commas") from None
        if not out or not all(np.isfinite(out)):
            raise self._bad(key, value, "expected finite numbers separated by commas")
        return out

    def size(self, key: str, default: tuple[int, int] | None) -> tuple[int, int] | None:
        """``WxH`` (e.g. ``112x112``) or a single ``N`` for a square."""
        value = self._take(key)
        if value is None:
            return default
        if isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            parts = str(value).lower().replace("*", "x").split("x")
        try:
            if len(parts) == 1:
                parts = parts * 2
            w, h = (int(p) for p in parts)
        except (TypeError, ValueError):
            raise self._bad(key, value, "expected WxH, e.g. 112x112") from None
        if w < 1 or h < 1:
            raise self._bad(key, value, "width and height must be positive")
        return w, h

    def finish(self) -> None:
        """Raise UserError if any option was not consumed (unknown to this model)."""
        unknown = sorted(set(self._raw) - self._used)
        if unknown:
            known = ", ".join(sorted(self._used)) or "none"
            raise UserError(
                f"{self.model}: unknown option(s) {', '.join(unknown)} (known: {known})"
            )
