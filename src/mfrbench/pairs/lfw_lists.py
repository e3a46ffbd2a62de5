"""LFW's pair-list format: ``pairs.txt`` (view 2 folds), ``pairsDevTrain/Test`` and MFR2's list.

A parser only: lines become (fold, name1, i1, name2, i2, label) tuples, and LFW's file naming
(``Name/Name_0001.jpg``); the strategies that use the lists are in ``official`` and ``listed``.
"""

from __future__ import annotations

from pathlib import Path

from mfrbench.errors import UserError


def lfw_rel_path(name: str, index: int, ext: str = ".jpg") -> str:
    """LFW's file for image ``index`` (1-based) of ``name``: ``"Name/Name_0001.jpg"``."""
    return f"{name}/{name}_{int(index):04d}{ext}"


def _parse_index(token: str, path: Path, lineno: int) -> int:
    if not token.isdigit() or int(token) < 1:
        raise UserError(
            f"{path.name}:{lineno}: image number must be a positive integer, got {token!r}"
        )
    return int(token)


def _pair_line(
    tokens: list[str], path: Path, lineno: int, expect: int | None
) -> tuple[str, int, str, int, int]:
    """(name1, i1, name2, i2, label) of one pair line; ``expect`` 1/0 forces the shape."""
    if len(tokens) == 3 and expect in (None, 1):
        name, i, j = tokens
        first, second = _parse_index(i, path, lineno), _parse_index(j, path, lineno)
        if first == second:
            raise UserError(f"{path.name}:{lineno}: pairs image {first} of {name} with itself")
        return name, first, name, second, 1
    if len(tokens) == 4 and expect in (None, 0):
        n1, i, n2, j = tokens
        if n1 == n2:
            raise UserError(f"{path.name}:{lineno}: impostor pair names {n1} twice")
        return n1, _parse_index(i, path, lineno), n2, _parse_index(j, path, lineno), 0
    shapes: dict[int | None, str] = {1: "'name i j' (genuine)", 0: "'name1 i name2 j' (impostor)"}
    shape = shapes.get(expect, "'name i j' or 'name1 i name2 j'")
    raise UserError(f"{path.name}:{lineno}: expected {shape}, got {' '.join(tokens)!r}")


def parse_lfw_pairs(
    path: Path, *, header: bool | None = None
) -> list[tuple[int, str, int, str, int, int]]:
    """Read an LFW-format pair list as (fold, name1, i1, name2, i2, label) tuples, in file order.

    Formats: header ``"F\\tN"`` (``pairs.txt`` view 2: F folds, each N genuine lines
    ``name i j`` then N impostor lines ``name1 i name2 j``); header ``"N"`` (``pairsDevTrain``
    / ``pairsDevTest``: N genuine then N impostor, fold 0); no header (MFR2: each line's shape
    gives its label, fold 0). ``header=None`` detects a first line of one or two integers.
    Image numbers are 1-based. Blank lines are ignored; anything malformed raises
    :class:`UserError` naming the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read pair list {path}: {exc}") from None
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise UserError(f"{path.name}: empty pair list")
    first = lines[0][1]
    if header is None:
        header = 1 <= len(first) <= 2 and all(t.isdigit() for t in first)
    if not header:
        return [(0, *_pair_line(tokens, path, n, None)) for n, tokens in lines]
    lineno, head = lines[0]
    if not (1 <= len(head) <= 2 and all(t.isdigit() for t in head)):
        raise UserError(f"{path.name}:{lineno}: expected a header 'N' or 'folds N', got {head!r}")
    n_folds, per = (1, int(head[0])) if len(head) == 1 else (int(head[0]), int(head[1]))
    body = lines[1:]
    if len(body) != 2 * n_folds * per:
        raise UserError(
            f"{path.name}: header says {n_folds} fold(s) x ({per} genuine + {per} impostor) = "
            f"{2 * n_folds * per} pairs, the file has {len(body)}"
        )
    out = []
    for k, (n, tokens) in enumerate(body):
        fold, pos = divmod(k, 2 * per)
        out.append((fold, *_pair_line(tokens, path, n, 1 if pos < per else 0)))
    return out
