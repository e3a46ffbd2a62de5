"""Colour names and the --colors parser (RGB everywhere)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mfrbench.colors import NAMED_COLORS, parse_color, parse_colors
from mfrbench.errors import UserError


def test_named_colors_are_rgb() -> None:
    assert NAMED_COLORS["black"] == (0, 0, 0)
    assert NAMED_COLORS["white"] == (255, 255, 255)
    # Sky blue in RGB; the paper's (250, 206, 135) is the BGR spelling of the same colour.
    assert NAMED_COLORS["blue"] == (135, 206, 250)


def test_parse_names_and_hex_in_order() -> None:
    assert parse_colors("black,white,blue,#1A2b3C") == [
        ("black", (0, 0, 0)),
        ("white", (255, 255, 255)),
        ("blue", (135, 206, 250)),
        ("1a2b3c", (0x1A, 0x2B, 0x3C)),
    ]


def test_whitespace_case_and_duplicates() -> None:
    assert parse_colors("  White , BLACK,white, #ffffff ,#FFFFFF ") == [
        ("white", (255, 255, 255)),
        ("black", (0, 0, 0)),
        ("ffffff", (255, 255, 255)),
    ]


@pytest.mark.parametrize("spec", ["", "   ", "black,,white", "black,", ","])
def test_empty_items_are_user_errors(spec: str) -> None:
    with pytest.raises(UserError, match="black"):
        parse_colors(spec)


@pytest.mark.parametrize("spec", ["red", "black,purple", "#12345", "#1234567", "#gggggg", "123456"])
def test_unknown_colours_list_valid_names(spec: str) -> None:
    with pytest.raises(UserError) as info:
        parse_colors(spec)
    message = str(info.value)
    for name in NAMED_COLORS:
        assert name in message
    assert "#RRGGBB" in message


@given(st.tuples(*[st.integers(0, 255)] * 3), st.booleans())
def test_hex_round_trip(rgb: tuple[int, int, int], upper: bool) -> None:
    text = "#" + "".join(f"{c:02x}" for c in rgb)
    name, parsed = parse_color(text.upper() if upper else text)
    assert parsed == rgb
    assert name == text[1:]
