"""``plugin:resnet50``: ResNet-50 pooled features (2048-D), the backbone the seed papers use.

Weights are required: ``--model-opt weights=PATH`` (a torchvision-format state dict, or a
VGGFace2 ResNet-50 port) or ``pretrained=imagenet sha256=HEX`` (torchvision's published
ImageNet file, downloaded once into the cache and verified). With none the plugin refuses to
run: features of a randomly initialised network are never reported as results.

Options:

- ``weights=PATH``: ``.pth``/``.pt`` state dict (possibly ``{"state_dict": ...}`` or with
  ``module.`` prefixes), or a ``.pkl`` of numpy arrays (the VGGFace2 Caffe ports). ``fc`` may
  have any size (its output is not used) or be absent.
- ``pretrained=imagenet|imagenet-v2`` with ``sha256=HEX``: torchvision's IMAGENET1K_V1/V2 file.
- ``url=URL`` with ``sha256=HEX``: download from ``URL`` (``http(s)://`` or ``file://``)
  instead, verified and cached the same way (:func:`~mfrbench.models.nets.weights_source`). With
  ``pretrained=NAME`` it is a mirror of that file (cached under the published name, whose
  sha256 prefix must still match); alone it is any weights file of the layout above, cached
  under the URL's file name.
- ``variant=torchvision|vggface2``: the architecture the weights were trained with (see
  :mod:`~mfrbench.models.nets.resnet`); ``vggface2`` also switches to that model's input
  (BGR, mean subtraction of [91.4953, 103.8827, 131.0912], no scaling). Required when ``fc``
  has 8631 outputs (VGGFace2 identities), since both variants are published with that head.
- ``crop=face|upper-half|protocol|arcface-112|facenet-160`` (default ``face``),
  ``landmarks=source|detect`` (aligned crops, see ``evaluate.prepare``) and ``size=WxH``: the
  input. Defaults
  keep the crop's aspect: 224x224 for ``face``, 224x112 for ``upper-half``; for ``protocol``
  each image is scaled to width 224 keeping its aspect (ResNet pools globally, so any
  size works).

Fine-tuning (:class:`~mfrbench.models.base.FineTunable`): the blocks are ``stem`` (conv1, bn1,
ReLU, max-pool), ``layer1`` .. ``layer4``; the embedding is the global average pool of
``layer4``'s output (no parameters), so ``--unfreeze-last 1`` trains ``layer4``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch

from mfrbench.errors import UserError
from mfrbench.models.base import (
    LANDMARKS_OPTION,
    Box,
    EmbeddingModel,
    FineTunable,
    ModelIdentity,
    Options,
    OptionSpec,
    Preprocess,
    sha256_file,
)
from mfrbench.models.info import ModelInfo
from mfrbench.models.nets import (
    DEVICE_OPTION,
    Published,
    build_empty,
    check_weights,
    default_size,
    embed_batches,
    fit_width,
    load_weights,
    read_state_dict,
    weights_options,
    weights_source,
)
from mfrbench.models.nets.resnet import (
    FEATURE_DIM,
    VARIANTS,
    features,
    resnet50,
    torchvision_available,
)
from mfrbench.vision.device import resolve_device

#: torchvision's published ImageNet weights; the file names carry a sha256 prefix.
PUBLISHED = {
    "imagenet": Published("https://download.pytorch.org/models/resnet50-0676ba61.pth", "0676ba61"),
    "imagenet-v2": Published(
        "https://download.pytorch.org/models/resnet50-11ad3fa6.pth", "11ad3fa6"
    ),
}
WHAT = "a torchvision resnet50 or VGGFace2 ResNet-50 state dict"
CROPS = ("face", "upper-half", "protocol", "arcface-112", "facenet-160")
INPUT = 224
VGGFACE2_CLASSES = 8631
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: VGGFace2 Caffe models: BGR pixel values minus this mean (BGR order), not scaled.
VGGFACE2_MEAN_BGR = (91.4953, 103.8827, 131.0912)

OPTIONS = (
    *weights_options(PUBLISHED, WHAT),
    OptionSpec(
        "variant",
        None,
        "architecture the weights were trained with; vggface2 also switches to that model's "
        "input (BGR, mean subtraction, no scaling)",
        VARIANTS,
        kind="choice",
        default_text="torchvision (an 8631-way fc must say which)",
    ),
    OptionSpec("crop", "face", "input crop (face: the face box made square)", CROPS, kind="choice"),
    LANDMARKS_OPTION,
    OptionSpec(
        "size",
        None,
        "input WxH",
        kind="size",
        default_text=f"{INPUT}x{INPUT}; {INPUT}x{INPUT // 2} for upper-half; protocol: width "
        f"{INPUT}, aspect kept",
    ),
    DEVICE_OPTION,
)
DEFAULT_PREPROCESS = Preprocess((INPUT, INPUT), "rgb", IMAGENET_MEAN, IMAGENET_STD, "face")
INFO = ModelInfo(
    spec="plugin:resnet50",
    summary="ResNet-50 global-average-pooled features (2048-D, before fc), the backbone the seed "
    "papers use, with torchvision ImageNet weights or a VGGFace2 ResNet-50 port.",
    options=OPTIONS,
    preprocess=DEFAULT_PREPROCESS,
    preprocess_note="ImageNet normalisation; variant=vggface2: BGR, pixel values minus "
    "[91.4953, 103.8827, 131.0912] (BGR order), not scaled; crop= and size= change the input "
    "(crop=protocol: each crop scaled to width 224 by the plugin, aspect kept)",
    distance="cosine",
    weights="required, never random: weights=PATH (.pth/.pt state dict, or a .pkl of numpy "
    "arrays from the VGGFace2 Caffe ports), or pretrained=imagenet|imagenet-v2 with sha256=HEX "
    "(torchvision's files, downloaded once into the cache), or url=URL sha256=HEX; the file's "
    "sha256 is the weights digest",
)


class ResNet50(FineTunable, EmbeddingModel):
    """ResNet-50 2048-D pooled features (before ``fc``), compared by cosine similarity."""

    name = "resnet50"
    info = INFO
    #: Plugin version; the torch version is appended (numerics may change between releases).
    version = f"1+torch{torch.__version__}"
    preprocess = Preprocess((INPUT, INPUT), "rgb", IMAGENET_MEAN, IMAGENET_STD, "face")
    embedding_size = FEATURE_DIM
    default_distance = "cosine"

    def __init__(self, **options: Any) -> None:
        opts = Options(self.name, options, OPTIONS)
        source = weights_source(self.name, opts, PUBLISHED, WHAT)
        variant = opts.str("variant")
        if variant is not None and variant not in VARIANTS:
            raise UserError(
                f"{self.name}: option variant={variant!r} is invalid: choose one of "
                f"{', '.join(VARIANTS)}"
            )
        crop = opts.choice("crop")
        landmarks = opts.choice("landmarks")
        size = opts.size("size", default_size(crop, INPUT))
        # where the network runs; not part of identity(): see mfrbench.vision.device
        self.device = resolve_device(opts.str("device"))
        opts.finish()
        if opts.str("pretrained"):
            if variant == "vggface2":
                raise UserError(f"{self.name}: {source.label} is torchvision's; omit variant=")
            variant = "torchvision"

        path = source.obtain()
        state = read_state_dict(path)
        fc = state.get("fc.weight")
        num_classes = int(fc.shape[0]) if fc is not None and fc.ndim == 2 else 1000
        if variant is None:
            if num_classes == VGGFACE2_CLASSES:
                raise UserError(
                    f"{self.name}: {path} has a {num_classes}-way fc (VGGFace2 identities): pass "
                    "--model-opt variant=vggface2 for the Caffe ports (resnet50_ft/"
                    "resnet50_scratch) or variant=torchvision for a torchvision-built model"
                )
            variant = "torchvision"
        self.variant = variant
        torchvision_available()  # import it (if at all) outside build_empty's meta device
        net = build_empty(lambda: resnet50(num_classes=num_classes, variant=variant))
        if "fc.weight" not in state and "fc.bias" not in state:
            # A headless backbone: fc is never used for embeddings; zero it.
            fc_layer = cast(torch.nn.Module, net.fc)  # nn.Module.__getattr__: Tensor | Module
            fc_zero = {k: torch.zeros_like(v) for k, v in fc_layer.state_dict().items()}
            state = {**state, **{f"fc.{k}": v for k, v in fc_zero.items()}}
        load_weights(net, state, f"{path} (ResNet-50, variant {variant})")
        self.net = net.eval().to(self.device)
        self.weights_path = path
        self.weights_digest = sha256_file(path)
        self.num_classes = num_classes
        self.implementation = type(net).__module__.split(".")[0]  # "torchvision" or "mfrbench"
        if variant == "vggface2":
            mean = tuple(m / 255.0 for m in VGGFACE2_MEAN_BGR)
            self.preprocess = Preprocess(size, "bgr", mean, (1 / 255.0,) * 3, crop, landmarks)
        else:
            self.preprocess = Preprocess(size, "rgb", IMAGENET_MEAN, IMAGENET_STD, crop, landmarks)

    @classmethod
    def check(cls, **options: Any) -> tuple[bool, str]:
        """Runs only with weights: a file given by ``weights=`` or a checksummed download."""
        return check_weights(cls.name, options, PUBLISHED, WHAT)

    def identity(self) -> ModelIdentity:
        return self.tuned_identity({"variant": self.variant})

    def blocks(self) -> list[tuple[str, torch.nn.Module]]:
        """``stem`` (conv1, bn1, relu, maxpool), ``layer1`` .. ``layer4``."""
        net: Any = self.net  # nn.Module.__getattr__ types the layers as Tensor | Module
        stem = torch.nn.Sequential(
            OrderedDict(conv1=net.conv1, bn1=net.bn1, relu=net.relu, maxpool=net.maxpool)
        )
        return [("stem", stem)] + [(f"layer{i}", getattr(net, f"layer{i}")) for i in range(1, 5)]

    def tail(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pool of ``layer4``'s output: (N, 2048)."""
        return torch.flatten(cast(torch.nn.Module, self.net.avgpool)(x), 1)

    def fit_inputs(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """With ``crop=protocol`` (no fixed size) each image is scaled to width 224."""
        if self.preprocess.size is None:
            return [fit_width(img, INPUT) for img in images]
        return list(images)

    def embed(self, images: list[np.ndarray], boxes: list[Box | None]) -> np.ndarray:
        """(N, 2048) float32 pooled features, in eval mode without autograd."""
        images = self.fit_inputs(images)
        return embed_batches(
            lambda x: features(self.net, x),
            images,
            self.preprocess,
            self.embedding_size,
            device=self.device,
        )
