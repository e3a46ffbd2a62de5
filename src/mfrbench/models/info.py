"""What a plugin tells its users: :class:`ModelInfo` (``mfrbench models --details NAME``).

Each built-in plugin class carries one as ``info``: a description, its declared options (the
tuple its option parser uses, so the two cannot disagree), its default preprocessing (the
:class:`~mfrbench.models.base.Preprocess` it builds with no options; a test checks that),
its default distance and where its weights come from. docs/models.md says the same per plugin
(a test checks every declared option and default appears there).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from mfrbench.models.base import EmbeddingModel, Preprocess
from mfrbench.models.options import OptionSpec

#: Where the options, preprocessing and weights of each built-in are written down for users.
DOCS = "docs/models.md"


@dataclass(frozen=True)
class ModelInfo:
    """One plugin as a user sees it.

    spec: how ``--model`` names it (``plugin:dlib-resnet``, ``onnx:PATH``, ``siamese:DIR``).
    preprocess: the default preprocessing (None when it is another model's, e.g. a backbone's);
    preprocess_note: what changes it (options, the model file) and anything it does not say.
    distance: the default distance and its convention. weights: where they come from.
    """

    spec: str
    summary: str
    options: tuple[OptionSpec, ...]
    preprocess: Preprocess | None
    preprocess_note: str
    distance: str
    weights: str

    @property
    def anchor(self) -> str:
        """The docs page section of this plugin (``docs/models.md#dlib-resnet``)."""
        name = self.spec.partition(":")[2] if self.spec.startswith("plugin:") else self.spec
        return f"{DOCS}#{name.split(':')[0].lower()}"


def info_of(obj: object, spec: str) -> ModelInfo:
    """The ``info`` a plugin class declares, or what can be said of one that declares none."""
    info = getattr(obj, "info", None)
    if isinstance(info, ModelInfo):
        return info
    doc = inspect.getdoc(obj) or "(no description)"
    pre = getattr(obj, "preprocess", None)
    return ModelInfo(
        spec=spec,
        summary=doc.split("\n\n")[0].replace("\n", " "),
        options=(),
        preprocess=pre if isinstance(pre, Preprocess) else None,
        preprocess_note="this plugin declares no ModelInfo: see its own documentation",
        distance=str(getattr(obj, "default_distance", "?"))
        if isinstance(obj, type) and issubclass(obj, EmbeddingModel)
        else "?",
        weights="see the plugin's own documentation",
    )
