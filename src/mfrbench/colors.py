"""Mask colours: named colours and the parser for ``--colors`` lists. All colours are RGB.

The LFW masking paper lists its light-blue mask colour as (250, 206, 135). That tuple is in
OpenCV's BGR order; in RGB (the order used everywhere in mfrbench) the same sky blue is
(135, 206, 250). Filling the paper's tuple into an RGB image would draw orange-ish
(250, 206, 135) instead, which is exactly the trap this module avoids by storing RGB only.
"""

from __future__ import annotations

import re

from mfrbench.errors import UserError

RGB = tuple[int, int, int]

NAMED_COLORS: dict[str, RGB] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    # Sky blue in RGB; the paper's (250, 206, 135) is this colour written in BGR order.
    "blue": (135, 206, 250),
}

_HEX = re.compile(r"#([0-9a-fA-F]{6})")


def parse_color(token: str) -> tuple[str, RGB]:
    """Parse one colour: a name from NAMED_COLORS or ``#RRGGBB`` (case-insensitive).

    Returns ``(name, rgb)``; a hex colour's name is its lower-case hex digits without ``#``.
    """
    text = token.strip()
    key = text.lower()
    if key in NAMED_COLORS:
        return key, NAMED_COLORS[key]
    match = _HEX.fullmatch(text)
    if match:
        digits = match.group(1).lower()
        rgb = (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))
        return digits, rgb
    raise UserError(
        f"unknown colour {text!r}: use one of {', '.join(NAMED_COLORS)} or #RRGGBB (e.g. #1a2b3c)"
    )


def parse_colors(spec: str) -> list[tuple[str, RGB]]:
    """Parse a comma-separated colour list such as ``"black, white,#1A2B3C"``.

    Whitespace around items is ignored and duplicates (same name) are dropped, keeping the
    first occurrence, so the order of the result follows the user's list. An empty list, an
    empty item or an unknown colour raises UserError naming the valid choices.
    """
    items = [item.strip() for item in spec.split(",")]
    if not spec.strip() or any(not item for item in items):
        raise UserError(
            f"empty colour in {spec!r}: give a comma list of {', '.join(NAMED_COLORS)} or #RRGGBB"
        )
    seen: dict[str, RGB] = {}
    for item in items:
        name, rgb = parse_color(item)
        seen.setdefault(name, rgb)
    return list(seen.items())
