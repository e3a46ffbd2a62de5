"""``plugin:facenet``: FaceNet's Inception-ResNet-v1, 512-D L2-normalised embeddings.

The LFW masking paper's model, with facenet-pytorch's published weights. They are required:
``--model-opt weights=PATH`` (a facenet-pytorch state dict such as
``20180402-114759-vggface2.pt``) or ``pretrained=vggface2|casia-webface sha256=HEX`` to
download facenet-pytorch's file once into the cache. facenet-pytorch publishes no checksum,
so the download needs the sha256 you expect (mfrbench fetches nothing unverified); the digest
of the file used is recorded in the model identity either way. ``url=URL`` (``http(s)://`` or
``file://``, with ``sha256=``) downloads from elsewhere: with ``pretrained=NAME`` a mirror of
that file, alone any such state dict (see
:func:`~mfrbench.models.nets.weights_source`). With no weights the plugin refuses
to run: a randomly initialised network is never reported as a result.

Input as facenet-pytorch's ``fixed_image_standardization``: RGB, (pixel - 127.5) / 128.
Options ``crop=facenet-160|arcface-112|face|upper-half|protocol`` (default ``facenet-160``:
the MTCNN box resized to 160x160 as facenet-pytorch crops, the input these weights were
trained on), ``landmarks=source|detect`` (where an aligned crop's points come from, see
``evaluate.prepare``) and ``size=WxH``; defaults keep the crop's aspect: 160x160 for the
square crops, 160x80 for ``upper-half``, width 160 for ``protocol`` (the network pools
globally; inputs below about 75 px on a side are too small for it).

Fine-tuning (:class:`~mfrbench.models.base.FineTunable`): the blocks are ``stem`` (conv2d_1a ..
conv2d_4b), ``repeat_1``, ``mixed_6a``, ``repeat_2``, ``mixed_7a``, ``repeat_3``, ``block8`` and
``embedding`` (average pool, dropout, ``last_linear``, ``last_bn``); the tail L2-normalises.
``--unfreeze-last 1`` trains only the 1792 -> 512 projection and its BatchNorm's affine terms.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

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
from mfrbench.models.nets.inception_resnet_v1 import EMBEDDING_DIM, InceptionResnetV1
from mfrbench.vision.device import resolve_device

_RELEASE = "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9"
#: facenet-pytorch's published weights (models/inception_resnet_v1.py, load_weights).
PUBLISHED = {
    "vggface2": Published(f"{_RELEASE}/20180402-114759-vggface2.pt"),
    "casia-webface": Published(f"{_RELEASE}/20180408-102900-casia-webface.pt"),
}
WHAT = "a facenet-pytorch InceptionResnetV1 state dict"
CROPS = ("face", "upper-half", "protocol", "arcface-112", "facenet-160")
INPUT = 160
#: Smallest input side the network accepts (its valid-padding reductions need 75 px).
MIN_SIDE = 75
_TOO_SMALL = (
    f"Inception-ResNet-v1 needs at least {MIN_SIDE} px per side (an eye-band protocol's "
    "3:1 crops are too flat); use crop=face or crop=upper-half"
)
#: fixed_image_standardization: (p - 127.5) / 128 == (p / 255 - 0.5) / (128 / 255).
MEAN = (127.5 / 255.0,) * 3
STD = (128.0 / 255.0,) * 3

OPTIONS = (
    *weights_options(PUBLISHED, WHAT),
    OptionSpec(
        "crop",
        "facenet-160",
        "input crop: facenet-160 is facenet-pytorch's MTCNN crop, the input these weights "
        "were trained on",
        CROPS,
        kind="choice",
    ),
    LANDMARKS_OPTION,
    OptionSpec(
        "size",
        None,
        f"input WxH (at least {MIN_SIDE} px a side)",
        kind="size",
        default_text=f"{INPUT}x{INPUT}; {INPUT}x{INPUT // 2} for upper-half; protocol: width "
        f"{INPUT}, aspect kept",
    ),
    DEVICE_OPTION,
)
DEFAULT_PREPROCESS = Preprocess((INPUT, INPUT), "rgb", MEAN, STD, "facenet-160")
INFO = ModelInfo(
    spec="plugin:facenet",
    summary="FaceNet's Inception-ResNet-v1 (the LFW masking paper's model) with facenet-pytorch's "
    "published weights: 512-D unit-length embeddings.",
    options=OPTIONS,
    preprocess=DEFAULT_PREPROCESS,
    preprocess_note="facenet-pytorch's fixed_image_standardization, (pixel - 127.5) / 128; "
    "crop= and size= change the input (crop=protocol: each crop scaled to width 160 by the "
    "plugin, aspect kept)",
    distance="cosine",
    weights="required, never random: weights=PATH (a facenet-pytorch state dict), or "
    "pretrained=vggface2|casia-webface with sha256=HEX (downloaded once from facenet-pytorch's "
    "GitHub release into the cache), or url=URL sha256=HEX; the file's sha256 is the weights "
    "digest",
)


class FaceNet(FineTunable, EmbeddingModel):
    """Inception-ResNet-v1 embeddings (512-D, unit length), compared by cosine similarity."""

    name = "facenet"
    info = INFO
    #: Plugin version; the torch version is appended (numerics may change between releases).
    version = f"1+torch{torch.__version__}"
    preprocess = Preprocess((INPUT, INPUT), "rgb", MEAN, STD, "face")
    embedding_size = EMBEDDING_DIM
    default_distance = "cosine"

    def __init__(self, **options: Any) -> None:
        opts = Options(self.name, options, OPTIONS)
        source = weights_source(self.name, opts, PUBLISHED, WHAT)
        crop = opts.choice("crop")
        landmarks = opts.choice("landmarks")
        size = opts.size("size", default_size(crop, INPUT))
        # where the network runs; not part of identity(): see mfrbench.vision.device
        self.device = resolve_device(opts.str("device"))
        opts.finish()
        if size is not None and min(size) < MIN_SIDE:
            raise UserError(f"{self.name}: size={size[0]}x{size[1]} is too small: {_TOO_SMALL}")

        path = source.obtain()
        state = read_state_dict(path)
        logits = state.get("logits.weight")
        num_classes = int(logits.shape[0]) if logits is not None and logits.ndim == 2 else None
        net = build_empty(lambda: InceptionResnetV1(classify=False, num_classes=num_classes))
        load_weights(net, state, f"{path} (InceptionResnetV1)")
        self.net = net.eval().to(self.device)
        self.weights_path = path
        self.weights_digest = sha256_file(path)
        self.num_classes = num_classes
        self.preprocess = Preprocess(size, "rgb", MEAN, STD, crop, landmarks)

    @classmethod
    def check(cls, **options: Any) -> tuple[bool, str]:
        """Runs only with weights: a file given by ``weights=`` or a checksummed download."""
        return check_weights(cls.name, options, PUBLISHED, WHAT)

    def identity(self) -> ModelIdentity:
        return self.tuned_identity({})

    def blocks(self) -> list[tuple[str, torch.nn.Module]]:
        """The stem, the Inception-ResNet stages, and the 1792 -> 512 embedding layer."""
        net: Any = self.net  # nn.Module.__getattr__ types the layers as Tensor | Module
        stem_names: tuple[str, ...] = ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a")
        stem_names += ("conv2d_3b", "conv2d_4a", "conv2d_4b")
        stem = torch.nn.Sequential(OrderedDict((n, getattr(net, n)) for n in stem_names))
        embedding = torch.nn.Sequential(
            OrderedDict(
                avgpool_1a=net.avgpool_1a,
                dropout=net.dropout,
                flatten=torch.nn.Flatten(1),
                last_linear=net.last_linear,
                last_bn=net.last_bn,
            )
        )
        stages = ("repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8")
        return [("stem", stem), *((n, getattr(net, n)) for n in stages), ("embedding", embedding)]

    def tail(self, x: torch.Tensor) -> torch.Tensor:
        """L2 normalisation of the 512-D projection, as the network's own forward."""
        return F.normalize(x, p=2, dim=1)

    def fit_inputs(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """With ``crop=protocol`` each image is scaled to width 160 (UserError if too flat)."""
        if self.preprocess.size is None:
            images = [fit_width(img, INPUT) for img in images]
            small = next((img.shape[:2] for img in images if min(img.shape[:2]) < MIN_SIDE), None)
            if small is not None:
                h, w = small
                raise UserError(f"{self.name}: a {w}x{h} input is too small: {_TOO_SMALL}")
        return list(images)

    def embed(self, images: list[np.ndarray], boxes: list[Box | None]) -> np.ndarray:
        """(N, 512) float32 unit-length embeddings, in eval mode without autograd."""
        images = self.fit_inputs(images)
        return embed_batches(
            self.net, images, self.preprocess, self.embedding_size, device=self.device
        )
