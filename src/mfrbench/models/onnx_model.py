"""Any face-embedding ONNX model (``onnx:PATH``), run on CPU with onnxruntime.

The model takes one NCHW float32 input and returns (N, D) embeddings. Its input size comes from
the model's input shape, or ``size=WxH`` when that shape is dynamic. The defaults follow the
ArcFace convention (RGB, (x/255 - 0.5) / 0.5, the five points similarity-aligned onto
insightface's 112x112 template: crop ``arcface-112``); override with ``mean``, ``std`` (one
value or one per channel, comma-separated), ``color`` (rgb/bgr/gray), ``crop`` (any of
``models.base.CROPS``), ``landmarks`` (``source`` or ``detect``, see ``evaluate.prepare``) and
``distance`` (declared in :data:`OPTIONS`; docs/models.md). The session runs single-threaded
(intra- and inter-op), so outputs do not depend on thread scheduling; parallelism belongs to
the evaluator's workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mfrbench.errors import UserError
from mfrbench.models.base import (
    COLORS,
    CROPS,
    DISTANCE_OPTION,
    LANDMARKS_OPTION,
    Box,
    EmbeddingModel,
    ModelIdentity,
    Options,
    OptionSpec,
    Preprocess,
    sha256_file,
    to_tensor,
)
from mfrbench.models.info import ModelInfo

VERSION = "1"
_FIX = "pip install onnxruntime"

OPTIONS = (
    OptionSpec(
        "size",
        None,
        "input WxH; must equal the model's input shape when that is fixed",
        kind="size",
        default_text="the model's input shape (required when it is dynamic)",
    ),
    OptionSpec(
        "color",
        None,
        "channel order of the tensor the model sees",
        COLORS,
        kind="choice",
        default_text="rgb (gray for a one-channel input)",
    ),
    OptionSpec(
        "mean", (0.5,), "subtracted from pixel / 255: one value or one per channel", kind="floats"
    ),
    OptionSpec("std", (0.5,), "then divided by: one value or one per channel", kind="floats"),
    OptionSpec(
        "crop",
        "arcface-112",
        "input crop (arcface-112: the five points similarity-aligned onto insightface's template)",
        CROPS,
        kind="choice",
    ),
    LANDMARKS_OPTION,
    DISTANCE_OPTION,
)
#: The defaults for a model whose input is 3 x 112 x 112 (ArcFace's convention).
DEFAULT_PREPROCESS = Preprocess((112, 112), "rgb", (0.5,), (0.5,), "arcface-112")
INFO = ModelInfo(
    spec="onnx:PATH",
    summary="Any face-embedding ONNX model (one NCHW float32 input, (N, D) output), run on CPU "
    "with onnxruntime, single-threaded so outputs do not depend on thread scheduling.",
    options=OPTIONS,
    preprocess=DEFAULT_PREPROCESS,
    preprocess_note="the ArcFace convention, (pixel / 255 - 0.5) / 0.5; the size is the "
    "model's input shape (112x112 above for a 112x112 model); override with color=, mean=, "
    "std=, crop=, size=",
    distance="cosine (distance=euclidean|sql2 to change it)",
    weights="the ONNX file named by the spec (onnx:PATH); its sha256 is the weights digest",
)


def onnxruntime_status() -> tuple[bool, str]:
    """(True, "") when onnxruntime imports, else (False, how to fix)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False, f"onnxruntime is not installed ({_FIX})"
    return True, ""


def _dim(value: Any) -> int | None:
    """A static dimension as int; None for symbolic or unknown ones."""
    return int(value) if isinstance(value, (int, np.integer)) and value > 0 else None


