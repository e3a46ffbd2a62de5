"""Identity-disjoint train/val/test splits, with fractions rounded exactly as written.

A fraction is taken as the decimal the user wrote (0.2 is exactly 1/5), so split sizes do not
depend on binary floating point: 525 identities at 0.2 / 0.2 give 315 / 105 / 105.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

from mfrbench.errors import UserError
from mfrbench.vision.augment import make_rng

SPLIT_RULE = (
    "distinct identities sorted, shuffled (seeded); the first round_half_up(n * test_frac) go "
    "to test, the next min(round_half_up(n * val_frac), n - n_test) to val, the rest to train"
)


def exact(value: float) -> Fraction:
    """A float parameter as the decimal the user wrote (0.2 -> 1/5), for exact rounding."""
    return Fraction(repr(float(value)))


def round_half_up(x: Fraction) -> int:
    """``floor(x + 1/2)``: halves round up, whatever the float representation."""
    return math.floor(x + Fraction(1, 2))


def _check_frac(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0 <= value <= 1):
        raise UserError(f"{name} must be a number between 0 and 1, got {value!r}")


def split_sizes(n: int, test_frac: float, val_frac: float) -> tuple[int, int, int]:
    """(train, val, test) identity counts for ``n`` identities; see :data:`SPLIT_RULE`."""
    _check_frac("test fraction", test_frac)
    _check_frac("val fraction", val_frac)
    if exact(test_frac) + exact(val_frac) > 1:
        raise UserError(f"test fraction + val fraction exceed 1 ({test_frac} + {val_frac})")
    n_test = round_half_up(n * exact(test_frac))
    n_val = min(round_half_up(n * exact(val_frac)), n - n_test)
    return n - n_test - n_val, n_val, n_test


def identity_split(
    identities: Iterable[str], *, seed: int, test_frac: float = 0.2, val_frac: float = 0.2
) -> dict[str, str]:
    """Assign each distinct identity to ``train``, ``val`` or ``test`` (never two).

    Rule: identities sorted, shuffled with a seeded permutation; the first
    ``floor(n * test_frac + 1/2)`` go to test, the next ``floor(n * val_frac + 1/2)`` (at most
    what is left) to val, the rest to train. Fractions are taken as the decimals written
    (0.2 is exactly 1/5), so 525 identities give 315 / 105 / 105.
    """
    ids = sorted(set(identities))
    _, n_val, n_test = split_sizes(len(ids), test_frac, val_frac)
    perm = make_rng(seed, "identity-split").permutation(len(ids))
    out = {}
    for rank, i in enumerate(perm.tolist()):
        out[ids[i]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return dict(sorted(out.items()))
