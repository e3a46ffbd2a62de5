"""MTCNN face detector (P-Net, R-Net, O-Net) on torch alone, with facenet-pytorch's weights.

The algorithm, network layout and weights follow facenet-pytorch 2.6.0 (MIT licence, Copyright
(c) 2019 Timothy Esler; ``models/mtcnn.py`` and ``models/utils/detect_face.py``), itself a port
of Zhang et al.'s MTCNN as implemented in davidsandberg/facenet. This module reproduces its
``MTCNN(keep_all=True).detect(img, landmarks=True)`` without torchvision, about 2-3x faster:

- torchvision's ``batched_nms`` is replaced by :func:`nms_numpy`, a greedy NMS with the same
  float32 IoU arithmetic, threshold test and (stable) score order as its CPU kernel;
- the pyramid levels and the crops fed to R-Net/O-Net are area-resampled from one integral
  image, all boxes at once; the window sums are exact integers, so they are bit-identical to
  facenet's ``interpolate(mode="area")`` calls;
- the final "Min" NMS is facenet's own numpy routine, copied operation for operation;
- box bookkeeping runs in numpy float32 with facenet's operation order; only the networks run
  in torch, in the memory layouts that are fastest on CPU. Those layouts round differently
  from facenet's, so boxes and landmarks differ by ~1e-4 px and probabilities by ~1e-6
  (checked on 320 LFW and masked photos: same faces, nothing larger).

Faces come back largest first, as facenet orders them with its default ``select_largest=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mfrbench.errors import UserError
from mfrbench.vision.device import resolve_device
from mfrbench.vision.mtcnn_weights import FIX, WEIGHT_FILES, WEIGHTS_ENV, find_weights_dir
from mfrbench.vision.types import Face

__all__ = [
    "AUTO_MIN_FACE_FRACTION",
    "MTCNN",
    "NATIVE_MIN_FACE",
    "WEIGHTS_ENV",
    "WEIGHT_FILES",
    "auto_min_face",
    "find_weights_dir",
    "nms",
    "nms_numpy",
]

_BATCH = 512  # crops per R-Net/O-Net call (as facenet), bounding memory on huge images
#: facenet's minimum face size (px): what ``min_face_size="auto"`` falls back to.
NATIVE_MIN_FACE = 20
#: ``min_face_size="auto"``: first look only for faces at least this fraction of the shorter
#: image side (40 px on a 250 px LFW photo; bench/min_face_speed.py, docs/benchmarks.md).
AUTO_MIN_FACE_FRACTION = 0.16


def auto_min_face(height: int, width: int) -> int:
    """The first-pass minimum face size of ``min_face_size="auto"`` for an image size (px)."""
    return max(NATIVE_MIN_FACE, int(AUTO_MIN_FACE_FRACTION * min(height, width)))


# --------------------------------------------------------------------------- networks
# Layer names match facenet-pytorch so its state dicts load unchanged.


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """``max_pool2d(x, 2, 2, ceil_mode=True)`` as three elementwise maxima (same values).

    torch's pooling kernel is several times slower on NCHW tensors with few channels.
    """
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), value=float("-inf"))
    top = torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2])
    return torch.maximum(top, torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


class PNet(nn.Module):
    """Proposal network: fully convolutional, 12x12 windows at stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Box regression (N, 4, h, w) and face probability (N, h, w)."""
        x = _max_pool_2x2(self.prelu1(self.conv1(x)))
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        # both 1x1 heads in one convolution
        weight = torch.cat([self.conv4_1.weight, self.conv4_2.weight])
        bias1, bias2 = self.conv4_1.bias, self.conv4_2.bias
        assert bias1 is not None and bias2 is not None  # nn.Conv2d's default bias=True
        out = F.conv2d(x, weight, torch.cat([bias1, bias2]))
        return out[:, 2:], F.softmax(out[:, :2], dim=1)[:, 1]


class RNet(nn.Module):
    """Refinement network on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Box regression (N, 4) and face probability (N,)."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)  # Caffe's (W, H, C) flatten order
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), F.softmax(self.dense5_1(x), dim=1)[:, 1]


