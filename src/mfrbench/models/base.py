"""The embedding-model plugin interface: preprocessing contract, identity, cache key.

A plugin is a subclass of :class:`EmbeddingModel`. It declares what it expects (input size,
colour order, normalisation, crop) in a :class:`Preprocess`, and who it is (name, version,
weights digest, output-changing options) in a :class:`ModelIdentity`. The evaluator renders
each image as ``preprocess.crop`` asks, resizes it to ``preprocess.size`` and calls
:meth:`EmbeddingModel.embed` in batches; embeddings are cached under :func:`cache_key_of`.

Plugins are constructed as ``cls(**options)`` where the options come from
``--model-opt key=value`` (strings) or from Python (native values); :class:`Options` parses
and validates them against the plugin's declared :class:`OptionSpec` tuple (``models.options``),
so an unknown or malformed option is a one-line :class:`UserError`. What a plugin tells users
(options, default preprocessing, distance, weights) is its ``info``, a
:class:`~mfrbench.models.info.ModelInfo`, shown by ``mfrbench models --details NAME``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mfrbench.digest import jsonable, model_json, sha256_file_cached, sha256_text
from mfrbench.errors import UserError
from mfrbench.models.options import Options as Options
from mfrbench.models.options import OptionSpec

if TYPE_CHECKING:
    import torch

# frame: the full source frame with the mask drawn (no crop), plus the face_box as a hint (for
#        models that detect and align themselves, like dlib's);
# face: the face_box made square around its centre (roi_box("none", ...));
# upper-half: the top half of that square;
# eye-band: only when the protocol's ROI is eye-band (it needs landmarks, so is not derivable);
# protocol: exactly the protocol's roi_box / out_wh render.
# arcface-112: the five points similarity-aligned onto insightface's 112x112 template;
# facenet-160: the MTCNN box (plus margin) resized to 160x160, as facenet-pytorch crops;
# dlib-chip: dlib's 150x150 chip from the 68 anchors (get_face_chip, padding 0.25).
# Real images use their face frozen at protocol time (evaluate.prepare says what happens
# when none was found).
CROPS = (
    "frame",
    "face",
    "upper-half",
    "eye-band",
    "protocol",
    "arcface-112",
    "facenet-160",
    "dlib-chip",
)
#: The aligned crops, and where their points come from on a synthetic masked image:
#: "source" = found on the photo before masking (frozen in the protocol), "detect" = re-found
#: on the rendered (masked) image, as a deployed system would see it.
ALIGNED_CROPS = ("arcface-112", "facenet-160", "dlib-chip")
LANDMARK_SOURCES = ("source", "detect")
COLORS = ("rgb", "bgr", "gray")
# cosine: cosine similarity; euclidean: L2 distance of raw embeddings;
# sql2: squared L2 distance of L2-normalised embeddings (the thesis's measure, = 2 - 2 cos).
DISTANCES = ("cosine", "euclidean", "sql2")

#: The options several plugins share, declared once.
LANDMARKS_OPTION = OptionSpec(
    "landmarks",
    "source",
    "aligned crops: points found on the photo before masking (source, frozen in the protocol) "
    "or re-found on the masked image (detect)",
    LANDMARK_SOURCES,
    kind="choice",
)
DISTANCE_OPTION = OptionSpec(
    "distance",
    "cosine",
    "default comparison: cosine similarity, euclidean (L2) distance, or sql2 (squared L2 of "
    "unit-length embeddings); --distance overrides it",
    DISTANCES,
    kind="choice",
)

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Preprocess:
    """What a model expects as input; part of the embedding cache key.

    size: (w, h) of the model input, or None when the model resizes (or detects) itself.
    color: channel order of the tensor the model sees ("rgb", "bgr" or "gray").
    mean, std: per-channel normalisation applied to pixel / 255 (one value or one per channel).
    crop: which rendering of each image the model wants, one of :data:`CROPS`.
    landmarks: for aligned crops, where the points come from (:data:`LANDMARK_SOURCES`).
    """

    size: tuple[int, int] | None
    color: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop: str
    landmarks: str = "source"

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise UserError(f"unknown crop {self.crop!r}; choose one of: {', '.join(CROPS)}")
        if self.landmarks not in LANDMARK_SOURCES:
            raise UserError(
                f"unknown landmark source {self.landmarks!r}; choose one of: "
                + ", ".join(LANDMARK_SOURCES)
            )
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
        return jsonable(asdict(self))


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
        return jsonable(asdict(self))


#: Sorted keys, no whitespace, ASCII-escaped, NaN rejected, after :func:`jsonable`: the model
#: variant of :mod:`mfrbench.digest`, pinned by every cache key.
canonical_json = model_json


def cache_key_of(identity: ModelIdentity, preprocess: Preprocess) -> str:
    """sha256 (hex) of the canonical JSON of a model's identity and preprocessing contract."""
    return sha256_text(
        model_json({"identity": identity.to_dict(), "preprocess": preprocess.to_dict()})
    )


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


