"""Pair strategies (identity-disjoint splits and folds) and official pair-list parsers.

Everything here works on image references (:class:`~mfrbench.records.ImageRef`) and never
decodes an image, so generating pairs for 100,000 files takes seconds. A strategy returns a
:class:`PairSet`: the images its pairs use, the pairs in canonical order, every generation
parameter, a per-split or per-fold summary and warnings (duplicates, unreadable files).

Determinism: inputs are sorted before use and every random draw comes from a numpy Generator
seeded with sha256 of (seed, stable key) (:func:`mfrbench.vision.augment.make_rng`), so the same
images and seed give the same pairs whatever the listing order, machine or process.

Strategies, one module each:

- :func:`rmfrd_pairs` (``rmfrd``): the RMFRD thesis protocol done right (identity-disjoint
  train/val/test, seeded per-identity caps, uniformly sampled impostors); also for synth
  manifests.
- :func:`lfw_folds` (``folds``): LFW-style folds of genuine + impostor pairs with identities
  disjoint across folds, emitted for each requested pair type over the same source photos.
- :func:`official_lfw_pairs` (``official``): an official LFW list (``pairs.txt`` etc.) pointed
  at variants; the list format is parsed in ``lfw_lists``.
- :func:`mfr2_pairs`, :func:`listed_pairs` (``listed``): MFR2's ``pairs.txt`` or any list as
  listed.

Shared parts: ``pairset`` (PairSet, pair types, canonical order), ``refs`` (image references),
``sources`` (source photos and their sides), ``splits`` (identity splits), ``summary``
(summary blocks and :func:`summary_table`), ``mlfw`` (MLFW-style mask assignment). Modules of
this package import each other directly, never through this file, which only re-exports.
"""

from __future__ import annotations

from mfrbench.pairs.folds import lfw_folds
from mfrbench.pairs.lfw_lists import lfw_rel_path, parse_lfw_pairs
from mfrbench.pairs.listed import listed_pairs, mfr2_pairs
from mfrbench.pairs.mlfw import (
    DEFAULT_IMPOSTOR_SAME,
    MASK_ASSIGNMENTS,
    MLFW,
    PER_PHOTO,
    resolve_mask_assignment,
)
from mfrbench.pairs.official import official_lfw_pairs
from mfrbench.pairs.pairset import (
    LISTED,
    MASKED_MASKED,
    MASKED_UNMASKED,
    PAIR_TYPES,
    UNMASKED_UNMASKED,
    PairSet,
)
from mfrbench.pairs.refs import (
    color_for,
    find_duplicates,
    images_from_manifest,
    images_from_records,
)
from mfrbench.pairs.rmfrd import rmfrd_pairs
from mfrbench.pairs.splits import identity_split, split_sizes
from mfrbench.pairs.summary import summary_table
from mfrbench.protocol import IMAGE_KEYS, SPLITS  # re-exported: callers import them from here

__all__ = [
    "DEFAULT_IMPOSTOR_SAME",
    "IMAGE_KEYS",
    "LISTED",
    "MASKED_MASKED",
    "MASKED_UNMASKED",
    "MASK_ASSIGNMENTS",
    "MLFW",
    "PAIR_TYPES",
    "PER_PHOTO",
    "SPLITS",
    "UNMASKED_UNMASKED",
    "PairSet",
    "color_for",
    "find_duplicates",
    "identity_split",
    "images_from_manifest",
    "images_from_records",
    "lfw_folds",
    "lfw_rel_path",
    "listed_pairs",
    "mfr2_pairs",
    "official_lfw_pairs",
    "parse_lfw_pairs",
    "resolve_mask_assignment",
    "rmfrd_pairs",
    "split_sizes",
    "summary_table",
]
