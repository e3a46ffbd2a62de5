"""``mfrbench models --details NAME``: one plugin's options, defaults, preprocessing, weights.

:func:`model_details` gathers, without building the model or fetching anything, what the
plugin declares (``models.info.ModelInfo``) and renders its default preprocessing the way
report.json's is rendered (:func:`~mfrbench.evaluate.preprocess_text.preprocess_text`), so the
two read alike. The CLI only prints it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mfrbench.evaluate.prepare import aspect_record
from mfrbench.evaluate.preprocess_text import preprocess_text
from mfrbench.models.registry import model_info


@dataclass(frozen=True)
class ModelDetails:
    """facts: (label, text) lines in reading order; options: (name, default, values, meaning)."""

    spec: str
    source: str
    ok: bool
    reason: str
    facts: list[tuple[str, str]]
    options: list[tuple[str, str, str, str]]


def model_details(name: str) -> ModelDetails:
    """The details of the plugin ``name`` names (``dlib-resnet``, ``plugin:facenet``, ``onnx``);
    UserError for a name that is none."""
    described = model_info(name)
    info = described.info
    if info.preprocess is not None:
        record = {**info.preprocess.to_dict(), **aspect_record(info.preprocess, None)}
        preprocessing = preprocess_text(record)
    else:
        preprocessing = "not its own (see the note)"
    facts = [
        ("what", info.summary),
        ("preprocessing (defaults)", preprocessing),
        ("preprocessing note", info.preprocess_note),
        ("distance", info.distance),
        ("weights", info.weights),
        ("docs", info.anchor),
    ]
    options = [(s.name, s.shown_default(), s.shown_values(), s.help) for s in info.options]
    return ModelDetails(info.spec, described.source, described.ok, described.reason, facts, options)