class HeadModel(EmbeddingModel):
    """A trained head over a frozen backbone model (``siamese:DIR``).

    The evaluator embeds images with :attr:`backbone` through the backbone's own cache (a head
    costs no extra forward passes) and maps the embeddings with :meth:`project`. A model trained
    once per held-out fold of a fold protocol carries one head per fold: :meth:`head_for_fold`
    picks it, and :attr:`trained_on` names the protocol digest those folds belong to.
    :meth:`seen_identities` lets the evaluator refuse to test a head on identities it was
    trained or selected on.
    """

    backbone: EmbeddingModel
    #: how worker processes rebuild the backbone: (spec, options), or None to pickle it
    backbone_source: tuple[str, dict[str, Any]] | None = None
    #: digest of the protocol the per-fold heads belong to (None: one head, any protocol)
    trained_on: str | None = None

    def head_names(self) -> list[str]:
        raise NotImplementedError(f"{type(self).__name__} must implement head_names()")

    def head_for_fold(self, fold: int | None) -> str:
        """The head that scores pairs of ``fold`` (the only head when there is one)."""
        raise NotImplementedError(f"{type(self).__name__} must implement head_for_fold()")

    def project(self, embeddings: np.ndarray, head: str) -> np.ndarray:
        """Map backbone embeddings (N, backbone dim) to this model's (N, embedding_size)."""
        raise NotImplementedError(f"{type(self).__name__} must implement project()")

    def seen_identities(self, head: str) -> frozenset[str]:
        """Identities whose images trained or selected ``head`` (never to be tested on)."""
        raise NotImplementedError(f"{type(self).__name__} must implement seen_identities()")

    def backbone_for(self, head: str) -> EmbeddingModel:
        """The backbone feeding ``head`` (its own fine-tuned copy, or the shared one)."""
        return self.backbone

    def embed(self, images: list[np.ndarray], boxes: list[Box | None]) -> np.ndarray:
        """Backbone then head; only for a model with a single head (per-fold heads need folds)."""
        names = self.head_names()
        if len(names) != 1:
            raise UserError(
                f"{self.name} has one head per protocol fold ({len(names)}); evaluate it with "
                "mfrbench eval on its protocol, or pick one head with --model-opt head=NAME"
            )
        return self.project(self.backbone_for(names[0]).embed(images, boxes), names[0])


def state_digest(state: Mapping[str, Any]) -> str:
    """sha256 (hex) of a name -> array dict, independent of dict order and array memory layout.

    For each name in sorted order: the canonical JSON of ``{name, dtype, shape}`` (dtype as
    little-endian ``numpy`` str), its length, then the C-order little-endian bytes.
    """
    h = hashlib.sha256()
    for name in sorted(state):
        arr = np.asarray(state[name])
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        head = model_json({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape)})
        h.update(len(head).to_bytes(8, "little") + head.encode("utf-8"))
        h.update(arr.tobytes(order="C"))
    return h.hexdigest()


