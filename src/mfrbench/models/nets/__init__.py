"""Network definitions for the torch plugins, and safe reading of their weight files.

- :mod:`~mfrbench.models.nets.resnet`: ResNet-50 with torchvision's state-dict keys (and the
  VGGFace2 Caffe variant).
- :mod:`~mfrbench.models.nets.inception_resnet_v1`: FaceNet's Inception-ResNet-v1 with
  facenet-pytorch's state-dict keys.

Weight files are read without executing code from them: ``.pth``/``.pt`` through
``torch.load(weights_only=True)``, ``.pkl`` (the VGGFace2 Caffe ports publish pickled numpy
arrays) through an unpickler that admits numpy arrays only. Common wrappers are undone
(``{"state_dict": ...}``, DataParallel's ``module.`` prefix), and a file that does not fit the
network is a :class:`~mfrbench.errors.UserError` naming the keys that are missing or extra.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import torch
from torch import nn

from mfrbench.errors import UserError
from mfrbench.fetch import cache_dir, fetch
from mfrbench.models.base import Options, OptionSpec, Preprocess, to_tensor

__all__ = [
    "DEVICE_OPTION",
    "URL_SCHEMES",
    "Published",
    "WeightsSource",
    "build_empty",
    "check_weights",
    "default_size",
    "embed_batches",
    "fit_width",
    "load_weights",
    "read_state_dict",
    "strip_wrappers",
    "weights_options",
    "weights_source",
]

#: Keys under which training scripts commonly nest the state dict in a checkpoint.
_WRAPPER_KEYS = ("state_dict", "model_state_dict")
_PREFIXES = ("module.",)
#: Globals a pickle of numpy arrays needs (numpy 1.x and 2.x module names, Python 2 pickles).
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
}


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickler that builds numpy arrays and plain containers, and refuses anything else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights file")


def _read_raw(path: Path) -> Any:
    """The object stored in a weights file, read without running code from it."""
    try:
        if path.suffix.lower() == ".pkl":
            with open(path, "rb") as f:
                return _NumpyUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"cannot read weights file {path}: {reason} (expected a state dict saved with "
            "torch.save, or a .pkl of numpy arrays)"
        ) from e


def strip_wrappers(obj: Any) -> dict[str, Any]:
    """Undo ``{"state_dict": sd}`` nesting and a ``module.`` prefix shared by every key."""
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise UserError(f"expected a state dict (name -> tensor), got {type(obj).__name__}")
    state = {str(k): v for k, v in obj.items()}
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict (``.pth``/``.pt``/``.pkl``) as name -> CPU tensor, wrappers removed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    raw = _read_raw(path)
    try:
        state = strip_wrappers(raw)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, torch.Tensor):
            raise UserError(
                f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor; "
                "pass a state dict (name -> tensor)"
            )
        out[key] = value
    return out


def _first(names: list[str], n: int = 4) -> str:
    shown = ", ".join(names[:n])
    return shown + (f", ... (+{len(names) - n} more)" if len(names) > n else "")


def build_empty(factory: Callable[[], nn.Module]) -> nn.Module:
    """Build a network without initialising it (on the meta device, then uninitialised CPU
    memory): the weights are loaded next, so random initialisation would be wasted work."""
    with torch.device("meta"):
        net = factory()
    return net.to_empty(device="cpu")


def load_weights(net: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``net`` strictly; UserError naming missing/unexpected/misshapen keys.

    BatchNorm ``num_batches_tracked`` counters may be absent (old torch and Caffe ports omit
    them; they do not affect inference) and are then set to 0, as torch does for old files.
    """
    own = net.state_dict()
    state = dict(state)
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value, device="cpu")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} (want {tuple(v.shape)})"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys: {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} keys: {_first(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} wrong shapes: {_first(shapes, 2)}")
    if problems:
        raise UserError(f"{what} does not fit: " + "; ".join(problems))
    net.load_state_dict(state, strict=True)


# ------------------------------------------------------------------ where weights come from


@dataclass(frozen=True)
class Published:
    """A weights file published at ``url``; ``sha256_prefix`` when its name carries one."""

    url: str
    sha256_prefix: str = ""


@dataclass(frozen=True)
class WeightsSource:
    """Where a plugin's weights come from: a local file, or a download into the cache.

    ``path`` is the local file, or the cache destination of the download; ``url`` and
    ``sha256`` are set for downloads; ``label`` says which option chose it, for messages.
    """

    path: Path
    label: str
    url: str | None = None
    sha256: str | None = None

    def obtain(self) -> Path:
        """The local weights file, downloaded (checksummed, atomically) first if need be."""
        if self.url is not None and self.sha256 is not None:
            return fetch(self.url, self.path, checksum=f"sha256:{self.sha256}", progress=True)
        if not self.path.is_file():
            raise UserError(f"weights file not found: {self.path} ({self.label})")
        return self.path


