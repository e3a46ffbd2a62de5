"""The typed records match the protocol's canonical key lists, field for field and in order."""

from __future__ import annotations

from typing import get_type_hints

from mfrbench import protocol, records


def test_image_ref_fields_are_the_canonical_image_keys():
    keys = protocol.IMAGE_KEYS + protocol.OPTIONAL_IMAGE_KEYS
    assert tuple(get_type_hints(records.ImageRef)) == keys


def test_pair_fields_are_the_canonical_pair_keys():
    assert tuple(get_type_hints(records.Pair)) == protocol.PAIR_KEYS


def test_protocol_blocks_are_the_canonical_keys():
    from mfrbench.protocol.schema import OPTIONAL_TOP_KEYS

    hints = tuple(get_type_hints(records.Protocol))
    assert hints == protocol.TOP_KEYS + OPTIONAL_TOP_KEYS
    assert tuple(get_type_hints(records.DatasetInfo)) == protocol.DATASET_KEYS
    assert tuple(get_type_hints(records.Generation)) == protocol.GENERATION_KEYS
