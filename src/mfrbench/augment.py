"""Masking inside a training loop: :class:`MaskAugment`, a seeded transform over faces.

    from mfrbench.augment import MaskAugment
    aug = MaskAugment("surgical:0.4,cloth:0.3,n95:0.2,paper:0.1", p=0.5, seed=0)
    masked = aug(image, landmarks)              # numpy HWC uint8, PIL image or torch CHW tensor
    masked = aug(crop, row=manifest_row)        # landmarks from a manifest row / protocol image
    masked, occlusion, record = aug.explain(image, landmarks, key="img-17")

``landmarks`` are the canonical 68 points (dlib order, :mod:`mfrbench.vision.anchors`) in the
image's pixels. With ``key`` (any str or int: an image id, a dataset index, ``(index, epoch)``
formatted into a string) each image's mask is a pure function of (seed, key), the same in every
DataLoader worker and any order; without it the transform's own generator advances per call
(reproducible for one sequence of calls in one process, but copied into each DataLoader worker).
torch is never imported here: tensors are recognised by their methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mfrbench.errors import UserError
from mfrbench.vision.augment import make_rng
from mfrbench.vision.mask_mix import MaskMix, MaskRecord, apply_mask

__all__ = ["MaskAugment", "landmarks_in_crop"]


def landmarks_in_crop(row: Mapping[str, Any]) -> np.ndarray:
    """A manifest row's or protocol image's 68 landmarks (source pixels) in its output crop.

    Manifest rows hold ``landmarks`` (136 floats) and ``out_width``/``out_height``; protocol
    images ``landmarks68`` (68 [x, y]) and ``out_wh``. The crop is ``roi_box`` resized to that
    size (``crop_resize``: area resampling, pixel centres at +0.5), so a point maps as
    ``(x - x1 + 0.5) * out_w / roi_w - 0.5``.
    """
    points = row.get("landmarks68", row.get("landmarks"))
    box = row.get("roi_box")
    if points is None or box is None:
        raise UserError("this row has no landmarks/roi_box (no face was found in its source)")
    x1, y1, x2, y2 = (float(v) for v in box)
    size: Sequence[Any] = row.get("out_wh") or (row.get("out_width"), row.get("out_height"))
    out_w, out_h = (x2 - x1, y2 - y1) if None in size else (float(size[0]), float(size[1]))
    scale = np.array([out_w / (x2 - x1), out_h / (y2 - y1)])
    pts = np.asarray(points, np.float64).reshape(68, 2)
    return (pts - (x1, y1) + 0.5) * scale - 0.5


class MaskAugment:
    """Put a procedural (or polygon) mask on a face with probability ``p``; a plain callable and
    a torchvision-style transform.

    masks: a mix spec (``"surgical:0.4,cloth:0.6"``), a {kind: weight} mapping or a list of
        kinds (equal weights); see :class:`~mfrbench.vision.mask_mix.MaskMix`.
    p: probability that a face is masked at all (the draw is made per call either way).
    seed: seeds the per-key generators and the transform's own.
    """

    def __init__(
        self,
        masks: str | Mapping[str, float] | Sequence[str] = "surgical",
        *,
        p: float = 1.0,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= p <= 1.0:
            raise UserError(f"MaskAugment p must be in [0, 1], got {p}")
        self.mix = MaskMix.parse(masks)
        self.p = float(p)
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)

    def __repr__(self) -> str:
        return f"MaskAugment({self.mix.spec()!r}, p={self.p}, seed={self.seed})"

    def __call__(
        self,
        image: Any,
        landmarks: np.ndarray | None = None,
        *,
        row: Mapping[str, Any] | None = None,
        key: str | int | None = None,
    ) -> Any:
        """The image, masked or not, in the type it came in (see the module doc)."""
        return self.explain(image, landmarks, row=row, key=key)[0]

    def explain(
        self,
        image: Any,
        landmarks: np.ndarray | None = None,
        *,
        row: Mapping[str, Any] | None = None,
        key: str | int | None = None,
    ) -> tuple[Any, np.ndarray, MaskRecord | None]:
        """(image, (H, W) bool occlusion mask, what was drawn or None when left unmasked)."""
        if (landmarks is None) == (row is None):
            raise UserError("MaskAugment needs the face's landmarks or its manifest row (one)")
        canon = landmarks_in_crop(row) if row is not None else np.asarray(landmarks, np.float64)
        if canon.shape != (68, 2):
            raise UserError(f"MaskAugment needs canonical (68, 2) landmarks, got {canon.shape}")
        rgb, back = _to_rgb(image)
        rng = self._rng if key is None else make_rng(self.seed, f"mask-augment\x00{key}")
        masked = float(rng.random()) < self.p
        if not masked:
            return image, np.zeros(rgb.shape[:2], bool), None
        out, occlusion, record = apply_mask(rgb, canon, self.mix, rng)
        return back(out), occlusion, record


def _to_rgb(image: Any) -> tuple[np.ndarray, Any]:
    """(HWC uint8 RGB array, a function giving an array back in the input's type)."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise UserError(
                f"expected an (H, W, 3) uint8 RGB array, got {image.shape} {image.dtype}"
            )
        return image, lambda out: out
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        from PIL import Image

        mode = image.mode
        return np.asarray(image.convert("RGB")), lambda out: Image.fromarray(out).convert(mode)
    if hasattr(image, "permute") and hasattr(image, "detach"):  # a torch tensor, CHW
        if image.ndim != 3 or image.shape[0] != 3:
            raise UserError(f"expected a (3, H, W) image tensor, got {tuple(image.shape)}")
        hwc = image.detach().cpu().permute(1, 2, 0)
        if image.is_floating_point():  # torchvision's ToTensor range: [0, 1]
            arr = np.rint(hwc.clamp(0, 1).numpy() * 255.0).astype(np.uint8)

            def back(out: np.ndarray) -> Any:
                # only the pixels the mask changed leave the float image: no requantising
                changed = image.new_tensor((out != arr).any(axis=2)).bool()
                new = image.new_tensor(out.astype(np.float32) / 255.0).permute(2, 0, 1)
                return image.where(~changed, new)

            return np.ascontiguousarray(arr), back
        arr = np.ascontiguousarray(hwc.numpy().astype(np.uint8))
        return arr, lambda out: image.new_tensor(out).permute(2, 0, 1).contiguous()
    raise UserError(
        "MaskAugment takes a numpy array, a PIL image or a torch tensor, "
        f"not {type(image).__name__}"
    )