#: URL schemes ``url=`` accepts (what :func:`mfrbench.fetch.fetch` can read).
URL_SCHEMES = ("http", "https", "file")

#: Where a torch plugin runs; never part of its identity (see :mod:`mfrbench.vision.device`).
DEVICE_OPTION = OptionSpec(
    "device",
    "cpu",
    "torch device the network runs on (not part of the model id or cache key)",
    values_text="cpu|cuda|cuda:N",
)


def weights_options(published: Mapping[str, Published], what: str) -> tuple[OptionSpec, ...]:
    """The options :func:`weights_source` reads, declared for a plugin's option list."""
    return (
        OptionSpec("weights", None, f"local weights file: {what}", kind="path"),
        OptionSpec(
            "pretrained",
            None,
            "download this published file once into the cache (needs sha256=)",
            tuple(published),
            kind="choice",
        ),
        OptionSpec(
            "sha256",
            None,
            "the sha256 a pretrained= or url= download must have (nothing is fetched unverified)",
            kind="sha256",
        ),
        OptionSpec(
            "url",
            None,
            "download from here instead (with pretrained=: a mirror of that file; alone: any "
            "such file), verified by sha256=",
            kind="url",
        ),
    )


def _url_file_name(model: str, url: str) -> str:
    """The file name a ``url=`` download is cached under: the last segment of its path."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in URL_SCHEMES:
        raise UserError(f"{model}: url={url!r} is invalid: expected an http(s):// or file:// URL")
    path = unquote(parts.path)
    name = "" if path.endswith("/") else PurePosixPath(path).name
    if name in ("", ".", "..") or "\\" in name:
        raise UserError(f"{model}: url={url!r} is invalid: it must end in a file name")
    return name


def _sha256_hex(model: str, digest: str) -> str:
    """``sha256=`` as 64 lower-case hex digits (an optional ``sha256:`` prefix dropped)."""
    digest = digest.strip().lower().removeprefix("sha256:")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise UserError(f"{model}: sha256={digest!r} is not 64 hex digits")
    return digest


def weights_source(
    model: str,
    opts: Options,
    published: Mapping[str, Published],
    what: str,
) -> WeightsSource:
    """Read the weights options from ``opts``: where the plugin's weights come from.

    - ``weights=PATH``: a local file.
    - ``pretrained=NAME sha256=HEX``: NAME's published file, downloaded into
      ``<cache>/models/<its file name>``. When that name carries a sha256 prefix
      (:attr:`Published.sha256_prefix`, e.g. torchvision's ``resnet50-0676ba61.pth``), the
      digest must start with it.
    - ``url=URL sha256=HEX`` (``http(s)://`` or ``file://``): download from URL instead. With
      ``pretrained=NAME`` it is a mirror (or a local server) of NAME's file: cached under
      NAME's file name, whose sha256 prefix must still match. Alone it is any weights file,
      cached under ``<cache>/models/<URL's file name>``.

    Downloads are :func:`mfrbench.fetch.fetch`'s (verified, atomic). ``what`` describes the
    expected file for the refusal message. Raises UserError when no weights are given (random
    weights are never used), for ``weights=`` with ``pretrained=`` or ``url=``, an unknown
    ``pretrained`` name, a malformed URL, and a download without ``sha256`` (these files have
    no published checksum, and mfrbench downloads nothing unverified).
    """
    url = opts.str("url")
    url = url.strip() if url is not None else None
    url_name = _url_file_name(model, url) if url is not None else ""
    path = opts.str("weights")
    if url is not None and path:
        raise UserError(f"{model}: pass either weights=PATH (a local file) or url=URL, not both")
    names = ", ".join(published)
    name = opts.str("pretrained", "") or ""
    if name and name not in published:
        choices = f"choose one of {names}" if published else "this model has none"
        raise UserError(f"{model}: option pretrained={name!r} is invalid: {choices}")
    digest = opts.str("sha256")
    if path and name:
        raise UserError(f"{model}: pass either weights=PATH or pretrained=NAME, not both")
    if path:
        if digest:
            raise UserError(f"{model}: sha256= applies to pretrained= downloads, not weights=")
        return WeightsSource(Path(path).expanduser(), label=f"weights={path}")
    if not name and url is None:
        also = f", or pretrained={'|'.join(published)} sha256=HEX to download" if published else ""
        raise UserError(
            f"{model}: no weights: pass --model-opt weights=PATH ({what}){also}, or url=URL "
            "sha256=HEX to download from elsewhere; random weights are never used"
        )
    if not name:
        if not digest:
            raise UserError(
                f"{model}: url= downloads must be verified: pass --model-opt sha256=HEX (the "
                f"sha256 of {url}), or download it yourself and pass weights=PATH"
            )
        dest = cache_dir() / "models" / url_name
        return WeightsSource(dest, f"url={url}", url=url, sha256=_sha256_hex(model, digest))
    source = published[name]
    if not digest:
        raise UserError(
            f"{model}: pretrained={name} has no published checksum, so it is not downloaded "
            f"unverified: pass --model-opt sha256=HEX (the sha256 of {source.url}), or download "
            "it yourself and pass weights=PATH"
        )
    digest = _sha256_hex(model, digest)
    if not digest.startswith(source.sha256_prefix):
        raise UserError(
            f"{model}: sha256={digest[:12]}... cannot be {source.url}, whose name says its "
            f"sha256 starts with {source.sha256_prefix}"
        )
    dest = cache_dir() / "models" / Path(source.url).name
    label = f"pretrained={name}" if url is None else f"pretrained={name} from {url}"
    return WeightsSource(dest, label, url=source.url if url is None else url, sha256=digest)


def check_weights(
    model: str, options: Mapping[str, Any], published: Mapping[str, Published], what: str
) -> tuple[bool, str]:
    """``check()`` for a weights-only plugin: parse the options and look for the file.

    Every option is consumed leniently (the plugin validates the others when created); only
    the weights options (``weights=``, ``pretrained=``, ``sha256=``, ``url=``; see
    :func:`weights_source`) are judged here. Nothing is downloaded.
    """
    opts = Options(model, options)
    try:
        source = weights_source(model, opts, published, what)
    except UserError as e:
        return False, str(e)
    if source.url is not None:
        if source.path.is_file():
            return True, f"{source.label}: cached at {source.path}"
        if options.get("url") is not None:  # the label already names the URL
            return True, f"{source.label}: downloads on first use"
        return True, f"{source.label}: downloads {source.url} on first use"
    if not source.path.is_file():
        return False, f"{model}: weights file not found: {source.path} ({source.label})"
    return True, f"{source.label}"


# --------------------------------------------------------------------------- running the nets

#: Images per forward pass inside :func:`embed_batches` (bounds memory; the evaluator batches).
CHUNK = 32


def default_size(crop: str, width: int) -> tuple[int, int] | None:
    """Input (w, h) keeping the crop's aspect: square face and aligned crops, 2:1 upper half,
    None = per image."""
    if crop in ("face", "arcface-112", "facenet-160"):
        return width, width
    if crop == "upper-half":
        return width, width // 2
    return None


def fit_width(image: np.ndarray, width: int) -> np.ndarray:
    """Scale an image to ``width`` keeping its aspect (height rounded, at least 1)."""
    import cv2

    h, w = image.shape[:2]
    if w == width:
        return image
    height = max(1, round(h * width / w))
    interp = cv2.INTER_AREA if w > width else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=interp)


def embed_batches(
    forward: Callable[[torch.Tensor], torch.Tensor],
    images: Sequence[np.ndarray],
    preprocess: Preprocess,
    dim: int,
    chunk: int = CHUNK,
    device: torch.device | None = None,
) -> np.ndarray:
    """Run ``forward`` over images as (N, dim) float32, in order, without autograd.

    Images are normalised per ``preprocess`` (:func:`~mfrbench.models.base.to_tensor`) and
    grouped by size, so a batch may mix sizes when ``preprocess.size`` is None. Batches go to
    ``device`` (where the network's weights are; None: stay on the CPU) and come back as numpy.
    """
    out = np.empty((len(images), dim), dtype=np.float32)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(images):
        key = tuple(np.shape(img)) if preprocess.size is None else ()
        by_shape.setdefault(key, []).append(i)
    with torch.inference_mode():
        for indices in by_shape.values():
            for start in range(0, len(indices), chunk):
                idx = indices[start : start + chunk]
                x = torch.from_numpy(to_tensor([images[i] for i in idx], preprocess))
                y = forward(x if device is None else x.to(device))
                if tuple(y.shape) != (len(idx), dim):
                    raise RuntimeError(
                        f"network returned {tuple(y.shape)}, want ({len(idx)}, {dim})"
                    )
                out[idx] = y.float().cpu().numpy()
    return out
