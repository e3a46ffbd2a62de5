"""Eigenfaces: PCA of grey, histogram-equalised crops (the LFW masking paper's baseline).

A traditional baseline that runs anywhere with no weights: it is fitted on the protocol's
training images only (``needs_fit``), then projects each image onto the leading principal
components. The evaluator renders the protocol's own crop (``protocol``, e.g. the 112x56 upper
half) and fits it into ``size`` (default 64x32, the shipped protocols' 2:1 ROI at a size PCA
handles quickly). A crop of another aspect is padded with zero borders, never stretched (a
square-ROI protocol, or a real image's square face, becomes a pillarboxed 64x32, and the report
says ``aspect: padded``); use ``size=64x64`` for a square-ROI protocol to use every pixel.

Options (:data:`OPTIONS`, docs/models.md): ``size`` (WxH), ``n_components`` (default 100,
capped at n_train - 1 and the pixel count), ``whiten`` (default false: divide each projection
by its component's standard deviation, so every component weighs the same in the distance;
with the cosine distance this is the "Mahalanobis cosine" of the CSU face-identification
baseline), ``distance`` (default cosine).

Determinism: the SVD runs in float64 and each component's sign is fixed so that its entry of
largest magnitude is positive, so a refit on the same images gives the same basis bytes.
The identity carries a sha256 of the fitted basis, so cached embeddings never outlive the
training data they came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import cv2
import numpy as np

from mfrbench.models.base import (
    DISTANCE_OPTION,
    Box,
    EmbeddingModel,
    ModelIdentity,
    Options,
    OptionSpec,
    Preprocess,
)
from mfrbench.models.info import ModelInfo

NAME = "eigenface"
VERSION = "1"
DEFAULT_SIZE = (64, 32)
DEFAULT_COMPONENTS = 100

OPTIONS = (
    OptionSpec(
        "size",
        DEFAULT_SIZE,
        "input WxH the protocol crop is fitted into (zero borders where its aspect differs)",
        kind="size",
    ),
    OptionSpec(
        "n_components",
        DEFAULT_COMPONENTS,
        "principal components kept (capped at training images - 1 and the pixel count)",
        kind="int",
    ),
    OptionSpec(
        "whiten",
        False,
        "divide each projection by its component's standard deviation (with cosine: the CSU "
        "baseline's Mahalanobis cosine)",
        kind="bool",
    ),
    DISTANCE_OPTION,
)
DEFAULT_PREPROCESS = Preprocess(
    size=DEFAULT_SIZE, color="gray", mean=(0.0,), std=(1.0,), crop="protocol"
)
INFO = ModelInfo(
    spec=f"plugin:{NAME}",
    summary="Eigenfaces: PCA of grey, histogram-equalised protocol crops, fitted on the "
    "protocol's training images only (the LFW masking paper's traditional baseline; no weights).",
    options=OPTIONS,
    preprocess=DEFAULT_PREPROCESS,
    preprocess_note="grey (ITU-R 601 luma) then histogram-equalised; PCA centres the pixels "
    "itself, so mean/std are not applied; size=WxH changes the input",
    distance="cosine (distance=euclidean|sql2 to change it)",
    weights="none: the basis is fitted per protocol on its training images (the identity "
    "records its sha256 and n_train)",
)


def gray_equalized(images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """(N, w*h) float64 rows: each RGB image resized to ``size``, grey, histogram-equalised."""
    rows = np.empty((len(images), size[0] * size[1]), dtype=np.float64)
    for i, img in enumerate(images):
        arr = np.ascontiguousarray(img)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {arr.dtype} {arr.shape}")
        if (arr.shape[1], arr.shape[0]) != size:
            shrink = arr.shape[1] > size[0]
            interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            arr = cv2.resize(arr, size, interpolation=interp)
        gray = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
        rows[i] = cv2.equalizeHist(gray).reshape(-1)
    return rows


def pca(x: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of rows ``x`` by SVD: (mean, components (k, d), per-component std), signs fixed.

    ``k = min(n_components, n - 1, d)``; each component is flipped so its largest-magnitude
    entry is positive (ties: the first such entry), which makes the basis deterministic.
    """
    n, d = x.shape
    if n < 2:
        raise ValueError(f"PCA needs at least 2 samples, got {n}")
    k = min(int(n_components), n - 1, d)
    mean = x.mean(axis=0)
    xc = x - mean
    if n > 2 * d:
        # many more images than pixels: the d x d scatter matrix's eigenvectors are the same
        # basis, ~20x faster than the SVD of the n x d matrix (a full LFW fold: 7,000 x 2,048)
        evals, evecs = np.linalg.eigh(xc.T @ xc)
        order = np.argsort(evals)[::-1][:k]
        comps = np.ascontiguousarray(evecs[:, order].T)
        s = np.sqrt(np.clip(evals[order], 0.0, None))
    else:
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        comps = vt[:k].copy()
    pivot = np.argmax(np.abs(comps), axis=1)
    signs = np.sign(comps[np.arange(k), pivot])
    signs[signs == 0] = 1.0
    comps *= signs[:, None]
    std = s[:k] / np.sqrt(n - 1)
    return mean, comps, std