class OnnxModel(EmbeddingModel):
    """An ONNX embedding model; ``OnnxModel(path, **options)``."""

    info = INFO

    def __init__(self, path: str | Path, **options: Any) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"onnx: model file not found: {self.path}")
        ok, reason = onnxruntime_status()
        if not ok:
            raise UserError(f"onnx: {reason}")
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=so, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            msg = " ".join(str(exc).split())[:300]
            raise UserError(f"onnx: cannot load {self.path}: {msg}") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1:
            raise UserError(f"onnx: {self.path.name} has {len(inputs)} inputs; expected one")
        inp, out = inputs[0], outputs[0]
        if inp.type != "tensor(float)":
            raise UserError(f"onnx: input {inp.name!r} is {inp.type}; expected tensor(float)")
        if len(inp.shape) != 4:
            raise UserError(f"onnx: input {inp.name!r} has shape {inp.shape}; expected NCHW")
        if out.shape is not None and len(out.shape) != 2:
            raise UserError(
                f"onnx: output {out.name!r} has shape {out.shape}; expected (N, D) embeddings"
            )
        self._input, self._output = inp.name, out.name
        batch, channels, height, width = (_dim(d) for d in inp.shape)
        self._batch = batch  # a fixed batch size (usually 1) or None for dynamic

        opts = Options(f"onnx:{self.path.name}", options, OPTIONS)
        model_size = (width, height) if width and height else None
        size = opts.size("size", model_size)
        if size is None:
            raise UserError(
                f"onnx: {self.path.name} has a dynamic input size {inp.shape}; pass "
                "--model-opt size=WxH"
            )
        if model_size is not None and size != model_size:
            raise UserError(
                f"onnx: size={size[0]}x{size[1]} but the model's input is "
                f"{model_size[0]}x{model_size[1]}"
            )
        color = opts.choice("color", COLORS, "gray" if channels == 1 else "rgb")
        want_channels = 1 if color == "gray" else 3
        if channels is not None and channels != want_channels:
            raise UserError(
                f"onnx: color={color} gives {want_channels} channels, model takes {channels}"
            )
        mean = opts.floats("mean")
        std = opts.floats("std")
        crop = opts.choice("crop")
        landmarks = opts.choice("landmarks")
        self.default_distance = opts.choice("distance")
        opts.finish()
        self.preprocess = Preprocess(
            size=size, color=color, mean=mean, std=std, crop=crop, landmarks=landmarks
        )
        self.name = f"onnx:{self.path.name}"
        self._digest = sha256_file(self.path)
        dim = _dim(out.shape[1]) if out.shape is not None else None
        if dim is None:  # dynamic output width: ask the model once
            dim = self._run(np.zeros((1, want_channels, size[1], size[0]), np.float32)).shape[1]
        self.embedding_size = int(dim)

    @classmethod
    def check(cls, path: str | Path | None = None, **options: Any) -> tuple[bool, str]:
        ok, reason = onnxruntime_status()
        if not ok:
            return ok, reason
        if path is not None and not Path(path).is_file():
            return False, f"model file not found: {path}"
        return True, ""

    def identity(self) -> ModelIdentity:
        return ModelIdentity(
            name=self.name,
            version=VERSION,
            weights_digest=self._digest,
            options={"input": self._input, "output": self._output},
        )

    def _run(self, x: np.ndarray) -> np.ndarray:
        step = self._batch or len(x)
        parts = []
        for i in range(0, len(x), step):
            chunk = x[i : i + step]
            if len(chunk) < step:  # a fixed batch size: pad the last chunk with zeros
                pad = np.zeros((step - len(chunk), *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            out = self._session.run([self._output], {self._input: chunk})[0]
            parts.append(out[: min(step, len(x) - i)])
        y = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        if y.ndim != 2:
            raise UserError(
                f"onnx: {self.path.name} returned shape {y.shape}; expected (N, D) embeddings"
            )
        return y

    def embed(self, images: list[np.ndarray], boxes: list[Box | None]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.embedding_size), dtype=np.float32)
        return self._run(to_tensor(images, self.preprocess)).astype(np.float32, copy=False)
