"""Training augmentations with recorded parameters, so every augmented image can be regenerated.

Sampling and applying are separate: `sample_params(kind, rng)` draws an `AugParams` (plain JSON),
`apply(rgb, params)` is a pure function of the image and those parameters. A manifest that
stores the parameters therefore reproduces each image byte for byte, whatever the worker count.

Kinds (ranges follow the masked-face papers' training recipes):
- rotate: angle uniform in [-20, 20] degrees (the LFW masking work made 3 copies at up to
  +-20 deg), about the image centre, bilinear, border replicated; positive is anticlockwise.
- jitter: brightness, contrast, saturation factors each uniform in [0.8, 1.2], applied in that
  fixed order (as torchvision's ColorJitter(0.2, 0.2, 0.2), but without its random order).
- blur: Gaussian, sigma uniform in [0.5, 2.0] pixels.
- noise: additive Gaussian, sigma uniform in [2, 10] (8-bit units), drawn from a stored seed.
- gray: BT.601 luma copied to the 3 channels.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from mfrbench.digest import ascii_json
from mfrbench.errors import UserError

AUGMENTATIONS = ("rotate", "jitter", "blur", "noise", "gray")

ROTATE_MAX_DEG = 20.0
JITTER_DELTA = 0.2
BLUR_SIGMA = (0.5, 2.0)
NOISE_SIGMA = (2.0, 10.0)

# Parameters each kind records; apply() refuses anything else so typos cannot pass silently.
_PARAM_KEYS = {
    "rotate": ("angle",),
    "jitter": ("brightness", "contrast", "saturation"),
    "blur": ("sigma",),
    "noise": ("sigma", "seed"),
    "gray": (),
}


@dataclass(frozen=True)
class AugParams:
    """One augmentation and its parameters (floats; the noise seed is an int). JSON-safe."""

    kind: str
    params: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": dict(self.params)}

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, :func:`mfrbench.digest.ascii_json`): equal parameters
        give equal strings."""
        return ascii_json(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AugParams:
        params = cls(kind=str(d["kind"]), params=dict(d.get("params", {})))
        _validate(params)
        return params

    @classmethod
    def from_json(cls, text: str) -> AugParams:
        return cls.from_dict(json.loads(text))


def _validate(p: AugParams) -> None:
    if p.kind not in _PARAM_KEYS:
        raise UserError(
            f"unknown augmentation {p.kind!r}; choose one of {', '.join(AUGMENTATIONS)}"
        )
    expected = set(_PARAM_KEYS[p.kind])
    if set(p.params) != expected:
        raise UserError(
            f"augmentation {p.kind!r} needs parameters {sorted(expected)}, got {sorted(p.params)}"
        )


def make_rng(seed: int, key: str) -> np.random.Generator:
    """A generator seeded from (global seed, stable key), e.g. key = rel_path + '#' + variant.

    SHA-256 rather than Python's hash(), which is salted per process, so the stream is the same
    in every worker, run and machine.
    """
    digest = hashlib.sha256(f"{int(seed)}\x00{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def sample_params(kind: str, rng: np.random.Generator) -> AugParams:
    """Draw the parameters of one `kind` augmentation from `rng`."""
    if kind == "rotate":
        params = {"angle": float(rng.uniform(-ROTATE_MAX_DEG, ROTATE_MAX_DEG))}
    elif kind == "jitter":
        lo, hi = 1.0 - JITTER_DELTA, 1.0 + JITTER_DELTA
        b, c, s = (float(v) for v in rng.uniform(lo, hi, size=3))
        params = {"brightness": b, "contrast": c, "saturation": s}
    elif kind == "blur":
        params = {"sigma": float(rng.uniform(*BLUR_SIGMA))}
    elif kind == "noise":
        params = {
            "sigma": float(rng.uniform(*NOISE_SIGMA)),
            "seed": int(rng.integers(0, 2**32)),
        }
    elif kind == "gray":
        params = {}
    else:
        raise UserError(f"unknown augmentation {kind!r}; choose one of {', '.join(AUGMENTATIONS)}")
    return AugParams(kind, params)


def apply(rgb: np.ndarray, p: AugParams) -> np.ndarray:
    """Return a new (H, W, 3) uint8 image: `rgb` augmented by `p`. Never modifies `rgb`."""
    _validate(p)
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3:
        raise ValueError("expected an (H, W, 3) uint8 RGB numpy array")
    rgb = np.ascontiguousarray(rgb)
    kind, q = p.kind, p.params
    if kind == "rotate":
        out = rotate(rgb, float(q["angle"]))
    elif kind == "jitter":
        out = jitter(rgb, float(q["brightness"]), float(q["contrast"]), float(q["saturation"]))
    elif kind == "blur":
        out = blur(rgb, float(q["sigma"]))
    elif kind == "noise":
        out = add_noise(rgb, float(q["sigma"]), int(q["seed"]))
    else:
        out = gray(rgb)
    return np.ascontiguousarray(out, dtype=np.uint8)


def rotate(rgb: np.ndarray, angle: float) -> np.ndarray:
    """Rotate by `angle` degrees anticlockwise about the image centre, border replicated."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _luma(rgb_f: np.ndarray) -> np.ndarray:
    """BT.601 luma of a float32 RGB image, shape (H, W, 1).

    Written as elementwise ufuncs, not a matmul, so no BLAS kernel can reorder or fuse it.
    """
    r, g, b = rgb_f[..., 0:1], rgb_f[..., 1:2], rgb_f[..., 2:3]
    return r * np.float32(0.299) + g * np.float32(0.587) + b * np.float32(0.114)


def jitter(rgb: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Scale brightness, then contrast (about the mean luma), then saturation (about luma).

    Each step clips to [0, 255] like torchvision's functional ops. All arithmetic is elementwise
    float32, and the mean is an exact integer sum, so results do not depend on SIMD width.
    """
    img = rgb.astype(np.float32) * np.float32(brightness)
    np.clip(img, 0, 255, out=img)
    mean = _exact_mean_luma(img)
    img = (img - mean) * np.float32(contrast) + mean
    np.clip(img, 0, 255, out=img)
    lum = _luma(img)
    img = (img - lum) * np.float32(saturation) + lum
    np.clip(img, 0, 255, out=img)
    return np.rint(img).astype(np.uint8)


def _exact_mean_luma(img: np.ndarray) -> np.float32:
    """Mean BT.601 luma, summed in int64 on values rounded to 1/1024 (order-independent)."""
    fixed = np.rint(_luma(img) * np.float32(1024)).astype(np.int64)
    return np.float32(int(fixed.sum()) / (1024.0 * fixed.size))


def blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur, kernel 2*ceil(3 sigma)+1, reflected border (OpenCV's bit-exact 8U path)."""
    k = 2 * int(np.ceil(3.0 * sigma)) + 1
    return cv2.GaussianBlur(
        rgb, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101
    )


def add_noise(rgb: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Add N(0, sigma^2) noise (8-bit units) from its own seeded generator; round and clip."""
    noise = np.random.default_rng(seed).standard_normal(rgb.shape, dtype=np.float32)
    img = rgb.astype(np.float32) + noise * np.float32(sigma)
    np.clip(img, 0, 255, out=img)
    return np.rint(img).astype(np.uint8)


def gray(rgb: np.ndarray) -> np.ndarray:
    """BT.601 grey (OpenCV's fixed-point conversion) in all 3 channels."""
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)