def finetuned_digest(base_digest: str, state: Mapping[str, Any]) -> str:
    """The weights digest of a fine-tuned model: sha256 of ``"<base>+<state_digest(state)>"``."""
    return sha256_text(f"{base_digest}+{state_digest(state)}")


class FineTunable:
    """Mixin for torch embedding models whose last blocks can be fine-tuned (``--unfreeze-last``).

    The network ``self.net`` is seen as a chain of blocks, :meth:`blocks`, in input -> output
    order, followed by a parameter-free :meth:`tail` (pooling, normalisation) that yields the
    embedding: ``forward_from(forward_until(x, k), k)`` is the model's embedding of the
    normalised batch ``x`` for every ``k``. Fine-tuning the last ``n`` blocks therefore runs
    the frozen prefix ``forward_until(x, len(blocks) - n)`` once per image, keeps its output
    in memory, and trains only :meth:`forward_from` on those features: each epoch costs the
    suffix's forward and backward passes, not the whole network's, which is what makes CPU
    fine-tuning feasible (:func:`mfrbench.train.finetune.finetune`).

    The backbone stays in eval mode while it is fine-tuned: BatchNorm layers of the unfrozen
    blocks keep their running statistics (only their affine weight and bias train), because
    the small batches a CPU affords would make batch statistics noisy and corrupt the
    statistics learnt on millions of faces; the network's own dropout is off too.

    A trained state (:meth:`finetuned_state`: parameters and buffers of the last n blocks,
    keyed as in ``net.state_dict()``) is applied with :meth:`load_finetuned`, which also
    changes ``weights_digest`` (:func:`finetuned_digest` of the file's digest and the state),
    so the evaluator caches the fine-tuned model's embeddings apart from the original's.

    Subclasses set ``self.net`` and ``self.weights_digest`` and implement :meth:`blocks` and
    :meth:`tail`; those taking inputs of varying size override :meth:`fit_inputs`.
    """

    net: torch.nn.Module
    weights_digest: str
    name: str
    version: str

    def blocks(self) -> list[tuple[str, torch.nn.Module]]:
        """(name, module) of the network's stages in input -> output order."""
        raise NotImplementedError(f"{type(self).__name__} must implement blocks()")

    def tail(self, x: torch.Tensor) -> torch.Tensor:
        """Parameter-free map from the last block's output to the embedding (N, D)."""
        raise NotImplementedError(f"{type(self).__name__} must implement tail()")

    def fit_inputs(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The images as the network takes them (as ``embed`` prepares them); identity here."""
        return list(images)

    def _block_range(self, n: int, what: str, low: int) -> list[tuple[str, torch.nn.Module]]:
        blocks = self.blocks()
        if (
            isinstance(n, bool)
            or not isinstance(n, (int, np.integer))
            or not low <= n <= len(blocks)
        ):
            raise ValueError(f"{what} must be an integer in {low}..{len(blocks)}, got {n!r}")
        return blocks

    def forward_until(self, x: torch.Tensor, stop: int) -> torch.Tensor:
        """Run blocks ``0 .. stop - 1`` on a normalised NCHW batch (``stop = 0``: ``x`` itself)."""
        for _, module in self._block_range(stop, "stop", 0)[:stop]:
            x = module(x)
        return x

    def forward_from(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Run blocks ``start ..`` then :meth:`tail` on what ``forward_until(x, start)`` gave."""
        for _, module in self._block_range(start, "start", 0)[start:]:
            x = module(x)
        return self.tail(x)

    def block_keys(self) -> list[list[str]]:
        """Per block, the ``net.state_dict()`` keys of its parameters and buffers (net order)."""
        own = self.net.state_dict(keep_vars=True)
        out = []
        for _, module in self.blocks():
            ids = {id(t) for t in module.state_dict(keep_vars=True).values()}
            out.append([k for k, t in own.items() if id(t) in ids])
        return out

    def unfrozen_keys(self, n: int) -> list[str]:
        """State-dict keys of the last ``n`` blocks (net order); ValueError unless 1 <= n <= len."""
        blocks = self._block_range(n, "the number of unfrozen blocks", 1)
        keys = self.block_keys()[len(blocks) - n :]
        wanted = {k for ks in keys for k in ks}
        return [k for k in self.net.state_dict() if k in wanted]

    def finetuned_state(self, n: int) -> dict[str, np.ndarray]:
        """Parameters and buffers of the last ``n`` blocks as numpy copies (CPU, native dtypes)."""
        own = self.net.state_dict()
        return {k: own[k].detach().cpu().numpy().copy() for k in self.unfrozen_keys(n)}

    @property
    def base_weights_digest(self) -> str:
        """``weights_digest`` of the weights file, before any :meth:`load_finetuned`."""
        return getattr(self, "_base_weights_digest", self.weights_digest)

    @property
    def finetuned_blocks(self) -> tuple[str, ...]:
        """Names of the blocks replaced by :meth:`load_finetuned` (empty when none)."""
        return getattr(self, "_finetuned_blocks", ())

    def tuned_identity(self, options: Mapping[str, Any]) -> ModelIdentity:
        """The model's identity with ``options``, plus ``finetuned`` blocks once any are loaded."""
        opts = dict(options)
        if self.finetuned_blocks:
            opts["finetuned"] = list(self.finetuned_blocks)
        return ModelIdentity(self.name, self.version, self.weights_digest, opts)

    def load_finetuned(self, state: Mapping[str, Any]) -> None:
        """Load a :meth:`finetuned_state` (numpy arrays or tensors) and change the identity.

        ``state`` must hold exactly the keys of the last n blocks, for some n, with the net's
        shapes; otherwise UserError. Loading again overlays the earlier state; the digest is
        always ``finetuned_digest(base_weights_digest, finetuned_state(deepest n loaded))``,
        which for one load is the digest of ``state`` itself (in the net's dtypes).
        """
        import torch

        own = self.net.state_dict()
        unknown = sorted(set(state) - set(own))
        if unknown:
            shown = ", ".join(unknown[:4]) + (" ..." if len(unknown) > 4 else "")
            raise UserError(f"fine-tuned state has keys this network lacks: {shown}")
        n_blocks = len(self.blocks())
        n = next(
            (n for n in range(1, n_blocks + 1) if set(self.unfrozen_keys(n)) == set(state)), None
        )
        if n is None:
            raise UserError(
                "fine-tuned state does not hold exactly the parameters and buffers of the last "
                f"n blocks of {', '.join(name for name, _ in self.blocks())}"
            )
        arrays: dict[str, np.ndarray] = {}
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            arr = np.asarray(value)
            if tuple(arr.shape) != tuple(own[key].shape):
                raise UserError(
                    f"fine-tuned {key} has shape {tuple(arr.shape)}, the network has "
                    f"{tuple(own[key].shape)}"
                )
            arrays[key] = np.array(arr, dtype=str(own[key].dtype).removeprefix("torch."))
        tensors = {k: torch.from_numpy(v).to(own[k].device) for k, v in arrays.items()}
        self.net.load_state_dict(tensors, strict=False)
        if not hasattr(self, "_base_weights_digest"):
            self._base_weights_digest = self.weights_digest
        # Everything loaded so far is the current value of the deepest loaded blocks' keys
        # (later loads overwrite earlier ones), so the digest is taken from the net itself.
        names = [name for name, _ in self.blocks()]
        deepest = max(n, len(self.finetuned_blocks))
        self._finetuned_blocks = tuple(names[n_blocks - deepest :])
        self.weights_digest = finetuned_digest(
            self._base_weights_digest, self.finetuned_state(deepest)
        )


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
    shrinking, linear when growing), so the function is also safe to call from a notebook; an
    image of another aspect is stretched here, so the evaluator never passes one
    (``evaluate.prepare`` pads crops to the size's aspect; a square chip is only scaled).
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


#: sha256 (hex) of a weights file, memoised per (path, size, mtime) so re-creating a model is
#: cheap (:func:`mfrbench.digest.sha256_file_cached`).
sha256_file = sha256_file_cached
