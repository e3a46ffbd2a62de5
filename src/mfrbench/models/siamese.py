"""``siamese:DIR``: a Siamese head trained by ``mfrbench train siamese``, as an embedding model.

DIR holds what training wrote (format in ``docs/training.md``):

- ``siamese.json``: backbone spec, options and identity; head shape; loss; training options;
  the protocol trained on; one entry per head (``all``, or ``fold<k>`` per held-out fold);
- ``heads.safetensors``: the head weights, tensors named ``<head>/<parameter>``;
- ``identities.json``: per head, the identities of its training and validation pairs.

The backbone is rebuilt from its spec and must have the identity it had during training (same
weights, same preprocessing), else the model refuses to load. Embeddings are the head's output
for the L2-normalised backbone embedding. Options: ``head=NAME`` uses one head for every pair
(for a per-fold model on another protocol; the leakage check still applies).

The backbone is built through the registry (this module imports it; the registry names this
class only as a ``siamese`` factory), and the head and its weights come from
:mod:`mfrbench.models.heads` and :mod:`mfrbench.models.safetensors_io`, which training uses too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mfrbench.digest import sha256_text
from mfrbench.errors import UserError
from mfrbench.models.base import (
    HeadModel,
    ModelIdentity,
    Options,
    OptionSpec,
    canonical_json,
    sha256_file,
)
from mfrbench.models.info import ModelInfo
from mfrbench.models.registry import create_model
from mfrbench.models.safetensors_io import read_safetensors

FORMAT = "mfrbench-siamese"
FORMAT_VERSION = 1
CONFIG = "siamese.json"
WEIGHTS = "heads.safetensors"
IDENTITIES = "identities.json"
#: tensors ``<head>/backbone/<key>``: the fine-tuned backbone blocks of that head
BACKBONE = "backbone"

OPTIONS = (
    OptionSpec(
        "head",
        None,
        "score every pair with this one head (for a per-fold model on another protocol; the "
        "leakage check still applies)",
        default_text="the only head, or each fold's own head on its protocol",
    ),
)
INFO = ModelInfo(
    spec="siamese:DIR",
    summary="A fully connected head trained by mfrbench train siamese over a frozen backbone "
    "plugin (one head, or one per held-out fold), applied to the backbone's L2-normalised "
    "embedding.",
    options=OPTIONS,
    preprocess=None,
    preprocess_note="the backbone's, exactly as when the head was trained (siamese.json "
    "records the backbone's spec, options and cache key; a changed backbone is refused)",
    distance="as trained (siamese.json's distance; cosine unless set)",
    weights="DIR/heads.safetensors (checked against its sha256 in DIR/siamese.json), over the "
    "backbone's own weights",
)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(
            f"siamese:{path.parent}: no {path.name} (not a trained model folder)"
        ) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"siamese:{path.parent}: cannot read {path.name}: {exc}") from None


def load_config(folder: str | Path) -> dict[str, Any]:
    """``siamese.json`` of a trained model folder, checked for format and weights digest."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"siamese:{folder}: no such folder")
    config = _read_json(folder / CONFIG)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise UserError(f"siamese:{folder}: {CONFIG} is not a {FORMAT} file")
    if config.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"siamese:{folder}: format_version {config.get('format_version')!r} is not supported "
            f"(this mfrbench reads {FORMAT_VERSION})"
        )
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise UserError(f"siamese:{folder}: no {WEIGHTS}")
    expected = config["weights"]["sha256"]
    if sha256_file(weights) != expected:
        raise UserError(f"siamese:{folder}: {WEIGHTS} does not match its sha256 in {CONFIG}")
    return config