class Eigenface(EmbeddingModel):
    """PCA projection of grey, histogram-equalised protocol crops; fit on training images."""

    name = NAME
    version = VERSION
    info = INFO
    needs_fit = True

    def __init__(self, **options: Any) -> None:
        opts = Options(NAME, options, OPTIONS)
        self.size = opts.size("size")
        self.n_components = opts.int("n_components", minimum=1)
        self.whiten = opts.bool("whiten")
        self.default_distance = opts.choice("distance")
        opts.finish()
        self.preprocess = replace(DEFAULT_PREPROCESS, size=self.size)
        self.embedding_size = min(self.n_components, self.size[0] * self.size[1])
        self._mean: np.ndarray | None = None
        self._components: np.ndarray | None = None
        self._std: np.ndarray | None = None
        self._digest: str | None = None
        self.n_train = 0

    @property
    def fitted(self) -> bool:
        return self._components is not None

    def fit(self, images: list[np.ndarray], boxes: list[Box | None]) -> None:
        """Fit the basis on these images only (replacing any earlier fit)."""
        if len(images) < 2:
            raise ValueError(f"{NAME} needs at least 2 training images, got {len(images)}")
        x = gray_equalized(images, self.size)
        mean, comps, std = pca(x, self.n_components)
        if np.any(std <= 0):
            keep = std > 0
            comps, std = comps[keep], std[keep]
        if len(comps) == 0:
            raise ValueError(f"{NAME}: the training images have no variance")
        self._mean, self._components, self._std = mean, comps, std
        self.embedding_size = len(comps)
        self.n_train = len(images)
        h = hashlib.sha256()
        for arr in (mean, comps, std):
            h.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
        self._digest = h.hexdigest()

    def _require_fit(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"{NAME} must be fitted (fit(train images)) before use")

    def identity(self) -> ModelIdentity:
        """The fitted basis's digest, or ``unfitted`` (options still name the configuration)."""
        return ModelIdentity(
            name=NAME,
            version=VERSION,
            weights_digest=str(self._digest) if self.fitted else "unfitted",
            options={
                "size": list(self.size),
                "n_components": self.embedding_size,
                "whiten": self.whiten,
                "n_train": self.n_train,
            },
        )

    def embed(self, images: list[np.ndarray], boxes: list[Box | None]) -> np.ndarray:
        self._require_fit()
        assert self._mean is not None and self._components is not None and self._std is not None
        if not images:
            return np.zeros((0, self.embedding_size), dtype=np.float32)
        x = gray_equalized(images, self.size)
        y = (x - self._mean) @ self._components.T
        if self.whiten:
            y = y / self._std
        return y.astype(np.float32)