class ONet(nn.Module):
    """Output network on 48x48 crops; also predicts five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Box regression (N, 4), landmarks (N, 10: five x then five y) and probability (N,)."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), self.dense6_3(x), F.softmax(self.dense6_1(x), dim=1)[:, 1]


def _load(net: nn.Module, path: Path) -> nn.Module:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as exc:  # unreadable, truncated, not a state dict, wrong shapes
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(
            f"cannot load MTCNN weights {path} ({type(exc).__name__}: {reason}); fix: {FIX}"
        ) from exc
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


# --------------------------------------------------------------------------- box helpers


_IOU_BLOCK = 1 << 20  # IoU matrix entries computed at once by nms_numpy


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; indices of kept boxes, highest score first.

    Drop-in for ``torchvision.ops.nms`` (same result and order on CPU); see :func:`nms_numpy`.
    """
    keep = nms_numpy(boxes.detach().cpu().numpy(), scores.detach().cpu().numpy(), iou_threshold)
    return torch.from_numpy(keep)


def nms_numpy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS on float32 (N, 4+) boxes; indices kept, highest score first.

    Reproduces torchvision's CPU kernel exactly: boxes visited in stable descending score
    order; a box is dropped when its float32 IoU (inter / (area_i + area_j - inter), areas
    without the +1 pixel convention) with an already kept box is strictly above the
    threshold (compared in double, as the kernel does). IoUs are computed in row blocks, only
    for boxes still alive, so memory stays bounded. numpy, not torch, does this bookkeeping:
    on the few dozen boxes MTCNN handles per call, torch's per-op overhead dominates.
    """
    n = len(boxes)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")
    b = np.asarray(boxes, dtype=np.float32)[order, :4]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    block = max(1, _IOU_BLOCK // n)
    for start in range(0, n, block):
        alive = np.flatnonzero(~suppressed[start : start + block]) + start
        if alive.size == 0:
            continue
        w = np.minimum(x2[alive, None], x2) - np.maximum(x1[alive, None], x1)
        h = np.minimum(y2[alive, None], y2) - np.maximum(y1[alive, None], y1)
        inter = np.maximum(w, 0) * np.maximum(h, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = inter / ((areas[alive, None] + areas) - inter)
        over = iou.astype(np.float64) > iou_threshold
        for row, i in enumerate(alive.tolist()):
            if suppressed[i]:
                continue
            keep.append(i)
            suppressed[i + 1 :] |= over[row, i + 1 :]
    return order[np.asarray(keep, dtype=np.int64)]


def _nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """facenet-pytorch's ``nms_numpy(..., 'Min')``, operation for operation.

    Overlap is intersection over the smaller box, with the +1 pixel area convention; kept
    when overlap <= threshold. Ties follow ``np.argsort`` exactly as facenet does.
    """
    if boxes.size == 0:
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, k].copy() for k in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    pick: list[int] = []
    while order.size > 0:
        i = order[-1]
        pick.append(int(i))
        idx = order[:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[idx]) - np.maximum(x1[i], x1[idx]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[idx]) - np.maximum(y1[i], y1[idx]) + 1)
        inter = w * h
        order = order[np.where(inter / np.minimum(area[i], area[idx]) <= threshold)]
    return np.asarray(pick, dtype=np.int64)


def _bbreg(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply box regression (offsets in units of box size, +1 pixel convention)."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out = boxes.copy()
    out[:, 0] = boxes[:, 0] + reg[:, 0] * w
    out[:, 1] = boxes[:, 1] + reg[:, 1] * h
    out[:, 2] = boxes[:, 2] + reg[:, 2] * w
    out[:, 3] = boxes[:, 3] + reg[:, 3] * h
    return out


def _rerec(boxes: np.ndarray) -> np.ndarray:
    """Square each box on its centre, side = the longer side."""
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = np.maximum(w, h)
    out = boxes.copy()
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _window_bounds(start: np.ndarray, length: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """Adaptive average pooling windows [lo, hi) of ``size`` outputs over each 1-D span.

    ``start``/``length`` are (K,) integers; returns (K, size) bounds by torch's rule
    lo = floor(i * L / size), hi = ceil((i + 1) * L / size).
    """
    i = np.arange(size, dtype=np.int64)
    length = np.asarray(length, dtype=np.int64)[:, None]
    start = np.asarray(start, dtype=np.int64)[:, None]
    return start + (i * length) // size, start + ((i + 1) * length + size - 1) // size


def _integral(rgb: np.ndarray) -> torch.Tensor:
    """Summed-area table (H+1, W+1, 3) of an uint8 RGB image, exact integers."""
    return _integral_many([rgb])[0]


def _integral_many(images: Sequence[np.ndarray]) -> torch.Tensor:
    """Summed-area tables (B, H+1, W+1, 3) of equal-size uint8 RGB images, exact integers.

    Rows are accumulated one at a time, for all images at once: both torch's and numpy's
    cumsum along the outer axis are an order of magnitude slower (strided scans).
    """
    h, w = images[0].shape[:2]
    dtype = torch.int32 if 255 * h * w < 2**31 else torch.int64
    table = torch.zeros(len(images), h + 1, w + 1, 3, dtype=dtype)
    for k, rgb in enumerate(images):
        torch.cumsum(torch.from_numpy(rgb), dim=1, dtype=dtype, out=table[k, 1:, 1:])
    rows = table.numpy()
    for i in range(2, h + 1):
        np.add(rows[:, i - 1], rows[:, i], out=rows[:, i])
    return table


class _Level:
    """Geometry of one pyramid level: output size and its area-pooling windows."""

    def __init__(self, scale: float, h: int, w: int) -> None:
        self.scale = scale
        self.height, self.width = int(h * scale + 1), int(w * scale + 1)
        ys, ye = _window_bounds(np.zeros(1), np.array([h]), self.height)
        xs, xe = _window_bounds(np.zeros(1), np.array([w]), self.width)
        self.ys, self.ye = torch.from_numpy(ys[0]), torch.from_numpy(ye[0])
        self.xs, self.xe = torch.from_numpy(xs[0]), torch.from_numpy(xe[0])
        self.kh = (self.ye - self.ys).float()[:, None, None]
        self.kw = (self.xe - self.xs).float()[None, :, None]

    def resample(self, tables: torch.Tensor) -> torch.Tensor:
        """The images at this level, (B, 3, height, width) NCHW, normalised for P-Net.

        ``tables`` are (B, H+1, W+1, 3) summed-area tables (or one (H+1, W+1, 3): B = 1).
        Bit-identical to facenet's ``interpolate(mode="area")`` (exact window sums, then
        sum / kh / kw in float32) followed by (x - 127.5) / 128.
        """
        if tables.dim() == 3:
            tables = tables[None]
        rows = tables.index_select(1, self.ye) - tables.index_select(1, self.ys)
        sums = rows.index_select(2, self.xe) - rows.index_select(2, self.xs)
        level = (sums.float() / self.kh / self.kw - 127.5) * 0.0078125
        return level.permute(0, 3, 1, 2).contiguous()


def _crops(table: torch.Tensor, rows: np.ndarray, cols: np.ndarray, size: int) -> torch.Tensor:
    """Area-resample crops to (K, 3, size, size), normalised for R-Net/O-Net.

    ``rows``/``cols`` are (K, 2) integer spans [y0, y1) and [x0, x1). Equals facenet's per-box
    ``interpolate(crop, (size, size), mode="area")`` bit for bit (window sum / kh / kw in
    float32; the sums are exact), then (x - 127.5) / 128. The result lies in NHWC memory
    (channels_last), where CPU max pooling is several times faster than on NCHW; R-Net and
    O-Net probabilities then differ from facenet's by ~1e-6.
    """
    ys, ye = _window_bounds(rows[:, 0], rows[:, 1] - rows[:, 0], size)
    xs, xe = _window_bounds(cols[:, 0], cols[:, 1] - cols[:, 0], size)
    w1 = table.shape[1]
    top, bottom = (ys * w1)[:, :, None], (ye * w1)[:, :, None]
    left, right = xs[:, None, :], xe[:, None, :]
    corners = np.stack([bottom + right, top + right, bottom + left, top + left])
    picked = table.view(-1, 3).index_select(0, torch.from_numpy(corners.reshape(-1)))
    c = picked.view(4, len(rows), size, size, 3)
    sums = c[0] - c[1] - c[2] + c[3]
    kh = torch.from_numpy((ye - ys).astype(np.float32))[:, :, None, None]
    kw = torch.from_numpy((xe - xs).astype(np.float32))[:, None, :, None]
    return ((sums.float() / kh / kw - 127.5) * 0.0078125).permute(0, 3, 1, 2)


# --------------------------------------------------------------------------- detector

_EMPTY_BOXES = np.zeros((0, 5), np.float32)
_EMPTY_POINTS = np.zeros((0, 5, 2), np.float32)


def _check_image(rgb: np.ndarray) -> np.ndarray:
    """Validate a uint8 RGB (H, W, 3) image; return it C-contiguous and writable (for torch)."""
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3):
        raise ValueError("MTCNN.detect expects a uint8 RGB array of shape (H, W, 3)")
    if rgb.shape[2] != 3:
        raise ValueError(f"MTCNN.detect expects 3 channels, got shape {rgb.shape}")
    return np.require(rgb, requirements=["C", "W"])


def _faces(boxes: np.ndarray, points: np.ndarray) -> list[Face]:
    """Final boxes (N, 5) and points (N, 5, 2) as Faces, largest box first (facenet's order)."""
    if len(boxes) == 0:
        return []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(area)[::-1]  # facenet's select_largest ordering
    return [
        Face(
            box=(float(boxes[k, 0]), float(boxes[k, 1]), float(boxes[k, 2]), float(boxes[k, 3])),
            score=float(boxes[k, 4]),
            detector="mtcnn",
            landmarks5=points[k].astype(np.float32, copy=True),
        )
        for k in order
    ]


def _level_candidates(
    reg: np.ndarray, prob: np.ndarray, scale: float, threshold: float
) -> np.ndarray | None:
    """One image's P-Net cells at one level above ``threshold``, as boxes after NMS 0.5."""
    stride, cell = 2, 12
    mask = prob >= threshold
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    cells = np.stack([xs, ys], axis=1).astype(np.float32)
    q1 = np.floor((stride * cells + 1) / scale)
    q2 = np.floor((stride * cells + cell) / scale)
    cand = np.concatenate([q1, q2, prob[mask][:, None], reg[:, mask].T], axis=1)
    return cand[nms_numpy(cand, cand[:, 4], 0.5)]


def _merge_proposals(found: list[np.ndarray]) -> np.ndarray:
    """One image's candidates over all levels: NMS 0.7, regression, squared (N, 5)."""
    if not found:
        return _EMPTY_BOXES
    boxes = np.concatenate(found)
    boxes = boxes[nms_numpy(boxes, boxes[:, 4], 0.7)]
    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    qq = np.stack(
        [
            boxes[:, 0] + boxes[:, 5] * regw,
            boxes[:, 1] + boxes[:, 6] * regh,
            boxes[:, 2] + boxes[:, 7] * regw,
            boxes[:, 3] + boxes[:, 8] * regh,
            boxes[:, 4],
        ],
        axis=1,
    )
    return _rerec(qq)


def _crop_spans(boxes: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes that overlap the image and their integer crop spans (facenet's ``pad``).

    Box corners are truncated to integers and clipped to the image; returns the kept boxes and
    (K, 4) spans y0, y1, x0, x1 (half-open). A box wholly outside the image is dropped
    (facenet would fail on it).
    """
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    spans = np.stack(
        [
            np.maximum(b[:, 1], 1) - 1,
            np.minimum(b[:, 3], h),
            np.maximum(b[:, 0], 1) - 1,
            np.minimum(b[:, 2], w),
        ],
        axis=1,
    )
    ok = (spans[:, 1] > spans[:, 0]) & (spans[:, 3] > spans[:, 2])
    if not ok.all():
        boxes, spans = boxes[ok], spans[ok]
    return boxes, spans


class MTCNN:
    """MTCNN face detector; reproduces facenet-pytorch 2.6.0 ``MTCNN(keep_all=True)``.

    Weights load once here (see :func:`find_weights_dir`). :meth:`detect_many` is the batched
    call: it takes ``pnet_batch`` images at a time (8 on CPU, 64 on a GPU); among them, images
    of equal size share P-Net passes (stacked per pyramid level) and R-Net/O-Net run on all
    their candidates together. :meth:`detect` is ``detect_many([rgb])[0]``.

    Batching changes only which crops share a network call. The faces found are the same and
    coordinates agree with a one-image call to ~1e-4 px, probabilities to ~1e-6, but not bit
    for bit: oneDNN/MKL choose convolution kernels (and their summation order) by batch shape,
    so on CPU a crop's score already depends on how many crops of its own image share its
    R-Net call. Output is deterministic for a given set of images per call and torch thread
    count (the synth runner calls it per fixed chunk, one thread per worker).

    min_face_size: the smallest face looked for, px (facenet's 20 by default), or ``"auto"``:
    first only faces of at least :data:`AUTO_MIN_FACE_FRACTION` of the image's shorter side
    (never under 20 px; :func:`auto_min_face`), and for an image where that finds nothing, a
    second full pass down to 20 px. Face-centred photos (LFW: faces ~100 px in 250 px) lose no
    face and skip the pyramid's two largest, costliest levels; the boxes come from other
    pyramid scales, so they move a little (docs/benchmarks.md).

    device: ``cpu`` (default), ``cuda`` or ``cuda:N`` (:func:`~mfrbench.vision.device.
    resolve_device`); the networks run there, box bookkeeping stays in numpy. GPU results
    differ from the CPU's by float rounding only (within the golden tolerance).
    """

    name = "mtcnn"

    def __init__(
        self,
        weights_dir: str | Path | None = None,
        *,
        min_face_size: int | str = NATIVE_MIN_FACE,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        device: str | torch.device | None = None,
        pnet_batch: int | None = None,
    ) -> None:
        if min_face_size != "auto" and not (isinstance(min_face_size, int) and min_face_size > 0):
            raise UserError(
                f"MTCNN min_face_size must be a positive int or 'auto', got {min_face_size!r}"
            )
        if len(thresholds) != 3:
            raise UserError(f"MTCNN needs three thresholds, got {tuple(thresholds)}")
        if not 0.0 < factor < 1.0:
            raise UserError(f"MTCNN pyramid factor must be in (0, 1), got {factor}")
        if pnet_batch is not None and pnet_batch < 1:
            raise UserError(f"MTCNN pnet_batch must be >= 1, got {pnet_batch}")
        self.device = resolve_device(device)
        folder = find_weights_dir(weights_dir)
        self.weights_dir = folder
        self.min_face_size = min_face_size
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        # CPU: past ~8 stacked images P-Net gets slower per image (bench/mtcnn_batch.py)
        self.pnet_batch = pnet_batch or (8 if self.device.type == "cpu" else 64)
        self.pnet = _load(PNet(), folder / "pnet.pt").to(self.device)
        self.rnet = _load(RNet(), folder / "rnet.pt").to(self.device)
        self.onet = _load(ONet(), folder / "onet.pt").to(self.device)
        self._pyramids: dict[tuple[int, int, int], list[_Level]] = {}

    def min_face_for(self, height: int, width: int) -> int:
        """The minimum face size (px) of the first pass on an image of this size."""
        if self.min_face_size == "auto":
            return auto_min_face(height, width)
        return int(self.min_face_size)

    def scales(self, height: int, width: int, min_face: int | None = None) -> list[float]:
        """Pyramid scales: the smallest face (``min_face``, else :meth:`min_face_for`) maps to
        12 px, then shrink by ``factor``."""
        m = 12.0 / (min_face or self.min_face_for(height, width))
        minl = min(height, width) * m
        scales = []
        scale = m
        while minl >= 12:
            scales.append(scale)
            scale = scale * self.factor
            minl = minl * self.factor
        return scales

    def _pyramid(self, height: int, width: int, min_face: int) -> list[_Level]:
        """Pyramid geometry for an image size and minimum face, cached (datasets repeat a few
        sizes)."""
        key = (height, width, min_face)
        if key not in self._pyramids:
            if len(self._pyramids) >= 64:
                self._pyramids.clear()
            levels = [_Level(s, height, width) for s in self.scales(height, width, min_face)]
            self._pyramids[key] = levels
        return self._pyramids[key]

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """All faces in one uint8 RGB (H, W, 3) image, largest box first."""
        return self.detect_many([rgb])[0]

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces per image (as :meth:`detect` gives them), computed in shared network calls."""
        checked = [_check_image(rgb) for rgb in images]
        found: list[tuple[np.ndarray, np.ndarray]] = []
        with torch.inference_mode():
            # groups of pnet_batch images: on CPU larger groups are slower (cache misses)
            for start in range(0, len(checked), self.pnet_batch):
                found += self._detect_many(checked[start : start + self.pnet_batch])
            # "auto": an image whose first pass found nothing is searched again down to 20 px
            again = [
                i
                for i, (boxes, _) in enumerate(found)
                if not len(boxes) and self.min_face_for(*checked[i].shape[:2]) > NATIVE_MIN_FACE
            ]
            for start in range(0, len(again), self.pnet_batch):
                part = again[start : start + self.pnet_batch]
                redone = self._detect_many([checked[i] for i in part], NATIVE_MIN_FACE)
                for i, result in zip(part, redone, strict=True):
                    found[i] = result
        return [_faces(boxes, points) for boxes, points in found]

    # The three stages; arithmetic follows facenet's detect_face step for step. Boxes are
    # float32 numpy arrays (x1, y1, x2, y2, score, ...); only the networks run in torch.

    def _detect_many(
        self, images: list[np.ndarray], min_face: int | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Boxes and points per image; ``min_face`` overrides :meth:`min_face_for`."""
        sizes = [(int(rgb.shape[1]), int(rgb.shape[0])) for rgb in images]
        tables: dict[int, torch.Tensor] = {}
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (w, h) in enumerate(sizes):
            if self._pyramid(h, w, min_face or self.min_face_for(h, w)):
                groups.setdefault((h, w), []).append(i)
        boxes: dict[int, np.ndarray] = {}
        for (h, w), members in groups.items():
            pyramid = self._pyramid(h, w, min_face or self.min_face_for(h, w))
            for start in range(0, len(members), self.pnet_batch):
                part = members[start : start + self.pnet_batch]
                stacked = _integral_many([images[i] for i in part])
                tables.update(zip(part, stacked.unbind(0), strict=True))
                proposed = self._propose(stacked, pyramid)
                boxes.update(zip(part, proposed, strict=True))
        boxes = self._refine(tables, boxes, sizes)
        results = self._output(tables, boxes, sizes)
        return [results.get(i, (_EMPTY_BOXES, _EMPTY_POINTS)) for i in range(len(images))]

    def _propose(self, tables: torch.Tensor, pyramid: list[_Level]) -> list[np.ndarray]:
        """Stage 1: P-Net over the pyramid of equal-size images (``tables`` stacked)."""
        found: list[list[np.ndarray]] = [[] for _ in range(len(tables))]
        for level in pyramid:
            reg_t, prob_t = self.pnet(level.resample(tables).to(self.device))
            reg, prob = reg_t.cpu().numpy(), prob_t.cpu().numpy()
            for k in range(len(tables)):
                cand = _level_candidates(reg[k], prob[k], level.scale, self.thresholds[0])
                if cand is not None:
                    found[k].append(cand)
        return [_merge_proposals(f) for f in found]

    def _run(
        self,
        net: nn.Module,
        tables: list[torch.Tensor],
        spans: list[np.ndarray],
        size: int,
    ) -> list[list[np.ndarray]]:
        """``net`` outputs (numpy) per image on its size x size crops of ``spans``.

        All images' crops run in shared calls of up to ``_BATCH`` (as facenet's chunks, so a
        huge image does not need all its crops in memory at once).
        """
        counts = [len(s) for s in spans]
        owner = np.repeat(np.arange(len(spans)), counts)
        flat = np.concatenate(spans)
        outputs = []
        for start in range(0, len(flat), _BATCH):
            stop = min(start + _BATCH, len(flat))
            pieces = []
            for k in np.unique(owner[start:stop]).tolist():
                rows = flat[start:stop][owner[start:stop] == k]
                pieces.append(_crops(tables[k], rows[:, :2], rows[:, 2:], size))
            crops = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
            outputs.append([t.cpu().numpy() for t in net(crops.to(self.device))])
        merged = [np.concatenate(parts) for parts in zip(*outputs, strict=True)]
        bounds = np.cumsum([0, *counts])
        return [[m[bounds[k] : bounds[k + 1]] for m in merged] for k in range(len(spans))]

    def _stage(
        self,
        net: nn.Module,
        size: int,
        tables: dict[int, torch.Tensor],
        boxes: dict[int, np.ndarray],
        sizes: list[tuple[int, int]],
    ) -> dict[int, tuple[np.ndarray, list[np.ndarray]]]:
        """Crop each image's boxes and run ``net`` on all of them: kept boxes and outputs."""
        kept: dict[int, np.ndarray] = {}
        spans: dict[int, np.ndarray] = {}
        for i, b in boxes.items():
            if len(b) == 0:
                continue
            b, s = _crop_spans(b, *sizes[i])
            if len(b) > 0:
                kept[i], spans[i] = b, s
        if not kept:
            return {}
        order = list(kept)
        outs = self._run(net, [tables[i] for i in order], [spans[i] for i in order], size)
        return {i: (kept[i], out) for i, out in zip(order, outs, strict=True)}

    def _refine(
        self,
        tables: dict[int, torch.Tensor],
        boxes: dict[int, np.ndarray],
        sizes: list[tuple[int, int]],
    ) -> dict[int, np.ndarray]:
        """Stage 2: R-Net rescoring, NMS and regression of each image's candidates."""
        refined = {}
        for i, (b, (reg, score)) in self._stage(self.rnet, 24, tables, boxes, sizes).items():
            keep = score > self.thresholds[1]
            b = np.concatenate([b[keep, :4], score[keep, None]], axis=1)
            reg = reg[keep]
            pick = nms_numpy(b, b[:, 4], 0.7)
            refined[i] = _rerec(_bbreg(b[pick], reg[pick]))
        return refined

    def _output(
        self,
        tables: dict[int, torch.Tensor],
        boxes: dict[int, np.ndarray],
        sizes: list[tuple[int, int]],
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Stage 3: O-Net scores, landmarks and final boxes, then the 'Min' NMS, per image."""
        results = {}
        for i, (b, (reg, marks, score)) in self._stage(self.onet, 48, tables, boxes, sizes).items():
            keep = score > self.thresholds[2]
            marks = marks[keep]
            b = np.concatenate([b[keep, :4], score[keep, None]], axis=1)
            reg = reg[keep]
            bw = b[:, 2] - b[:, 0] + 1
            bh = b[:, 3] - b[:, 1] + 1
            px = bw[:, None] * marks[:, :5] + b[:, 0:1] - 1
            py = bh[:, None] * marks[:, 5:] + b[:, 1:2] - 1
            points = np.stack([px, py], axis=2)
            b = _bbreg(b, reg)
            pick = _nms_min(b[:, :4], b[:, 4], 0.7)
            results[i] = (b[pick], points[pick])
        return results
