"""The model of a run: build it from a spec (or take an instance), name it, describe it.

``resolve_model`` turns ``--model`` into an :class:`~mfrbench.models.base.EmbeddingModel` and
the spec worker processes rebuild it from (in full: a bare plugin name gets its ``plugin:``);
``model_id_of`` gives the results folder name (``name@<12 hex>``) that the run writes under;
``identity_dict`` is the identity the report and the cache's ``meta.json`` record, also for a
model that is not fitted yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mfrbench.digest import sha256_text
from mfrbench.errors import UserError
from mfrbench.models.base import EmbeddingModel, ModelIdentity, cache_key_of


def resolve_model(
    model: str | EmbeddingModel, options: Mapping[str, Any] | None
) -> tuple[EmbeddingModel, str | None]:
    """The model instance and the spec workers can rebuild it from (None for an instance)."""
    from mfrbench.models.base import validate_model

    if isinstance(model, EmbeddingModel):
        if options:
            raise UserError("model options apply to a model spec, not to a model instance")
        return validate_model(model, type(model).__name__), None
    if not isinstance(model, str) or not model:
        raise UserError(f"--model must be a spec such as plugin:dlib-resnet, got {model!r}")
    from mfrbench.models.registry import create_model, normalize_spec

    spec = normalize_spec(model)  # a bare plugin name (dlib-resnet) is plugin:dlib-resnet
    return create_model(spec, dict(options or {})), spec


def identity_dict(model: EmbeddingModel) -> dict[str, Any]:
    """The identity of ``model`` as a dict; a model that cannot say (unfitted) gets a stand-in."""
    try:
        return model.identity().to_dict()
    except Exception as exc:  # an unfitted model may not know its basis yet
        version = str(getattr(model, "version", "?"))
        if model.needs_fit:  # expected before fitting: the fits are reported one by one
            return {"name": model.name, "version": version, "weights_digest": "unfitted"}
        return {"name": model.name, "version": version, "weights_digest": "?", "error": str(exc)}


def model_id_of(model: EmbeddingModel, distance: str) -> str:
    """``name@<12 hex>``: the results folder of a model (identity, preprocessing, distance).

    For a model fitted by the evaluator the fitted basis is left out (it depends on the
    protocol, which names the parent folder); a distance other than the model's default is
    part of the hash.
    """
    ident = identity_dict(model)
    if model.needs_fit:
        ident = {**ident, "weights_digest": "fitted-per-protocol"}
        ident.pop("error", None)
    identity = ModelIdentity(
        ident["name"], ident["version"], ident["weights_digest"], ident.get("options", {})
    )
    key = cache_key_of(identity, model.preprocess)
    if distance != model.default_distance:
        key = sha256_text(f"{key}:{distance}")
    return f"{model.name}@{key[:12]}"