class SiameseModel(HeadModel):
    """Backbone embeddings through a trained fully connected head (one head or one per fold)."""

    name = "siamese"
    version = "1"
    info = INFO

    def __init__(self, path: str, **options: Any) -> None:
        from mfrbench.models.heads import HeadConfig, load_head  # torch: imported on use

        opts = Options(self.name, options, OPTIONS)
        only = opts.str("head")
        opts.finish()
        folder = Path(path).expanduser()
        config = load_config(folder)
        self.folder = folder
        self.config = config
        bb = config["backbone"]
        self.backbone_source = (bb["spec"], dict(bb["options"]))
        self.backbone = create_model(bb["spec"], dict(bb["options"]))
        if self.backbone.cache_key() != bb["cache_key"]:
            raise UserError(
                f"siamese:{folder}: backbone {bb['spec']} now has another identity than when the "
                "head was trained (other weights or preprocessing); retrain or restore it"
            )
        head = config["head"]
        self.head_config = HeadConfig(
            int(head["in_dim"]), tuple(head["hidden"]), float(head["dropout"])
        )
        tensors, _ = read_safetensors(folder / WEIGHTS)
        self.heads: dict[str, Any] = {}
        self.fold_of: dict[str, int | None] = {}
        self._tuned: dict[str, dict[str, np.ndarray]] = {}
        self._tuned_models: dict[str, Any] = {}
        for entry in config["heads"]:
            hname = entry["name"]
            prefix = f"{hname}/"
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            tuned = {
                k[len(BACKBONE) + 1 :]: v for k, v in state.items() if k.startswith(f"{BACKBONE}/")
            }
            state = {k: v for k, v in state.items() if not k.startswith(f"{BACKBONE}/")}
            self.heads[hname] = load_head(self.head_config, state)
            if tuned:
                self._tuned[hname] = tuned
            self.fold_of[hname] = entry.get("eval_fold")
        if only is not None:
            if only not in self.heads:
                raise UserError(
                    f"siamese:{folder}: no head {only!r}; heads: {', '.join(self.heads)}"
                )
            self.heads = {only: self.heads[only]}
            self.fold_of = {only: None}
        self.per_fold = any(f is not None for f in self.fold_of.values())
        self.trained_on = config["protocol"]["digest"] if self.per_fold else None
        seen = _read_json(folder / IDENTITIES)
        self._seen = {h: frozenset(seen.get(h, [])) for h in self.heads}
        self.preprocess = self.backbone.preprocess
        self.embedding_size = int(self.head_config.hidden[-1])
        self.default_distance = config.get("distance", "cosine")
        self.weights_digest = sha256_text(
            canonical_json(
                {"heads": config["weights"]["sha256"], "only": only, "backbone": bb["cache_key"]}
            )
        )

    @classmethod
    def check(cls, path: str | None = None, **options: Any) -> tuple[bool, str]:
        """A folder written by ``mfrbench train siamese`` with intact weights."""
        if path is None:
            return False, "needs a trained model folder: siamese:DIR (mfrbench train siamese)"
        try:
            load_config(path)
        except UserError as exc:
            return False, str(exc)
        return True, ""

    def identity(self) -> ModelIdentity:
        return ModelIdentity(self.name, self.version, self.weights_digest, {})

    def head_names(self) -> list[str]:
        return list(self.heads)

    def head_for_fold(self, fold: int | None) -> str:
        if not self.per_fold:
            return next(iter(self.heads))
        for name, f in self.fold_of.items():
            if f == fold:
                return name
        raise UserError(f"siamese:{self.folder}: no head for fold {fold}")

    def seen_identities(self, head: str) -> frozenset[str]:
        return self._seen[head]

    def backbone_for(self, head: str) -> Any:
        """The shared backbone, or (``--unfreeze-last``) a copy with the head's tuned blocks."""
        if head not in self._tuned:
            return self.backbone
        if head not in self._tuned_models:
            import copy

            tuned: Any = copy.deepcopy(self.backbone)  # load_finetuned is an optional method
            try:
                tuned.load_finetuned(self._tuned[head])
            except AttributeError:
                raise UserError(
                    f"siamese:{self.folder}: head {head!r} carries fine-tuned backbone blocks "
                    f"but {self.config['backbone']['spec']} cannot load them"
                ) from None
            self._tuned_models[head] = tuned
        return self._tuned_models[head]

    def project(self, embeddings: np.ndarray, head: str) -> np.ndarray:
        """Head output (float32) for backbone embeddings, L2-normalised first as in training."""
        from mfrbench.models.heads import head_forward

        return head_forward(self.heads[head], np.asarray(embeddings, dtype=np.float32))
