"""Embedding-model plugins: the interface (``base``) and the registry (``registry``).

    from mfrbench.models import create_model, list_models
    model = create_model("plugin:dlib-resnet", {"jitters": "1"})  # or "dlib-resnet"
    model = create_model("onnx:arcface.onnx", {"crop": "face"})
    model = create_model("python:mypkg.models:make_model", {})

Plugin modules (dlib_resnet, eigenface, onnx_model, ...) are imported only when used, so this
package imports without dlib, torch or onnxruntime.
"""

from __future__ import annotations

from mfrbench.models.base import (
    CROPS,
    DISTANCES,
    EmbeddingModel,
    HeadModel,
    ModelIdentity,
    Options,
    Preprocess,
    cache_key_of,
    sha256_file,
    to_tensor,
    validate_model,
)
from mfrbench.models.info import ModelInfo
from mfrbench.models.options import OptionSpec
from mfrbench.models.registry import (
    GROUP,
    create_model,
    list_models,
    model_info,
    normalize_spec,
    parse_spec,
    plugin_names,
    register_model,
)

__all__ = [
    "CROPS",
    "DISTANCES",
    "GROUP",
    "EmbeddingModel",
    "HeadModel",
    "ModelIdentity",
    "ModelInfo",
    "OptionSpec",
    "Options",
    "Preprocess",
    "cache_key_of",
    "create_model",
    "list_models",
    "model_info",
    "normalize_spec",
    "parse_spec",
    "plugin_names",
    "register_model",
    "sha256_file",
    "to_tensor",
    "validate_model",
]
