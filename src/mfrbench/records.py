"""The typed records a protocol is made of: ImageRef, Pair, the dataset and generation blocks.

These are ``TypedDict``\\ s, not classes: a protocol is canonical JSON, and what is hashed is
exactly these mappings, so the records stay plain ``dict``\\ s at run time (``json``, pyarrow and
the digest see no difference) while a type checker sees the fields. ``protocol.IMAGE_KEYS`` and
``protocol.PAIR_KEYS`` are these records' keys in canonical order; ``tests/test_records.py``
keeps the two in step. The format reference is ``docs/protocols.md``.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

#: The variant of synth --masks images: one drawn mask per source, described by ``mask_style``.
MIX_VARIANT = "mask-mix"


class ImageRef(TypedDict):
    """One image of a protocol: its source file and, for synthetic images, frozen geometry.

    ``id`` is ``<variant>:<src_path>``; ``variant`` is ``real``, ``unmasked`` or
    ``mask-<colour>``. Geometry fields are null on real images; face fields are null unless
    ``face_status`` is ``ok`` (see ``protocol.validate`` for every rule).
    """

    id: str
    identity: str
    src_path: str
    src_sha256: str
    variant: str
    masked: bool
    synthetic: bool
    color: str | None
    color_rgb: list[int] | None
    mask_polygon: list[list[int]] | None
    face_box: list[int] | None
    roi_box: list[int] | None
    out_wh: list[int] | None
    detector: str | None
    landmarks: str | None
    face_status: str | None
    det_box: list[float] | None
    det_score: float | None
    points5: list[list[float]] | None
    points5_source: str | None
    landmarks68: list[list[int]] | None
    mask_type: str | None
    #: Only on ``mask-mix`` images (synth --masks): what was drawn, a
    #: :class:`~mfrbench.vision.mask_mix.MaskRecord`; absent elsewhere, so digests keep.
    mask_style: NotRequired[dict[str, Any]]


class Pair(TypedDict):
    """One comparison: ``a`` (reference) and ``b`` (probe) are ImageRef ids.

    ``label`` is 1 for genuine (same identity), 0 for impostor; ``fold`` is null outside
    LFW-style folds; ``id`` is the pair's position in canonical order.
    """

    id: int
    a: str
    b: str
    label: int
    split: str
    fold: int | None
    pair_type: str


class DatasetInfo(TypedDict):
    """Which data a protocol is built on: ``content_digest`` hashes every (path, sha256)."""

    name: str
    content_digest: str
    n_images: int


class Generation(TypedDict):
    """How the pairs were made: strategy name, every parameter, human-readable warnings."""

    strategy: str
    params: dict[str, Any]
    warnings: list[str]


class Protocol(TypedDict):
    """A whole protocol file (``protocol.TOP_KEYS`` in canonical order)."""

    schema: str
    schema_version: int
    name: str
    version: str
    description: str
    citation: str
    mfrbench_version: str
    dataset: DatasetInfo
    generation: Generation
    summary: dict[str, Any]
    images: list[ImageRef]
    pairs: list[Pair]
    digest: str
    #: Re-frozen protocols only: the ids this one replaces, oldest first (protocol.lineage).
    supersedes: NotRequired[list[dict[str, str]]]
